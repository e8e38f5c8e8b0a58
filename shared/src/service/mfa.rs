//! The TOTP second factor: enrollment (pending until its first code),
//! recovery codes, removal, and the second step of a login.
//!
//! Every code is accepted once (the factor remembers the last step), every
//! wrong code or password counts toward the name's lockout like a wrong
//! password at login, and a login's `mfa_token` is good for `totp::MAX_TRIES`
//! codes, only while it is the user's newest.

use super::login::{LoginError, check_password, throttle};
use super::sessions::{self, TokenPair};
use crate::credentials::{Password, Username};
use crate::mail::password_fingerprint;
use crate::password::HashError;
use crate::session::{Origin, PASSWORD};
use crate::store::{Change, LoginRecord, MfaStore, Proof, SessionStore, StoreError, TotpFactor, User, UserStore};
use crate::token::{AccessClaims, TokenAuthority};
use crate::totp::{self, TotpIssuer, TotpSecret};

/// The RFC 8176 `amr` value of a one-time password: a TOTP code or a recovery code.
pub const OTP: &str = "otp";

/// Why a second-factor operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// A code that is wrong, already used, or of a step too far from now; a recovery code not in the set.
    #[error("invalid code")]
    InvalidCode,
    /// The first code of an enrollment is wrong or already used.
    #[error("invalid enrollment code")]
    InvalidEnrollmentCode,
    /// The password given is not the account's.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many recent failures on this name.
    #[error("locked for {retry_after} s")]
    Locked { retry_after: u64 },
    /// No factor in the state the route needs (none pending, none active).
    #[error("no such factor")]
    NotFound,
    /// A factor is active already: it must be removed before another is enrolled.
    #[error("a TOTP factor is active")]
    AlreadyActive,
    /// The access token's user or session is gone.
    #[error("the account or session of this token is gone")]
    Gone,
    /// The `mfa_token` is forged, expired, void, used or superseded.
    #[error("the mfa_token is no good")]
    InvalidMfaToken,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<LoginError> for MfaError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::InvalidCredentials => Self::InvalidCredentials,
            LoginError::Locked { retry_after } => Self::Locked { retry_after },
            // Only a login asks for a second factor; a password check never does.
            LoginError::MfaRequired { .. } => Self::InvalidCredentials,
            LoginError::Store(e) => Self::Store(e),
            LoginError::Hash(e) => Self::Hash(e),
        }
    }
}

/// What proves the caller holds the factor, to remove it or renew its recovery codes.
pub enum Reauth {
    /// A current TOTP code.
    Code(String),
    /// The account's password.
    Password(Password),
}

/// A second step of a login: a TOTP code, or one of the recovery codes.
pub enum SecondFactor {
    Code(String),
    RecoveryCode(String),
}

/// A new, pending factor: what the user's authenticator app needs.
pub struct Enrollment {
    pub secret: TotpSecret,
    pub otpauth_uri: String,
}

/// The username of a verified access token.
fn username_of(claims: &AccessClaims) -> Result<Username, MfaError> {
    Username::parse(&claims.username).map_err(|_| MfaError::Gone)
}

/// The caller's login record (user, failures, factor), read beside the
/// check that their session is still live.
async fn caller<S: UserStore + SessionStore>(
    store: &S,
    claims: &AccessClaims,
    now: u64,
) -> Result<(User, LoginRecord), MfaError> {
    let username = username_of(claims)?;
    let (record, live) = tokio::join!(store.login_record(&username), sessions::is_live(store, claims, now));
    let (record, live) = (record?, live?);
    match &record.user {
        Some(user) if live && user.id == claims.sub && !user.deleting => Ok((user.clone(), record)),
        _ => Err(MfaError::Gone),
    }
}

