//! An in-memory store with the DynamoDB adapter's semantics, for handler unit
//! tests. Storage behaviour itself is tested against DynamoDB Local.

use super::{
    AccountStore, AdminStore, AuditStore, Ceremony, Challenge, Change, CreateUserError, EmailCode, EmailStore,
    LoginRecord, MfaStore, NewPasskey, PasskeyStore, Proof, ResetToken, Rotation, SessionStore, StoreError,
    StoredPasskey, ThrottleStore, TotpFactor, User, UserStore, Verification,
};
use crate::credentials::{Email, Username};
use crate::lockout::FailedLogins;
use crate::mail::{MAILS_PER_HOUR, MAX_CODE_ATTEMPTS};
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
    /// What each source address may do in a window.
    pub ip_limits: crate::throttle::IpLimits,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, User>,
    failures: HashMap<String, FailedLogins>,
    sessions: HashMap<SessionKey, Session>,
    /// When a "log out everywhere" from a session began (DynamoDB: its `everywhere_at`).
    everywhere: HashMap<SessionKey, u64>,
    /// Verification codes by normalized username.
    codes: HashMap<String, EmailCode>,
    /// Verified addresses (normalized) to (user id, username).
    claims: HashMap<String, (String, String)>,
    /// Mails per (account or address key, hour).
    mails: HashMap<(String, u64), u32>,
    resets: HashMap<String, ResetToken>,
    /// TOTP factors by normalized username.
    totp: HashMap<String, TotpFactor>,
    /// WebAuthn challenges by id.
    challenges: HashMap<String, Challenge>,
    /// Passkeys by id (each is also its credential id's claim).
    passkeys: HashMap<String, StoredPasskey>,
    /// Audit events by normalized username, in the order they were recorded.
    events: HashMap<String, Vec<crate::audit::Event>>,
    /// Counts per (address key, counter, window start).
    ip_counts: HashMap<(String, &'static str, u64), u64>,
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

    /// A copy of the user stored under `username` (not counted as a call).
    pub fn user_now(&self, username: &str) -> User {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.users[&username.to_ascii_lowercase()].clone()
    }

    /// Marks the user stored under `username` as being deleted, as an interrupted deletion leaves it.
    pub fn mark_deleting(&self, username: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(user) = inner.users.get_mut(&username.to_ascii_lowercase()) {
            user.deleting = true;
        }
    }

    /// A copy of the TOTP factor of `username`, if any (not counted as a call).
    pub fn totp_now(&self, username: &str) -> Option<TotpFactor> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.totp.get(&username.to_ascii_lowercase()).cloned()
    }

    /// How many reset tokens are stored (not counted as a call).
    pub fn reset_tokens_now(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).resets.len()
    }

    /// How many calls the store has answered (or refused): the round trips
    /// the same calls would make to DynamoDB.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl AuditStore for MemoryStore {
    async fn record_event(
        &self,
        username: &str,
        _user_id: &str,
        event: &crate::audit::Event,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let events = inner.events.entry(username.to_ascii_lowercase()).or_default();
        events.push(event.clone());
        events.sort_by_key(crate::audit::Event::position);
        Ok(())
    }

    async fn events(
        &self,
        username: &str,
        cursor: Option<&crate::audit::Cursor>,
        limit: usize,
    ) -> Result<crate::audit::Page, StoreError> {
        let inner = self.lock()?;
        let mut events: Vec<_> = inner
            .events
            .get(&username.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .rev()
            .filter(|e| cursor.is_none_or(|c| e.position() < *c))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = (events.len() > limit).then(|| events[limit - 1].position());
        events.truncate(limit);
        Ok(crate::audit::Page { events, next })
    }
}

impl ThrottleStore for MemoryStore {
    fn ip_limits(&self) -> crate::throttle::IpLimits {
        self.ip_limits
    }

    async fn ip_count(&self, key: &str, counter: crate::throttle::Counter, start: u64) -> Result<u64, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .ip_counts
            .get(&(key.to_owned(), counter.as_str(), start))
            .copied()
            .unwrap_or(0))
    }

    async fn add_ip(&self, key: &str, counter: crate::throttle::Counter, start: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let count = inner
            .ip_counts
            .entry((key.to_owned(), counter.as_str(), start))
            .or_default();
        *count += 1;
        Ok(*count)
    }
}

