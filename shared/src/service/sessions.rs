//! Sessions: starting one, moving it on a generation, the tokens it answers
//! with; and a user's own view of them: listing, ending one.

use super::audit::{Owner, record};
use crate::audit::{Event, Kind};
use crate::session::{Origin, Session, SessionKey};
use crate::store::{AuditStore, SessionStore, StoreError, User};
use crate::token::{AccessClaims, TokenAuthority, refresh_token_hash};

/// What a login or a refresh hands the client: a fresh access token and the
/// refresh token of the session's live generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
}

/// A new session for `user` at generation 0, logged in by `amr` from
/// `origin`, ending after the configured absolute lifetime.
pub fn start(tokens: &TokenAuthority, user: &User, amr: &[&str], origin: Origin, now: u64) -> Session {
    let mut session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        generation: 0,
        token_hash: String::new(),
        created_at: now,
        issued_at: now,
        expires_at: now.saturating_add(tokens.settings().session_lifetime),
        revoked: false,
        amr: amr.iter().map(|m| (*m).to_owned()).collect(),
        origin,
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
        access_token: tokens.issue_access(&session.generation(), now),
        refresh_token: tokens.issue_refresh(&session.generation()),
        expires_in: tokens.settings().access_ttl,
    }
}

/// Why a session could not be ended.
#[derive(Debug, thiserror::Error)]
pub enum EndError {
    /// No live session of the caller has that id (another user's is not told apart).
    #[error("no such session")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The live sessions of the caller of `claims` at `now`, newest first.
pub async fn list<S: SessionStore>(store: &S, claims: &AccessClaims, now: u64) -> Result<Vec<Session>, StoreError> {
    let mut sessions: Vec<Session> = store
        .sessions(&claims.username)
        .await?
        .into_iter()
        // A name registered again after a deletion is another user: its sessions are not the caller's.
        .filter(|s| s.is_live(now) && s.user_id == claims.sub)
        .collect();
    sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(sessions)
}

/// Whether the session of `claims` is still live at `now`. Routes that
/// change how the account is recovered or logged in to (its address, its
/// second factor) ask this, so that an access token that outlived its
/// session (a logout, a password change or reset, up to its 15 minutes)
/// cannot; read beside the route's own read, it adds no round trip of latency.
pub async fn is_live<S: SessionStore>(store: &S, claims: &AccessClaims, now: u64) -> Result<bool, StoreError> {
    let session = store.session(&SessionKey::new(&claims.username, &claims.sid)).await?;
    Ok(session.is_some_and(|s| s.is_live(now) && s.user_id == claims.sub))
}

/// Ends the caller's session `id` at `now`: its refresh token is refused
/// from then on. Its `session_revoked` event is written once the
/// revocation says it was one (as a logout's): an id that names no live
/// session of the caller, a second click say, records nothing.
pub async fn end<S: SessionStore + AuditStore>(
    store: &S,
    claims: &AccessClaims,
    id: &str,
    now: u64,
) -> Result<(), EndError> {
    // Ids are UUIDs: anything else names no session, and never reaches the store.
    if uuid::Uuid::try_parse(id).is_err() {
        return Err(EndError::NotFound);
    }
    let key = SessionKey::new(&claims.username, id);
    match store.revoke_session(&key, &claims.sub, now).await? {
        Some(_) => {
            let event = Event::new(Kind::SessionRevoked, now).in_session(id);
            record(store, Owner::of_claims(claims), event).await;
            tracing::info!(session_id = %id, "session ended by its user");
            Ok(())
        }
        None => Err(EndError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::PASSWORD;
    use crate::store::memory::MemoryStore;
    use crate::testing::{dev_authority, user};

    const NOW: u64 = 1_800_000_000;

    fn origin() -> Origin {
        Origin {
            ip: "203.0.113.10".into(),
            user_agent: "curl/8.5.0".into(),
        }
    }

    #[test]
    fn a_session_starts_at_generation_zero_with_its_origin_and_ends_after_the_absolute_lifetime() {
        let tokens = dev_authority();
        let session = start(&tokens, &user("u-1", "Alice"), &[PASSWORD], origin(), NOW);
        assert_eq!(
            (session.generation, session.created_at, session.issued_at),
            (0, NOW, NOW)
        );
        assert_eq!(session.expires_at, NOW + tokens.settings().session_lifetime);
        assert_eq!((session.user_id.as_str(), session.username.as_str()), ("u-1", "Alice"));
        assert_eq!(
            (session.amr.clone(), session.origin.clone()),
            (vec!["pwd".to_owned()], origin())
        );
        assert_eq!(
            session.token_hash,
            refresh_token_hash(&tokens.issue_refresh(&session.generation()))
        );
        assert_ne!(
            start(&tokens, &user("u-1", "Alice"), &[PASSWORD], origin(), NOW).id,
            session.id
        );
    }

    #[test]
    fn the_next_generation_has_its_own_token_keeps_the_start_and_none_follows_the_last() {
        let tokens = dev_authority();
        let session = start(&tokens, &user("u-1", "alice"), &[PASSWORD], origin(), NOW);
        let next = next_generation(&tokens, &session, NOW + 5).unwrap();
        assert_eq!(
            (next.generation, next.issued_at, next.id.as_str()),
            (1, NOW + 5, session.id.as_str())
        );
        assert_eq!(next.created_at, NOW, "the session began at the login");
        assert_ne!(next.token_hash, session.token_hash);
        let last = Session {
            generation: u64::MAX,
            ..session
        };
        assert_eq!(next_generation(&tokens, &last, NOW), None);
    }

    #[test]
    fn the_pair_holds_an_access_token_of_the_session_and_its_live_refresh_token() {
        let tokens = dev_authority();
        let session = start(&tokens, &user("u-1", "alice"), &[PASSWORD], origin(), NOW);
        let pair = token_pair(&tokens, &session, NOW);
        assert_eq!(refresh_token_hash(&pair.refresh_token), session.token_hash);
        let access = tokens.verify_access(&pair.access_token, NOW).unwrap();
        assert_eq!((access.sub.as_str(), access.sid.as_str()), ("u-1", session.id.as_str()));
        assert_eq!(access.amr, ["pwd"]);
        assert_eq!(pair.expires_in, 900);
    }

    async fn store_with(sessions: &[&Session]) -> MemoryStore {
        let store = MemoryStore::default();
        for s in sessions {
            store.create_session(s, None).await.unwrap();
        }
        store
    }

    fn claims_of(tokens: &TokenAuthority, session: &Session) -> AccessClaims {
        tokens
            .verify_access(&token_pair(tokens, session, NOW).access_token, NOW)
            .unwrap()
    }

    #[tokio::test]
    async fn the_list_holds_the_callers_live_sessions_newest_first() {
        let tokens = dev_authority();
        let alice = user("u-1", "alice");
        let old = start(&tokens, &alice, &[PASSWORD], origin(), NOW - 100);
        let new = start(&tokens, &alice, &[PASSWORD], origin(), NOW - 10);
        let revoked = Session {
            revoked: true,
            ..start(&tokens, &alice, &[PASSWORD], origin(), NOW - 5)
        };
        let ended = Session {
            expires_at: NOW,
            ..start(&tokens, &alice, &[PASSWORD], origin(), NOW - 50)
        };
        let previous_owner = start(&tokens, &user("u-0", "Alice"), &[PASSWORD], origin(), NOW - 1);
        let bobs = start(&tokens, &user("u-2", "bob"), &[PASSWORD], origin(), NOW - 1);
        let store = store_with(&[&old, &new, &revoked, &ended, &previous_owner, &bobs]).await;
        let listed = list(&store, &claims_of(&tokens, &old), NOW).await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [new.id.as_str(), old.id.as_str()]);
    }

    #[tokio::test]
    async fn ending_a_session_revokes_it_once_and_only_the_callers() {
        let tokens = dev_authority();
        let mine = start(&tokens, &user("u-1", "alice"), &[PASSWORD], origin(), NOW);
        let other = start(&tokens, &user("u-1", "alice"), &[PASSWORD], origin(), NOW);
        let bobs = start(&tokens, &user("u-2", "bob"), &[PASSWORD], origin(), NOW);
        let store = store_with(&[&mine, &other, &bobs]).await;
        let claims = claims_of(&tokens, &mine);
        assert!(matches!(
            end(&store, &claims, &bobs.id, NOW).await,
            Err(EndError::NotFound)
        ));
        assert!(!store.session_now(&bobs.key()).unwrap().revoked);
        end(&store, &claims, &other.id, NOW).await.unwrap();
        assert!(store.session_now(&other.key()).unwrap().revoked);
        assert!(matches!(
            end(&store, &claims, &other.id, NOW).await,
            Err(EndError::NotFound)
        ));
        for id in ["", "not-a-uuid", &"a".repeat(2000)] {
            assert!(matches!(end(&store, &claims, id, NOW).await, Err(EndError::NotFound)));
        }
    }

    #[tokio::test]
    async fn ending_a_session_is_session_revoked_of_that_session_from_the_callers_client() {
        use crate::store::AuditStore;
        let tokens = dev_authority();
        let mine = start(&tokens, &user("u-1", "alice"), &[PASSWORD], origin(), NOW);
        let other = start(&tokens, &user("u-1", "alice"), &[PASSWORD], origin(), NOW);
        let store = store_with(&[&mine, &other]).await;
        let claims = claims_of(&tokens, &mine);
        let client = Origin {
            ip: "198.51.100.7".into(),
            user_agent: "Firefox".into(),
        };
        crate::audit::from_client(client, end(&store, &claims, &other.id, NOW))
            .await
            .unwrap();
        let events = store.events("alice", None, 100).await.unwrap().events;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(
            (event.kind, event.at, event.session_id.as_deref()),
            (Kind::SessionRevoked, NOW, Some(other.id.as_str()))
        );
        assert_eq!(
            (event.ip.as_deref(), event.user_agent.as_deref()),
            (Some("198.51.100.7"), Some("Firefox"))
        );
        for again in [other.id.as_str(), "not-a-uuid"] {
            assert!(matches!(
                end(&store, &claims, again, NOW).await,
                Err(EndError::NotFound)
            ));
        }
        assert_eq!(
            store.events("alice", None, 100).await.unwrap().events.len(),
            1,
            "ending it again, or no session, records nothing"
        );
    }

    #[tokio::test]
    async fn a_session_of_a_previous_owner_of_the_name_cannot_be_ended() {
        let tokens = dev_authority();
        let theirs = start(&tokens, &user("u-0", "alice"), &[PASSWORD], origin(), NOW);
        let mine = start(&tokens, &user("u-1", "alice"), &[PASSWORD], origin(), NOW);
        let store = store_with(&[&theirs, &mine]).await;
        let result = end(&store, &claims_of(&tokens, &mine), &theirs.id, NOW).await;
        assert!(matches!(result, Err(EndError::NotFound)));
        assert!(!store.session_now(&theirs.key()).unwrap().revoked);
    }
}