/// Starts an enrollment for the caller: a new secret, pending until its
/// first code (`confirm`), replacing any pending one. Refused while a factor is active.
pub async fn enroll<S: UserStore + SessionStore + MfaStore>(
    store: &S,
    issuer: &TotpIssuer,
    claims: &AccessClaims,
    now: u64,
) -> Result<Enrollment, MfaError> {
    let (user, record) = caller(store, claims, now).await?;
    if user.totp || record.totp.is_some_and(|f| f.active) {
        return Err(MfaError::AlreadyActive);
    }
    let factor = TotpFactor {
        secret: TotpSecret::generate(),
        active: false,
        created_at: now,
        last_step: 0,
        recovery: Vec::new(),
        attempt: String::new(),
        attempt_tries: 0,
    };
    match store.put_pending_totp(&user, &factor).await? {
        Change::Done => {
            tracing::info!("TOTP enrollment started");
            Ok(Enrollment {
                otpauth_uri: factor.secret.uri(issuer, &user.username),
                secret: factor.secret,
            })
        }
        // Activated by a parallel enrollment, or the user changed.
        Change::Conflict => Err(MfaError::AlreadyActive),
    }
}

/// Activates the caller's pending factor with its first code, and returns
/// the recovery codes, shown this once.
pub async fn confirm<S: UserStore + SessionStore + MfaStore>(
    store: &S,
    claims: &AccessClaims,
    code: &str,
    now: u64,
) -> Result<Vec<String>, MfaError> {
    let (user, record) = caller(store, claims, now).await?;
    let factor = match record.totp {
        Some(f) if f.active => return Err(MfaError::AlreadyActive),
        Some(f) if now < f.created_at.saturating_add(totp::PENDING_TTL) => f,
        _ => return Err(MfaError::NotFound),
    };
    let step = fresh_step(&factor, code, now);
    if !throttle(store, &username_of(claims)?, record.failures, step.is_some(), now).await? {
        tracing::info!("wrong TOTP enrollment code");
        return Err(MfaError::InvalidEnrollmentCode);
    }
    let step = step.expect("throttle passed a right code only");
    let codes = totp::new_recovery_codes();
    match store
        .activate_totp(&user, &factor, step, &digests(&user, &codes))
        .await?
    {
        Change::Done => {
            tracing::info!("TOTP factor active");
            Ok(codes)
        }
        // A parallel confirmation won, or a new enrollment replaced this one.
        Change::Conflict => Err(MfaError::InvalidEnrollmentCode),
    }
}

/// Removes the caller's active factor and its recovery codes, given a current code or the password.
pub async fn disable<S: UserStore + SessionStore + MfaStore>(
    store: &S,
    claims: &AccessClaims,
    reauth: &Reauth,
    now: u64,
) -> Result<(), MfaError> {
    let (user, factor, proof) = reauthenticate(store, claims, reauth, now).await?;
    match store.remove_totp(&user, &factor, proof.as_ref()).await? {
        Change::Done => {
            tracing::info!("TOTP factor removed");
            Ok(())
        }
        // The code was used by a parallel request, or the factor changed.
        Change::Conflict => Err(MfaError::InvalidCode),
    }
}

/// Replaces the caller's recovery codes (the old ones are void), given a
/// current code or the password, and returns the new ones, shown this once.
pub async fn renew_recovery_codes<S: UserStore + SessionStore + MfaStore>(
    store: &S,
    claims: &AccessClaims,
    reauth: &Reauth,
    now: u64,
) -> Result<Vec<String>, MfaError> {
    let (user, factor, proof) = reauthenticate(store, claims, reauth, now).await?;
    let codes = totp::new_recovery_codes();
    match store
        .replace_recovery_codes(&user, &factor, proof.as_ref(), &digests(&user, &codes))
        .await?
    {
        Change::Done => {
            tracing::info!("recovery codes renewed");
            Ok(codes)
        }
        Change::Conflict => Err(MfaError::InvalidCode),
    }
}

