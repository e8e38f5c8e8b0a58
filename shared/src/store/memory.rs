//! An in-memory store with the DynamoDB adapter's semantics, for handler unit
//! tests. Storage behaviour itself is tested against DynamoDB Local.

use super::{CreateUserError, LoginRecord, Rotation, SessionStore, StoreError, User, UserStore};
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
        if self.unavailable {
            return Err(StoreError {
                operation: "memory",
                detail: "configured unavailable".into(),
            });
        }
        Ok(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A copy of a session, for assertions.
    pub fn session_now(&self, key: &SessionKey) -> Option<Session> {
        self.lock().ok()?.sessions.get(key).cloned()
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

    async fn revoke_session(&self, key: &SessionKey, now: u64) -> Result<Option<Session>, StoreError> {
        let mut inner = self.lock()?;
        match inner.sessions.get_mut(key) {
            Some(s) if s.is_live(now) => {
                let before = s.clone();
                s.revoked = true;
                Ok(Some(before))
            }
            _ => Ok(None),
        }
    }

    async fn revoke_all_sessions(&self, username: &str, now: u64) -> Result<usize, StoreError> {
        let user = username.to_ascii_lowercase();
        let mut inner = self.lock()?;
        let live = inner
            .sessions
            .iter_mut()
            .filter(|(k, s)| k.user == user && s.is_live(now));
        Ok(live.map(|(_, s)| s.revoked = true).count())
    }
}
