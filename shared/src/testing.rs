//! Test support shared by the crates' tests: hand-made tokens for attack
//! cases, the dev keys, user fixtures and the committed sample events
//! (`http::testing` turns them into requests and reads the answers).

use crate::config::TokenSettings;
use crate::store::User;
use crate::token::TokenAuthority;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, crypto::sign};

/// An environment of exactly these variables, for the `*_from_lookup` readers.
pub fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

/// Base64url without padding, as JWTs use.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of a base64url (unpadded) token part; panics on anything else.
pub fn b64_decode(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(part).expect("a base64url token part")
}

/// A JWT with exactly this header and these claims, HMAC-SHA256-signed with
/// `secret` whatever the header says.
pub fn forge(header: serde_json::Value, claims: serde_json::Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature =
        sign(input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256).expect("HMAC signing cannot fail");
    format!("{input}.{signature}")
}

/// A JWT with exactly this header and these claims, signed with the current
/// key of `authority` in that key's algorithm, whatever the header says: a
/// token made like its own, for attack cases that change one thing.
pub fn forge_with(authority: &TokenAuthority, header: serde_json::Value, claims: serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{input}.{}", authority.sign_input(input.as_bytes()))
}

/// `forge_with` the dev key (`dev.env`), which the stacks of `make dev` and `make test` trust.
pub fn forge_with_dev_key(header: serde_json::Value, claims: serde_json::Value) -> String {
    forge_with(&dev_authority(), header, claims)
}

const DEV_ENV: &str = include_str!("../../dev.env");

/// A variable of the committed `dev.env` (single quotes around a value, as
/// `cargo lambda watch --env-file` reads them, are not part of it).
pub fn dev_env(name: &str) -> Option<String> {
    DEV_ENV
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v)
                .to_owned()
        })
}

/// The token settings `make dev` runs with.
pub fn dev_settings() -> TokenSettings {
    TokenSettings::from_lookup(dev_env).expect("dev.env holds valid token settings")
}

/// The token authority `make dev` runs with, which signed the tokens in `events/`.
pub fn dev_authority() -> TokenAuthority {
    TokenAuthority::from_lookup(dev_env).expect("dev.env holds a valid token configuration")
}

/// The dev authority with another refresh grace window, seconds.
pub fn authority_with_grace(reuse_grace: u64) -> TokenAuthority {
    let settings = TokenSettings {
        reuse_grace,
        ..dev_settings()
    };
    let secret = dev_env("JWT_SECRET").expect("dev.env sets JWT_SECRET");
    TokenAuthority::from_secret(settings, &secret).expect("the dev secret is valid")
}

/// An access token of `user_id`/`username` for a session `s-test` of a
/// password login, as a login would issue it.
pub fn access_token(authority: &TokenAuthority, user_id: &str, username: &str, now: u64) -> String {
    let amr = [crate::session::PASSWORD.to_owned()];
    let session = crate::session::SessionGeneration {
        session_id: "s-test",
        user_id,
        username,
        generation: 0,
        issued_at: now,
        session_expires_at: now.saturating_add(3600),
        amr: &amr,
    };
    authority.issue_access(&session, now)
}

/// A new session of `user`, logged in by password at `now` from nowhere in particular.
pub fn password_session(authority: &TokenAuthority, user: &User, now: u64) -> crate::session::Session {
    let origin = crate::session::Origin::default();
    crate::service::sessions::start(authority, user, &[crate::session::PASSWORD], origin, now)
}

/// Starts a password session of `user` (stored already) in `store` and
/// returns its access token: the caller of a Bearer route in handler tests.
pub async fn access_for(authority: &TokenAuthority, store: &impl crate::store::SessionStore, user: &User) -> String {
    let now = crate::now();
    let session = password_session(authority, user, now);
    store
        .create_session(&session, None)
        .await
        .expect("the test store takes sessions");
    crate::service::sessions::token_pair(authority, &session, now).access_token
}

/// A user with no usable password (sessions and tokens only need the names).
pub fn user(id: &str, username: &str) -> User {
    User {
        id: id.to_owned(),
        username: username.to_owned(),
        password_hash: String::new(),
        created_at: 1,
        deleting: false,
        disabled: false,
        email: None,
        email_verified: false,
        totp: false,
        passkeys: 0,
    }
}

/// A user whose password is `password`, hashed as register does.
pub async fn user_with_password(id: &str, username: &str, password: &str) -> User {
    let password = crate::credentials::Password::parse(password).expect("a password within the rules");
    User {
        password_hash: crate::password::hash(&password).await.expect("hashing works in tests"),
        ..user(id, username)
    }
}

/// The raw JSON of `events/<name>.json`.
pub fn event_json(name: &str) -> String {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A DynamoDB store pointed at a closed port: every call fails like an unreachable DynamoDB.
#[cfg(feature = "dynamodb")]
pub async fn unreachable_store() -> crate::store::dynamo::DynamoStore {
    let client = crate::store::dynamo::local_client("http://127.0.0.1:9").await;
    crate::store::dynamo::DynamoStore::new(client, "unreachable")
}

/// Mail settings as in dev.env, and a mailer that records what it sends.
pub fn outbox() -> crate::Outbox<crate::mail::MemoryMailer> {
    crate::Outbox {
        mailer: crate::mail::MemoryMailer::default(),
        settings: crate::mail::MailSettings::from_lookup(dev_env, true).expect("dev.env has the mail settings"),
    }
}

/// Like `outbox`, with a mailer that fails every send, like an unreachable SES.
pub fn outbox_unreachable() -> crate::Outbox<crate::mail::MemoryMailer> {
    crate::Outbox {
        mailer: crate::mail::MemoryMailer::unreachable(),
        ..outbox()
    }
}

/// Gives `user`, stored, the verified address `address`, as the right code would.
pub async fn verify_address(store: &impl crate::store::EmailStore, user: &User, address: &str) {
    use crate::store::{EmailCode, Verification};
    let code = EmailCode {
        email: address.to_owned(),
        code_hash: "h".into(),
        attempts: 0,
        expires_at: u64::MAX,
    };
    store.put_email_code(user, &code).await.expect("the store answers");
    let verified = store.verify_email(user, &code).await.expect("the store answers");
    assert_eq!(
        verified,
        Verification::Verified,
        "{address} verified for {}",
        user.username
    );
}

/// Gives `user`, stored, an active TOTP factor as enrollment and confirmation
/// would, the confirming code of a step two before `now`'s (so the codes of
/// the steps around `now` are all still fresh); returns its secret and recovery codes.
pub async fn enable_totp(
    store: &impl crate::store::MfaStore,
    user: &User,
    now: u64,
) -> (crate::totp::TotpSecret, Vec<String>) {
    use crate::store::{Change, TotpFactor};
    let factor = TotpFactor {
        secret: crate::totp::TotpSecret::generate(),
        active: false,
        created_at: now,
        last_step: 0,
        recovery: Vec::new(),
        attempt: String::new(),
        attempt_tries: 0,
    };
    let pending = store.put_pending_totp(user, &factor).await.expect("the store answers");
    assert_eq!(pending, Change::Done, "pending factor for {}", user.username);
    let codes = crate::totp::new_recovery_codes();
    let digests: Vec<String> = codes
        .iter()
        .map(|c| crate::totp::recovery_code_hash(&user.id, c).expect("well formed"))
        .collect();
    let step = now / crate::totp::STEP - 2;
    let active = store
        .activate_totp(user, &factor, step, &digests)
        .await
        .expect("the store answers");
    assert_eq!(active, Change::Done, "active factor for {}", user.username);
    (factor.secret, codes)
}
