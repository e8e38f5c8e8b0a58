//! An in-memory store with the DynamoDB adapter's semantics, for handler unit
//! tests. Storage behaviour itself is tested against DynamoDB Local.

use super::{AccountStore, Change, CreateUserError, LoginRecord, Rotation, SessionStore, StoreError, User, UserStore};
use crate::credentials::Username;
use crate::lockout::FailedLogins;
use crate::session::{Session, SessionKey};
use std::collections::HashMap;
use std::sync::Mutex;

/// Users, failed logins and sessions in maps behind one lock.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// When set, every call fails as if DynamoDB were unreachable.
    pub unavailable: bool,
    /// Calls made so far: each stands for one DynamoDB round trip.
    calls: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, User>,
    failures: HashMap<String, FailedLogins>,
    sessions: HashMap<SessionKey, Session>,
}

impl MemoryStore {
    /// A store that fails every call, like an unreachable DynamoDB.
    pub fn unreachable() -> Self {
        Self {
            unavailable: true,
            ..Self::default()
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.unavailable {
            return Err(StoreError {
                operation: "memory",
                detail: "configured unavailable".into(),
            });
        }
        Ok(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A copy of a session, for assertions (not counted as a call).
    pub fn session_now(&self, key: &SessionKey) -> Option<Session> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.sessions.get(key).cloned()
    }

    /// How many calls the store has answered (or refused): the round trips
    /// the same calls would make to DynamoDB.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<(), CreateUserError> {
        let key = user.username.to_ascii_lowercase();
        let mut inner = self.lock()?;
        if inner.users.contains_key(&key) {
            return Err(CreateUserError::Taken);
        }
        inner.users.insert(key, user.clone());
        Ok(())
    }

    async fn login_record(&self, username: &Username) -> Result<LoginRecord, StoreError> {
        let inner = self.lock()?;
        let key = username.normalized();
        Ok(LoginRecord {
            user: inner.users.get(&key).cloned(),
            failures: inner.failures.get(&key).copied().unwrap_or_default(),
        })
    }

    async fn replace_password_hash(&self, username: &Username, old: &str, new: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if let Some(user) = inner.users.get_mut(&username.normalized())
            && user.password_hash == old
        {
            user.password_hash = new.to_owned();
        }
        Ok(())
    }

    async fn count_attempt(
        &self,
        username: &Username,
        seen: FailedLogins,
        now: u64,
    ) -> Result<Option<FailedLogins>, StoreError> {
        let mut inner = self.lock()?;
        let entry = inner.failures.entry(username.normalized()).or_default();
        if *entry != seen {
            return Ok(None);
        }
        *entry = seen.after_failure(now);
        Ok(Some(*entry))
    }

    async fn clear_failed_logins(&self, username: &Username) -> Result<(), StoreError> {
        self.lock()?.failures.remove(&username.normalized());
        Ok(())
    }
}

impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.lock()?.sessions.insert(session.key(), session.clone());
        Ok(())
    }

    async fn session(&self, key: &SessionKey) -> Result<Option<Session>, StoreError> {
        Ok(self.lock()?.sessions.get(key).cloned())
    }

    async fn rotate_session(
        &self,
        key: &SessionKey,
        from: u64,
        new_token_hash: &str,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let mut inner = self.lock()?;
        match inner.sessions.get_mut(key) {
            Some(s) if s.generation == from && s.is_live(now) => {
                s.generation = s.generation.saturating_add(1);
                s.token_hash = new_token_hash.to_owned();
                s.issued_at = now;
                Ok(Rotation::Rotated)
            }
            _ => Ok(Rotation::Conflict),
        }
    }

    async fn revoke_session(&self, key: &SessionKey, user_id: &str, now: u64) -> Result<Option<Session>, StoreError> {
        let mut inner = self.lock()?;
        match inner.sessions.get_mut(key) {
            Some(s) if s.is_live(now) && s.user_id == user_id => {
                let before = s.clone();
                s.revoked = true;
                Ok(Some(before))
            }
            _ => Ok(None),
        }
    }

    async fn revoke_all_sessions(&self, username: &str, user_id: &str, now: u64) -> Result<usize, StoreError> {
        let user = username.to_ascii_lowercase();
        let mut inner = self.lock()?;
        let live = inner
            .sessions
            .iter_mut()
            .filter(|(k, s)| k.user == user && s.user_id == user_id && s.is_live(now));
        Ok(live.map(|(_, s)| s.revoked = true).count())
    }

    async fn sessions(&self, username: &str) -> Result<Vec<Session>, StoreError> {
        let user = username.to_ascii_lowercase();
        let inner = self.lock()?;
        Ok(inner
            .sessions
            .values()
            .filter(|s| s.key().user == user)
            .cloned()
            .collect())
    }
}

impl AccountStore for MemoryStore {
    async fn user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        Ok(self.lock()?.users.get(&username.normalized()).cloned())
    }

    async fn change_password(&self, user: &User, new_hash: &str, revoke: &[SessionKey]) -> Result<Change, StoreError> {
        let key = user.username.to_ascii_lowercase();
        let mut inner = self.lock()?;
        if inner.users.get(&key) != Some(user) || revoke.iter().any(|k| !inner.sessions.contains_key(k)) {
            return Ok(Change::Conflict);
        }
        for k in revoke {
            inner.sessions.get_mut(k).expect("checked above").revoked = true;
        }
        inner.failures.remove(&key);
        inner.users.get_mut(&key).expect("checked above").password_hash = new_hash.to_owned();
        Ok(Change::Done)
    }

    async fn delete_user(&self, user: &User) -> Result<Change, StoreError> {
        let key = user.username.to_ascii_lowercase();
        let mut inner = self.lock()?;
        if inner.users.get(&key).is_none_or(|u| u.id != user.id) {
            return Ok(Change::Conflict);
        }
        inner.users.remove(&key);
        inner.failures.remove(&key);
        inner.sessions.retain(|k, _| k.user != key);
        Ok(Change::Done)
    }
}
