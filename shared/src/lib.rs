//! The library every function shares: configuration, credentials, password
//! hashing, token issue and verification, the user/session store and the
//! mapping of errors to HTTP responses.

#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
pub mod credentials;
pub mod http;
pub mod keys;
pub mod keyset;
pub mod password;
pub mod session;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod token;

/// What a function that stores anything needs, built once per cold start.
pub struct State<S> {
    pub keys: keys::Keys,
    pub store: S,
}

/// Seconds since the Unix epoch: the unit of every timestamp in tokens and the store.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unwraps a start-up result, or prints the error as one clear sentence and
/// exits, so Lambda reports an init failure instead of serving with a bad setup.
pub fn or_exit<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => {
            eprintln!("startup error: {error}");
            std::process::exit(1);
        }
    }
}

/// The DynamoDB store from the environment (`TABLE_NAME` and the standard AWS
/// variables), built once per cold start, or exit with the reason.
#[cfg(feature = "dynamodb")]
pub async fn store_from_env() -> store::dynamo::DynamoStore {
    let table = or_exit(config::table_name_from_env());
    store::dynamo::DynamoStore::new(store::dynamo::client_from_env().await, table)
}
