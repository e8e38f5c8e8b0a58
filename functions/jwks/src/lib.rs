//! Key discovery: the JSON Web Key Set of the public keys (never an HMAC
//! secret), and an OpenID-style discovery document that points to it, so that
//! other services, and API Gateway's own JWT authorizer, verify tokens
//! without sharing a secret.

use lambda_http::http::header::{CACHE_CONTROL, HOST};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::http::{ApiError, json, require_method, respond};
use shared::key_cache::KeyCache;

/// How long a client may cache either document, seconds. A rotation waits
/// this plus the functions' key refresh interval before a new key signs.
pub const MAX_AGE: u64 = 300;

/// Answers one request.
pub async fn handle(keys: &KeyCache, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, discovery(keys, &req)).await
}

async fn discovery(keys: &KeyCache, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, "GET")?;
    let keys = keys.get().await?;
    let jwks = keys.jwks();
    let body = if req.uri().path().ends_with("/openid-configuration") {
        let mut algs: Vec<&str> = Vec::new();
        for alg in jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["alg"].as_str())
        {
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        serde_json::json!({
            "issuer": keys.settings().issuer,
            "jwks_uri": jwks_uri(&keys.settings().issuer, req),
            "id_token_signing_alg_values_supported": algs,
        })
    } else {
        jwks
    };
    let mut response = json(StatusCode::OK, &body);
    let cache = HeaderValue::from_str(&format!("public, max-age={MAX_AGE}")).expect("a valid header value");
    response.headers_mut().insert(CACHE_CONTROL, cache);
    Ok(response)
}

/// Where the JWKS is: under the issuer when the issuer is an https URL (as
/// OpenID discovery and API Gateway's JWT authorizer expect), else beside
/// this document, on the host and path prefix it was asked for.
fn jwks_uri(issuer: &str, req: &Request) -> String {
    if issuer.starts_with("https://") {
        return format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
    }
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let local = host.starts_with("127.0.0.1") || host.starts_with("localhost");
    let proto = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|p| p.to_str().ok())
        .unwrap_or(if local { "http" } else { "https" });
    let path = req.uri().path();
    let prefix = path.strip_suffix("/.well-known/openid-configuration").unwrap_or("");
    format!("{proto}://{host}{prefix}/.well-known/jwks.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::event;
    use shared::keyset::{Alg, KeySet, Status, StoredKey};
    use shared::testing::{dev_authority, dev_settings, event_json};
    use shared::token::TokenAuthority;

    /// Keys like a stack in mid-rotation: RS256 current, EdDSA next, the dev HS256 secret previous.
    fn keys() -> (KeyCache, KeySet) {
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 0));
        let mut dev = KeySet::parse(&shared::testing::dev_env("JWT_SECRET").unwrap())
            .unwrap()
            .keys;
        dev[0].status = Status::Previous;
        set.keys.extend(dev);
        let authority = TokenAuthority::from_secret(dev_settings(), &set.to_json()).unwrap();
        (KeyCache::ready(authority), set)
    }

    async fn call(keys: &KeyCache, req: Request) -> (Response<Body>, serde_json::Value) {
        shared::http::testing::call(handle(keys, req)).await
    }

    #[tokio::test]
    async fn the_jwks_lists_the_public_keys_and_never_a_secret_or_a_private_key() {
        let (keys, set) = keys();
        let (response, body) = call(&keys, event("jwks", None)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        assert_eq!(response.headers()["content-type"], "application/json");
        let published = body["keys"].as_array().unwrap();
        let algs: Vec<&str> = published.iter().map(|k| k["alg"].as_str().unwrap()).collect();
        assert_eq!(algs, ["RS256", "EdDSA"]);
        let text = body.to_string();
        for stored in &set.keys {
            assert!(!text.contains(&stored.key));
        }
        assert!(!text.contains("\"d\"") && !text.contains("HS256"), "{text}");
        let signing = keys.get().await.unwrap().kid().to_owned();
        assert!(published.iter().any(|k| k["kid"] == signing.as_str()));
    }

    #[tokio::test]
    async fn the_discovery_document_names_the_issuer_the_jwks_uri_and_the_algorithms() {
        let (keys, _) = keys();
        let (response, body) = call(&keys, event("openid-configuration", None)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        assert_eq!(body["issuer"], "lambda-jwt-auth-dev");
        assert_eq!(
            body["jwks_uri"],
            "https://abc123.execute-api.us-east-1.amazonaws.com/.well-known/jwks.json"
        );
        assert_eq!(
            body["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256", "EdDSA"])
        );
    }

    #[tokio::test]
    async fn each_algorithm_is_named_once_whatever_the_order_of_the_keys() {
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 0));
        set.keys.push(StoredKey::generate(Alg::RS256, Status::Previous, 0));
        let keys = KeyCache::ready(TokenAuthority::from_secret(dev_settings(), &set.to_json()).unwrap());
        let (_, body) = call(&keys, event("openid-configuration", None)).await;
        assert_eq!(
            body["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256", "EdDSA"])
        );
    }

    #[tokio::test]
    async fn an_https_issuer_is_where_the_jwks_is() {
        let settings = shared::config::TokenSettings {
            issuer: "https://auth.example.com/".into(),
            ..dev_settings()
        };
        let secret = shared::testing::dev_env("JWT_SECRET").unwrap();
        let keys = KeyCache::ready(TokenAuthority::from_secret(settings, &secret).unwrap());
        let (_, body) = call(&keys, event("openid-configuration", None)).await;
        assert_eq!(body["jwks_uri"], "https://auth.example.com/.well-known/jwks.json");
    }

    #[tokio::test]
    async fn a_plain_hs256_secret_publishes_an_empty_key_set() {
        let keys = KeyCache::ready(dev_authority());
        let (_, body) = call(&keys, event("jwks", None)).await;
        assert_eq!(body, serde_json::json!({"keys": []}));
    }

    #[tokio::test]
    async fn post_is_405() {
        let (keys, _) = keys();
        let json = event_json("jwks").replace("\"GET\"", "\"POST\"");
        let (response, _) = call(&keys, lambda_http::request::from_str(&json).unwrap()).await;
        assert_eq!(response.status(), 405);
    }
}
