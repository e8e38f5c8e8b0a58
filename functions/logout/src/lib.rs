//! `POST /logout`: parse the refresh token (and `"everywhere"`), end the
//! session or every session of the user, answer 204.

use lambda_http::{Body, Error, Request, Response};
use shared::http::{ApiError, JsonObject, no_content, refresh_token, require_method, respond};
use shared::store::{AuditStore, SessionStore};

/// Its keys only verify: it reads the public keys, never the private set.
pub type State<S> = shared::State<S, shared::token::TokenVerifier>;

/// Answers one request.
pub async fn handle<S: SessionStore + AuditStore>(state: &State<S>, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, logout(state, &req)).await
}

async fn logout<S: SessionStore + AuditStore>(state: &State<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, "POST")?;
    let authority = state.keys.get().await?;
    let body = JsonObject::from_request(req)?;
    let everywhere = body
        .as_ref()
        .map(|b| b.flag("everywhere"))
        .transpose()?
        .unwrap_or(false);
    let token = refresh_token(req, body.as_ref())?;
    shared::service::logout(&state.store, &authority, token, everywhere, shared::now()).await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::{call, event, event_with_body};
    use shared::key_cache::KeyCache;
    use shared::session::Session;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_authority, user};

    /// A state with one session of `username`, and its refresh token.
    async fn logged_in(state: &State<MemoryStore>, username: &str) -> (Session, String) {
        let authority = dev_authority();
        let session = shared::testing::password_session(&authority, &user("u-1", username), shared::now());
        state.store.create_session(&session, None).await.unwrap();
        let token = authority.issue_refresh(&session.generation());
        (session, token)
    }

    fn state() -> State<MemoryStore> {
        State {
            keys: KeyCache::ready(dev_authority().into_verifier()),
            store: MemoryStore::default(),
        }
    }

    #[tokio::test]
    async fn logout_revokes_the_session_and_answers_204_then_401() {
        let state = state();
        let (session, token) = logged_in(&state, "alice").await;
        let (response, _) = call(handle(&state, event("logout-ok", Some(&token)))).await;
        assert_eq!(response.status(), 204);
        assert!(state.store.session_now(&session.key()).unwrap().revoked);
        let (again, body) = call(handle(&state, event("logout-ok", Some(&token)))).await;
        assert_eq!(
            (again.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token"))
        );
    }

    #[tokio::test]
    async fn everywhere_in_the_body_revokes_every_session_of_the_user() {
        let state = state();
        let (_, token) = logged_in(&state, "alice").await;
        let (other_device, _) = logged_in(&state, "Alice").await;
        let body = serde_json::json!({"everywhere": true, "refresh_token": token});
        let (response, _) = call(handle(&state, event_with_body("logout-ok", &body))).await;
        assert_eq!(response.status(), 204);
        assert!(state.store.session_now(&other_device.key()).unwrap().revoked);
    }

    #[tokio::test]
    async fn everywhere_that_is_not_a_boolean_is_400_and_revokes_nothing() {
        let state = state();
        let (session, token) = logged_in(&state, "alice").await;
        let body = serde_json::json!({"everywhere": "yes", "refresh_token": token});
        let (response, body) = call(handle(&state, event_with_body("logout-ok", &body))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
        assert!(!state.store.session_now(&session.key()).unwrap().revoked);
    }

    #[tokio::test]
    async fn logout_without_a_token_is_401() {
        assert_eq!(
            call(handle(&state(), event("logout-no-token", None))).await.0.status(),
            401
        );
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let memory = state();
        let (_, token) = logged_in(&memory, "alice").await;
        let state = State {
            keys: memory.keys,
            store: shared::testing::unreachable_store().await,
        };
        assert_eq!(
            call(handle(&state, event("logout-ok", Some(&token)))).await.0.status(),
            503
        );
    }
}
