//! `POST /refresh`: parse the refresh token, rotate it, answer with the next pair.

use lambda_http::{Body, Error, Request, Response};
use shared::http::{ApiError, JsonObject, refresh_token, require_method, respond, tokens};
use shared::store::{AuditStore, SessionStore};

pub use shared::State;

/// Answers one request.
pub async fn handle<S: SessionStore + AuditStore>(state: &State<S>, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, refresh(state, &req)).await
}

async fn refresh<S: SessionStore + AuditStore>(state: &State<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, "POST")?;
    let authority = state.keys.get().await?;
    let body = JsonObject::from_request(req)?;
    let token = refresh_token(req, body.as_ref())?;
    let pair = shared::service::refresh(&state.store, &authority, token, shared::now()).await?;
    Ok(tokens(&pair))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::{call, event};
    use shared::key_cache::KeyCache;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_authority, user};

    /// A state with one session of alice, and its first refresh token.
    async fn logged_in() -> (State<MemoryStore>, String) {
        let state = State {
            keys: KeyCache::ready(dev_authority()),
            store: MemoryStore::default(),
        };
        let authority = state.keys.loaded().unwrap();
        let session = shared::testing::password_session(&authority, &user("u-1", "alice"), shared::now());
        state.store.create_session(&session, None).await.unwrap();
        let token = authority.issue_refresh(&session.generation());
        (state, token)
    }

    #[tokio::test]
    async fn a_refresh_answers_a_new_pair_that_must_not_be_cached() {
        let (state, first) = logged_in().await;
        let (response, body) = call(handle(&state, event("refresh-ok", Some(&first)))).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let second = body["refresh_token"].as_str().unwrap();
        assert_ne!(second, first);
        let authority = state.keys.loaded().unwrap();
        assert_eq!(authority.verify_refresh(second, shared::now()).unwrap().generation, 1);
    }

    #[tokio::test]
    async fn a_reused_token_is_401_like_any_invalid_one() {
        let (state, first) = logged_in().await;
        call(handle(&state, event("refresh-ok", Some(&first)))).await;
        let (_, second) = call(handle(&state, event("refresh-ok", Some(&first)))).await;
        let (_, _) = call(handle(
            &state,
            event("refresh-ok", Some(second["refresh_token"].as_str().unwrap())),
        ))
        .await;
        let (response, body) = call(handle(&state, event("refresh-ok", Some(&first)))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token"))
        );
    }

    #[tokio::test]
    async fn a_garbage_token_is_401_and_a_missing_one_too() {
        let (state, _) = logged_in().await;
        assert_eq!(
            call(handle(&state, event("refresh-invalid-token", None)))
                .await
                .0
                .status(),
            401
        );
        assert_eq!(
            call(handle(&state, event("logout-no-token", None))).await.0.status(),
            401
        );
    }

    #[tokio::test]
    async fn the_token_may_come_in_the_authorization_header() {
        let (state, first) = logged_in().await;
        assert_eq!(
            call(handle(&state, event("logout-ok", Some(&first)))).await.0.status(),
            200
        );
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let (memory, token) = logged_in().await;
        let state = State {
            keys: memory.keys,
            store: shared::testing::unreachable_store().await,
        };
        assert_eq!(
            call(handle(&state, event("refresh-ok", Some(&token)))).await.0.status(),
            503
        );
    }
}
