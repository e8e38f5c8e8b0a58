//! An API Gateway HTTP API Lambda authorizer (REQUEST type, payload 2.0,
//! simple responses): allows a request whose `Authorization` header holds a
//! valid access token of this service, and passes the token's `sub` and
//! `username` to the integration (`requestContext.authorizer.lambda`).
//! Everything else is denied, which API Gateway answers with 403.

use serde::{Deserialize, Serialize};
use shared::key_cache::KeyCache;
use std::collections::HashMap;

/// The part of the authorizer event this reads: the headers (and the identity
/// source, which is the `Authorization` header when caching is keyed on it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default)]
    headers: Option<HashMap<String, String>>,
    #[serde(default)]
    identity_source: Option<Vec<String>>,
}

/// The simple response: allowed or not, and what the integration learns.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub is_authorized: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
}

/// Passed to the integration as `requestContext.authorizer.lambda`.
#[derive(Debug, PartialEq, Serialize)]
pub struct Context {
    pub sub: String,
    pub username: String,
}

/// The keys could not be read (Secrets Manager unreachable): an error, not a
/// denial, so API Gateway caches nothing and the client may retry.
#[derive(Debug, thiserror::Error)]
#[error("the signing keys are unavailable")]
pub struct Unavailable;

/// Decides one request.
pub async fn handle(keys: &KeyCache, event: Event) -> Result<Decision, lambda_runtime::Error> {
    let keys = keys.get().await.map_err(|_| Unavailable)?;
    let deny = Decision {
        is_authorized: false,
        context: None,
    };
    let Some(header) = authorization(&event) else {
        tracing::info!("denied: no Authorization header");
        return Ok(deny);
    };
    let Ok(token) = shared::http::parse_bearer(header) else {
        tracing::info!("denied: not a bearer token");
        return Ok(deny);
    };
    match keys.verify_access(token, shared::now()) {
        Ok(claims) => {
            tracing::info!(user_id = %claims.sub, "allowed");
            Ok(Decision {
                is_authorized: true,
                context: Some(Context {
                    sub: claims.sub,
                    username: claims.username,
                }),
            })
        }
        Err(reason) => {
            tracing::info!(%reason, "denied");
            Ok(deny)
        }
    }
}

/// The `Authorization` header (names arrive lowercased in payload 2.0, but
/// any case is accepted), else the single identity source.
fn authorization(event: &Event) -> Option<&str> {
    let header = event
        .headers
        .iter()
        .flatten()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.as_str());
    let identity_source = match event.identity_source.as_deref() {
        Some([only]) => Some(only.as_str()),
        _ => None,
    };
    header.or(identity_source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::keyset::{Alg, KeySet};
    use shared::session::SessionGeneration;
    use shared::testing::{dev_authority, dev_env, dev_settings, event_json, forge};
    use shared::token::TokenAuthority;

    fn event(name: &str, token: Option<&str>) -> Event {
        let mut json = event_json(name);
        if let Some(token) = token {
            json = json.replace("${ACCESS_TOKEN}", token);
        }
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
    }

    async fn decide(event: Event) -> Decision {
        handle(&KeyCache::ready(dev_authority()), event).await.unwrap()
    }

    fn denied() -> Decision {
        Decision {
            is_authorized: false,
            context: None,
        }
    }

    #[tokio::test]
    async fn a_valid_access_token_is_allowed_and_its_user_passed_on() {
        let token = shared::testing::access_token(&dev_authority(), "u-42", "alice", shared::now());
        let decision = decide(event("authorizer-ok", Some(&token))).await;
        let context = Context {
            sub: "u-42".into(),
            username: "alice".into(),
        };
        assert_eq!(
            decision,
            Decision {
                is_authorized: true,
                context: Some(context)
            }
        );
        let json = serde_json::to_value(&decision).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"isAuthorized": true, "context": {"sub": "u-42", "username": "alice"}})
        );
    }

    #[tokio::test]
    async fn an_expired_token_is_denied() {
        assert_eq!(decide(event("authorizer-expired", None)).await, denied());
    }

    #[tokio::test]
    async fn a_tampered_token_is_denied() {
        let token = shared::testing::access_token(&dev_authority(), "u-42", "alice", shared::now());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let claims = serde_json::json!({
            "iss": dev_env("JWT_ISSUER"), "aud": dev_env("JWT_AUDIENCE"), "sub": "u-1", "username": "admin", "sid": "s-1", "amr": ["pwd"],
            "iat": shared::now(), "nbf": shared::now(), "exp": shared::now() + 60, "jti": "j", "token_use": "access"
        });
        parts[1] = shared::testing::b64(claims.to_string().as_bytes());
        assert_eq!(decide(event("authorizer-ok", Some(&parts.join(".")))).await, denied());
        let other_key = forge(
            serde_json::json!({"alg": "HS256", "kid": dev_authority().kid()}),
            claims,
            b"another-secret-0123456789abcdefghij",
        );
        assert_eq!(decide(event("authorizer-ok", Some(&other_key))).await, denied());
    }

    #[tokio::test]
    async fn a_refresh_token_is_the_wrong_kind_and_denied() {
        let now = shared::now();
        let refresh = dev_authority().issue_refresh(&SessionGeneration {
            session_id: "s-1",
            user_id: "u-42",
            username: "alice",
            generation: 0,
            issued_at: now,
            session_expires_at: now + 3600,
            amr: &["pwd".to_owned()],
        });
        assert_eq!(decide(event("authorizer-ok", Some(&refresh))).await, denied());
    }

    #[tokio::test]
    async fn no_header_a_placeholder_or_another_scheme_is_denied() {
        assert_eq!(decide(event("authorizer-no-token", None)).await, denied());
        assert_eq!(decide(event("authorizer-ok", None)).await, denied());
        let basic = event_json("authorizer-ok").replace("Bearer ${ACCESS_TOKEN}", "Basic YWxpY2U6c2VjcmV0");
        assert_eq!(decide(serde_json::from_str(&basic).unwrap()).await, denied());
        assert_eq!(decide(serde_json::from_str("{}").unwrap()).await, denied());
    }

    #[tokio::test]
    async fn tokens_of_an_asymmetric_key_set_are_allowed_with_it() {
        let authority = TokenAuthority::from_secret(dev_settings(), &KeySet::generate(Alg::EdDSA, 0).to_json());
        let keys = KeyCache::ready(authority.unwrap());
        let token = shared::testing::access_token(&keys.get().await.unwrap(), "u-7", "bob", shared::now());
        let decision = handle(&keys, event("authorizer-ok", Some(&token))).await.unwrap();
        assert!(decision.is_authorized);
        let dev_token = shared::testing::access_token(&dev_authority(), "u-7", "bob", shared::now());
        let decision = handle(&keys, event("authorizer-ok", Some(&dev_token))).await.unwrap();
        assert!(!decision.is_authorized, "a key it was not configured with");
    }

    #[tokio::test]
    async fn unreadable_keys_are_an_error_that_api_gateway_does_not_cache_not_a_denial() {
        let unreachable =
            shared::secret::SecretSource::new("http://127.0.0.1:9", "arn:secret", "token".into()).unwrap();
        let keys = KeyCache::from_secret(unreachable, dev_settings(), std::time::Duration::MAX);
        let token = shared::testing::access_token(&dev_authority(), "u-42", "alice", shared::now());
        assert!(handle(&keys, event("authorizer-ok", Some(&token))).await.is_err());
    }
}
