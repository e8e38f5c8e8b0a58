//! Passkeys: registering one while logged in, listing and removing them,
//! and the passwordless login with a discoverable one. The ceremonies are
//! `webauthn-rs`'s; this module keeps their state server-side under a
//! random `challenge_id` (single use, `passkey::CHALLENGE_TTL`), binds each
//! credential id to one user, and starts the session.

use super::audit::{Owner, beside};
use super::sessions::{self, TokenPair};
use crate::audit::{Event, Kind};
use crate::credentials::Username;
use crate::metrics::{self, Metric};
use crate::passkey::{CHALLENGE_TTL, MAX_PER_USER, RelyingParty, passkey_id};
use crate::session::Origin;
use crate::store::{
    AccountStore, AuditStore, Ceremony, Challenge, Change, NewPasskey, PasskeyStore, SessionStore, StoreError,
    StoredPasskey, User,
};
use crate::token::{AccessClaims, TokenAuthority};
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid,
};
use webauthn_rs_proto::ResidentKeyRequirement;

/// The RFC 8176 `amr` of a passkey login: a hardware-bound key, and the
/// user verified by it (PIN or biometric).
pub const AMR: [&str; 2] = ["hwk", "user"];

/// The longest credential id a relying party accepts.
const MAX_CREDENTIAL_ID_BYTES: usize = 1023;

/// Why a passkey operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The body's `credential` is not a WebAuthn credential of the ceremony's kind.
    #[error("malformed credential: {0}")]
    Malformed(String),
    /// The `challenge_id` is unknown, used, expired, or of another ceremony or user.
    #[error("unknown, used or expired challenge")]
    InvalidChallenge,
    /// A registration the relying party refused (origin, RP id, challenge, flags, attestation).
    #[error("credential refused: {0}")]
    Refused(String),
    /// A login that did not prove a registered passkey of a live account.
    #[error("login refused: {0}")]
    LoginRefused(String),
    /// A passkey proven for an account the operator disabled.
    #[error("the account is disabled")]
    AccountDisabled,
    /// The credential id is registered already.
    #[error("credential registered already")]
    Taken,
    /// The account has `MAX_PER_USER` passkeys.
    #[error("too many passkeys")]
    TooMany,
    /// No passkey of the caller's with that id.
    #[error("no such passkey")]
    NotFound,
    /// The access token's user or session is gone.
    #[error("the account or session of this token is gone")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the browser needs to run a ceremony: the options for
/// `navigator.credentials.create` or `.get` (as `publicKey`), and the id to send back with its answer.
pub struct Started {
    pub challenge_id: String,
    pub public_key: serde_json::Value,
}

/// The caller's user, read beside the check that their session is live.
async fn caller<S: AccountStore + SessionStore>(
    store: &S,
    claims: &AccessClaims,
    now: u64,
) -> Result<User, PasskeyError> {
    let username = Username::parse(&claims.username).map_err(|_| PasskeyError::Gone)?;
    let (user, live) = tokio::join!(store.user(&username), sessions::is_live(store, claims, now));
    match (user?, live?) {
        (Some(user), true) if user.id == claims.sub && !user.deleting => Ok(user),
        _ => Err(PasskeyError::Gone),
    }
}

/// A new challenge for `ceremony`, with `state` kept server-side.
async fn challenge<S: PasskeyStore>(
    store: &S,
    ceremony: Ceremony,
    state: &impl serde::Serialize,
    now: u64,
) -> Result<String, PasskeyError> {
    let challenge = Challenge {
        id: Uuid::new_v4().simple().to_string(),
        ceremony,
        state: serde_json::to_string(state).expect("webauthn-rs state serializes"),
        expires_at: now + CHALLENGE_TTL,
    };
    store.put_challenge(&challenge).await?;
    Ok(challenge.id)
}

/// The state of challenge `id` of `ceremony`, taken (nobody can use it again), if live.
async fn take<S: PasskeyStore, T: serde::de::DeserializeOwned>(
    store: &S,
    id: &str,
    ceremony: &Ceremony,
    now: u64,
) -> Result<T, PasskeyError> {
    let challenge = store.take_challenge(id, ceremony).await?;
    let challenge = challenge
        .filter(|c| c.expires_at > now)
        .ok_or(PasskeyError::InvalidChallenge)?;
    serde_json::from_str(&challenge.state).map_err(|e| {
        tracing::warn!(error = %e, "stored challenge state unreadable");
        PasskeyError::InvalidChallenge
    })
}

fn parse<T: serde::de::DeserializeOwned>(credential: &serde_json::Value) -> Result<T, PasskeyError> {
    T::deserialize(credential).map_err(|e| PasskeyError::Malformed(e.to_string()))
}

/// The user id as WebAuthn's user handle (ids are UUIDs).
fn user_handle(user: &User) -> Result<Uuid, PasskeyError> {
    Uuid::try_parse(&user.id).map_err(|_| {
        tracing::warn!("user id is not a UUID: no passkey for this account");
        PasskeyError::Gone
    })
}

