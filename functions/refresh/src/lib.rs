//! Refresh: single-use rotation with a grace window for retries, and reuse
//! detection that revokes the whole session.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::http::{ApiError, JsonObject, refresh_token, require_method, respond, tokens};
use shared::session::{next_generation, token_response};
use shared::store::{Presented, Rotation, SessionStore};
use shared::token::refresh_token_hash;

pub use shared::State;

/// Answers one request.
pub async fn handle<S: SessionStore>(state: &State<S>, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, refresh(state, &req)).await
}

async fn refresh<S: SessionStore>(state: &State<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, Method::POST)?;
    let keys = state.keys.get().await?;
    let keys = keys.as_ref();
    let (token, claims) = refresh_token(keys, req, JsonObject::from_request(req)?.as_ref())?;
    let now = shared::now();
    let grace = keys.config().reuse_grace;
    let store = &state.store;
    let mut session = store
        .session(&claims.session_key())
        .await?
        .ok_or(ApiError::InvalidToken)?;
    // Two passes at most: a lost race re-reads once, and then the presented
    // token is either the one consumed last (a retry) or an older one (reuse).
    for _ in 0..2 {
        if !session.is_live(now) || session.user_id != claims.sub {
            return Err(ApiError::InvalidToken);
        }
        match session.classify(claims.generation, now, grace) {
            Presented::Live if refresh_token_hash(&token) == session.token_hash => {
                let next = next_generation(keys, &session, now);
                match store
                    .rotate_session(&session.key(), session.generation, &next.token_hash, now)
                    .await?
                {
                    Rotation::Rotated => {
                        return Ok(tokens(&token_response(keys, &next, now)));
                    }
                    Rotation::Conflict => {
                        session = store
                            .session(&claims.session_key())
                            .await?
                            .ok_or(ApiError::InvalidToken)?;
                    }
                }
            }
            // A retry or a second tab: the token of the live generation, not a new branch.
            Presented::Retry => return Ok(tokens(&token_response(keys, &session, now))),
            Presented::Reused => {
                store.revoke_session(&session.key(), now).await?;
                tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse: session revoked");
                return Err(ApiError::InvalidToken);
            }
            Presented::Live | Presented::Unknown => return Err(ApiError::InvalidToken),
        }
    }
    Err(ApiError::InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::keys::Keys;
    use shared::store::User;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_config, event};
    use shared::token::TokenKeys;

    fn state(grace: u64) -> State<MemoryStore> {
        let mut config = dev_config();
        config.reuse_grace = grace;
        State {
            keys: Keys::ready(TokenKeys::new(config)),
            store: MemoryStore::default(),
        }
    }

    /// A session started `age` seconds ago, and its first refresh token.
    async fn login(state: &State<MemoryStore>, age: u64) -> String {
        let user = User {
            id: "u-1".into(),
            username: "alice".into(),
            password_hash: String::new(),
            created_at: 0,
        };
        let session = shared::session::start(&state.keys.loaded().unwrap(), &user, shared::now() - age);
        state.store.create_session(&session).await.unwrap();
        state.keys.loaded().unwrap().issue_refresh(&session.generation())
    }

    async fn call(state: &State<MemoryStore>, token: &str) -> (u16, serde_json::Value) {
        let response = handle(state, event("refresh-ok", Some(token))).await.unwrap();
        let body = match response.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            _ => serde_json::Value::Null,
        };
        (response.status().as_u16(), body)
    }

    fn session_of(state: &State<MemoryStore>, token: &str) -> shared::store::Session {
        let key = state
            .keys
            .loaded()
            .unwrap()
            .verify_refresh(token)
            .unwrap()
            .session_key();
        state.store.session_now(&key).unwrap()
    }

    #[tokio::test]
    async fn a_refresh_rotates_to_a_new_token_of_the_same_session() {
        let state = state(10);
        let first = login(&state, 5).await;
        let (status, body) = call(&state, &first).await;
        assert_eq!(status, 200, "{body}");
        let second = body["refresh_token"].as_str().unwrap();
        assert_ne!(second, first);
        let claims = state.keys.loaded().unwrap().verify_refresh(second).unwrap();
        assert_eq!(claims.generation, 1);
        assert_eq!(
            claims.sid,
            state.keys.loaded().unwrap().verify_refresh(&first).unwrap().sid
        );
        assert!(
            state
                .keys
                .loaded()
                .unwrap()
                .verify_access(body["access_token"].as_str().unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_token_consumed_last_gets_the_live_token_again_within_the_grace_window() {
        let state = state(10);
        let first = login(&state, 5).await;
        let (_, rotated) = call(&state, &first).await;
        let (status, retried) = call(&state, &first).await;
        assert_eq!(status, 200);
        assert_eq!(
            retried["refresh_token"], rotated["refresh_token"],
            "same generation, no new branch"
        );
        assert_eq!(call(&state, rotated["refresh_token"].as_str().unwrap()).await.0, 200);
    }

    #[tokio::test]
    async fn with_a_zero_grace_any_reuse_revokes_the_session() {
        let state = state(0);
        let first = login(&state, 5).await;
        let (_, rotated) = call(&state, &first).await;
        assert_eq!(call(&state, &first).await.0, 401);
        assert!(session_of(&state, &first).revoked);
        assert_eq!(call(&state, rotated["refresh_token"].as_str().unwrap()).await.0, 401);
    }

    #[tokio::test]
    async fn an_older_generation_revokes_the_session_even_within_the_grace_window() {
        let state = state(10);
        let first = login(&state, 5).await;
        let (_, second) = call(&state, &first).await;
        let (_, third) = call(&state, second["refresh_token"].as_str().unwrap()).await;
        let (status, body) = call(&state, &first).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
        assert!(session_of(&state, &first).revoked);
        assert_eq!(
            call(&state, third["refresh_token"].as_str().unwrap()).await.0,
            401,
            "the thief's branch is dead too"
        );
    }

    #[tokio::test]
    async fn a_session_past_its_absolute_lifetime_cannot_be_refreshed() {
        let state = state(10);
        let lifetime = state.keys.loaded().unwrap().config().session_lifetime;
        let user = User {
            id: "u-1".into(),
            username: "alice".into(),
            password_hash: String::new(),
            created_at: 0,
        };
        let mut session = shared::session::start(&state.keys.loaded().unwrap(), &user, shared::now() - 100);
        session.expires_at = shared::now() - 1;
        assert!(lifetime > 100);
        state.store.create_session(&session).await.unwrap();
        // The token itself is expired too; the store's own check is what this proves.
        let live_looking = shared::store::Session {
            expires_at: shared::now() + 60,
            ..session.clone()
        };
        let token = state.keys.loaded().unwrap().issue_refresh(&live_looking.generation());
        assert_eq!(call(&state, &token).await.0, 401);
    }

    #[tokio::test]
    async fn an_access_token_is_not_a_refresh_token() {
        let state = state(10);
        let access = state.keys.loaded().unwrap().issue_access("u-1", "alice", shared::now());
        assert_eq!(call(&state, &access).await.0, 401);
    }

    #[tokio::test]
    async fn a_garbage_token_is_401_and_a_missing_one_too() {
        let state = state(10);
        let response = handle(&state, event("refresh-invalid-token", None)).await.unwrap();
        assert_eq!(response.status(), 401);
        let response = handle(&state, event("logout-no-token", None)).await.unwrap();
        assert_eq!(response.status(), 401);
    }

    #[tokio::test]
    async fn the_token_may_come_in_the_authorization_header() {
        let state = state(10);
        let first = login(&state, 5).await;
        let response = handle(&state, event("logout-ok", Some(&first))).await.unwrap();
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let keys = state(10).keys;
        let k = keys.loaded().unwrap();
        let user = User {
            id: "u-1".into(),
            username: "alice".into(),
            password_hash: String::new(),
            created_at: 0,
        };
        let token = k.issue_refresh(&shared::session::start(&k, &user, shared::now()).generation());
        let state = State {
            keys,
            store: shared::testing::unreachable_store().await,
        };
        let response = handle(&state, event("refresh-ok", Some(&token))).await.unwrap();
        assert_eq!(response.status(), 503);
    }
}
