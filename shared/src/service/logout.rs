//! Logging out: revoke the session the refresh token belongs to, in one
//! conditional write; everywhere: every session of the user.

use super::audit::{beside, record};
use super::refresh::{RefreshError, owner, reuse_detected, verified};
use crate::audit::{Event, Kind};
use crate::session::Presented;
use crate::store::{AuditStore, SessionStore};
use crate::token::TokenVerifier;

/// Ends the session of `token` at `now` (and, `everywhere`, every session of
/// its user). A spent generation still ends its session, but is refused like
/// any reuse. A "log out everywhere" that failed part way (the store went
/// away between sessions) completes when retried with the same token, and
/// then ends only the sessions begun before the first attempt: a token
/// stolen earlier cannot end the sessions of a later login. Its event is
/// written once the revocation says which it was: `logout`,
/// `logout_everywhere` (beside the other sessions' revocation) or, for a
/// spent token, `refresh_reuse_detected`.
pub async fn logout<S: SessionStore + AuditStore>(
    store: &S,
    tokens: &TokenVerifier,
    token: &str,
    everywhere: bool,
    now: u64,
) -> Result<(), RefreshError> {
    let claims = verified(tokens, token, now)?;
    // Revoke first, in one write: whatever the token's generation, its session must end.
    let (session, everywhere_since) = if everywhere {
        let (session, since) = store
            .log_out_everywhere(&claims.session_key(), &claims.sub, now)
            .await?
            .ok_or(RefreshError::Invalid)?;
        (session, Some(since))
    } else {
        let session = store
            .revoke_session(&claims.session_key(), &claims.sub, now)
            .await?
            .ok_or(RefreshError::Invalid)?;
        (session, None)
    };
    match session.classify(claims.generation, now, tokens.settings().reuse_grace) {
        Presented::Live | Presented::Retry => {}
        Presented::Reused | Presented::Unknown => {
            record(store, owner(&claims), reuse_detected(&claims.sid, now)).await;
            tracing::warn!(session_id = %claims.sid, user_id = %claims.sub, "spent refresh token at logout: session revoked");
            return Err(RefreshError::Reused { session_id: claims.sid });
        }
    }
    if let Some(since) = everywhere_since {
        let event = Event::new(Kind::LogoutEverywhere, now).in_session(&claims.sid);
        let revoke = store.revoke_all_sessions(&claims.username, &claims.sub, since, now);
        let others = beside(store, owner(&claims), event, revoke).await?;
        tracing::info!(user_id = %claims.sub, others, "logged out everywhere");
    } else {
        let event = Event::new(Kind::Logout, now).in_session(&claims.sid);
        record(store, owner(&claims), event).await;
        tracing::info!(session_id = %claims.sid, user_id = %claims.sub, "logged out");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::sessions;
    use crate::session::Session;
    use crate::store::memory::MemoryStore;
    use crate::testing::{dev_authority, user};

    /// The kinds of alice's events, newest first, with their sessions.
    async fn events(store: &MemoryStore) -> Vec<(Kind, Option<String>)> {
        let page = store.events("alice", None, 100).await.unwrap();
        page.events.into_iter().map(|e| (e.kind, e.session_id)).collect()
    }
    use crate::token::TokenAuthority;

    async fn session_of(store: &MemoryStore, tokens: &TokenAuthority, username: &str, now: u64) -> (Session, String) {
        let session = crate::testing::password_session(tokens, &user("u-1", username), now);
        store.create_session(&session, None).await.unwrap();
        let token = tokens.issue_refresh(&session.generation());
        (session, token)
    }

    /// The session moved on one generation, as a refresh does.
    async fn rotated(store: &MemoryStore, tokens: &TokenAuthority, session: &Session, now: u64) -> Session {
        let next = sessions::next_generation(tokens, session, now).unwrap();
        store
            .rotate_session(&session.key(), session.generation, &next.token_hash, now)
            .await
            .unwrap();
        next
    }

    #[tokio::test]
    async fn logout_revokes_the_session_once() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (session, token) = session_of(&store, &tokens, "alice", now).await;
        logout(&store, &tokens, &token, false, now).await.unwrap();
        assert!(store.session_now(&session.key()).unwrap().revoked);
        assert!(matches!(
            logout(&store, &tokens, &token, false, now).await,
            Err(RefreshError::Invalid)
        ));
        assert_eq!(
            events(&store).await,
            [(Kind::Logout, Some(session.id))],
            "one logout: the refused second is none"
        );
    }

    #[tokio::test]
    async fn logout_with_a_spent_generation_revokes_the_session_but_is_refused() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (session, first) = session_of(&store, &tokens, "alice", now).await;
        let second = rotated(&store, &tokens, &session, now).await;
        rotated(&store, &tokens, &second, now).await;
        let result = logout(&store, &tokens, &first, false, now).await;
        assert!(matches!(result, Err(RefreshError::Reused { session_id }) if session_id == session.id));
        assert!(store.session_now(&session.key()).unwrap().revoked);
        assert_eq!(events(&store).await, [(Kind::RefreshReuseDetected, Some(session.id))]);
    }

    #[tokio::test]
    async fn the_token_consumed_last_within_the_grace_window_logs_out() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (session, first) = session_of(&store, &tokens, "alice", now).await;
        rotated(&store, &tokens, &session, now).await;
        logout(&store, &tokens, &first, false, now).await.unwrap();
        assert!(store.session_now(&session.key()).unwrap().revoked);
    }

    #[tokio::test]
    async fn logout_everywhere_revokes_every_session_of_the_user_and_no_one_elses() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (_, token) = session_of(&store, &tokens, "alice", now).await;
        let (other_device, _) = session_of(&store, &tokens, "Alice", now).await;
        let (bobs, _) = session_of(&store, &tokens, "bob", now).await;
        logout(&store, &tokens, &token, true, now).await.unwrap();
        assert!(store.session_now(&other_device.key()).unwrap().revoked);
        assert!(!store.session_now(&bobs.key()).unwrap().revoked);
        let kinds: Vec<Kind> = events(&store).await.into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [Kind::LogoutEverywhere]);
        assert!(store.events("bob", None, 10).await.unwrap().events.is_empty());
    }

    #[tokio::test]
    async fn a_log_out_everywhere_cut_short_completes_when_retried_with_the_same_token() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (session, token) = session_of(&store, &tokens, "alice", now).await;
        let (other_device, _) = session_of(&store, &tokens, "alice", now).await;
        // The first attempt ended its own session, then the store went away.
        store
            .log_out_everywhere(&session.key(), &session.user_id, now)
            .await
            .unwrap();
        assert!(!store.session_now(&other_device.key()).unwrap().revoked);
        logout(&store, &tokens, &token, true, now + 5).await.unwrap();
        assert!(store.session_now(&other_device.key()).unwrap().revoked);
        let plain = logout(&store, &tokens, &token, false, now + 6).await;
        assert!(
            matches!(plain, Err(RefreshError::Invalid)),
            "a plain logout of it is over: {plain:?}"
        );
    }

    #[tokio::test]
    async fn a_retried_log_out_everywhere_spares_the_sessions_of_a_later_login() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (_, token) = session_of(&store, &tokens, "alice", now).await;
        logout(&store, &tokens, &token, true, now).await.unwrap();
        let (later, _) = session_of(&store, &tokens, "alice", now + 60).await;
        logout(&store, &tokens, &token, true, now + 120).await.unwrap();
        assert!(
            !store.session_now(&later.key()).unwrap().revoked,
            "an old token, stolen or replayed, cannot end a newer login"
        );
    }

    #[tokio::test]
    async fn a_spent_token_ends_its_session_but_never_logs_out_everywhere() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (session, first) = session_of(&store, &tokens, "alice", now).await;
        let second = rotated(&store, &tokens, &session, now).await;
        let (other_device, _) = session_of(&store, &tokens, "alice", now).await;
        let stolen = logout(&store, &tokens, &first, true, now + 100).await;
        assert!(matches!(stolen, Err(RefreshError::Reused { .. })), "{stolen:?}");
        assert!(
            store.session_now(&session.key()).unwrap().revoked,
            "reuse ends the session"
        );
        assert!(!store.session_now(&other_device.key()).unwrap().revoked);
        let live = tokens.issue_refresh(&second.generation());
        logout(&store, &tokens, &live, true, now + 101).await.unwrap();
        assert!(
            store.session_now(&other_device.key()).unwrap().revoked,
            "the owner's own token still can"
        );
    }

    #[tokio::test]
    async fn a_token_of_the_largest_generation_ends_its_session_without_overflow() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (session, _) = session_of(&store, &tokens, "alice", now).await;
        let forged = tokens.issue_refresh(
            &Session {
                generation: u64::MAX,
                ..session.clone()
            }
            .generation(),
        );
        let result = logout(&store, &tokens, &forged, false, now).await;
        assert!(matches!(result, Err(RefreshError::Reused { .. })), "{result:?}");
        assert!(store.session_now(&session.key()).unwrap().revoked);
    }

    #[tokio::test]
    async fn an_unreachable_store_is_a_store_error() {
        let (store, tokens, now) = (MemoryStore::default(), dev_authority(), crate::clock::now());
        let (_, token) = session_of(&store, &tokens, "alice", now).await;
        let result = logout(&MemoryStore::unreachable(), &tokens, &token, false, now).await;
        assert!(matches!(result, Err(RefreshError::Store(_))));
    }
}
