//! Refreshing: single-use rotation of the refresh token, with a grace window
//! for retries and reuse detection that revokes the whole session.

use super::audit::{Owner, beside};
use super::sessions::{self, TokenPair};
use crate::audit::{Event, Kind};
use crate::metrics::{self, Metric};
use crate::session::{Presented, Session};
use crate::store::{AuditStore, Rotation, SessionStore, StoreError};
use crate::token::{RefreshClaims, TokenAuthority, TokenVerifier, is_stored_refresh_token};

/// Why a refresh token was not accepted (by refresh or by logout).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Missing, malformed, badly signed, expired, of the wrong kind, or of a
    /// session that has ended: nothing was changed.
    #[error("the refresh token is not valid")]
    Invalid,
    /// An older generation of a live session: a theft signal. The session is now revoked.
    #[error("refresh token reuse: session {session_id} revoked")]
    Reused { session_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The verified claims of a refresh token, with its user named in the request's log line.
pub(super) fn verified(tokens: &TokenVerifier, token: &str, now: u64) -> Result<RefreshClaims, RefreshError> {
    let claims = tokens.verify_refresh(token, now).map_err(|reason| {
        tracing::info!(%reason, "refresh token refused");
        RefreshError::Invalid
    })?;
    crate::log::record_user(&claims.sub);
    Ok(claims)
}

/// Consumes `token` at `now` and returns the next generation's tokens; within
/// the grace window, the token consumed last gets the live generation's
/// tokens again; any other reuse revokes the session.
pub async fn refresh<S: SessionStore + AuditStore>(
    store: &S,
    tokens: &TokenAuthority,
    token: &str,
    now: u64,
) -> Result<TokenPair, RefreshError> {
    let claims = verified(tokens, token, now)?;
    let grace = tokens.settings().reuse_grace;
    let mut session = read(store, &claims).await?;
    // Two passes at most: a lost race re-reads once, and then the presented
    // token is either the one consumed last (a retry) or an older one (reuse).
    for _ in 0..2 {
        if !session.is_live(now) || session.user_id != claims.sub {
            return Err(RefreshError::Invalid);
        }
        match session.classify(claims.generation, now, grace) {
            Presented::Live if is_stored_refresh_token(token, &session.token_hash) => {
                let next = sessions::next_generation(tokens, &session, now).ok_or(RefreshError::Invalid)?;
                match store
                    .rotate_session(&session.key(), session.generation, &next.token_hash, now)
                    .await?
                {
                    Rotation::Rotated => return Ok(sessions::token_pair(tokens, &next, now)),
                    Rotation::Conflict => session = read(store, &claims).await?,
                }
            }
            // A retry or a second tab: the token of the live generation, not a new branch.
            Presented::Retry => return Ok(sessions::token_pair(tokens, &session, now)),
            Presented::Reused => {
                let key = session.key();
                let revoke = store.revoke_session(&key, &session.user_id, now);
                beside(store, owner(&claims), reuse_detected(&session.id, now), revoke).await?;
                tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse: session revoked");
                return Err(RefreshError::Reused { session_id: session.id });
            }
            Presented::Live | Presented::Unknown => return Err(RefreshError::Invalid),
        }
    }
    Err(RefreshError::Invalid)
}

/// The user a refresh token names, whose events a refresh or logout records.
pub(super) fn owner(claims: &RefreshClaims) -> Owner<'_> {
    Owner {
        username: &claims.username,
        user_id: &claims.sub,
    }
}

/// The event of a spent refresh token presented again (and its metric): its session is revoked.
pub(super) fn reuse_detected(session_id: &str, now: u64) -> Event {
    metrics::count(Metric::RefreshReuseDetected);
    Event::new(Kind::RefreshReuseDetected, now).in_session(session_id)
}

