//! A protected resource: verifies the access token, reads nothing else.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde::Serialize;
use shared::http::{ApiError, authenticate, json, require_method, respond};
use shared::key_cache::KeyCache;
use shared::token::TokenVerifier;

/// Answers one request.
pub async fn handle(keys: &KeyCache<TokenVerifier>, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, protected(keys, &req)).await
}

async fn protected(keys: &KeyCache<TokenVerifier>, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, "GET")?;
    let claims = authenticate(keys, req).await?;
    let me = Me {
        id: &claims.sub,
        username: &claims.username,
        logged_in_as: &claims.username,
    };
    Ok(json(StatusCode::OK, &me))
}

/// Who the token belongs to.
#[derive(Serialize)]
struct Me<'a> {
    id: &'a str,
    username: &'a str,
    logged_in_as: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::event;
    use shared::testing::dev_authority;

    async fn call(req: Request) -> (Response<Body>, serde_json::Value) {
        shared::http::testing::call(handle(&KeyCache::ready(dev_authority().into_verifier()), req)).await
    }

    fn alices_token() -> String {
        shared::testing::access_token(
            &dev_authority(),
            "7d0c5d5e-0b6f-4a43-9d55-3f2f0f8c1a11",
            "alice",
            shared::now(),
        )
    }

    #[tokio::test]
    async fn a_valid_access_token_shows_who_is_logged_in() {
        let (response, body) = call(event("protected-ok", Some(&alices_token()))).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(body["username"], "alice");
        assert_eq!(body["logged_in_as"], "alice");
        assert_eq!(body["id"], "7d0c5d5e-0b6f-4a43-9d55-3f2f0f8c1a11");
    }

    #[tokio::test]
    async fn a_rest_api_event_works_too() {
        assert_eq!(
            call(event("protected-rest-api", Some(&alices_token())))
                .await
                .0
                .status(),
            200
        );
    }

    #[tokio::test]
    async fn the_event_without_a_live_token_is_401() {
        assert_eq!(call(event("protected-ok", None)).await.0.status(), 401);
    }

    #[tokio::test]
    async fn an_expired_token_is_401_with_an_invalid_token_challenge() {
        let (response, body) = call(event("protected-expired", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token"))
        );
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"lambda-jwt-auth\", error=\"invalid_token\""
        );
    }

    #[test]
    fn the_sample_expired_tokens_are_refused_for_their_expiry_alone() {
        for name in ["protected-expired", "authorizer-expired"] {
            let json = shared::testing::event_json(name);
            let token = json.split("Bearer ").nth(1).unwrap().split('"').next().unwrap();
            let dev = dev_authority();
            assert_eq!(
                dev.verify_access(token, 1_700_000_000 + 900 + 61).err(),
                Some(shared::token::TokenError::Expired),
                "{name}"
            );
            assert!(
                dev.verify_access(token, 1_700_000_000).is_ok(),
                "{name}: signed with the dev key"
            );
        }
    }

    #[tokio::test]
    async fn no_token_is_401_with_a_bare_challenge() {
        let (response, _) = call(event("protected-no-token", None)).await;
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"lambda-jwt-auth\""
        );
    }

    #[tokio::test]
    async fn post_is_405_with_allow_get() {
        let json = shared::testing::event_json("protected-ok").replace("\"GET\"", "\"POST\"");
        let (response, _) = call(lambda_http::request::from_str(&json).unwrap()).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "GET")
        );
    }
}
