//! `POST /login`: parse the credentials (a username, or a verified email,
//! and the password), log in, answer with the tokens; or, for an account
//! with a second factor, `403 mfa_required` with an `mfa_token`.
//! `POST /login/mfa`: that token and a code (or a recovery code), then the tokens.

use lambda_http::{Body, Error, Request, Response};
use shared::credentials::Who;
use shared::http::{ApiError, JsonObject, last_segment, origin, require_method, respond, tokens};
use shared::service::mfa::login_mfa;
use shared::service::{login, login_by_email};
use shared::store::{AccountStore, AuditStore, EmailStore, MfaStore, SessionStore, ThrottleStore, UserStore};

pub use shared::State;

/// Answers one request.
pub async fn handle<S: UserStore + SessionStore + AccountStore + EmailStore + MfaStore + AuditStore + ThrottleStore>(
    state: &State<S>,
    req: Request,
) -> Result<Response<Body>, Error> {
    respond(&req, route(state, &req)).await
}

async fn route<S: UserStore + SessionStore + AccountStore + EmailStore + MfaStore + AuditStore + ThrottleStore>(
    state: &State<S>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    require_method(req, "POST")?;
    let authority = state.keys.get().await?;
    let body = JsonObject::require(req)?;
    if last_segment(req).as_deref() == Some("mfa") {
        let mfa_token = body.string("mfa_token")?;
        let second = body.second_factor()?;
        let pair = login_mfa(&state.store, &authority, mfa_token, &second, origin(req), shared::now()).await?;
        return Ok(tokens(&pair));
    }
    let who = body.who()?;
    let password = body.password("password")?;
    let (store, now) = (&state.store, shared::now());
    // Boxed: the flows' futures (a read, a count and a throttle check joined,
    // then the session, its event and the count's settling joined) are large
    // for a test thread's stack on the DynamoDB store.
    let pair = match who {
        Who::Username(username) => Box::pin(login(store, &authority, &username, &password, origin(req), now)).await?,
        Who::Email(email) => Box::pin(login_by_email(store, &authority, &email, &password, origin(req), now)).await?,
    };
    Ok(tokens(&pair))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::{call, event, event_with_body};
    use shared::key_cache::KeyCache;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_authority, user_with_password};

    async fn state_with_alice() -> State<MemoryStore> {
        let store = MemoryStore::default();
        let alice = user_with_password("u-1", "Alice", "correct horse battery staple").await;
        store.create_user(&alice).await.unwrap();
        State {
            keys: KeyCache::ready(dev_authority()),
            store,
        }
    }

    #[tokio::test]
    async fn a_good_login_returns_a_bearer_token_pair_that_must_not_be_cached() {
        let state = state_with_alice().await;
        let (response, body) = call(handle(&state, event("login-ok", None))).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(
            (body["token_type"].as_str(), body["expires_in"].as_u64()),
            (Some("Bearer"), Some(900))
        );
        let authority = state.keys.loaded().unwrap();
        let access = authority
            .verify_access(body["access_token"].as_str().unwrap(), shared::now())
            .unwrap();
        assert_eq!((access.sub.as_str(), access.username.as_str()), ("u-1", "Alice"));
        assert!(
            authority
                .verify_refresh(body["refresh_token"].as_str().unwrap(), shared::now())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
        let state = state_with_alice().await;
        let (wrong, wrong_body) = call(handle(&state, event("login-wrong-password", None))).await;
        let nobody = serde_json::json!({"username": "nobody", "password": "correct horse battery staple"});
        let (unknown, unknown_body) = call(handle(&state, event_with_body("login-ok", &nobody))).await;
        assert_eq!((wrong.status().as_u16(), unknown.status().as_u16()), (401, 401));
        assert_eq!(wrong_body, unknown_body);
        assert_eq!(wrong_body["error"], "invalid_credentials");
    }

    #[tokio::test]
    async fn five_failures_lock_the_name_with_retry_after_even_for_the_right_password() {
        let state = state_with_alice().await;
        for _ in 0..shared::lockout::FailedLogins::LIMIT {
            assert_eq!(
                call(handle(&state, event("login-wrong-password", None)))
                    .await
                    .0
                    .status(),
                401
            );
        }
        let (response, body) = call(handle(&state, event("login-ok", None))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (429, Some("too_many_attempts"))
        );
        let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry), "{retry}");
    }

    #[tokio::test]
    async fn a_base64_body_that_is_not_utf8_is_400() {
        let state = state_with_alice().await;
        let (response, body) = call(handle(&state, event("login-not-utf8", None))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }

    #[tokio::test]
    async fn get_is_405_with_allow_post() {
        let state = state_with_alice().await;
        let (response, _) = call(handle(&state, event("login-wrong-method", None))).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "POST")
        );
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503() {
        let state = State {
            keys: KeyCache::ready(dev_authority()),
            store: MemoryStore::unreachable(),
        };
        assert_eq!(call(handle(&state, event("login-ok", None))).await.0.status(), 503);
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let state = State {
            keys: KeyCache::ready(dev_authority()),
            store: shared::testing::unreachable_store().await,
        };
        let (response, body) = call(handle(&state, event("login-ok", None))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (503, Some("unavailable"))
        );
    }

    #[tokio::test]
    async fn a_user_with_a_factor_gets_403_mfa_required_and_then_tokens_for_the_code() {
        let state = state_with_alice().await;
        let now = shared::now();
        let alice = state.store.user_now("alice");
        let (secret, _) = shared::testing::enable_totp(&state.store, &alice, now).await;
        let (response, body) = call(handle(&state, event("login-ok", None))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (403, Some("mfa_required"))
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(body["methods"], serde_json::json!(["totp", "recovery_code"]));
        assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
        let mfa_token = body["mfa_token"].as_str().unwrap();
        assert_eq!(state.store.sessions("alice").await.unwrap().len(), 0, "no session yet");

        let second = serde_json::json!({"mfa_token": mfa_token, "code": secret.code_at(now)});
        let (response, body) = call(handle(&state, event_with_body("login-mfa", &second))).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let access = state
            .keys
            .loaded()
            .unwrap()
            .verify_access(body["access_token"].as_str().unwrap(), now)
            .unwrap();
        assert_eq!(access.amr, ["pwd", "otp"]);

        let (response, body) = call(handle(&state, event_with_body("login-mfa", &second))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token")),
            "used"
        );
    }

    #[tokio::test]
    async fn the_second_step_refuses_an_access_token_and_a_body_without_exactly_one_code() {
        let state = state_with_alice().await;
        let access = shared::testing::access_token(&dev_authority(), "u-1", "Alice", shared::now());
        let (response, body) = call(handle(
            &state,
            event_with_body("login-mfa", &serde_json::json!({"mfa_token": access, "code": "123456"})),
        ))
        .await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token"))
        );
        assert!(
            !response.headers().contains_key("www-authenticate"),
            "not a resource route"
        );
        for bad in [
            serde_json::json!({"mfa_token": "t"}),
            serde_json::json!({"mfa_token": "t", "code": "123456", "recovery_code": "x"}),
            serde_json::json!({"code": "123456"}),
            serde_json::json!({"mfa_token": 1, "code": "123456"}),
        ] {
            let (response, body) = call(handle(&state, event_with_body("login-mfa", &bad))).await;
            assert_eq!(
                (response.status().as_u16(), body["error"].as_str()),
                (400, Some("invalid_request")),
                "{bad}"
            );
        }
    }
}
