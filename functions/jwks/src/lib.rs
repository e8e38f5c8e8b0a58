//! Key discovery: the JSON Web Key Set of the public keys (never an HMAC
//! secret), and an OpenID-style discovery document that points to it, so that
//! other services, and API Gateway's own JWT authorizer, verify tokens
//! without sharing a secret.

use lambda_http::http::header::CACHE_CONTROL;
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use shared::http::{ApiError, json, require_method, respond};
use shared::key_cache::KeyCache;
use shared::token::TokenVerifier;

/// How long a client may cache either document, seconds. A rotation waits
/// this plus the functions' key refresh interval before a new key signs.
pub const MAX_AGE: u64 = 300;

/// Answers one request.
pub async fn handle(keys: &KeyCache<TokenVerifier>, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, discovery(keys, &req)).await
}

async fn discovery(keys: &KeyCache<TokenVerifier>, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, "GET")?;
    let keys = keys.get().await?;
    let jwks = keys.jwks();
    let body = if req.uri().path().ends_with("/openid-configuration") {
        let issuer = &keys.settings().issuer;
        let jwks_uri = jwks_uri(issuer).ok_or(ApiError::NoDiscovery)?;
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
            "issuer": issuer,
            "jwks_uri": jwks_uri,
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

/// Where the JWKS is, from configuration only: under the issuer, when the
/// issuer is an https URL (as OpenID discovery and API Gateway's JWT
/// authorizer expect), or an http one on this machine (`make dev`). Never
/// from the request's `Host` or `X-Forwarded-Proto`, which a client sets:
/// the document is cached publicly, and a forged host in it would send every
/// verifier that reads it to someone else's keys.
fn jwks_uri(issuer: &str) -> Option<String> {
    let base = issuer.trim_end_matches('/');
    let url: lambda_http::http::Uri = base.parse().ok()?;
    let host = url.host()?;
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    let secure = match url.scheme_str()? {
        "https" => true,
        "http" => local,
        _ => false,
    };
    (secure && url.query().is_none()).then(|| format!("{base}/.well-known/jwks.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::TokenSettings;
    use shared::http::testing::event;
    use shared::keyset::{Alg, KeySet, Status, StoredKey};
    use shared::testing::{dev_settings, event_json};
    use shared::token::TokenAuthority;

    /// A stack in mid-rotation: RS256 current, EdDSA next, an HS256 key previous.
    fn mid_rotation() -> KeySet {
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 0));
        set.keys.push(StoredKey::generate(Alg::HS256, Status::Previous, 0));
        set
    }

    /// What the deployed function holds: the public keys of `set` as the rotation function publishes them.
    fn published(set: &KeySet, settings: TokenSettings) -> KeyCache<TokenVerifier> {
        let verifier = TokenVerifier::from_public(settings, &set.public_jwks().unwrap())
            .unwrap()
            .expect("keys are published");
        KeyCache::ready(verifier)
    }

    fn with_issuer(issuer: &str) -> TokenSettings {
        TokenSettings {
            issuer: issuer.into(),
            ..dev_settings()
        }
    }

    /// The discovery request, with a `Host` and `X-Forwarded-Proto` of an attacker's choosing.
    fn forged_discovery() -> Request {
        let mut event: serde_json::Value = serde_json::from_str(&event_json("openid-configuration")).unwrap();
        event["headers"]["host"] = "evil.example".into();
        event["headers"]["x-forwarded-proto"] = "http".into();
        event["requestContext"]["domainName"] = "evil.example".into();
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    async fn call(keys: &KeyCache<TokenVerifier>, req: Request) -> (Response<Body>, serde_json::Value) {
        shared::http::testing::call(handle(keys, req)).await
    }

    #[tokio::test]
    async fn the_jwks_lists_the_published_public_keys_and_never_a_secret_or_a_private_key() {
        let set = mid_rotation();
        let keys = published(&set, dev_settings());
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
        let signing = TokenAuthority::from_secret(dev_settings(), &set.to_json()).unwrap();
        assert!(published.iter().any(|k| k["kid"] == signing.kid()));
    }

    #[tokio::test]
    async fn discovery_puts_the_jwks_under_an_https_issuer_whatever_host_the_request_names() {
        let keys = published(&mid_rotation(), with_issuer("https://auth.example.com/"));
        for request in [event("openid-configuration", None), forged_discovery()] {
            let (response, body) = call(&keys, request).await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["cache-control"], "public, max-age=300");
            assert_eq!(body["issuer"], "https://auth.example.com/");
            assert_eq!(body["jwks_uri"], "https://auth.example.com/.well-known/jwks.json");
            assert_eq!(
                body["id_token_signing_alg_values_supported"],
                serde_json::json!(["RS256", "EdDSA"])
            );
        }
    }

    #[tokio::test]
    async fn without_an_https_issuer_there_is_no_discovery_document_to_forge() {
        for issuer in [
            "lambda-jwt-auth",
            "http://auth.example.com",
            "ftp://auth.example.com",
            "https://",
        ] {
            let keys = published(&mid_rotation(), with_issuer(issuer));
            let (response, body) = call(&keys, forged_discovery()).await;
            assert_eq!(response.status(), 404, "{issuer}");
            assert_eq!(body["error"], "not_found");
            assert!(body["message"].as_str().unwrap().contains("JWT_ISSUER"), "{body}");
            assert!(!body.to_string().contains("evil.example"));
        }
    }

    #[tokio::test]
    async fn an_http_issuer_on_this_machine_is_discoverable_for_make_dev() {
        for issuer in ["http://127.0.0.1:9000", "http://localhost:9000/", "http://[::1]:9000"] {
            let keys = published(&mid_rotation(), with_issuer(issuer));
            let (response, body) = call(&keys, forged_discovery()).await;
            assert_eq!(response.status(), 200, "{issuer}");
            let expected = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
            assert_eq!(body["jwks_uri"], expected.as_str());
        }
    }

    #[tokio::test]
    async fn each_algorithm_is_named_once_whatever_the_order_of_the_keys() {
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 0));
        set.keys.push(StoredKey::generate(Alg::RS256, Status::Previous, 0));
        let keys = published(&set, with_issuer("https://auth.example.com"));
        let (_, body) = call(&keys, event("openid-configuration", None)).await;
        assert_eq!(
            body["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256", "EdDSA"])
        );
    }

    #[tokio::test]
    async fn an_hs256_stack_publishes_an_empty_key_set() {
        let secret = KeySet::generate(Alg::HS256, 0).to_json();
        let verifier = TokenAuthority::from_secret(dev_settings(), &secret)
            .unwrap()
            .into_verifier();
        let (_, body) = call(&KeyCache::ready(verifier), event("jwks", None)).await;
        assert_eq!(body, serde_json::json!({"keys": []}));
    }

    #[tokio::test]
    async fn post_is_405() {
        let keys = published(&mid_rotation(), dev_settings());
        let json = event_json("jwks").replace("\"GET\"", "\"POST\"");
        let (response, _) = call(&keys, lambda_http::request::from_str(&json).unwrap()).await;
        assert_eq!(response.status(), 405);
    }
}
