//! Test support shared by the crates' tests: hand-made tokens for attack
//! cases, the committed sample events, and the keys of the dev env file.

use crate::config::TokenConfig;
use crate::token::TokenKeys;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, crypto::sign};
use lambda_http::Request;

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

const DEV_ENV: &str = include_str!("../../dev.env");

/// A variable of the committed `dev.env`.
pub fn dev_env(name: &str) -> Option<String> {
    DEV_ENV
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The token configuration `make dev` runs with, which signed the tokens in `events/`.
pub fn dev_config() -> TokenConfig {
    TokenConfig::from_lookup(dev_env).expect("dev.env holds a valid token configuration")
}

/// Token keys built from `dev_config`.
pub fn dev_keys() -> TokenKeys {
    TokenKeys::new(dev_config())
}

/// The raw JSON of `events/<name>.json`.
pub fn event_json(name: &str) -> String {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// `events/<name>.json` as the request a function receives, its
/// `${REFRESH_TOKEN}` or `${ACCESS_TOKEN}` placeholder replaced by `token` when given.
pub fn event(name: &str, token: Option<&str>) -> Request {
    let mut json = event_json(name);
    if let Some(token) = token {
        json = json
            .replace("${REFRESH_TOKEN}", token)
            .replace("${ACCESS_TOKEN}", token);
    }
    lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("events/{name}.json is not an event: {e}"))
}

/// A DynamoDB store pointed at a closed port: every call fails like an unreachable DynamoDB.
#[cfg(feature = "dynamodb")]
pub async fn unreachable_store() -> crate::store::dynamo::DynamoStore {
    let client = crate::store::dynamo::local_client("http://127.0.0.1:9").await;
    crate::store::dynamo::DynamoStore::new(client, "unreachable")
}