fn credential_of(stored: &StoredPasskey) -> Result<Passkey, StoreError> {
    serde_json::from_str(&stored.credential).map_err(|_| StoreError {
        operation: "passkey",
        detail: "stored credential unreadable".into(),
    })
}

/// Starts registering a passkey for the caller: creation options that
/// require a discoverable credential and user verification, and exclude the
/// caller's passkeys (an authenticator makes one per account).
pub async fn start_registration<S: AccountStore + SessionStore + PasskeyStore>(
    store: &S,
    rp: &RelyingParty,
    claims: &AccessClaims,
    now: u64,
) -> Result<Started, PasskeyError> {
    let username = Username::parse(&claims.username).map_err(|_| PasskeyError::Gone)?;
    let (user, existing) = tokio::join!(caller(store, claims, now), store.passkeys(&username));
    let (user, existing) = (user?, existing?);
    if user.passkeys >= MAX_PER_USER {
        return Err(PasskeyError::TooMany);
    }
    let exclude: Vec<CredentialID> = existing
        .iter()
        .filter(|p| p.user_id == user.id)
        .map(|p| credential_of(p).map(|c| c.cred_id().clone()))
        .collect::<Result<_, _>>()?;
    let (mut options, state) = rp
        .webauthn()
        .start_passkey_registration(user_handle(&user)?, &user.username, &user.username, Some(exclude))
        .map_err(|e| PasskeyError::Refused(e.to_string()))?;
    // A passkey that logs in without a username must be discoverable.
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    let ceremony = Ceremony::Registration { user_id: user.id };
    let challenge_id = challenge(store, ceremony, &state, now).await?;
    Ok(Started {
        challenge_id,
        public_key: serde_json::to_value(&options.public_key).expect("options serialize"),
    })
}

/// Finishes a registration: takes the challenge, has the relying party
/// check the browser's answer, and stores the passkey under `name`, its
/// credential id claimed for the caller; the `passkey_added` event, in the
/// caller's session, is written beside it.
pub async fn finish_registration<S: AccountStore + SessionStore + PasskeyStore + AuditStore>(
    store: &S,
    rp: &RelyingParty,
    claims: &AccessClaims,
    challenge_id: &str,
    credential: &serde_json::Value,
    name: String,
    now: u64,
) -> Result<StoredPasskey, PasskeyError> {
    let credential: RegisterPublicKeyCredential = parse(credential)?;
    let ceremony = Ceremony::Registration {
        user_id: claims.sub.clone(),
    };
    let (user, state) = tokio::join!(
        caller(store, claims, now),
        take::<_, PasskeyRegistration>(store, challenge_id, &ceremony, now)
    );
    let (user, state) = (user?, state?);
    let passkey = match rp.webauthn().finish_passkey_registration(&credential, &state) {
        Ok(passkey) => passkey,
        // The options excluded the caller's passkeys, so webauthn-rs refuses
        // one of them offered again: that is a passkey registered already.
        Err(error) => {
            let id = passkey_id(&credential.raw_id);
            let again = store.passkey(&id).await?.is_some_and(|(owner, _)| owner.id == user.id);
            return Err(match again {
                true => PasskeyError::Taken,
                false => PasskeyError::Refused(error.to_string()),
            });
        }
    };
    // WebAuthn Level 3, registration step 22 (webauthn-rs allows up to 4096).
    if passkey.cred_id().len() > MAX_CREDENTIAL_ID_BYTES {
        return Err(PasskeyError::Refused("credential id longer than 1023 bytes".into()));
    }
    let stored = StoredPasskey {
        id: passkey_id(passkey.cred_id()),
        user_id: user.id.clone(),
        username: user.username.clone(),
        name,
        created_at: now,
        last_used_at: None,
        credential: serde_json::to_string(&passkey).expect("a passkey serializes"),
    };
    let event = Event::new(Kind::PasskeyAdded, now).in_session(&claims.sid);
    let added = store.add_passkey(&user, &stored, MAX_PER_USER);
    match beside(store, Owner::of(&user), event, added).await? {
        NewPasskey::Added => {
            tracing::info!(passkey = %stored.id, "passkey added");
            Ok(stored)
        }
        NewPasskey::Taken => Err(PasskeyError::Taken),
        // The user changed since read: gone, or at the limit by a parallel registration.
        NewPasskey::Conflict => match caller(store, claims, now).await {
            Ok(_) => Err(PasskeyError::TooMany),
            Err(error) => Err(error),
        },
    }
}

/// The caller's passkeys, oldest first.
pub async fn list<S: AccountStore + SessionStore + PasskeyStore>(
    store: &S,
    claims: &AccessClaims,
    now: u64,
) -> Result<Vec<StoredPasskey>, PasskeyError> {
    let username = Username::parse(&claims.username).map_err(|_| PasskeyError::Gone)?;
    let (user, passkeys) = tokio::join!(caller(store, claims, now), store.passkeys(&username));
    let user = user?;
    Ok(passkeys?.into_iter().filter(|p| p.user_id == user.id).collect())
}

