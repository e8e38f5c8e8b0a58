//! The TOTP second factor: enrollment (pending until its first code),
//! recovery codes, removal, and the second step of a login.
//!
//! Every code is accepted once (the factor remembers the last step), every
//! wrong code or password counts toward the name's lockout like a wrong
//! password at login, and a login's `mfa_token` is good for `totp::MAX_TRIES`
//! codes, only while it is the user's newest.

use super::audit::{Owner, beside};
use super::login::{LoginError, check_password, throttle};
use super::sessions::{self, TokenPair};
use crate::audit::{Event, Kind};
use crate::credentials::{Password, Username};
use crate::lockout::FailedLogins;
use crate::mail::password_fingerprint;
use crate::metrics::{self, Metric};
use crate::password::HashError;
use crate::session::{Origin, PASSWORD};
use crate::store::{
    AuditStore, Change, LoginRecord, MfaStore, Proof, SessionStore, StoreError, ThrottleStore, TotpFactor, User,
    UserStore,
};
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
    /// The code is right and the operator disabled the account.
    #[error("the account is disabled")]
    AccountDisabled,
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
            // Only a login asks for a second factor or refuses a disabled account; a password check never does.
            LoginError::MfaRequired { .. } | LoginError::AccountDisabled => Self::InvalidCredentials,
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
    if record.totp.is_some_and(|f| f.active) {
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
/// the recovery codes, shown this once. The `mfa_enabled` event, in the
/// caller's session, is written beside the activation.
pub async fn confirm<S: UserStore + SessionStore + MfaStore + AuditStore>(
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
    let event = Event::new(Kind::MfaEnabled, now).in_session(&claims.sid);
    let recovery = digests(&user, &codes);
    let activated = store.activate_totp(&user, &factor, step, &recovery);
    match beside(store, Owner::of(&user), event, activated).await? {
        Change::Done => {
            tracing::info!("TOTP factor active");
            Ok(codes)
        }
        // A parallel confirmation won, or a new enrollment replaced this one.
        Change::Conflict => Err(MfaError::InvalidEnrollmentCode),
    }
}

/// Removes the caller's active factor and its recovery codes, given a
/// current code or the password. The `mfa_disabled` event, in the caller's
/// session, is written beside the removal.
pub async fn disable<S: UserStore + SessionStore + MfaStore + AuditStore + ThrottleStore>(
    store: &S,
    claims: &AccessClaims,
    reauth: &Reauth,
    now: u64,
) -> Result<(), MfaError> {
    let (user, factor, proof) = reauthenticate(store, claims, reauth, now).await?;
    let event = Event::new(Kind::MfaDisabled, now).in_session(&claims.sid);
    let removed = store.remove_totp(&user, &factor, proof.as_ref());
    match beside(store, Owner::of(&user), event, removed).await? {
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
pub async fn renew_recovery_codes<S: UserStore + SessionStore + MfaStore + AuditStore + ThrottleStore>(
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
/// password), once `reauth` is found right behind the login throttle. A
/// wrong code is the caller's `mfa_failed` (a wrong password their `login_failed`).
async fn reauthenticate<S: UserStore + SessionStore + AuditStore + ThrottleStore>(
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
            // A right password does not add to the name's failures.
            store
                .uncount_attempt(&username, checked.counted, checked.failures)
                .await?;
            Ok((checked.user, active(checked.totp)?, None))
        }
        Reauth::Code(code) => {
            let (user, record) = caller(store, claims, now).await?;
            let factor = active(record.totp)?;
            let step = fresh_step(&factor, code, now);
            let failed = Event::new(Kind::MfaFailed, now).in_session(&claims.sid);
            let username = username_of(claims)?;
            if !throttle_code(store, &user, failed, &username, record.failures, step.is_some(), now).await? {
                tracing::info!("wrong TOTP code");
                return Err(MfaError::InvalidCode);
            }
            Ok((user, factor, step.map(Proof::Step)))
        }
    }
}

/// The login throttle (`login::throttle`) around a code found `right` or
/// not: a wrong one it counts is `failed`, an event of `user` written beside
/// the count, and an `MfaFailed` metric. A code tried while the name is
/// locked is neither: it was not counted, as a password is not checked then.
async fn throttle_code<S: UserStore + AuditStore + ThrottleStore>(
    store: &S,
    user: &User,
    failed: Event,
    username: &Username,
    failures: FailedLogins,
    right: bool,
    now: u64,
) -> Result<bool, LoginError> {
    if right || failures.locked_for(now).is_some() {
        return throttle(store, username, failures, right, now).await;
    }
    metrics::count(Metric::MfaFailed);
    // The name's count, and the source address's, beside the user's event.
    let counts = async {
        let (name, address) = tokio::join!(
            throttle(store, username, failures, false, now),
            super::throttle::count(store, crate::throttle::Counter::Failures, now)
        );
        address?;
        name
    };
    let right = beside(store, Owner::of(user), failed, counts).await?;
    // A wrong code that begins a lock on the name, as a wrong password's does.
    super::login::lock_began(store, Some(user), failures.after_failure(now), now).await;
    Ok(right)
}

/// The second step of a login: `mfa_token` from `POST /login` and a code
/// or a recovery code. Two round trips: the login record read beside the
/// count of this try, then the session written with the code consumed and,
/// beside it, the `login_succeeded` event. A wrong code is the user's
/// `mfa_failed`; the right one for an account the operator disabled is
/// `AccountDisabled`, and no session.
pub async fn login_mfa<S: UserStore + MfaStore + AuditStore + ThrottleStore>(
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
    let (record, counted, blocked) = tokio::join!(
        store.login_record(&username),
        store.count_mfa_try(&username, &claims.jti),
        super::throttle::blocked(store, crate::throttle::Counter::Failures, now)
    );
    let (record, counted) = (record?, counted?);
    // An address past its failures gets no code checked.
    if let Some(retry_after) = blocked? {
        tracing::info!("source address throttled at the second step");
        return Err(MfaError::Locked { retry_after });
    }
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
    let failed = Event::new(Kind::MfaFailed, now);
    // The two steps below are boxed: each runs writes side by side, and
    // inline they made POST /login's future (this is its largest route) big
    // enough, unoptimized on DynamoDB, to overflow a test thread's 2 MiB stack
    // (integration/tests/faults.rs); boxed, the login function's is 62 KB, not 108.
    if !Box::pin(throttle_code(
        store,
        &user,
        failed,
        &username,
        record.failures,
        proof.is_some(),
        now,
    ))
    .await?
    {
        tracing::info!("wrong second factor at login");
        return Err(MfaError::InvalidCode);
    }
    let proof = proof.expect("throttle passed a right code only");
    if user.disabled {
        tracing::info!(user_id = %user.id, "second factor right, account disabled");
        return Err(MfaError::AccountDisabled);
    }
    let session = sessions::start(tokens, &user, &[PASSWORD, OTP], origin, now);
    let event = Event::new(Kind::LoginSucceeded, now).in_session(&session.id);
    let finished = store.finish_mfa_login(&user, &claims.jti, &proof, &session);
    match Box::pin(beside(store, Owner::of(&user), event, finished)).await? {
        Change::Done => {
            metrics::count(Metric::LoginSucceeded);
            let recovery = matches!(proof, Proof::Recovery(_));
            tracing::info!(user_id = %user.id, recovery, "login succeeded with a second factor");
            Ok(sessions::token_pair(tokens, &session, now))
        }
        // Something changed since the read: tell a token that is no longer
        // good (a newer login, used by a parallel request, a password
        // changed) from a code that is (used by a parallel request), with one read more.
        Change::Conflict => {
            let record = store.login_record(&username).await?;
            if record.user.as_ref().is_some_and(|u| u.id == user.id && u.disabled) {
                tracing::info!(user_id = %user.id, "account disabled during the second step");
                return Err(MfaError::AccountDisabled);
            }
            let token_good = record
                .user
                .is_some_and(|u| u.id == user.id && password_fingerprint(&u.password_hash) == claims.pwf)
                && record.totp.is_some_and(|f| f.active && f.attempt == claims.jti);
            Err(if token_good {
                MfaError::InvalidCode
            } else {
                MfaError::InvalidMfaToken
            })
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockout::FailedLogins;
    use crate::service::login::login;
    use crate::store::AccountStore;
    use crate::store::memory::MemoryStore;
    use crate::testing::{dev_authority, enable_totp, password_session, user_with_password};
    use crate::totp::STEP;

    const RIGHT: &str = "correct horse battery staple";

    struct World {
        store: MemoryStore,
        tokens: TokenAuthority,
        alice: User,
        /// An access token of a live password session of alice.
        claims: AccessClaims,
        now: u64,
    }

    async fn world() -> World {
        let store = MemoryStore::default();
        let tokens = dev_authority();
        let alice = user_with_password("u-1", "alice", RIGHT).await;
        store.create_user(&alice).await.unwrap();
        let now = crate::clock::now();
        let session = password_session(&tokens, &alice, now);
        store.create_session(&session, None).await.unwrap();
        let access = sessions::token_pair(&tokens, &session, now).access_token;
        let claims = tokens.verify_access(&access, now).unwrap();
        World {
            store,
            tokens,
            alice,
            claims,
            now,
        }
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw).unwrap()
    }

    /// The `mfa_token` a right password gets alice.
    async fn mfa_token(w: &World) -> String {
        let name = Username::parse("alice").unwrap();
        match login(&w.store, &w.tokens, &name, &password(RIGHT), Origin::default(), w.now).await {
            Err(LoginError::MfaRequired { mfa_token }) => mfa_token,
            other => panic!("expected mfa_required, got {:?}", other.map(|_| "tokens")),
        }
    }

    async fn second_step(w: &World, token: &str, second: SecondFactor) -> Result<TokenPair, MfaError> {
        login_mfa(&w.store, &w.tokens, token, &second, Origin::default(), w.now).await
    }

    #[tokio::test]
    async fn enrollment_is_pending_until_its_first_code_and_then_answers_ten_recovery_codes() {
        let w = world().await;
        let issuer = TotpIssuer::from_lookup(|_| None).unwrap();
        let enrollment = enroll(&w.store, &issuer, &w.claims, w.now).await.unwrap();
        assert!(
            enrollment
                .otpauth_uri
                .starts_with("otpauth://totp/lambda-jwt-auth:alice?")
        );
        assert!(!w.store.user_now("alice").totp, "pending: not active yet");
        let name = Username::parse("alice").unwrap();
        let pair = login(&w.store, &w.tokens, &name, &password(RIGHT), Origin::default(), w.now).await;
        assert!(pair.is_ok(), "a pending factor does not ask for a code");
        let code = enrollment.secret.code_at(w.now);
        let codes = confirm(&w.store, &w.claims, &code, w.now).await.unwrap();
        assert_eq!(codes.len(), 10);
        assert!(w.store.user_now("alice").totp);
        let factor = w.store.totp_now("alice").unwrap();
        assert!(factor.active);
        assert_eq!(factor.last_step, w.now / STEP, "the confirming code is used");
        assert!(
            !factor.recovery.iter().any(|d| codes.contains(d)),
            "only digests are stored"
        );
        assert!(matches!(
            enroll(&w.store, &issuer, &w.claims, w.now).await,
            Err(MfaError::AlreadyActive)
        ));
    }

    #[tokio::test]
    async fn a_right_code_or_password_on_a_name_with_failures_adds_none() {
        let w = world().await;
        let issuer = TotpIssuer::from_lookup(|_| None).unwrap();
        let name = Username::parse("alice").unwrap();
        let enrollment = enroll(&w.store, &issuer, &w.claims, w.now).await.unwrap();
        let right = enrollment.secret.code_at(w.now);
        let wrong = if right == "000000" { "111111" } else { "000000" };
        for _ in 0..2 {
            assert!(confirm(&w.store, &w.claims, wrong, w.now).await.is_err());
        }
        confirm(&w.store, &w.claims, &right, w.now).await.unwrap();
        assert_eq!(w.store.login_record(&name).await.unwrap().failures.count, 2);
        let reauth = Reauth::Password(password(RIGHT));
        renew_recovery_codes(&w.store, &w.claims, &reauth, w.now).await.unwrap();
        assert_eq!(w.store.login_record(&name).await.unwrap().failures.count, 2);
    }

    #[tokio::test]
    async fn a_totp_mark_without_an_active_factor_logs_nobody_in_by_password() {
        let w = world().await;
        let marked = User {
            id: "u-2".into(),
            username: "bob".into(),
            totp: true,
            passkeys: 0,
            ..w.alice.clone()
        };
        w.store.create_user(&marked).await.unwrap();
        let name = Username::parse("bob").unwrap();
        let answer = login(&w.store, &w.tokens, &name, &password(RIGHT), Origin::default(), w.now).await;
        assert!(matches!(answer, Err(LoginError::InvalidCredentials)));
        assert!(w.store.sessions("bob").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_confirmation_is_refused_once_a_factor_is_active() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        assert!(matches!(
            confirm(&w.store, &w.claims, &secret.code_at(w.now), w.now).await,
            Err(MfaError::AlreadyActive)
        ));
    }

    #[tokio::test]
    async fn an_enrollment_is_confirmed_up_to_the_last_second_of_its_life() {
        let w = world().await;
        let issuer = TotpIssuer::from_lookup(|_| None).unwrap();
        let enrollment = enroll(&w.store, &issuer, &w.claims, w.now).await.unwrap();
        let last = w.now + totp::PENDING_TTL - 1;
        let session = password_session(&w.tokens, &w.alice, last);
        w.store.create_session(&session, None).await.unwrap();
        let access = sessions::token_pair(&w.tokens, &session, last).access_token;
        let claims = w.tokens.verify_access(&access, last).unwrap();
        let codes = confirm(&w.store, &claims, &enrollment.secret.code_at(last), last).await;
        assert_eq!(codes.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_wrong_or_late_enrollment_code_activates_nothing_and_counts_as_a_failure() {
        let w = world().await;
        let issuer = TotpIssuer::from_lookup(|_| None).unwrap();
        let enrollment = enroll(&w.store, &issuer, &w.claims, w.now).await.unwrap();
        let wrong = if enrollment.secret.code_at(w.now) == "000000" {
            "111111"
        } else {
            "000000"
        };
        assert!(matches!(
            confirm(&w.store, &w.claims, wrong, w.now).await,
            Err(MfaError::InvalidEnrollmentCode)
        ));
        let failures = w
            .store
            .login_record(&Username::parse("alice").unwrap())
            .await
            .unwrap()
            .failures;
        assert_eq!(failures.count, 1);
        let later = w.now + totp::PENDING_TTL;
        let code = enrollment.secret.code_at(later);
        assert!(matches!(
            confirm(&w.store, &w.claims, &code, later).await,
            Err(MfaError::NotFound)
        ));
        assert!(!w.store.user_now("alice").totp);
    }

    #[tokio::test]
    async fn a_login_with_a_factor_gets_an_mfa_token_and_the_code_then_gets_tokens_with_otp() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        let sessions_before = w.store.sessions("alice").await.unwrap().len();
        let pair = second_step(&w, &token, SecondFactor::Code(secret.code_at(w.now)))
            .await
            .unwrap();
        let access = w.tokens.verify_access(&pair.access_token, w.now).unwrap();
        assert_eq!(access.amr, ["pwd", "otp"]);
        assert_eq!(w.store.sessions("alice").await.unwrap().len(), sessions_before + 1);
        let refresh = w.tokens.verify_refresh(&pair.refresh_token, w.now).unwrap();
        assert_eq!(refresh.amr, ["pwd", "otp"], "kept by every refresh");
    }

    #[tokio::test]
    async fn the_second_step_makes_two_round_trips() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        let before = w.store.calls();
        second_step(&w, &token, SecondFactor::Code(secret.code_at(w.now)))
            .await
            .unwrap();
        // The read and the try's count run side by side: two calls, one round
        // trip; then the write, and its event beside it: two calls, one round trip.
        assert_eq!(w.store.calls() - before, 4);
    }

    #[tokio::test]
    async fn a_code_is_accepted_once_and_an_earlier_step_never_after_a_later_one() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let next = secret.code_at(w.now + STEP);
        let token = mfa_token(&w).await;
        second_step(&w, &token, SecondFactor::Code(next.clone())).await.unwrap();
        let name = Username::parse("alice").unwrap();
        for (tries, code) in [next, secret.code_at(w.now)].into_iter().enumerate() {
            let token = mfa_token(&w).await;
            assert!(matches!(
                second_step(&w, &token, SecondFactor::Code(code)).await,
                Err(MfaError::InvalidCode)
            ));
            // Refused as a wrong code is, and counted as one.
            let failures = w.store.login_record(&name).await.unwrap().failures;
            assert_eq!(failures.count as usize, tries + 1);
        }
    }

    #[tokio::test]
    async fn a_recovery_code_logs_in_once() {
        let w = world().await;
        let (_, codes) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        let typed = codes[3].to_uppercase().replace('-', " ");
        let pair = second_step(&w, &token, SecondFactor::RecoveryCode(typed.clone()))
            .await
            .unwrap();
        assert_eq!(
            w.tokens.verify_access(&pair.access_token, w.now).unwrap().amr,
            ["pwd", "otp"]
        );
        assert_eq!(w.store.totp_now("alice").unwrap().recovery.len(), 9);
        let token = mfa_token(&w).await;
        assert!(matches!(
            second_step(&w, &token, SecondFactor::RecoveryCode(typed)).await,
            Err(MfaError::InvalidCode)
        ));
    }

    #[tokio::test]
    async fn an_mfa_token_is_single_use_and_void_after_five_tries_even_for_the_right_code() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        second_step(&w, &token, SecondFactor::Code(secret.code_at(w.now - STEP)))
            .await
            .unwrap();
        assert!(matches!(
            second_step(&w, &token, SecondFactor::Code(secret.code_at(w.now))).await,
            Err(MfaError::InvalidMfaToken)
        ));
        let token = mfa_token(&w).await;
        let right = secret.code_at(w.now);
        let wrong = if right == "000000" { "111111" } else { "000000" };
        for _ in 0..totp::MAX_TRIES {
            match second_step(&w, &token, SecondFactor::Code(wrong.into())).await {
                Err(MfaError::InvalidCode | MfaError::Locked { .. }) => {}
                other => panic!("{:?}", other.map(|_| "tokens")),
            }
        }
        assert!(matches!(
            second_step(&w, &token, SecondFactor::Code(right)).await,
            Err(MfaError::InvalidMfaToken)
        ));
    }

    #[tokio::test]
    async fn wrong_codes_count_toward_the_lockout_and_a_password_alone_does_not_clear_it() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let right = secret.code_at(w.now);
        let wrong = if right == "000000" { "111111" } else { "000000" };
        let token = mfa_token(&w).await;
        for _ in 0..FailedLogins::LIMIT - 1 {
            assert!(matches!(
                second_step(&w, &token, SecondFactor::Code(wrong.into())).await,
                Err(MfaError::InvalidCode)
            ));
        }
        let name = Username::parse("alice").unwrap();
        // A right password neither clears the count nor adds to it: only the second factor clears it.
        let token = mfa_token(&w).await;
        let failures = w.store.login_record(&name).await.unwrap().failures;
        assert_eq!(
            failures.count,
            FailedLogins::LIMIT - 1,
            "the right password cleared nothing"
        );
        assert!(matches!(
            second_step(&w, &token, SecondFactor::Code(wrong.into())).await,
            Err(MfaError::InvalidCode)
        ));
        assert!(matches!(
            second_step(&w, &token, SecondFactor::Code(right)).await,
            Err(MfaError::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn four_wrong_passwords_then_the_right_password_and_code_log_in_as_without_a_factor() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let name = Username::parse("alice").unwrap();
        let wrong = password("wrong horse battery staple");
        for _ in 0..FailedLogins::LIMIT - 1 {
            let answer = login(&w.store, &w.tokens, &name, &wrong, Origin::default(), w.now).await;
            assert!(matches!(answer, Err(LoginError::InvalidCredentials)));
        }
        let token = mfa_token(&w).await;
        let failures = w.store.login_record(&name).await.unwrap().failures;
        assert_eq!(failures.count, FailedLogins::LIMIT - 1);
        second_step(&w, &token, SecondFactor::Code(secret.code_at(w.now)))
            .await
            .unwrap();
        assert_eq!(w.store.login_record(&name).await.unwrap().failures.count, 0);
    }

    #[tokio::test]
    async fn the_right_code_clears_the_failures() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let right = secret.code_at(w.now);
        let wrong = if right == "000000" { "111111" } else { "000000" };
        let token = mfa_token(&w).await;
        let _ = second_step(&w, &token, SecondFactor::Code(wrong.into())).await;
        second_step(&w, &token, SecondFactor::Code(right)).await.unwrap();
        let name = Username::parse("alice").unwrap();
        assert_eq!(w.store.login_record(&name).await.unwrap().failures.count, 0);
    }

    #[tokio::test]
    async fn a_newer_login_voids_the_older_mfa_token() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let older = mfa_token(&w).await;
        let newer = mfa_token(&w).await;
        assert!(matches!(
            second_step(&w, &older, SecondFactor::Code(secret.code_at(w.now))).await,
            Err(MfaError::InvalidMfaToken)
        ));
        assert!(
            second_step(&w, &newer, SecondFactor::Code(secret.code_at(w.now)))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_password_changed_after_the_first_step_voids_the_mfa_token() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        let new_hash = crate::password::hash(&password("another horse battery staple"))
            .await
            .unwrap();
        w.store.change_password(&w.alice, &new_hash, &[]).await.unwrap();
        assert!(matches!(
            second_step(&w, &token, SecondFactor::Code(secret.code_at(w.now))).await,
            Err(MfaError::InvalidMfaToken)
        ));
    }

    #[tokio::test]
    async fn an_mfa_token_that_is_forged_or_another_kind_is_refused_before_the_store() {
        let w = world().await;
        enable_totp(&w.store, &w.alice, w.now).await;
        let access = crate::testing::access_token(&w.tokens, "u-1", "alice", w.now);
        for token in [access.as_str(), "", "not.a.jwt"] {
            let before = w.store.calls();
            assert!(matches!(
                second_step(&w, token, SecondFactor::Code("123456".into())).await,
                Err(MfaError::InvalidMfaToken)
            ));
            assert_eq!(w.store.calls(), before);
        }
    }

    #[tokio::test]
    async fn removing_the_factor_takes_a_current_code_or_the_password_and_then_a_password_logs_in() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        assert!(matches!(
            disable(
                &w.store,
                &w.claims,
                &Reauth::Password(password("wrong horse battery staple")),
                w.now
            )
            .await,
            Err(MfaError::InvalidCredentials)
        ));
        let code = secret.code_at(w.now);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(matches!(
            disable(&w.store, &w.claims, &Reauth::Code(wrong.into()), w.now).await,
            Err(MfaError::InvalidCode)
        ));
        assert!(w.store.user_now("alice").totp);
        disable(&w.store, &w.claims, &Reauth::Code(code.clone()), w.now)
            .await
            .unwrap();
        assert!(!w.store.user_now("alice").totp);
        assert!(w.store.totp_now("alice").is_none(), "the recovery codes went with it");
        assert!(matches!(
            disable(&w.store, &w.claims, &Reauth::Password(password(RIGHT)), w.now).await,
            Err(MfaError::NotFound)
        ));
        let name = Username::parse("alice").unwrap();
        assert!(
            login(&w.store, &w.tokens, &name, &password(RIGHT), Origin::default(), w.now)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_token_of_an_earlier_user_of_the_name_changes_nothing_even_with_the_password() {
        let w = world().await;
        enable_totp(&w.store, &w.alice, w.now).await;
        // A live session and token of "alice" from a user deleted since, whose name alice took.
        let ghost = User {
            id: "u-0".into(),
            ..w.alice.clone()
        };
        let session = password_session(&w.tokens, &ghost, w.now);
        w.store.create_session(&session, None).await.unwrap();
        let access = sessions::token_pair(&w.tokens, &session, w.now).access_token;
        let claims = w.tokens.verify_access(&access, w.now).unwrap();
        let reauth = Reauth::Password(password(RIGHT));
        assert!(matches!(
            disable(&w.store, &claims, &reauth, w.now).await,
            Err(MfaError::Gone)
        ));
        assert!(w.store.user_now("alice").totp);
    }

    #[tokio::test]
    async fn new_recovery_codes_void_the_old_set() {
        let w = world().await;
        let (_, old) = enable_totp(&w.store, &w.alice, w.now).await;
        let new = renew_recovery_codes(&w.store, &w.claims, &Reauth::Password(password(RIGHT)), w.now)
            .await
            .unwrap();
        assert_eq!(new.len(), 10);
        let token = mfa_token(&w).await;
        assert!(matches!(
            second_step(&w, &token, SecondFactor::RecoveryCode(old[0].clone())).await,
            Err(MfaError::InvalidCode)
        ));
        let token = mfa_token(&w).await;
        assert!(
            second_step(&w, &token, SecondFactor::RecoveryCode(new[0].clone()))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_token_of_an_ended_session_changes_no_factor() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let key = crate::session::SessionKey::new("alice", &w.claims.sid);
        w.store.revoke_session(&key, "u-1", w.now).await.unwrap();
        let issuer = TotpIssuer::from_lookup(|_| None).unwrap();
        assert!(matches!(
            enroll(&w.store, &issuer, &w.claims, w.now).await,
            Err(MfaError::Gone)
        ));
        assert!(matches!(
            disable(&w.store, &w.claims, &Reauth::Code(secret.code_at(w.now)), w.now).await,
            Err(MfaError::Gone)
        ));
        assert!(matches!(
            disable(&w.store, &w.claims, &Reauth::Password(password(RIGHT)), w.now).await,
            Err(MfaError::Gone)
        ));
        assert!(w.store.user_now("alice").totp);
    }

    fn kinds(events: &[crate::audit::Event]) -> Vec<Kind> {
        events.iter().map(|e| e.kind).collect()
    }

    async fn events_of(w: &World) -> Vec<crate::audit::Event> {
        w.store.events("alice", None, 100).await.unwrap().events
    }

    fn client() -> Origin {
        Origin {
            ip: "198.51.100.7".into(),
            user_agent: "Firefox".into(),
        }
    }

    /// A code that `secret` does not give at `now`.
    fn wrong_code(secret: &TotpSecret, now: u64) -> String {
        let right = secret.code_at(now);
        (if right == "000000" { "111111" } else { "000000" }).to_owned()
    }

    #[tokio::test]
    async fn confirming_a_factor_is_mfa_enabled_and_removing_it_mfa_disabled_in_the_callers_session() {
        let w = world().await;
        let issuer = TotpIssuer::from_lookup(|_| None).unwrap();
        let enrollment = enroll(&w.store, &issuer, &w.claims, w.now).await.unwrap();
        assert!(events_of(&w).await.is_empty(), "an enrollment is no event");
        let code = enrollment.secret.code_at(w.now);
        crate::audit::from_client(client(), confirm(&w.store, &w.claims, &code, w.now))
            .await
            .unwrap();
        let reauth = Reauth::Password(password(RIGHT));
        crate::audit::from_client(client(), disable(&w.store, &w.claims, &reauth, w.now))
            .await
            .unwrap();
        let events = events_of(&w).await;
        assert_eq!(kinds(&events), [Kind::MfaDisabled, Kind::MfaEnabled]);
        for event in &events {
            assert_eq!(
                (
                    event.ip.as_deref(),
                    event.user_agent.as_deref(),
                    event.session_id.as_deref()
                ),
                (Some("198.51.100.7"), Some("Firefox"), Some(w.claims.sid.as_str()))
            );
        }
    }

    #[tokio::test]
    async fn a_wrong_code_to_remove_the_factor_or_renew_the_codes_is_mfa_failed_in_the_callers_session() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let wrong = Reauth::Code(wrong_code(&secret, w.now));
        assert!(matches!(
            disable(&w.store, &w.claims, &wrong, w.now).await,
            Err(MfaError::InvalidCode)
        ));
        assert!(matches!(
            renew_recovery_codes(&w.store, &w.claims, &wrong, w.now).await,
            Err(MfaError::InvalidCode)
        ));
        let wrong_password = Reauth::Password(password("wrong horse battery staple"));
        assert!(disable(&w.store, &w.claims, &wrong_password, w.now).await.is_err());
        let events = events_of(&w).await;
        assert_eq!(
            kinds(&events),
            [Kind::LoginFailed, Kind::MfaFailed, Kind::MfaFailed],
            "a wrong password is a failed login"
        );
        assert!(
            events[1..]
                .iter()
                .all(|e| e.session_id.as_deref() == Some(w.claims.sid.as_str()))
        );
        // A right code removes the factor: mfa_disabled, no failure more.
        let right = Reauth::Code(secret.code_at(w.now));
        disable(&w.store, &w.claims, &right, w.now).await.unwrap();
        assert_eq!(kinds(&events_of(&w).await)[0], Kind::MfaDisabled);
    }

    #[tokio::test]
    async fn wrong_codes_count_against_their_address_and_an_address_past_its_failures_gets_no_code_checked() {
        let mut w = world().await;
        w.store.ip_limits.failures = 1;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        let from = |ip: &str| Origin {
            ip: ip.into(),
            user_agent: String::new(),
        };
        let wrong = SecondFactor::Code(wrong_code(&secret, w.now));
        let first = crate::audit::from_client(from("203.0.113.5"), second_step(&w, &token, wrong)).await;
        assert!(matches!(first, Err(MfaError::InvalidCode)));
        let right = || SecondFactor::Code(secret.code_at(w.now));
        let blocked = crate::audit::from_client(from("203.0.113.5"), second_step(&w, &token, right())).await;
        assert!(matches!(blocked, Err(MfaError::Locked { retry_after }) if retry_after > 0));
        let elsewhere = crate::audit::from_client(from("198.51.100.8"), second_step(&w, &token, right())).await;
        assert!(elsewhere.is_ok(), "{:?}", elsewhere.map(|_| "tokens"));
    }

    #[tokio::test]
    async fn the_wrong_code_that_locks_the_name_is_also_login_locked() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        for _ in 0..FailedLogins::LIMIT {
            let wrong = SecondFactor::Code(wrong_code(&secret, w.now));
            assert!(matches!(
                second_step(&w, &token, wrong).await,
                Err(MfaError::InvalidCode)
            ));
        }
        let events = events_of(&w).await;
        let mut expected = vec![Kind::LoginLocked];
        expected.extend(std::iter::repeat_n(Kind::MfaFailed, FailedLogins::LIMIT as usize));
        assert_eq!(kinds(&events), expected, "newest first");
    }

    #[tokio::test]
    async fn wrong_codes_at_login_are_mfa_failed_and_the_right_one_login_succeeded_in_its_new_session() {
        let w = world().await;
        let (secret, codes) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        let wrong = SecondFactor::Code(wrong_code(&secret, w.now));
        assert!(matches!(
            second_step(&w, &token, wrong).await,
            Err(MfaError::InvalidCode)
        ));
        let unknown = SecondFactor::RecoveryCode("aaaaa-bbbbb".into());
        assert!(matches!(
            second_step(&w, &token, unknown).await,
            Err(MfaError::InvalidCode)
        ));
        let recovery = SecondFactor::RecoveryCode(codes[0].clone());
        let login = login_mfa(&w.store, &w.tokens, &token, &recovery, Origin::default(), w.now);
        let pair = crate::audit::from_client(client(), login).await.unwrap();
        let sid = w.tokens.verify_access(&pair.access_token, w.now).unwrap().sid;
        let events = events_of(&w).await;
        assert_eq!(
            kinds(&events),
            [Kind::LoginSucceeded, Kind::MfaFailed, Kind::MfaFailed],
            "the right password alone is no event"
        );
        assert_eq!(
            (
                events[0].ip.as_deref(),
                events[0].user_agent.as_deref(),
                events[0].session_id.as_deref()
            ),
            (Some("198.51.100.7"), Some("Firefox"), Some(sid.as_str()))
        );
        assert!(events[1..].iter().all(|e| e.session_id.is_none()), "no session yet");
    }

    #[tokio::test]
    async fn a_code_tried_while_the_name_is_locked_is_not_counted_and_records_nothing() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let wrong = wrong_code(&secret, w.now);
        for _ in 0..FailedLogins::LIMIT {
            let reauth = Reauth::Code(wrong.clone());
            assert!(disable(&w.store, &w.claims, &reauth, w.now).await.is_err());
        }
        let recorded = events_of(&w).await.len();
        assert_eq!(
            recorded,
            FailedLogins::LIMIT as usize + 1,
            "each mfa_failed, and the lock's login_locked"
        );
        let locked = disable(&w.store, &w.claims, &Reauth::Code(wrong), w.now).await;
        assert!(matches!(locked, Err(MfaError::Locked { .. })), "{locked:?}");
        assert_eq!(events_of(&w).await.len(), recorded);
    }

    #[tokio::test]
    async fn a_disabled_account_gets_account_disabled_for_the_right_code_and_invalid_code_for_a_wrong_one() {
        use crate::store::AdminStore;
        let w = world().await;
        let (secret, codes) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        w.store.set_disabled(&w.store.user_now("alice"), true).await.unwrap();
        let sessions_before = w.store.sessions("alice").await.unwrap().len();
        let wrong = SecondFactor::Code(wrong_code(&secret, w.now));
        assert!(matches!(
            second_step(&w, &token, wrong).await,
            Err(MfaError::InvalidCode)
        ));
        for right in [
            SecondFactor::Code(secret.code_at(w.now)),
            SecondFactor::RecoveryCode(codes[0].clone()),
        ] {
            let answer = second_step(&w, &token, right).await;
            assert!(
                matches!(answer, Err(MfaError::AccountDisabled)),
                "{:?}",
                answer.map(|_| "tokens")
            );
        }
        assert_eq!(
            w.store.sessions("alice").await.unwrap().len(),
            sessions_before,
            "no session"
        );
        assert_eq!(kinds(&events_of(&w).await), [Kind::MfaFailed]);
        // Enabled again, a new login goes through (the recovery code was not used up).
        w.store.set_disabled(&w.store.user_now("alice"), false).await.unwrap();
        let token = mfa_token(&w).await;
        second_step(&w, &token, SecondFactor::RecoveryCode(codes[0].clone()))
            .await
            .unwrap();
    }

    /// What lands just before the second step's write.
    enum Race {
        /// A newer password login of alice.
        NewerLogin,
        /// The operator disables alice.
        Disabled,
    }

    /// The memory store, with `Race` landing just before the second step's
    /// write: the races the write's condition loses.
    struct RacedBy(MemoryStore, Race);

    impl ThrottleStore for RacedBy {
        fn ip_limits(&self) -> crate::throttle::IpLimits {
            self.0.ip_limits()
        }
        async fn ip_count(&self, key: &str, counter: crate::throttle::Counter, start: u64) -> Result<u64, StoreError> {
            self.0.ip_count(key, counter, start).await
        }
        async fn add_ip(&self, key: &str, counter: crate::throttle::Counter, start: u64) -> Result<u64, StoreError> {
            self.0.add_ip(key, counter, start).await
        }
    }

    impl UserStore for RacedBy {
        async fn create_user(&self, user: &User) -> Result<(), crate::store::CreateUserError> {
            self.0.create_user(user).await
        }
        async fn login_record(&self, username: &Username) -> Result<LoginRecord, StoreError> {
            self.0.login_record(username).await
        }
        async fn replace_password_hash(&self, username: &Username, old: &str, new: &str) -> Result<(), StoreError> {
            self.0.replace_password_hash(username, old, new).await
        }
        async fn count_attempt(
            &self,
            username: &Username,
            seen: FailedLogins,
            now: u64,
        ) -> Result<Option<FailedLogins>, StoreError> {
            self.0.count_attempt(username, seen, now).await
        }
        async fn add_attempt(&self, username: &Username, now: u64) -> Result<Option<FailedLogins>, StoreError> {
            self.0.add_attempt(username, now).await
        }
        async fn uncount_attempt(
            &self,
            username: &Username,
            counted: FailedLogins,
            before: FailedLogins,
        ) -> Result<(), StoreError> {
            self.0.uncount_attempt(username, counted, before).await
        }
    }

    impl MfaStore for RacedBy {
        async fn put_pending_totp(&self, user: &User, factor: &TotpFactor) -> Result<Change, StoreError> {
            self.0.put_pending_totp(user, factor).await
        }
        async fn activate_totp(
            &self,
            user: &User,
            factor: &TotpFactor,
            step: u64,
            recovery: &[String],
        ) -> Result<Change, StoreError> {
            self.0.activate_totp(user, factor, step, recovery).await
        }
        async fn remove_totp(
            &self,
            user: &User,
            factor: &TotpFactor,
            proof: Option<&Proof>,
        ) -> Result<Change, StoreError> {
            self.0.remove_totp(user, factor, proof).await
        }
        async fn replace_recovery_codes(
            &self,
            user: &User,
            factor: &TotpFactor,
            proof: Option<&Proof>,
            recovery: &[String],
        ) -> Result<Change, StoreError> {
            self.0.replace_recovery_codes(user, factor, proof, recovery).await
        }
        async fn start_mfa_attempt(&self, username: &Username, attempt: &str) -> Result<Change, StoreError> {
            self.0.start_mfa_attempt(username, attempt).await
        }
        async fn count_mfa_try(&self, username: &Username, attempt: &str) -> Result<bool, StoreError> {
            self.0.count_mfa_try(username, attempt).await
        }
        async fn finish_mfa_login(
            &self,
            user: &User,
            attempt: &str,
            proof: &Proof,
            session: &crate::session::Session,
        ) -> Result<Change, StoreError> {
            match self.1 {
                Race::NewerLogin => {
                    let name = Username::parse(&user.username).unwrap();
                    self.0.start_mfa_attempt(&name, "a newer login").await?;
                }
                Race::Disabled => {
                    use crate::store::AdminStore;
                    self.0.set_disabled(user, true).await?;
                }
            }
            self.0.finish_mfa_login(user, attempt, proof, session).await
        }
    }

    impl AuditStore for RacedBy {
        async fn record_event(
            &self,
            username: &str,
            user_id: &str,
            event: &crate::audit::Event,
        ) -> Result<(), StoreError> {
            self.0.record_event(username, user_id, event).await
        }
        async fn events(
            &self,
            username: &str,
            cursor: Option<&crate::audit::Cursor>,
            limit: usize,
        ) -> Result<crate::audit::Page, StoreError> {
            self.0.events(username, cursor, limit).await
        }
    }

    #[tokio::test]
    async fn an_mfa_token_superseded_during_its_second_step_is_an_invalid_token_not_a_wrong_code() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        let racing = RacedBy(w.store, Race::NewerLogin);
        let second = SecondFactor::Code(secret.code_at(w.now));
        let answer = login_mfa(&racing, &w.tokens, &token, &second, Origin::default(), w.now).await;
        assert!(
            matches!(answer, Err(MfaError::InvalidMfaToken)),
            "{:?}",
            answer.map(|_| "tokens")
        );
    }

    #[tokio::test]
    async fn an_account_disabled_during_its_second_step_is_account_disabled_with_no_session() {
        let w = world().await;
        let (secret, _) = enable_totp(&w.store, &w.alice, w.now).await;
        let token = mfa_token(&w).await;
        let sessions = w.store.sessions("alice").await.unwrap().len();
        let racing = RacedBy(w.store, Race::Disabled);
        let second = SecondFactor::Code(secret.code_at(w.now));
        let answer = login_mfa(&racing, &w.tokens, &token, &second, Origin::default(), w.now).await;
        assert!(
            matches!(answer, Err(MfaError::AccountDisabled)),
            "{:?}",
            answer.map(|_| "tokens")
        );
        assert_eq!(racing.0.sessions("alice").await.unwrap().len(), sessions, "no session");
    }
}