/// The caller, their active factor, and the code to consume (none for a
/// password), once `reauth` is found right behind the login throttle.
async fn reauthenticate<S: UserStore + SessionStore>(
    store: &S,
    claims: &AccessClaims,
    reauth: &Reauth,
    now: u64,
) -> Result<(User, TotpFactor, Option<Proof>), MfaError> {
    let active = |factor: Option<TotpFactor>| factor.filter(|f| f.active).ok_or(MfaError::NotFound);
    match reauth {
        Reauth::Password(password) => {
            let username = username_of(claims)?;
            let (checked, live) = tokio::join!(
                check_password(store, &username, password, now),
                sessions::is_live(store, claims, now)
            );
            let (checked, live) = (checked?, live?);
            if !live || checked.user.id != claims.sub || checked.user.deleting {
                return Err(MfaError::Gone);
            }
            Ok((checked.user, active(checked.totp)?, None))
        }
        Reauth::Code(code) => {
            let (user, record) = caller(store, claims, now).await?;
            let factor = active(record.totp)?;
            let step = fresh_step(&factor, code, now);
            if !throttle(store, &username_of(claims)?, record.failures, step.is_some(), now).await? {
                tracing::info!("wrong TOTP code");
                return Err(MfaError::InvalidCode);
            }
            Ok((user, factor, step.map(Proof::Step)))
        }
    }
}

/// The second step of a login: `mfa_token` from `POST /login` and a code
/// or a recovery code. Two round trips: the login record read beside the
/// count of this try, then the session written with the code consumed.
pub async fn login_mfa<S: UserStore + MfaStore>(
    store: &S,
    tokens: &TokenAuthority,
    mfa_token: &str,
    second: &SecondFactor,
    origin: Origin,
    now: u64,
) -> Result<TokenPair, MfaError> {
    let claims = tokens.verify_mfa(mfa_token, now).map_err(|reason| {
        tracing::info!(%reason, "mfa_token refused");
        MfaError::InvalidMfaToken
    })?;
    let username = Username::parse(&claims.username).map_err(|_| MfaError::InvalidMfaToken)?;
    // The try is counted before the code is looked at, so parallel guesses
    // with one token cannot get past the limit.
    let (record, counted) = tokio::join!(
        store.login_record(&username),
        store.count_mfa_try(&username, &claims.jti)
    );
    let (record, counted) = (record?, counted?);
    if !counted {
        tracing::info!("mfa_token void, used or superseded");
        return Err(MfaError::InvalidMfaToken);
    }
    let user = record
        .user
        .filter(|u| u.id == claims.sub && !u.deleting && password_fingerprint(&u.password_hash) == claims.pwf)
        .ok_or(MfaError::InvalidMfaToken)?;
    crate::log::record_user(&user.id);
    let factor = record.totp.filter(|f| f.active).ok_or(MfaError::InvalidMfaToken)?;
    let proof = match second {
        SecondFactor::Code(code) => fresh_step(&factor, code, now).map(Proof::Step),
        SecondFactor::RecoveryCode(code) => totp::recovery_code_hash(&user.id, code)
            .filter(|digest| factor.recovery.contains(digest))
            .map(Proof::Recovery),
    };
    if !throttle(store, &username, record.failures, proof.is_some(), now).await? {
        tracing::info!("wrong second factor at login");
        return Err(MfaError::InvalidCode);
    }
    let proof = proof.expect("throttle passed a right code only");
    let session = sessions::start(tokens, &user, &[PASSWORD, OTP], origin, now);
    match store.finish_mfa_login(&user, &claims.jti, &proof, &session).await? {
        Change::Done => {
            let recovery = matches!(proof, Proof::Recovery(_));
            tracing::info!(user_id = %user.id, recovery, "login succeeded with a second factor");
            Ok(sessions::token_pair(tokens, &session, now))
        }
        // A parallel request used the same code or token first, or the password changed.
        Change::Conflict => Err(MfaError::InvalidCode),
    }
}

/// The step of `code` if it is right at `now` and later than any code the factor accepted.
fn fresh_step(factor: &TotpFactor, code: &str, now: u64) -> Option<u64> {
    factor
        .secret
        .matching_step(code, now)
        .filter(|step| *step > factor.last_step)
}

/// What is stored of `codes`.
fn digests(user: &User, codes: &[String]) -> Vec<String> {
    codes
        .iter()
        .map(|code| totp::recovery_code_hash(&user.id, code).expect("a new recovery code is well formed"))
        .collect()
}
