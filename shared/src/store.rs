//! The user and session store, behind narrow traits: a DynamoDB adapter for
//! real use and an in-memory one for handler unit tests.

use crate::credentials::Username;
use crate::token::SessionGeneration;
use std::future::Future;

#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod memory;

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// As registered (the store keys it by its normalized form).
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: u64,
}

/// Where a session is found: under its user's normalized name, by its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The normalized (lower-case) username.
    pub user: String,
    pub id: String,
}

impl SessionKey {
    /// The key of session `id` of `username`, in any case.
    pub fn new(username: &str, id: &str) -> Self {
        Self {
            user: username.to_ascii_lowercase(),
            id: id.to_owned(),
        }
    }
}

/// Failures to log in for one username, and the lock they put on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedLogins {
    pub count: u32,
    /// When the last failure was recorded.
    pub last_at: u64,
}

impl FailedLogins {
    /// Failures allowed before the username is locked.
    pub const LIMIT: u32 = 5;
    /// The first lock, seconds; each further failure doubles it.
    pub const BASE_LOCK: u64 = 30;
    /// The longest lock, seconds: guessing someone's name locks them out briefly, never for long.
    pub const MAX_LOCK: u64 = 15 * 60;
    /// After this long without a failure the count starts again, seconds.
    pub const QUIET_PERIOD: u64 = 60 * 60;

    /// Seconds left on the lock, if the username is locked at `now`.
    pub fn locked_for(&self, now: u64) -> Option<u64> {
        if self.count < Self::LIMIT || self.is_stale(now) {
            return None;
        }
        let doublings = (self.count - Self::LIMIT).min(16);
        let lock = (Self::BASE_LOCK << doublings).min(Self::MAX_LOCK);
        let until = self.last_at + lock;
        (now < until).then(|| until - now)
    }

    /// True when the quiet period has passed, so the next failure counts from one.
    pub fn is_stale(&self, now: u64) -> bool {
        self.count == 0 || now >= self.last_at + Self::QUIET_PERIOD
    }

    /// The record after one more failure at `now`.
    pub fn after_failure(&self, now: u64) -> Self {
        let count = if self.is_stale(now) { 1 } else { self.count + 1 };
        Self { count, last_at: now }
    }
}

/// What login needs, read in one round trip: the user, if any, and the failures on that name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginRecord {
    pub user: Option<User>,
    pub failures: FailedLogins,
}

/// One login session: the live generation of its refresh token, and its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub username: String,
    /// Incremented by each rotation.
    pub generation: u64,
    /// SHA-256 of the live refresh token: the token itself is never stored.
    pub token_hash: String,
    /// When the live generation was issued (and so when the previous one was consumed).
    pub issued_at: u64,
    /// The session's absolute end, whatever the refreshes.
    pub expires_at: u64,
    pub revoked: bool,
}

impl Session {
    /// Where the session is stored.
    pub fn key(&self) -> SessionKey {
        SessionKey::new(&self.username, &self.id)
    }

    /// True when the session may still be refreshed at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        !self.revoked && now < self.expires_at
    }

    /// What a refresh token of `generation`, presented at `now`, is to this session.
    pub fn classify(&self, generation: u64, now: u64, grace: u64) -> Presented {
        if generation == self.generation {
            Presented::Live
        } else if generation + 1 == self.generation && grace > 0 && now <= self.issued_at + grace {
            Presented::Retry
        } else if generation < self.generation {
            Presented::Reused
        } else {
            Presented::Unknown
        }
    }

    /// The inputs of the refresh token of the live generation.
    pub fn generation(&self) -> SessionGeneration<'_> {
        SessionGeneration {
            session_id: &self.id,
            user_id: &self.user_id,
            username: &self.username,
            generation: self.generation,
            issued_at: self.issued_at,
            session_expires_at: self.expires_at,
        }
    }
}

/// A presented refresh token, as its session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// The live generation: it may be consumed.
    Live,
    /// The generation consumed last, within the grace window: a retry or a second tab.
    Retry,
    /// An older generation, or the last one after the window: a theft signal.
    Reused,
    /// A generation the session never issued.
    Unknown,
}