impl AdminStore for MemoryStore {
    async fn set_disabled(&self, user: &User, disabled: bool) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        match inner.users.get_mut(&user.username.to_ascii_lowercase()) {
            Some(u) if u.id == user.id && !u.deleting => {
                u.disabled = disabled;
                Ok(Change::Done)
            }
            _ => Ok(Change::Conflict),
        }
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
            totp: inner.totp.get(&key).cloned(),
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

    async fn add_attempt(&self, username: &Username, now: u64) -> Result<Option<FailedLogins>, StoreError> {
        let mut inner = self.lock()?;
        let entry = inner.failures.entry(username.normalized()).or_default();
        let seen = *entry;
        if seen.count >= FailedLogins::LIMIT && !seen.is_stale(now) {
            return Ok(None);
        }
        *entry = seen.after_failure(now);
        Ok(Some(seen))
    }

    async fn uncount_attempt(
        &self,
        username: &Username,
        counted: FailedLogins,
        before: FailedLogins,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let key = username.normalized();
        if inner.failures.get(&key) == Some(&counted) {
            match before == FailedLogins::default() {
                true => inner.failures.remove(&key),
                false => inner.failures.insert(key, before),
            };
        }
        Ok(())
    }
}

impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &Session, user: Option<&User>) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        if let Some(user) = user {
            let stored = inner.users.get(&user.username.to_ascii_lowercase());
            let as_read = |u: &User| {
                u.id == user.id
                    && u.password_hash == user.password_hash
                    && !u.deleting
                    && !u.disabled
                    && u.totp == user.totp
            };
            if !stored.is_some_and(as_read) {
                return Ok(Change::Conflict);
            }
        }
        inner.sessions.insert(session.key(), session.clone());
        Ok(Change::Done)
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

    async fn log_out_everywhere(
        &self,
        key: &SessionKey,
        user_id: &str,
        now: u64,
    ) -> Result<Option<(Session, u64)>, StoreError> {
        let mut inner = self.lock()?;
        let started = inner.everywhere.get(key).copied();
        match inner.sessions.get_mut(key) {
            Some(s) if s.user_id == user_id && now < s.expires_at && (!s.revoked || started.is_some()) => {
                s.revoked = true;
                let session = s.clone();
                let at = *inner.everywhere.entry(key.clone()).or_insert(now);
                Ok(Some((session, at)))
            }
            _ => Ok(None),
        }
    }

    async fn revoke_all_sessions(
        &self,
        username: &str,
        user_id: &str,
        began_by: u64,
        now: u64,
    ) -> Result<usize, StoreError> {
        let user = username.to_ascii_lowercase();
        let mut inner = self.lock()?;
        let live = inner
            .sessions
            .iter_mut()
            .filter(|(k, s)| k.user == user && s.user_id == user_id && s.is_live(now) && s.created_at <= began_by);
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
        Ok(self.lock()?.replace_password(user, new_hash, revoke))
    }

    async fn delete_user(&self, user: &User) -> Result<Change, StoreError> {
        let key = user.username.to_ascii_lowercase();
        let mut inner = self.lock()?;
        let as_read = |u: &User| {
            u.id == user.id
                && u.email == user.email
                && u.email_verified == user.email_verified
                && u.totp == user.totp
                && u.passkeys == user.passkeys
        };
        if !inner.users.get(&key).is_some_and(as_read) {
            return Ok(Change::Conflict);
        }
        inner.users.remove(&key);
        inner.failures.remove(&key);
        inner.codes.remove(&key);
        inner.totp.remove(&key);
        inner.mails.retain(|(k, _), _| *k != format!("USER#{key}"));
        inner.sessions.retain(|k, _| k.user != key);
        inner.passkeys.retain(|_, p| p.user_id != user.id);
        inner.events.remove(&key);
        if let Some(email) = user.verified_email() {
            inner.claims.remove(&email);
        }
        Ok(Change::Done)
    }
}

