//! The library every function shares. Domain modules know no HTTP and do no
//! I/O of their own; `service` runs the flows over the store traits; `http`
//! (feature `http`) is the only part that knows the Lambda HTTP event types. See the
//! module map in the README.

pub mod audit;
#[cfg(feature = "aws")]
pub mod aws;
pub mod breached;
pub mod clock;
pub mod config;
pub mod credentials;
#[cfg(feature = "http")]
pub mod http;
pub mod key_cache;
pub mod keyset;
pub mod limits;
pub mod lockout;
pub mod log;
pub mod mail;
pub mod metrics;
#[cfg(feature = "passkeys")]
pub mod passkey;
pub mod password;
pub mod secret;
pub mod service;
pub mod session;
pub mod store;
pub mod strength;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod token;
pub mod totp;

/// What a function that stores anything needs, built once per cold start:
/// its keys (`TokenAuthority` for one that signs, `TokenVerifier` for one
/// that only verifies) and its store.
pub struct State<S, K = token::TokenAuthority> {
    pub keys: key_cache::KeyCache<K>,
    pub store: S,
}

/// What a function that sends mail needs besides its store, built once per cold start.
pub struct Outbox<M> {
    pub mailer: M,
    pub settings: mail::MailSettings,
}

/// Mail through SES from the environment (`EMAIL_FROM`, and `APP_URL` when
/// the function sends `links`), or exit with the reason.
#[cfg(feature = "email")]
pub async fn outbox_from_env(links: bool) -> Outbox<mail::ses::SesMailer> {
    let settings = config::or_exit(mail::MailSettings::from_env(links));
    Outbox {
        mailer: mail::ses::SesMailer::from_env(settings.from.clone()).await,
        settings,
    }
}

/// The clock, for the function crates (`shared::now()`).
pub use clock::now;

/// The DynamoDB store from the environment (`TABLE_NAME` and the standard AWS
/// variables), built once per cold start, or exit with the reason.
#[cfg(feature = "dynamodb")]
pub async fn store_from_env() -> store::dynamo::DynamoStore {
    let table = config::or_exit(config::table_name_from_env());
    let env = |name: &str| std::env::var(name).ok();
    let retention = config::or_exit(audit::retention_from_lookup(env));
    let ip_limits = config::or_exit(throttle::IpLimits::from_lookup(env));
    store::dynamo::DynamoStore::new(store::dynamo::client_from_env().await, table)
        .with_retention(retention)
        .with_ip_limits(ip_limits)
}
