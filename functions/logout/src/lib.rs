//! Logout: revoke the session the refresh token belongs to, in one conditional
//! write; with `"everywhere": true`, every session of the user.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::http::{ApiError, JsonObject, no_content, refresh_token, require_method, respond};
use shared::store::{Presented, SessionStore};

pub use shared::State;

/// Answers one request.
pub async fn handle<S: SessionStore>(state: &State<S>, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, logout(state, &req)).await
}

async fn logout<S: SessionStore>(state: &State<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, Method::POST)?;
    let keys = state.keys.get().await?;
    let keys = keys.as_ref();
    let body = JsonObject::from_request(req)?;
    let everywhere = body
        .as_ref()
        .map(|b| b.flag("everywhere"))
        .transpose()?
        .unwrap_or(false);
    let (_, claims) = refresh_token(keys, req, body.as_ref())?;
    let now = shared::now();
    // Revoke first, in one write: whatever the token's generation, its session must end.
    let session = state
        .store
        .revoke_session(&claims.session_key(), now)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    match session.classify(claims.generation, now, keys.config().reuse_grace) {
        Presented::Live | Presented::Retry => {}
        Presented::Reused | Presented::Unknown => {
            tracing::warn!(session_id = %claims.sid, user_id = %claims.sub, "spent refresh token at logout: session revoked");
            return Err(ApiError::InvalidToken);
        }
    }
    if everywhere {
        let others = state.store.revoke_all_sessions(&claims.username, now).await?;
        tracing::info!(user_id = %claims.sub, others, "logged out everywhere");
    } else {
        tracing::info!(session_id = %claims.sid, user_id = %claims.sub, "logged out");
    }
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::keys::Keys;
    use shared::store::User;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_keys, event};

    async fn logged_in() -> (State<MemoryStore>, String) {
        let state = State {
            keys: Keys::ready(dev_keys()),
            store: MemoryStore::default(),
        };
        let user = User {
            id: "u-1".into(),
            username: "alice".into(),
            password_hash: String::new(),
            created_at: 0,
        };
        let session = shared::session::start(&state.keys.loaded().unwrap(), &user, shared::now());
        state.store.create_session(&session).await.unwrap();
        let token = state.keys.loaded().unwrap().issue_refresh(&session.generation());
        (state, token)
    }

    #[tokio::test]
    async fn logout_revokes_the_session_and_answers_204() {
        let (state, token) = logged_in().await;
        let response = handle(&state, event("logout-ok", Some(&token))).await.unwrap();
        assert_eq!(response.status(), 204);
        let sid = state
            .keys
            .loaded()
            .unwrap()
            .verify_refresh(&token)
            .unwrap()
            .session_key();
        assert!(state.store.session_now(&sid).unwrap().revoked);
    }

    #[tokio::test]
    async fn a_second_logout_with_the_same_token_is_401() {
        let (state, token) = logged_in().await;
        handle(&state, event("logout-ok", Some(&token))).await.unwrap();
        let response = handle(&state, event("logout-ok", Some(&token))).await.unwrap();
        assert_eq!(response.status(), 401);
    }

    #[tokio::test]
    async fn logout_with_a_spent_generation_revokes_the_session_but_answers_401() {
        let (state, first) = logged_in().await;
        let sid = state
            .keys
            .loaded()
            .unwrap()
            .verify_refresh(&first)
            .unwrap()
            .session_key();
        let session = state.store.session_now(&sid).unwrap();
        let later = shared::now() + 3600;
        let next = shared::session::next_generation(&state.keys.loaded().unwrap(), &session, later - 100);
        state
            .store
            .rotate_session(&sid, 0, &next.token_hash, later - 100)
            .await
            .unwrap();
        let next = shared::session::next_generation(&state.keys.loaded().unwrap(), &next, later);
        state
            .store
            .rotate_session(&sid, 1, &next.token_hash, later)
            .await
            .unwrap();
        let response = handle(&state, event("logout-ok", Some(&first))).await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(state.store.session_now(&sid).unwrap().revoked);
    }

    #[tokio::test]
    async fn logout_everywhere_revokes_every_session_of_the_user_and_no_one_elses() {
        let (state, token) = logged_in().await;
        let user = User {
            id: "u-1".into(),
            username: "Alice".into(),
            password_hash: String::new(),
            created_at: 0,
        };
        let keys = state.keys.loaded().unwrap();
        let other_device = shared::session::start(&keys, &user, shared::now());
        state.store.create_session(&other_device).await.unwrap();
        let bob = User {
            id: "u-2".into(),
            username: "bob".into(),
            password_hash: String::new(),
            created_at: 0,
        };
        let bobs = shared::session::start(&keys, &bob, shared::now());
        state.store.create_session(&bobs).await.unwrap();
        let mut event: serde_json::Value = serde_json::from_str(&shared::testing::event_json("logout-ok")).unwrap();
        event["body"] = serde_json::json!({"everywhere": true, "refresh_token": token})
            .to_string()
            .into();
        let json = event.to_string();
        let response = handle(&state, lambda_http::request::from_str(&json).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        assert!(state.store.session_now(&other_device.key()).unwrap().revoked);
        assert!(!state.store.session_now(&bobs.key()).unwrap().revoked);
    }

    #[tokio::test]
    async fn logout_without_a_token_is_401() {
        let (state, _) = logged_in().await;
        assert_eq!(
            handle(&state, event("logout-no-token", None)).await.unwrap().status(),
            401
        );
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503() {
        let (mut state, token) = logged_in().await;
        state.store.unavailable = true;
        assert_eq!(
            handle(&state, event("logout-ok", Some(&token))).await.unwrap().status(),
            503
        );
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let (memory, token) = logged_in().await;
        let state = State {
            keys: memory.keys,
            store: shared::testing::unreachable_store().await,
        };
        let response = handle(&state, event("logout-ok", Some(&token))).await.unwrap();
        assert_eq!(response.status(), 503);
    }
}