impl Inner {
    fn replace_password(&mut self, user: &User, new_hash: &str, revoke: &[SessionKey]) -> Change {
        let key = user.username.to_ascii_lowercase();
        let inner = self;
        // As DynamoDB's condition: the same id and hash, whatever else changed.
        let as_read = |u: &User| u.id == user.id && u.password_hash == user.password_hash;
        if !inner.users.get(&key).is_some_and(as_read) || revoke.iter().any(|k| !inner.sessions.contains_key(k)) {
            return Change::Conflict;
        }
        for k in revoke {
            inner.sessions.get_mut(k).expect("checked above").revoked = true;
        }
        inner.failures.remove(&key);
        inner.users.get_mut(&key).expect("checked above").password_hash = new_hash.to_owned();
        Change::Done
    }
}

impl EmailStore for MemoryStore {
    async fn email_owner(&self, email: &Email) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.lock()?.claims.get(&email.normalized()).cloned())
    }

    async fn count_mail(&self, username: &Username, address: &Email, now: u64) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let keys = [
            (format!("USER#{}", username.normalized()), now / 3600),
            (format!("MAILS#{}", address.mailbox()), now / 3600),
        ];
        if keys
            .iter()
            .any(|k| inner.mails.get(k).copied().unwrap_or(0) >= MAILS_PER_HOUR)
        {
            return Ok(false);
        }
        for k in keys {
            *inner.mails.entry(k).or_default() += 1;
        }
        Ok(true)
    }

    async fn put_email_code(&self, user: &User, code: &EmailCode) -> Result<Change, StoreError> {
        let key = user.username.to_ascii_lowercase();
        let mut inner = self.lock()?;
        if !user.email_verified {
            match inner.users.get_mut(&key) {
                Some(stored) if stored.id == user.id && !stored.email_verified => {
                    stored.email = Some(code.email.clone())
                }
                _ => return Ok(Change::Conflict),
            }
        }
        inner.codes.insert(key, code.clone());
        Ok(Change::Done)
    }

    async fn email_code(&self, username: &Username) -> Result<(Option<User>, Option<EmailCode>), StoreError> {
        let inner = self.lock()?;
        let key = username.normalized();
        Ok((inner.users.get(&key).cloned(), inner.codes.get(&key).cloned()))
    }

    async fn count_code_failure(&self, username: &Username, code: &EmailCode) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if let Some(stored) = inner.codes.get_mut(&username.normalized())
            && stored.code_hash == code.code_hash
        {
            stored.attempts += 1;
        }
        Ok(())
    }

    async fn delete_email_code(&self, username: &Username, code: &EmailCode) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let key = username.normalized();
        if inner.codes.get(&key).is_some_and(|c| c.code_hash == code.code_hash) {
            inner.codes.remove(&key);
        }
        Ok(())
    }

    async fn verify_email(&self, user: &User, code: &EmailCode) -> Result<Verification, StoreError> {
        let key = user.username.to_ascii_lowercase();
        let email = code.email.to_lowercase();
        let mut inner = self.lock()?;
        let code_ok = inner
            .codes
            .get(&key)
            .is_some_and(|c| c.code_hash == code.code_hash && c.attempts < MAX_CODE_ATTEMPTS);
        let user_ok = inner.users.get(&key).is_some_and(|u| u.id == user.id && !u.deleting);
        if inner.claims.get(&email).is_some_and(|(id, _)| *id != user.id) {
            return Ok(Verification::Taken);
        }
        if !code_ok || !user_ok {
            return Ok(Verification::Conflict);
        }
        inner.codes.remove(&key);
        if let Some(former) = user.verified_email() {
            inner.claims.remove(&former);
        }
        inner.claims.insert(email, (user.id.clone(), user.username.clone()));
        let stored = inner.users.get_mut(&key).expect("checked above");
        stored.email = Some(code.email.clone());
        stored.email_verified = true;
        Ok(Verification::Verified)
    }

    async fn put_reset_token(&self, token: &ResetToken) -> Result<(), StoreError> {
        self.lock()?.resets.insert(token.token_hash.clone(), token.clone());
        Ok(())
    }

    async fn reset_token(&self, token_hash: &str) -> Result<Option<ResetToken>, StoreError> {
        Ok(self.lock()?.resets.get(token_hash).cloned())
    }

    async fn delete_reset_token(&self, token_hash: &str) -> Result<(), StoreError> {
        self.lock()?.resets.remove(token_hash);
        Ok(())
    }

    async fn reset_password(
        &self,
        user: &User,
        token: &ResetToken,
        new_hash: &str,
        revoke: &[SessionKey],
    ) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        if !inner.resets.contains_key(&token.token_hash) {
            return Ok(Change::Conflict);
        }
        let change = inner.replace_password(user, new_hash, revoke);
        if change == Change::Done {
            inner.resets.remove(&token.token_hash);
        }
        Ok(change)
    }
}

