//! Logout: revoke the session the refresh token belongs to, in one conditional write.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::http::{ApiError, no_content, refresh_token, require_method, respond};
use shared::store::SessionStore;
use shared::token::TokenKeys;

/// What logout needs, built once per cold start.
pub struct State<S> {
    pub keys: TokenKeys,
    pub store: S,
}

/// Answers one request.
pub async fn handle<S: SessionStore>(
    state: &State<S>,
    req: Request,
) -> Result<Response<Body>, Error> {
    respond(logout(state, &req).await)
}

async fn logout<S: SessionStore>(
    state: &State<S>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    require_method(req, Method::POST)?;
    let token = refresh_token(req)?;
    let claims = state.keys.verify_refresh(&token).map_err(|reason| {
        tracing::info!(%reason, "refresh token refused");
        ApiError::InvalidToken
    })?;
    if !state
        .store
        .revoke_session(&claims.sid, shared::now())
        .await?
    {
        return Err(ApiError::InvalidToken);
    }
    tracing::info!(session_id = %claims.sid, user_id = %claims.sub, "logged out");
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::User;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_keys, event};

    async fn logged_in() -> (State<MemoryStore>, String) {
        let state = State {
            keys: dev_keys(),
            store: MemoryStore::default(),
        };
        let user = User {
            id: "u-1".into(),
            username: "alice".into(),
            password_hash: String::new(),
            created_at: 0,
        };
        let session = shared::session::start(&state.keys, &user, shared::now());
        state.store.create_session(&session).await.unwrap();
        let token = state.keys.issue_refresh(&session.generation());
        (state, token)
    }

    #[tokio::test]
    async fn logout_revokes_the_session_and_answers_204() {
        let (state, token) = logged_in().await;
        let response = handle(&state, event("logout-ok", Some(&token)))
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        let sid = state.keys.verify_refresh(&token).unwrap().sid;
        assert!(state.store.session_now(&sid).unwrap().revoked);
    }

    #[tokio::test]
    async fn a_second_logout_with_the_same_token_is_401() {
        let (state, token) = logged_in().await;
        handle(&state, event("logout-ok", Some(&token)))
            .await
            .unwrap();
        let response = handle(&state, event("logout-ok", Some(&token)))
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }

    #[tokio::test]
    async fn logout_without_a_token_is_401() {
        let (state, _) = logged_in().await;
        assert_eq!(
            handle(&state, event("logout-no-token", None))
                .await
                .unwrap()
                .status(),
            401
        );
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503() {
        let (mut state, token) = logged_in().await;
        state.store.unavailable = true;
        assert_eq!(
            handle(&state, event("logout-ok", Some(&token)))
                .await
                .unwrap()
                .status(),
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
        let response = handle(&state, event("logout-ok", Some(&token)))
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
    }
}
