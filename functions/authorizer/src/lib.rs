//! An API Gateway HTTP API Lambda authorizer (REQUEST type, payload 2.0,
//! simple responses): allows a request whose `Authorization` header holds a
//! valid access token of this service, and passes the token's `sub`,
//! `username` and `amr` to the integration (`requestContext.authorizer.lambda`).
//! On the routes `REQUIRE_MFA` names, the token must also come from a login
//! with a second factor (`amr` holds `otp` or `hwk`).
//! Everything else is denied, which API Gateway answers with 403.

use serde::{Deserialize, Serialize};
use shared::config::ConfigError;
use shared::key_cache::KeyCache;
use shared::token::TokenVerifier;
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
    /// The route, as the API names it (`GET /example`).
    #[serde(default)]
    route_key: Option<String>,
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
    /// How the user logged in (RFC 8176), space-separated: `pwd`, `pwd otp`, `hwk user`.
    pub amr: String,
}

/// The `amr` values that are a second factor: a one-time code, a hardware key (a passkey).
const SECOND_FACTORS: [&str; 2] = ["otp", "hwk"];

/// The routes on which a token must come from a login with a second factor (`REQUIRE_MFA`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RequireMfa {
    /// Unset or empty: none.
    #[default]
    Nowhere,
    /// `*`: every route.
    Everywhere,
    /// A comma-separated list of route keys, exactly as API Gateway spells
    /// them (`GET /example/mfa`, `ANY /admin/{proxy+}`, `$default`).
    Routes(Vec<String>),
}

impl RequireMfa {
    /// `REQUIRE_MFA` as given; a route key that cannot be one is a start-up
    /// error, never a route silently left open.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::Nowhere);
        }
        if raw == "*" {
            return Ok(Self::Everywhere);
        }
        let routes: Vec<String> = raw.split(',').map(|r| r.trim().to_owned()).collect();
        for route in &routes {
            let well_formed = route == "$default"
                || route.split_once(' ').is_some_and(|(method, path)| {
                    !method.is_empty()
                        && method.bytes().all(|b| b.is_ascii_uppercase())
                        && path.starts_with('/')
                        && !path.contains(' ')
                });
            if !well_formed {
                return Err(ConfigError::Invalid(
                    "REQUIRE_MFA",
                    format!("expected `*` or route keys like `GET /example/mfa`, separated by commas; got {route:?}"),
                ));
            }
        }
        Ok(Self::Routes(routes))
    }

    /// `REQUIRE_MFA` from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(&std::env::var("REQUIRE_MFA").unwrap_or_default())
    }

    /// Whether the route `route_key` requires a second factor; a request
    /// that names no route does wherever any route does.
    fn applies_to(&self, route_key: Option<&str>) -> bool {
        match self {
            Self::Nowhere => false,
            Self::Everywhere => true,
            Self::Routes(routes) => route_key.is_none_or(|key| routes.iter().any(|r| r == key)),
        }
    }
}

/// The keys could not be read (Secrets Manager unreachable): an error, not a
/// denial, so API Gateway caches nothing and the client may retry.
#[derive(Debug, thiserror::Error)]
#[error("the signing keys are unavailable")]
pub struct Unavailable;