/// Removes the caller's passkey `id`; it logs nobody in from then on. The
/// caller's passkeys are read beside the caller (no round trip more), so
/// that an id not among them writes nothing, not even an event; the `passkey_removed` event, in the caller's session, is
/// written beside the removal.
pub async fn remove<S: AccountStore + SessionStore + PasskeyStore + AuditStore>(
    store: &S,
    claims: &AccessClaims,
    id: &str,
    now: u64,
) -> Result<(), PasskeyError> {
    let username = Username::parse(&claims.username).map_err(|_| PasskeyError::Gone)?;
    let (user, passkeys) = tokio::join!(caller(store, claims, now), store.passkeys(&username));
    let (user, passkeys) = (user?, passkeys?);
    if !passkeys.iter().any(|p| p.id == id && p.user_id == user.id) {
        return Err(PasskeyError::NotFound);
    }
    let event = Event::new(Kind::PasskeyRemoved, now).in_session(&claims.sid);
    match beside(store, Owner::of(&user), event, store.remove_passkey(&user, id)).await? {
        Change::Done => {
            tracing::info!(passkey = %id, "passkey removed");
            Ok(())
        }
        Change::Conflict => Err(PasskeyError::NotFound),
    }
}

/// Starts a passwordless login: request options for any discoverable
/// credential of this relying party, user verification required.
pub async fn start_login<S: PasskeyStore>(store: &S, rp: &RelyingParty, now: u64) -> Result<Started, PasskeyError> {
    let (options, state) = rp
        .webauthn()
        .start_discoverable_authentication()
        .map_err(|e| PasskeyError::Refused(e.to_string()))?;
    let challenge_id = challenge(store, Ceremony::Login, &state, now).await?;
    // `options.mediation` (conditional, for autofill) is left out: the demo logs in from a button.
    Ok(Started {
        challenge_id,
        public_key: serde_json::to_value(&options.public_key).expect("options serialize"),
    })
}

/// Finishes a passwordless login: takes the challenge and reads the passkey
/// the answer names (one round trip), has the relying party check the
/// signature, counter and flags against it and its owner's user handle,
/// and starts a session with `AMR`, the passkey's counter stored with it,
/// and beside it the `login_succeeded` event. A proven passkey of an
/// account the operator disabled is `AccountDisabled`, and no session.
pub async fn finish_login<S: PasskeyStore + AuditStore>(
    store: &S,
    rp: &RelyingParty,
    tokens: &TokenAuthority,
    challenge_id: &str,
    credential: &serde_json::Value,
    origin: Origin,
    now: u64,
) -> Result<TokenPair, PasskeyError> {
    let credential: PublicKeyCredential = parse(credential)?;
    let webauthn = rp.webauthn();
    let (handle, credential_id) = webauthn
        .identify_discoverable_authentication(&credential)
        .map_err(|e| PasskeyError::LoginRefused(e.to_string()))?;
    let id = passkey_id(credential_id);
    let (state, found) = tokio::join!(
        take::<_, DiscoverableAuthentication>(store, challenge_id, &Ceremony::Login, now),
        store.passkey(&id)
    );
    let (state, found) = (state?, found?);
    let refused = |why: &str| PasskeyError::LoginRefused(why.to_owned());
    let (user, stored) = found.ok_or_else(|| refused("no such passkey"))?;
    if user.deleting || Uuid::try_parse(&user.id).ok() != Some(handle) {
        return Err(refused("the user handle is not the passkey owner's"));
    }
    crate::log::record_user(&user.id);
    let mut passkey = credential_of(&stored)?;
    let result = webauthn
        .finish_discoverable_authentication_v2(&credential, state, &passkey)
        .map_err(|e| PasskeyError::LoginRefused(e.to_string()))?;
    if user.disabled {
        tracing::info!(user_id = %user.id, "passkey proven, account disabled");
        return Err(PasskeyError::AccountDisabled);
    }
    passkey.update_credential(&result);
    let updated = serde_json::to_string(&passkey).expect("a passkey serializes");
    let session = sessions::start(tokens, &user, &AMR, origin, now);
    let event = Event::new(Kind::LoginSucceeded, now).in_session(&session.id);
    let finished = store.finish_passkey_login(&user, &stored, &updated, &session);
    match beside(store, Owner::of(&user), event, finished).await? {
        Change::Done => {
            metrics::count(Metric::LoginSucceeded);
            tracing::info!(user_id = %user.id, passkey = %id, "login succeeded with a passkey");
            Ok(sessions::token_pair(tokens, &session, now))
        }
        // Removed, used by a parallel login, or the account changed since
        // the read: disabled meanwhile is told apart with one read more.
        Change::Conflict => match store.passkey(&id).await? {
            Some((now_user, _)) if now_user.id == user.id && now_user.disabled => {
                tracing::info!(user_id = %user.id, "account disabled during the passkey login");
                Err(PasskeyError::AccountDisabled)
            }
            _ => Err(refused("the passkey or its account changed during the login")),
        },
    }
}
