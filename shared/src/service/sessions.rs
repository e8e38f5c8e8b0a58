//! Starting a session, moving it on a generation, and the tokens it answers with.

use crate::session::Session;
use crate::store::User;
use crate::token::{TokenAuthority, refresh_token_hash};

/// What a login or a refresh hands the client: a fresh access token and the
/// refresh token of the session's live generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
}

/// A new session for `user` at generation 0, ending after the configured absolute lifetime.
pub fn start(tokens: &TokenAuthority, user: &User, now: u64) -> Session {
    let mut session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        generation: 0,
        token_hash: String::new(),
        issued_at: now,
        expires_at: now.saturating_add(tokens.settings().session_lifetime),
        revoked: false,
    };
    session.token_hash = refresh_token_hash(&tokens.issue_refresh(&session.generation()));
    session
}

/// The session moved on to its next generation at `now`, with the hash of the
/// new refresh token; `None` past the last generation a number can hold.
pub fn next_generation(tokens: &TokenAuthority, session: &Session, now: u64) -> Option<Session> {
    let mut next = Session {
        generation: session.generation.checked_add(1)?,
        issued_at: now,
        ..session.clone()
    };
    next.token_hash = refresh_token_hash(&tokens.issue_refresh(&next.generation()));
    Some(next)
}

/// A fresh access token and the refresh token of the session's live generation.
pub fn token_pair(tokens: &TokenAuthority, session: &Session, now: u64) -> TokenPair {
    TokenPair {
        access_token: tokens.issue_access(&session.user_id, &session.username, now),
        refresh_token: tokens.issue_refresh(&session.generation()),
        expires_in: tokens.settings().access_ttl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dev_authority, user};

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_session_starts_at_generation_zero_and_ends_after_the_absolute_lifetime() {
        let tokens = dev_authority();
        let session = start(&tokens, &user("u-1", "Alice"), NOW);
        assert_eq!((session.generation, session.issued_at), (0, NOW));
        assert_eq!(session.expires_at, NOW + tokens.settings().session_lifetime);
        assert_eq!((session.user_id.as_str(), session.username.as_str()), ("u-1", "Alice"));
        assert_eq!(
            session.token_hash,
            refresh_token_hash(&tokens.issue_refresh(&session.generation()))
        );
        assert_ne!(start(&tokens, &user("u-1", "Alice"), NOW).id, session.id);
    }

    #[test]
    fn the_next_generation_has_its_own_token_and_none_follows_the_last() {
        let tokens = dev_authority();
        let session = start(&tokens, &user("u-1", "alice"), NOW);
        let next = next_generation(&tokens, &session, NOW + 5).unwrap();
        assert_eq!(
            (next.generation, next.issued_at, next.id.as_str()),
            (1, NOW + 5, session.id.as_str())
        );
        assert_ne!(next.token_hash, session.token_hash);
        let last = Session {
            generation: u64::MAX,
            ..session
        };
        assert_eq!(next_generation(&tokens, &last, NOW), None);
    }

    #[test]
    fn the_pair_holds_an_access_token_for_the_user_and_the_live_refresh_token() {
        let tokens = dev_authority();
        let session = start(&tokens, &user("u-1", "alice"), NOW);
        let pair = token_pair(&tokens, &session, NOW);
        assert_eq!(refresh_token_hash(&pair.refresh_token), session.token_hash);
        assert_eq!(tokens.verify_access(&pair.access_token, NOW).unwrap().sub, "u-1");
        assert_eq!(pair.expires_in, 900);
    }
}