/// Decides one request.
pub async fn handle(
    keys: &KeyCache<TokenVerifier>,
    require_mfa: &RequireMfa,
    event: Event,
) -> Result<Decision, lambda_runtime::Error> {
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
        Ok(claims)
            if require_mfa.applies_to(event.route_key.as_deref())
                && !claims.amr.iter().any(|m| SECOND_FACTORS.contains(&m.as_str())) =>
        {
            tracing::info!(user_id = %claims.sub, "denied: the route requires a second factor");
            Ok(deny)
        }
        Ok(claims) => {
            tracing::info!(user_id = %claims.sub, "allowed");
            Ok(Decision {
                is_authorized: true,
                context: Some(Context {
                    sub: claims.sub,
                    username: claims.username,
                    amr: claims.amr.join(" "),
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
/// any case is accepted), else the first identity source (the template
/// lists the header first, then the route key).
fn authorization(event: &Event) -> Option<&str> {
    let header = event
        .headers
        .iter()
        .flatten()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.as_str());
    let identity_source = event.identity_source.as_deref().and_then(<[String]>::first);
    header.or(identity_source.map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::keyset::{Alg, KeySet};
    use shared::session::SessionGeneration;
    use shared::testing::{dev_authority, dev_env, dev_settings, event_json};
    use shared::token::TokenAuthority;

    fn event(name: &str, token: Option<&str>) -> Event {
        let mut json = event_json(name);
        if let Some(token) = token {
            json = json.replace("${ACCESS_TOKEN}", token);
        }
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
    }

    async fn decide(event: Event) -> Decision {
        handle(
            &KeyCache::ready(dev_authority().into_verifier()),
            &RequireMfa::Nowhere,
            event,
        )
        .await
        .unwrap()
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
            amr: "pwd".into(),
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
            serde_json::json!({"isAuthorized": true, "context": {"sub": "u-42", "username": "alice", "amr": "pwd"}})
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
        let another_key = TokenAuthority::from_secret(dev_settings(), &KeySet::generate(Alg::RS256, 0).to_json());
        let other_key = shared::testing::forge_with(
            &another_key.unwrap(),
            serde_json::json!({"alg": "RS256", "kid": dev_authority().kid()}),
            claims,
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
    async fn tokens_of_a_key_set_are_allowed_with_its_published_public_keys_only() {
        let set = KeySet::generate(Alg::EdDSA, 0);
        let authority = TokenAuthority::from_secret(dev_settings(), &set.to_json()).unwrap();
        let public = TokenVerifier::from_public(dev_settings(), &set.public_jwks().unwrap());
        let keys = KeyCache::ready(public.unwrap().unwrap());
        let token = shared::testing::access_token(&authority, "u-7", "bob", shared::now());
        let decision = handle(&keys, &RequireMfa::Nowhere, event("authorizer-ok", Some(&token)))
            .await
            .unwrap();
        assert!(decision.is_authorized);
        let dev_token = shared::testing::access_token(&dev_authority(), "u-7", "bob", shared::now());
        let decision = handle(&keys, &RequireMfa::Nowhere, event("authorizer-ok", Some(&dev_token)))
            .await
            .unwrap();
        assert!(!decision.is_authorized, "a key it was not configured with");
    }

    #[tokio::test]
    async fn unreadable_keys_are_an_error_that_api_gateway_does_not_cache_not_a_denial() {
        let unreachable = shared::secret::SecretSource::new(
            "http://127.0.0.1:9",
            "JWT_PUBLIC_KEYS_ARN",
            "arn:secret",
            "token".into(),
        )
        .unwrap();
        let keys = KeyCache::<TokenVerifier>::from_secret(unreachable, true, dev_settings(), std::time::Duration::MAX);
        let token = shared::testing::access_token(&dev_authority(), "u-42", "alice", shared::now());
        assert!(
            handle(&keys, &RequireMfa::Nowhere, event("authorizer-ok", Some(&token)))
                .await
                .is_err()
        );
    }

    /// An access token of a session that logged in with `amr`.
    fn token_with_amr(amr: &[&str]) -> String {
        let now = shared::now();
        let amr: Vec<String> = amr.iter().map(|m| (*m).to_owned()).collect();
        dev_authority().issue_access(
            &SessionGeneration {
                session_id: "s-1",
                user_id: "u-42",
                username: "alice",
                generation: 0,
                issued_at: now,
                session_expires_at: now + 3600,
                amr: &amr,
            },
            now,
        )
    }

    async fn decide_on(require: &str, route_key: &str, amr: &[&str]) -> bool {
        let token = token_with_amr(amr);
        let json = event_json("authorizer-ok").replace("${ACCESS_TOKEN}", &token).replace(
            "\"routeKey\": \"GET /example\"",
            &format!("\"routeKey\": \"{route_key}\""),
        );
        let require = RequireMfa::parse(require).unwrap();
        let decision = handle(
            &KeyCache::ready(dev_authority().into_verifier()),
            &require,
            serde_json::from_str(&json).unwrap(),
        )
        .await
        .unwrap();
        decision.is_authorized
    }

    #[tokio::test]
    async fn a_route_that_requires_a_second_factor_denies_a_password_login_and_allows_otp_or_a_passkey() {
        let require = "GET /example/mfa, DELETE /admin/{id}";
        assert!(!decide_on(require, "GET /example/mfa", &["pwd"]).await);
        assert!(decide_on(require, "GET /example/mfa", &["pwd", "otp"]).await);
        assert!(decide_on(require, "GET /example/mfa", &["hwk", "user"]).await);
        assert!(!decide_on(require, "DELETE /admin/{id}", &["pwd"]).await);
        assert!(
            !decide_on(require, "GET /example/mfa", &["pwd", "sms"]).await,
            "not one we count"
        );
    }

    #[tokio::test]
    async fn other_routes_allow_a_password_login_and_star_requires_a_second_factor_everywhere() {
        assert!(decide_on("GET /example/mfa", "GET /example", &["pwd"]).await);
        assert!(decide_on("", "GET /example/mfa", &["pwd"]).await);
        assert!(!decide_on("*", "GET /example", &["pwd"]).await);
        assert!(decide_on("*", "GET /example", &["pwd", "otp"]).await);
    }

    #[tokio::test]
    async fn a_request_without_a_route_key_is_held_to_the_strictest_rule() {
        let token = token_with_amr(&["pwd"]);
        let json = serde_json::json!({"headers": {"authorization": format!("Bearer {token}")}});
        let require = RequireMfa::parse("GET /example/mfa").unwrap();
        let decision = handle(
            &KeyCache::ready(dev_authority().into_verifier()),
            &require,
            serde_json::from_value(json).unwrap(),
        )
        .await
        .unwrap();
        assert!(!decision.is_authorized);
    }

    #[test]
    fn require_mfa_takes_star_nothing_or_route_keys_and_refuses_what_cannot_be_one() {
        assert_eq!(RequireMfa::parse("  ").unwrap(), RequireMfa::Nowhere);
        assert_eq!(RequireMfa::parse("*").unwrap(), RequireMfa::Everywhere);
        assert_eq!(
            RequireMfa::parse("GET /a, $default").unwrap(),
            RequireMfa::Routes(vec!["GET /a".into(), "$default".into()])
        );
        for bad in ["/example/mfa", "get /a", "GET a", "GET /a,", "GET /a b"] {
            let err = RequireMfa::parse(bad).unwrap_err();
            assert!(err.to_string().contains("REQUIRE_MFA"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn the_token_is_read_from_the_first_identity_source_when_there_is_no_header() {
        let token = token_with_amr(&["pwd"]);
        let json = serde_json::json!({"identitySource": [format!("Bearer {token}"), "GET /example"], "routeKey": "GET /example"});
        assert!(decide(serde_json::from_value(json).unwrap()).await.is_authorized);
    }
}