impl Inner {
    /// The user `user` is still stored as (same id, not being deleted).
    fn user_still(&self, user: &User) -> bool {
        let stored = self.users.get(&user.username.to_ascii_lowercase());
        stored.is_some_and(|u| u.id == user.id && !u.deleting)
    }

    /// The factor of `user`, if it is still `factor` as read and `proof` holds for it.
    fn factor_as_read(&mut self, user: &User, factor: &TotpFactor, proof: Option<&Proof>) -> Option<&mut TotpFactor> {
        let stored = self.totp.get_mut(&user.username.to_ascii_lowercase())?;
        let holds = match proof {
            None => true,
            Some(Proof::Step(step)) => stored.last_step < *step,
            Some(Proof::Recovery(digest)) => stored.recovery.contains(digest),
        };
        (stored.secret == factor.secret && stored.active == factor.active && holds).then_some(stored)
    }
}

/// Applies a proof the factor was found to hold.
fn consume(factor: &mut TotpFactor, proof: Option<&Proof>) {
    match proof {
        None => {}
        Some(Proof::Step(step)) => factor.last_step = *step,
        Some(Proof::Recovery(digest)) => factor.recovery.retain(|d| d != digest),
    }
}

impl MfaStore for MemoryStore {
    async fn put_pending_totp(&self, user: &User, factor: &TotpFactor) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        let key = user.username.to_ascii_lowercase();
        if !inner.user_still(user) || inner.totp.get(&key).is_some_and(|f| f.active) {
            return Ok(Change::Conflict);
        }
        inner.totp.insert(key, factor.clone());
        Ok(Change::Done)
    }

    async fn activate_totp(
        &self,
        user: &User,
        factor: &TotpFactor,
        step: u64,
        recovery: &[String],
    ) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        if !inner.user_still(user) {
            return Ok(Change::Conflict);
        }
        let proof = Proof::Step(step);
        let Some(stored) = inner.factor_as_read(user, factor, Some(&proof)) else {
            return Ok(Change::Conflict);
        };
        consume(stored, Some(&proof));
        stored.active = true;
        stored.recovery = recovery.to_vec();
        let key = user.username.to_ascii_lowercase();
        inner.users.get_mut(&key).expect("checked above").totp = true;
        Ok(Change::Done)
    }

    async fn remove_totp(&self, user: &User, factor: &TotpFactor, proof: Option<&Proof>) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        if !inner.user_still(user) || inner.factor_as_read(user, factor, proof).is_none() {
            return Ok(Change::Conflict);
        }
        let key = user.username.to_ascii_lowercase();
        inner.totp.remove(&key);
        inner.users.get_mut(&key).expect("checked above").totp = false;
        Ok(Change::Done)
    }

    async fn replace_recovery_codes(
        &self,
        user: &User,
        factor: &TotpFactor,
        proof: Option<&Proof>,
        recovery: &[String],
    ) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        let Some(stored) = inner.factor_as_read(user, factor, proof) else {
            return Ok(Change::Conflict);
        };
        consume(stored, proof);
        stored.recovery = recovery.to_vec();
        Ok(Change::Done)
    }

    async fn start_mfa_attempt(&self, username: &Username, attempt: &str) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        match inner.totp.get_mut(&username.normalized()) {
            Some(f) if f.active => {
                f.attempt = attempt.to_owned();
                f.attempt_tries = 0;
                Ok(Change::Done)
            }
            _ => Ok(Change::Conflict),
        }
    }

    async fn count_mfa_try(&self, username: &Username, attempt: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        match inner.totp.get_mut(&username.normalized()) {
            Some(f) if f.active && f.attempt == attempt && f.attempt_tries < crate::totp::MAX_TRIES => {
                f.attempt_tries += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn finish_mfa_login(
        &self,
        user: &User,
        attempt: &str,
        proof: &Proof,
        session: &Session,
    ) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        let key = user.username.to_ascii_lowercase();
        let user_as_read = inner
            .users
            .get(&key)
            .is_some_and(|u| u.id == user.id && u.password_hash == user.password_hash && !u.deleting && !u.disabled);
        let factor_as_read = inner.totp.get(&key).is_some_and(|f| {
            let holds = match proof {
                Proof::Step(step) => f.last_step < *step,
                Proof::Recovery(digest) => f.recovery.contains(digest),
            };
            f.active && f.attempt == attempt && f.attempt_tries <= crate::totp::MAX_TRIES && holds
        });
        if !user_as_read || !factor_as_read || inner.sessions.contains_key(&session.key()) {
            return Ok(Change::Conflict);
        }
        let factor = inner.totp.get_mut(&key).expect("checked above");
        consume(factor, Some(proof));
        factor.attempt.clear();
        factor.attempt_tries = 0;
        inner.failures.remove(&key);
        inner.sessions.insert(session.key(), session.clone());
        Ok(Change::Done)
    }
}

impl PasskeyStore for MemoryStore {
    async fn put_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.challenges.insert(challenge.id.clone(), challenge.clone());
        Ok(())
    }

    async fn take_challenge(&self, id: &str, ceremony: &Ceremony) -> Result<Option<Challenge>, StoreError> {
        let mut inner = self.lock()?;
        if inner.challenges.get(id).is_none_or(|c| c.ceremony != *ceremony) {
            return Ok(None);
        }
        Ok(inner.challenges.remove(id))
    }

    async fn passkeys(&self, username: &Username) -> Result<Vec<StoredPasskey>, StoreError> {
        let inner = self.lock()?;
        let mut passkeys: Vec<StoredPasskey> = inner
            .passkeys
            .values()
            .filter(|p| p.username.to_ascii_lowercase() == username.normalized())
            .cloned()
            .collect();
        passkeys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(passkeys)
    }

    async fn passkey(&self, id: &str) -> Result<Option<(User, StoredPasskey)>, StoreError> {
        let inner = self.lock()?;
        let Some(passkey) = inner.passkeys.get(id) else {
            return Ok(None);
        };
        let user = inner.users.get(&passkey.username.to_ascii_lowercase());
        Ok(user
            .filter(|u| u.id == passkey.user_id)
            .map(|u| (u.clone(), passkey.clone())))
    }

    async fn add_passkey(&self, user: &User, passkey: &StoredPasskey, max: u32) -> Result<NewPasskey, StoreError> {
        let mut inner = self.lock()?;
        if inner.passkeys.contains_key(&passkey.id) {
            return Ok(NewPasskey::Taken);
        }
        let key = user.username.to_ascii_lowercase();
        match inner.users.get_mut(&key) {
            Some(u) if u.id == user.id && !u.deleting && u.passkeys < max => u.passkeys += 1,
            _ => return Ok(NewPasskey::Conflict),
        }
        inner.passkeys.insert(passkey.id.clone(), passkey.clone());
        Ok(NewPasskey::Added)
    }

    async fn remove_passkey(&self, user: &User, id: &str) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        if inner.passkeys.get(id).is_none_or(|p| p.user_id != user.id) {
            return Ok(Change::Conflict);
        }
        match inner.users.get_mut(&user.username.to_ascii_lowercase()) {
            Some(u) if u.id == user.id && u.passkeys > 0 => u.passkeys -= 1,
            _ => return Ok(Change::Conflict),
        }
        inner.passkeys.remove(id);
        Ok(Change::Done)
    }

    async fn finish_passkey_login(
        &self,
        user: &User,
        passkey: &StoredPasskey,
        credential: &str,
        session: &Session,
    ) -> Result<Change, StoreError> {
        let mut inner = self.lock()?;
        let stored = inner.users.get(&user.username.to_ascii_lowercase());
        let user_as_read = stored
            .is_some_and(|u| u.id == user.id && u.password_hash == user.password_hash && !u.deleting && !u.disabled);
        let passkey_as_read = inner
            .passkeys
            .get(&passkey.id)
            .is_some_and(|p| p.user_id == user.id && p.credential == passkey.credential);
        if !(user_as_read && passkey_as_read) {
            return Ok(Change::Conflict);
        }
        let stored = inner.passkeys.get_mut(&passkey.id).expect("checked above");
        stored.credential = credential.to_owned();
        stored.last_used_at = Some(session.issued_at);
        inner.sessions.insert(session.key(), session.clone());
        Ok(Change::Done)
    }
}
