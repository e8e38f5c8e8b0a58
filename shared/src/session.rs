//! Starting a session and answering with its tokens: shared by login and refresh.

use crate::http::TokenResponse;
use crate::store::{Session, User};
use crate::token::{TokenKeys, refresh_token_hash};

/// A new session for `user` at generation 0, ending after the configured absolute lifetime.
pub fn start(keys: &TokenKeys, user: &User, now: u64) -> Session {
    let mut session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        generation: 0,
        token_hash: String::new(),
        issued_at: now,
        expires_at: now + keys.config().session_lifetime,
        revoked: false,
    };
    session.token_hash = refresh_token_hash(&keys.issue_refresh(&session.generation()));
    session
}

/// The session moved on to its next generation at `now`, with the hash of the new refresh token.
pub fn next_generation(keys: &TokenKeys, session: &Session, now: u64) -> Session {
    let mut next = Session {
        generation: session.generation + 1,
        issued_at: now,
        ..session.clone()
    };
    next.token_hash = refresh_token_hash(&keys.issue_refresh(&next.generation()));
    next
}

/// A fresh access token and the refresh token of the session's live generation.
pub fn token_response(keys: &TokenKeys, session: &Session, now: u64) -> TokenResponse {
    TokenResponse {
        access_token: keys.issue_access(&session.user_id, &session.username, now),
        refresh_token: keys.issue_refresh(&session.generation()),
        token_type: "Bearer",
        expires_in: keys.config().access_ttl,
    }
}
