//! What the operator does to an account with the admin tool: disable it
//! (and end its sessions), enable it, end its sessions. Each leaves an
//! event; unlike a client's request, the operator hears when that event
//! could not be stored (an error after the change, which a rerun repeats).

use crate::audit::{Event, Kind};
use crate::store::{AdminStore, AuditStore, Change, SessionStore, StoreError, User};

/// Why an admin action did not go through.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The user was deleted (or the name taken by someone else) meanwhile.
    #[error("the user is gone")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Disables `user`: from now on no login starts a session (the right
/// password gets `account_disabled`), and every session they have is
/// revoked. Returns how many were.
pub async fn disable<S: AdminStore + SessionStore + AuditStore>(
    store: &S,
    user: &User,
    now: u64,
) -> Result<usize, AdminError> {
    // First the mark, which every session's creation checks: no login can
    // slip a session in between the two steps.
    if store.set_disabled(user, true).await? == Change::Conflict {
        return Err(AdminError::Gone);
    }
    let revoked = store
        .revoke_all_sessions(&user.username, &user.id, u64::MAX, now)
        .await?;
    record(store, user, Kind::AccountDisabled, now).await?;
    tracing::info!(user_id = %user.id, revoked, "account disabled");
    Ok(revoked)
}

/// Enables `user` again: the right password logs in.
pub async fn enable<S: AdminStore + AuditStore>(store: &S, user: &User, now: u64) -> Result<(), AdminError> {
    if store.set_disabled(user, false).await? == Change::Conflict {
        return Err(AdminError::Gone);
    }
    record(store, user, Kind::AccountEnabled, now).await?;
    tracing::info!(user_id = %user.id, "account enabled");
    Ok(())
}

/// Revokes every live session of `user` (one `session_revoked` event, for
/// none in particular); returns how many.
pub async fn revoke_sessions<S: SessionStore + AuditStore>(
    store: &S,
    user: &User,
    now: u64,
) -> Result<usize, StoreError> {
    let revoked = store
        .revoke_all_sessions(&user.username, &user.id, u64::MAX, now)
        .await?;
    record(store, user, Kind::SessionRevoked, now).await?;
    Ok(revoked)
}

async fn record(store: &impl AuditStore, user: &User, kind: Kind, now: u64) -> Result<(), StoreError> {
    store
        .record_event(&user.username, &user.id, &Event::by_admin(kind, now))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Origin;
    use crate::store::{UserStore, memory::MemoryStore};
    use crate::testing::{dev_authority, user_with_password};

    async fn alice_with_a_session(store: &MemoryStore, now: u64) -> User {
        let alice = user_with_password("u-1", "Alice", "correct horse battery staple").await;
        store.create_user(&alice).await.unwrap();
        let session = crate::service::sessions::start(&dev_authority(), &alice, &["pwd"], Origin::default(), now);
        store.create_session(&session, Some(&alice)).await.unwrap();
        alice
    }

    fn kinds(page: &crate::audit::Page) -> Vec<Kind> {
        page.events.iter().map(|e| e.kind).collect()
    }

    #[tokio::test]
    async fn disabling_marks_the_user_revokes_their_sessions_and_says_so_in_their_events() {
        let store = MemoryStore::default();
        let alice = alice_with_a_session(&store, 100).await;
        assert_eq!(disable(&store, &alice, 200).await.unwrap(), 1);
        assert!(store.user_now("alice").disabled);
        let sessions = store.sessions("alice").await.unwrap();
        assert!(sessions.iter().all(|s| s.revoked));
        let page = store.events("alice", None, 10).await.unwrap();
        assert_eq!(kinds(&page), [Kind::AccountDisabled]);
        assert_eq!(page.events[0].user_agent.as_deref(), Some(crate::audit::ADMIN));
    }

    #[tokio::test]
    async fn enabling_clears_the_mark_and_a_gone_user_is_an_error() {
        let store = MemoryStore::default();
        let alice = alice_with_a_session(&store, 100).await;
        disable(&store, &alice, 200).await.unwrap();
        enable(&store, &alice, 300).await.unwrap();
        assert!(!store.user_now("alice").disabled);
        assert_eq!(
            kinds(&store.events("alice", None, 10).await.unwrap()),
            [Kind::AccountEnabled, Kind::AccountDisabled]
        );
        let stranger = User {
            id: "u-other".into(),
            ..alice
        };
        assert!(matches!(disable(&store, &stranger, 400).await, Err(AdminError::Gone)));
    }

    #[tokio::test]
    async fn revoking_sessions_ends_every_live_one_with_one_event() {
        let store = MemoryStore::default();
        let alice = alice_with_a_session(&store, 100).await;
        assert_eq!(revoke_sessions(&store, &alice, 200).await.unwrap(), 1);
        assert_eq!(revoke_sessions(&store, &alice, 300).await.unwrap(), 0);
        assert_eq!(
            kinds(&store.events("alice", None, 10).await.unwrap()),
            [Kind::SessionRevoked, Kind::SessionRevoked]
        );
    }
}