/// The store could not answer: unreachable, throttling, timing out, or an item it cannot read.
#[derive(Debug, thiserror::Error)]
#[error("store {operation} failed: {detail}")]
pub struct StoreError {
    pub operation: &'static str,
    pub detail: String,
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username is taken")]
    Taken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Users and their failed logins, keyed by normalized username.
pub trait UserStore: Send + Sync {
    /// Creates the user unless the normalized username exists (a conditional write).
    fn create_user(&self, user: &User) -> impl Future<Output = Result<(), CreateUserError>> + Send;

    /// The user and the failed logins on that name, in one consistent read.
    fn login_record(&self, username: &Username) -> impl Future<Output = Result<LoginRecord, StoreError>> + Send;

    /// Replaces a password hash, if it is still `old` (a rehash on login).
    fn replace_password_hash(
        &self,
        username: &Username,
        old: &str,
        new: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts one more login attempt against a name: moves its record from
    /// `seen` (as read) to `seen.after_failure(now)`, only if nobody changed
    /// it since (compare-and-swap). `None` means another attempt got there
    /// first: read again and retry.
    fn count_attempt(
        &self,
        username: &Username,
        seen: FailedLogins,
        now: u64,
    ) -> impl Future<Output = Result<Option<FailedLogins>, StoreError>> + Send;

    /// Forgets the failed logins of a name after a good login.
    fn clear_failed_logins(&self, username: &Username) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Outcome of an attempt to rotate a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// The session was no longer at the expected generation (another refresh won) or is revoked.
    Conflict,
}

/// Login sessions and their refresh-token generations.
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    fn create_session(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session, read consistently.
    fn session(&self, key: &SessionKey) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Moves a live session from `from_generation` to the next one with a new
    /// token hash, only if nobody else did first (a conditional write).
    fn rotate_session(
        &self,
        key: &SessionKey,
        from_generation: u64,
        new_token_hash: &str,
        now: u64,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;

    /// Revokes a live session in one conditional write and returns it as it
    /// was; `None` when it did not exist, was already revoked or had ended.
    fn revoke_session(
        &self,
        key: &SessionKey,
        now: u64,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Revokes every live session of a user ("log out everywhere"); returns how many.
    fn revoke_all_sessions(&self, username: &str, now: u64) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::FailedLogins as F;

    #[test]
    fn five_failures_lock_for_30_seconds_and_each_further_one_doubles_the_lock() {
        let mut f = F::default();
        for t in 0..4 {
            f = f.after_failure(100 + t);
            assert_eq!(f.locked_for(100 + t), None);
        }
        f = f.after_failure(200);
        assert_eq!(f.locked_for(200), Some(30));
        assert_eq!(f.locked_for(229), Some(1));
        assert_eq!(f.locked_for(230), None, "the lock ends");
        f = f.after_failure(230);
        assert_eq!(f.locked_for(230), Some(60));
    }

    #[test]
    fn the_lock_never_exceeds_fifteen_minutes() {
        let f = F {
            count: 500,
            last_at: 1000,
        };
        assert_eq!(f.locked_for(1000), Some(F::MAX_LOCK));
    }

    #[test]
    fn a_presented_generation_is_live_a_retry_within_grace_or_a_reuse() {
        use super::{Presented as P, Session};
        let s = Session {
            id: "s".into(),
            user_id: "u".into(),
            username: "a".into(),
            generation: 3,
            token_hash: String::new(),
            issued_at: 1000,
            expires_at: 9999,
            revoked: false,
        };
        assert_eq!(s.classify(3, 1005, 10), P::Live);
        assert_eq!(s.classify(2, 1010, 10), P::Retry);
        assert_eq!(s.classify(2, 1011, 10), P::Reused, "after the window");
        assert_eq!(s.classify(2, 1000, 0), P::Reused, "strict mode");
        assert_eq!(s.classify(1, 1001, 10), P::Reused, "an older generation");
        assert_eq!(s.classify(4, 1001, 10), P::Unknown);
    }

    #[test]
    fn the_count_starts_again_after_a_quiet_hour() {
        let f = F {
            count: 9,
            last_at: 1000,
        };
        assert_eq!(f.after_failure(1000 + F::QUIET_PERIOD).count, 1);
        assert_eq!(f.after_failure(1000 + F::QUIET_PERIOD - 1).count, 10);
    }
}
