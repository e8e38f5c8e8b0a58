//! Recording audit events beside the work of a request: the event's write
//! runs at the same time as the route's own (no round trip added), and a
//! failed one is logged and counted, never the request's failure.

use crate::audit::{Cursor, Event, MAX_PAGE, Page};
use crate::metrics::{self, Metric};
use crate::store::{AuditStore, StoreError};
use crate::token::AccessClaims;
use std::future::Future;

/// Whose event it is: the user's name (the partition) and id.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub username: &'a str,
    pub user_id: &'a str,
}

impl<'a> Owner<'a> {
    pub fn of(user: &'a crate::store::User) -> Self {
        Self {
            username: &user.username,
            user_id: &user.id,
        }
    }

    pub fn of_claims(claims: &'a AccessClaims) -> Self {
        Self {
            username: &claims.username,
            user_id: &claims.sub,
        }
    }
}

/// Runs `work` and records `event` of `owner` at the same time; returns what
/// `work` returns, whether or not the event was stored.
pub async fn beside<T>(store: &impl AuditStore, owner: Owner<'_>, event: Event, work: impl Future<Output = T>) -> T {
    // Boxed: joined SDK futures are large, and a test thread's stack is 2 MiB.
    let (out, recorded) = tokio::join!(
        Box::pin(work),
        Box::pin(store.record_event(owner.username, owner.user_id, &event))
    );
    if let Err(error) = recorded {
        not_recorded(&event, &error);
    }
    out
}

/// Records `event` of `owner` on its own (a route with no write of its own to run it beside).
pub async fn record(store: &impl AuditStore, owner: Owner<'_>, event: Event) {
    beside(store, owner, event, async {}).await
}

fn not_recorded(event: &Event, error: &StoreError) {
    tracing::warn!(%error, event = event.kind.as_str(), "audit event not stored");
    metrics::count(Metric::AuditWriteFailed);
}

/// The caller's events, newest first: a page of `limit` (at most `MAX_PAGE`) after `cursor`.
pub async fn events(
    store: &impl AuditStore,
    claims: &AccessClaims,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<Page, StoreError> {
    store.events(&claims.username, cursor, limit.clamp(1, MAX_PAGE)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Kind;
    use crate::store::memory::MemoryStore;

    const ALICE: Owner = Owner {
        username: "Alice",
        user_id: "u-1",
    };

    #[tokio::test]
    async fn an_event_beside_the_work_is_stored_and_the_work_answers() {
        let store = MemoryStore::default();
        let event = Event::new(Kind::Logout, 10);
        let answer = beside(&store, ALICE, event.clone(), async { 42 }).await;
        assert_eq!(answer, 42);
        let page = store.events("alice", None, 10).await.unwrap();
        assert_eq!(page.events, [event]);
    }

    #[tokio::test]
    async fn an_event_that_cannot_be_stored_does_not_fail_the_work() {
        let store = MemoryStore::unreachable();
        let answer = beside(&store, ALICE, Event::new(Kind::Logout, 10), async { "ok" }).await;
        assert_eq!(answer, "ok");
    }

    #[tokio::test]
    async fn pages_go_from_newest_to_oldest_and_end_with_no_cursor() {
        let store = MemoryStore::default();
        let kinds = [Kind::LoginFailed, Kind::LoginSucceeded, Kind::Logout];
        for (at, kind) in kinds.into_iter().enumerate() {
            record(&store, ALICE, Event::new(kind, at as u64)).await;
        }
        let first = store.events("ALICE", None, 2).await.unwrap();
        let seen: Vec<Kind> = first.events.iter().map(|e| e.kind).collect();
        assert_eq!(seen, [Kind::Logout, Kind::LoginSucceeded]);
        let second = store.events("alice", first.next.as_ref(), 2).await.unwrap();
        let seen: Vec<Kind> = second.events.iter().map(|e| e.kind).collect();
        assert_eq!((seen, second.next), (vec![Kind::LoginFailed], None));
        assert!(store.events("bob", None, 2).await.unwrap().events.is_empty());
    }
}
