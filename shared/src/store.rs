//! The user and session store, behind narrow traits: a DynamoDB adapter for
//! real use and an in-memory one for handler unit tests.

use crate::credentials::{Email, Username};
use crate::lockout::FailedLogins;
use crate::session::{Session, SessionKey};
use crate::totp::TotpSecret;
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
    /// An account deletion has begun and was interrupted: nobody logs in
    /// as this user any more, and a retry of the deletion finishes it.
    pub deleting: bool,
    /// The operator disabled the account (`AdminStore`): the right password
    /// gets `account_disabled`, and it has no session.
    pub disabled: bool,
    /// The account's address as given: the verified one, or, while there
    /// is none, the one waiting for its code.
    pub email: Option<String>,
    /// `email` is verified: the account holds its claim (`EmailStore`).
    pub email_verified: bool,
    /// The account has an active TOTP factor (`MfaStore`): a password alone does not log in.
    pub totp: bool,
    /// How many passkeys the account has (`PasskeyStore`).
    pub passkeys: u32,
}

impl User {
    /// The verified address, normalized, if there is one.
    pub fn verified_email(&self) -> Option<String> {
        self.email
            .as_deref()
            .filter(|_| self.email_verified)
            .map(str::to_lowercase)
    }
}

/// What login needs, read in one round trip: the user, if any, the failures
/// on that name, and the user's TOTP factor, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginRecord {
    pub user: Option<User>,
    pub failures: FailedLogins,
    pub totp: Option<TotpFactor>,
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

    /// Counts one attempt against a name before its password is checked, in
    /// one write that needs no read first (so it goes beside the user's
    /// read): while the name is under its limit, or its failures are stale,
    /// adds one and returns the record as it was (`seen.after_failure(now)`
    /// is then the record as counted); at or past the limit, adds nothing
    /// and returns `None` (the caller reads whether the name is locked).
    /// Parallel attempts are counted one by one: no more than the limit get past it.
    fn add_attempt(
        &self,
        username: &Username,
        now: u64,
    ) -> impl Future<Output = Result<Option<FailedLogins>, StoreError>> + Send;

    /// Takes back one attempt: puts the name's record back from `counted`
    /// (as this attempt wrote it) to `before`, only if nobody counted
    /// another since (else it stays, the stricter outcome).
    fn uncount_attempt(
        &self,
        username: &Username,
        counted: FailedLogins,
        before: FailedLogins,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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
    /// Stores a new session; with `user`, only while that user is as read
    /// (same id, same password hash, not being deleted), so that a password
    /// change, reset or deletion that committed after the password was
    /// checked cannot be outlived by the session (`Conflict`).
    fn create_session(
        &self,
        session: &Session,
        user: Option<&User>,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

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

    /// Revokes a live session of user `user_id` in one conditional write and
    /// returns it as it was; `None` when it did not exist, belongs to another
    /// user (a name registered again), was already revoked or had ended.
    fn revoke_session(
        &self,
        key: &SessionKey,
        user_id: &str,
        now: u64,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Every session stored under `username`, live or not, in one query.
    fn sessions(&self, username: &str) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;

    /// Starts, or when retried resumes, a "log out everywhere" from session
    /// `key` of user `user_id`: revokes it and marks it with the time the
    /// first attempt began, in one conditional write. Returns the session
    /// and that time; `None` if it is someone else's, has ended, or was
    /// revoked otherwise (a logout, a reuse, a revocation).
    fn log_out_everywhere(
        &self,
        key: &SessionKey,
        user_id: &str,
        now: u64,
    ) -> impl Future<Output = Result<Option<(Session, u64)>, StoreError>> + Send;

    /// Revokes every live session of user `user_id` under `username` that
    /// began at `began_by` or before ("log out everywhere": a retry ends the
    /// sessions of the first attempt's time, never one begun since); returns how many.
    fn revoke_all_sessions(
        &self,
        username: &str,
        user_id: &str,
        began_by: u64,
        now: u64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// The audit trail (`audit`): events kept under their user, for a while.
pub trait AuditStore: Send + Sync {
    /// Stores one event of the user `user_id` named `username`, kept for
    /// the store's retention (`AUDIT_RETENTION_DAYS`).
    fn record_event(
        &self,
        username: &str,
        user_id: &str,
        event: &crate::audit::Event,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The events of the user named `username`, newest first, at most
    /// `limit`, those after `cursor` (the previous page's end) if given.
    fn events(
        &self,
        username: &str,
        cursor: Option<&crate::audit::Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<crate::audit::Page, StoreError>> + Send;
}

/// Attempts counted per source address (`throttle`), in fixed windows.
pub trait ThrottleStore: Send + Sync {
    /// The limits the counts are held to (`IP_*` settings).
    fn ip_limits(&self) -> crate::throttle::IpLimits;

    /// How many `counter` attempts the address `key` made in the window that starts at `window_start`.
    fn ip_count(
        &self,
        key: &str,
        counter: crate::throttle::Counter,
        window_start: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Counts one more and returns the new count (one write, no read).
    fn add_ip(
        &self,
        key: &str,
        counter: crate::throttle::Counter,
        window_start: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// What the operator's admin tool changes that no API route does.
pub trait AdminStore: Send + Sync {
    /// Sets or clears `disabled` on `user` (while the name is still theirs:
    /// same id, not being deleted); `Conflict` when it is not.
    fn set_disabled(&self, user: &User, disabled: bool) -> impl Future<Output = Result<Change, StoreError>> + Send;
}

/// Whether a conditional change of an account went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Done,
    /// The user's record is no longer as read (another change got there first,
    /// or the name now belongs to someone else): nothing was written.
    Conflict,
}

/// The account as a whole: reading it, changing its password, deleting it.
pub trait AccountStore: Send + Sync {
    /// The user, read consistently.
    fn user(&self, username: &Username) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Replaces the password hash of `user` (still as read: same id, same
    /// hash) by `new_hash`, revokes the sessions `revoke` and forgets the
    /// name's failed logins, all at once.
    fn change_password(
        &self,
        user: &User,
        new_hash: &str,
        revoke: &[SessionKey],
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

    /// Deletes `user` (still of the same id) and everything stored under
    /// the name. Never leaves a user who can log in with some of that gone,
    /// nor a live session without its user; an interrupted deletion leaves
    /// the user marked `deleting` and is finished by calling this again.
    fn delete_user(&self, user: &User) -> impl Future<Output = Result<Change, StoreError>> + Send;
}

/// A verification code waiting to be entered, one per account.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailCode {
    /// The address it was sent to, as given.
    pub email: String,
    /// `mail::code_hash` of the code.
    pub code_hash: String,
    /// Wrong codes entered so far; at `mail::MAX_CODE_ATTEMPTS` the code is void.
    pub attempts: u32,
    pub expires_at: u64,
}

impl std::fmt::Debug for EmailCode {
    /// Without the digest: with the user id, a search of a million codes finds the code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailCode")
            .field("attempts", &self.attempts)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A password reset token waiting to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetToken {
    /// `mail::reset_token_hash` of the token: its key.
    pub token_hash: String,
    pub username: String,
    pub user_id: String,
    /// `mail::password_fingerprint` of the password hash it was issued against.
    pub password_fingerprint: String,
    pub expires_at: u64,
}

/// Outcome of marking an address verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Verified,
    /// Another account holds the address verified: nothing was written.
    Taken,
    /// The code or the user changed since read (used by a parallel request,
    /// a new code sent): nothing was written.
    Conflict,
}

/// Email addresses, their codes and claims, mail counts and reset tokens.
pub trait EmailStore: Send + Sync {
    /// The user id and username of the account that holds `email` verified, in one read.
    fn email_owner(&self, email: &Email) -> impl Future<Output = Result<Option<(String, String)>, StoreError>> + Send;

    /// Counts one mail to the account `username` and one to the mailbox of
    /// `address` (`Email::mailbox`) in the hour of `now`, both or neither;
    /// `false` (nothing counted) when either already had
    /// `mail::MAILS_PER_HOUR` this hour.
    fn count_mail(
        &self,
        username: &Username,
        address: &Email,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores `code` as the account's one code (replacing any) and, while the
    /// account has no verified address, makes `code.email` its address.
    /// `Conflict` when the user is no longer as read.
    fn put_email_code(&self, user: &User, code: &EmailCode) -> impl Future<Output = Result<Change, StoreError>> + Send;

    /// The user and the account's code, in one read.
    fn email_code(
        &self,
        username: &Username,
    ) -> impl Future<Output = Result<(Option<User>, Option<EmailCode>), StoreError>> + Send;

    /// Counts one wrong attempt at `code` (still as read).
    fn count_code_failure(
        &self,
        username: &Username,
        code: &EmailCode,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the account's code if it is still `code` (a mail that could not be sent).
    fn delete_email_code(
        &self,
        username: &Username,
        code: &EmailCode,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// In one transaction: consumes `code` (still as read, not void), makes
    /// its address the verified address of `user` (still of the same id),
    /// claims the address for the user (refused if another holds it), and
    /// frees the user's former claim.
    fn verify_email(
        &self,
        user: &User,
        code: &EmailCode,
    ) -> impl Future<Output = Result<Verification, StoreError>> + Send;

    /// Stores a reset token.
    fn put_reset_token(&self, token: &ResetToken) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The reset token of hash `token_hash`, if stored (expired or not).
    fn reset_token(&self, token_hash: &str) -> impl Future<Output = Result<Option<ResetToken>, StoreError>> + Send;

    /// Removes a reset token (a mail that could not be sent).
    fn delete_reset_token(&self, token_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Like `AccountStore::change_password`, and consumes `token` in the same
    /// transaction: of two resets with one token, one wins (`Conflict` for the other).
    fn reset_password(
        &self,
        user: &User,
        token: &ResetToken,
        new_hash: &str,
        revoke: &[SessionKey],
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;
}

/// A user's TOTP factor: pending from enrollment until its first code, then active.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub secret: TotpSecret,
    pub active: bool,
    pub created_at: u64,
    /// The step of the last code accepted: no code of it or of an earlier step is accepted again.
    pub last_step: u64,
    /// `totp::recovery_code_hash` of each unused recovery code.
    pub recovery: Vec<String>,
    /// The live login attempt: the `jti` of the newest `mfa_token` (empty when none).
    pub attempt: String,
    /// Codes tried with the live attempt; at `totp::MAX_TRIES` it is void.
    pub attempt_tries: u32,
}

impl std::fmt::Debug for TotpFactor {
    /// Without the secret and the recovery digests.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("active", &self.active)
            .field("created_at", &self.created_at)
            .field("last_step", &self.last_step)
            .field("recovery_codes", &self.recovery.len())
            .field("attempt_tries", &self.attempt_tries)
            .finish_non_exhaustive()
    }
}

/// A second-factor proof, consumed by the write it goes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// A TOTP code of this step: the factor's `last_step` must be below it, and becomes it.
    Step(u64),
    /// A recovery code of this digest: it must be in the factor's set, and leaves it.
    Recovery(String),
}

/// The TOTP factor of a user, its recovery codes and the second step of a login.
/// Every write is conditioned on the factor (and the user) as read.
pub trait MfaStore: Send + Sync {
    /// Stores `factor` (pending) as the user's, replacing a pending one;
    /// `Conflict` when the user has an active factor or is no longer as read.
    fn put_pending_totp(
        &self,
        user: &User,
        factor: &TotpFactor,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

    /// Activates the pending `factor` (still as read) with the code of
    /// `step` consumed and the recovery set `recovery` (digests), and marks the user.
    fn activate_totp(
        &self,
        user: &User,
        factor: &TotpFactor,
        step: u64,
        recovery: &[String],
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

    /// Removes the active `factor` (still as read) and its recovery codes,
    /// consuming `proof` if given, and unmarks the user.
    fn remove_totp(
        &self,
        user: &User,
        factor: &TotpFactor,
        proof: Option<&Proof>,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

    /// Replaces the recovery codes of the active `factor` by `recovery`,
    /// consuming `proof` if given.
    fn replace_recovery_codes(
        &self,
        user: &User,
        factor: &TotpFactor,
        proof: Option<&Proof>,
        recovery: &[String],
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

    /// Makes `attempt` the live login attempt of the user's active factor
    /// (an older `mfa_token` is void from now on), with no code tried.
    fn start_mfa_attempt(
        &self,
        username: &Username,
        attempt: &str,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

    /// Counts one code tried with `attempt` before it is checked; `false`
    /// (nothing counted) when `attempt` is not the live one or has had
    /// `totp::MAX_TRIES` already.
    fn count_mfa_try(
        &self,
        username: &Username,
        attempt: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The second step of a login, in one transaction: ends `attempt`
    /// (still the live one), consumes `proof`, clears the name's failures and
    /// stores `session`, while `user` is as read. `Conflict` when anything
    /// changed (a parallel use of the same code won).
    fn finish_mfa_login(
        &self,
        user: &User,
        attempt: &str,
        proof: &Proof,
        session: &Session,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;
}

/// A passkey of a user, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// base64url of the SHA-256 of the WebAuthn credential id: short and
    /// fixed in size whatever the authenticator chose, unique among all users.
    pub id: String,
    pub user_id: String,
    pub username: String,
    /// The name its owner gave it.
    pub name: String,
    pub created_at: u64,
    /// The last login with it, if any.
    pub last_used_at: Option<u64>,
    /// The relying party's record of the credential (public key, sign
    /// counter, flags) as `webauthn-rs` serializes it; opaque to the store.
    pub credential: String,
}

impl std::fmt::Debug for StoredPasskey {
    /// Without the credential: nothing secret, but long and of no use in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPasskey")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// What a WebAuthn challenge was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ceremony {
    /// Registering a passkey for the user of this id.
    Registration { user_id: String },
    /// A login with a discoverable passkey: nobody known yet.
    Login,
}

/// The server-side state of a WebAuthn ceremony between its start and its
/// finish, kept under a random id the client sends back. Used once.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub ceremony: Ceremony,
    /// `webauthn-rs`'s state (it holds the challenge), serialized; opaque to the store.
    pub state: String,
    pub expires_at: u64,
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge")
            .field("ceremony", &self.ceremony)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Outcome of adding a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewPasskey {
    Added,
    /// The credential is registered already (to this user or another): nothing was written.
    Taken,
    /// The user is no longer as read, or has `passkey::MAX_PER_USER` already: nothing was written.
    Conflict,
}

/// WebAuthn challenges and users' passkeys.
pub trait PasskeyStore: Send + Sync {
    /// Stores a challenge (it expires by itself at `expires_at`).
    fn put_challenge(&self, challenge: &Challenge) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the challenge `id` issued for `ceremony` and returns it: of
    /// parallel takes of one challenge, one gets it and the others `None`,
    /// as does an unknown id or one issued for another ceremony or user.
    /// Expired or not: the caller checks `expires_at`.
    fn take_challenge(
        &self,
        id: &str,
        ceremony: &Ceremony,
    ) -> impl Future<Output = Result<Option<Challenge>, StoreError>> + Send;

    /// The passkeys of `username`, oldest first.
    fn passkeys(&self, username: &Username) -> impl Future<Output = Result<Vec<StoredPasskey>, StoreError>> + Send;

    /// The passkey of id `id` and its user, if both are there and agree.
    fn passkey(&self, id: &str) -> impl Future<Output = Result<Option<(User, StoredPasskey)>, StoreError>> + Send;

    /// Adds `passkey` to `user` (still as read, fewer than `max` passkeys)
    /// and claims its credential id for them, in one transaction.
    fn add_passkey(
        &self,
        user: &User,
        passkey: &StoredPasskey,
        max: u32,
    ) -> impl Future<Output = Result<NewPasskey, StoreError>> + Send;

    /// Removes the passkey `id` of `user` and frees its credential id;
    /// `Conflict` when the user has no such passkey.
    fn remove_passkey(&self, user: &User, id: &str) -> impl Future<Output = Result<Change, StoreError>> + Send;

    /// A passkey login, in one transaction: stores `session` while `user`
    /// is as read, and the passkey (still as read: not removed, not used by
    /// a parallel login) with its `credential` updated and `last_used_at` now.
    fn finish_passkey_login(
        &self,
        user: &User,
        passkey: &StoredPasskey,
        credential: &str,
        session: &Session,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;
}