async fn read<S: SessionStore>(store: &S, claims: &RefreshClaims) -> Result<Session, RefreshError> {
    store.session(&claims.session_key()).await?.ok_or(RefreshError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::testing::{authority_with_grace, user};
    use crate::token::refresh_token_hash;

    /// A store with one session of alice, started `age` seconds before `now`, and its first refresh token.
    async fn logged_in(tokens: &TokenAuthority, now: u64, age: u64) -> (MemoryStore, Session, String) {
        let store = MemoryStore::default();
        let session = crate::testing::password_session(tokens, &user("u-1", "alice"), now - age);
        store.create_session(&session, None).await.unwrap();
        let token = tokens.issue_refresh(&session.generation());
        (store, session, token)
    }

    #[tokio::test]
    async fn a_refresh_rotates_to_a_new_token_of_the_same_session() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let (store, session, first) = logged_in(&tokens, now, 5).await;
        let pair = refresh(&store, &tokens, &first, now).await.unwrap();
        assert_ne!(pair.refresh_token, first);
        let claims = tokens.verify_refresh(&pair.refresh_token, now).unwrap();
        assert_eq!((claims.sid.as_str(), claims.generation), (session.id.as_str(), 1));
        assert!(tokens.verify_access(&pair.access_token, now).is_ok());
        let stored = store.session_now(&session.key()).unwrap();
        assert_eq!(stored.token_hash, refresh_token_hash(&pair.refresh_token));
    }

    #[tokio::test]
    async fn the_token_consumed_last_gets_the_live_token_again_within_the_grace_window() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let (store, _, first) = logged_in(&tokens, now, 5).await;
        let rotated = refresh(&store, &tokens, &first, now).await.unwrap();
        let retried = refresh(&store, &tokens, &first, now + 10).await.unwrap();
        assert_eq!(
            retried.refresh_token, rotated.refresh_token,
            "same generation, no new branch"
        );
        let after = refresh(&store, &tokens, &first, now + 11).await;
        assert!(
            matches!(after, Err(RefreshError::Reused { .. })),
            "after the window: {after:?}"
        );
    }

    #[tokio::test]
    async fn a_retry_answered_by_an_instance_on_the_other_side_of_a_key_promotion_keeps_the_session() {
        use crate::config::TokenSettings;
        use crate::keyset::{Alg, KeySet, RotationPolicy};
        let settings = TokenSettings {
            reuse_grace: 10,
            ..crate::testing::dev_settings()
        };
        let policy = RotationPolicy {
            propagation: 0,
            max_token_lifetime: 3600,
        };
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.rotate(None, policy, 1).unwrap();
        let before = TokenAuthority::from_secret(settings.clone(), &set.to_json()).unwrap();
        set.rotate(None, policy, 2).unwrap();
        let after = TokenAuthority::from_secret(settings, &set.to_json()).unwrap();
        let now = crate::clock::now();
        let (store, session, first) = logged_in(&before, now, 5).await;
        // Instance one, still on the old key, rotates; the client never gets the answer.
        refresh(&store, &before, &first, now).await.unwrap();
        // Its retry reaches instance two, on the new key: the live generation, signed differently.
        let retried = refresh(&store, &after, &first, now + 1).await.unwrap();
        // The client goes on with that token, at either instance.
        let next = refresh(&store, &before, &retried.refresh_token, now + 2).await.unwrap();
        let claims = after.verify_refresh(&next.refresh_token, now + 2).unwrap();
        assert_eq!((claims.sid.as_str(), claims.generation), (session.id.as_str(), 2));
        assert!(!store.session_now(&session.key()).unwrap().revoked);
    }

    #[tokio::test]
    async fn with_a_zero_grace_any_reuse_revokes_the_session() {
        let tokens = authority_with_grace(0);
        let now = crate::clock::now();
        let (store, session, first) = logged_in(&tokens, now, 5).await;
        let rotated = refresh(&store, &tokens, &first, now).await.unwrap();
        let reused = refresh(&store, &tokens, &first, now).await;
        assert!(matches!(reused, Err(RefreshError::Reused { session_id }) if session_id == session.id));
        assert!(store.session_now(&session.key()).unwrap().revoked);
        assert!(matches!(
            refresh(&store, &tokens, &rotated.refresh_token, now).await,
            Err(RefreshError::Invalid)
        ));
    }

    #[tokio::test]
    async fn an_older_generation_revokes_the_session_even_within_the_grace_window() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let (store, session, first) = logged_in(&tokens, now, 5).await;
        let second = refresh(&store, &tokens, &first, now).await.unwrap();
        let third = refresh(&store, &tokens, &second.refresh_token, now).await.unwrap();
        assert!(matches!(
            refresh(&store, &tokens, &first, now).await,
            Err(RefreshError::Reused { .. })
        ));
        assert!(store.session_now(&session.key()).unwrap().revoked);
        let thief = refresh(&store, &tokens, &third.refresh_token, now).await;
        assert!(
            matches!(thief, Err(RefreshError::Invalid)),
            "the thief's branch is dead too"
        );
        let events = store.events("alice", None, 10).await.unwrap().events;
        let seen: Vec<_> = events.iter().map(|e| (e.kind, e.session_id.as_deref())).collect();
        assert_eq!(
            seen,
            [(Kind::RefreshReuseDetected, Some(session.id.as_str()))],
            "the reuse, once; rotations are no events"
        );
    }

    /// The token verifies and its hash is the stored one; only the session's
    /// absolute end differs between the two stores, so that end alone decides.
    #[tokio::test]
    async fn a_session_past_its_absolute_lifetime_cannot_be_refreshed() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let (live, session, token) = logged_in(&tokens, now, 100).await;
        let ended = MemoryStore::default();
        ended
            .create_session(
                &Session {
                    expires_at: now,
                    ..session.clone()
                },
                None,
            )
            .await
            .unwrap();
        assert!(tokens.verify_refresh(&token, now).is_ok(), "the token itself is valid");
        let before = ended.calls();
        assert!(matches!(
            refresh(&ended, &tokens, &token, now).await,
            Err(RefreshError::Invalid)
        ));
        assert_eq!(ended.calls() - before, 1, "refused on the read, no write tried");
        assert!(
            !ended.session_now(&session.key()).unwrap().revoked,
            "an ended session is not a theft"
        );
        assert!(
            refresh(&live, &tokens, &token, now).await.is_ok(),
            "the same token on a live session"
        );
    }

    #[tokio::test]
    async fn a_token_for_another_users_session_or_a_missing_one_is_invalid() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let (store, session, _) = logged_in(&tokens, now, 5).await;
        let forged = Session {
            user_id: "u-2".into(),
            ..session.clone()
        };
        let theirs = tokens.issue_refresh(&forged.generation());
        let before = store.calls();
        assert!(matches!(
            refresh(&store, &tokens, &theirs, now).await,
            Err(RefreshError::Invalid)
        ));
        assert_eq!(store.calls() - before, 1, "refused on the read, no write tried");
        let gone = tokens.issue_refresh(
            &Session {
                id: "gone".into(),
                ..session
            }
            .generation(),
        );
        assert!(matches!(
            refresh(&store, &tokens, &gone, now).await,
            Err(RefreshError::Invalid)
        ));
    }

    #[tokio::test]
    async fn a_generation_the_session_never_issued_changes_nothing() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let (store, session, _) = logged_in(&tokens, now, 5).await;
        for generation in [1, u64::MAX] {
            let ahead = Session {
                generation,
                ..session.clone()
            };
            let token = tokens.issue_refresh(&ahead.generation());
            assert!(matches!(
                refresh(&store, &tokens, &token, now).await,
                Err(RefreshError::Invalid)
            ));
        }
        assert_eq!(store.session_now(&session.key()).unwrap(), session);
    }

    #[tokio::test]
    async fn a_token_of_the_live_generation_with_another_hash_is_invalid_and_changes_nothing() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let (store, session, _) = logged_in(&tokens, now, 5).await;
        let other = tokens.issue_refresh(
            &Session {
                issued_at: now - 4,
                ..session.clone()
            }
            .generation(),
        );
        assert!(matches!(
            refresh(&store, &tokens, &other, now).await,
            Err(RefreshError::Invalid)
        ));
        assert_eq!(store.session_now(&session.key()).unwrap(), session);
    }

    #[tokio::test]
    async fn an_access_token_is_not_a_refresh_token() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let access = crate::testing::access_token(&tokens, "u-1", "alice", now);
        let result = refresh(&MemoryStore::default(), &tokens, &access, now).await;
        assert!(matches!(result, Err(RefreshError::Invalid)));
    }

    #[tokio::test]
    async fn an_unreachable_store_is_a_store_error() {
        let tokens = authority_with_grace(10);
        let now = crate::clock::now();
        let (_, _, token) = logged_in(&tokens, now, 5).await;
        let result = refresh(&MemoryStore::unreachable(), &tokens, &token, now).await;
        assert!(matches!(result, Err(RefreshError::Store(_))));
    }
}
