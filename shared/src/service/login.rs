//! Logging in: the throttle, the password (or the dummy hash for an unknown
//! name), a rehash when the parameters have grown, and a new session.

use super::audit::{Owner, beside, record as record_event};
use super::sessions::{self, TokenPair};
use super::throttle;
use crate::audit::{Event, Kind};
use crate::credentials::{Email, Password, Username};
use crate::lockout::FailedLogins;
use crate::metrics::{self, Metric};
use crate::password::{self, HashError, Verdict};
use crate::session::{Origin, PASSWORD};
use crate::store::{
    AccountStore, AuditStore, Change, EmailStore, MfaStore, SessionStore, StoreError, ThrottleStore, TotpFactor, User,
    UserStore,
};
use crate::throttle::Counter;
use crate::token::TokenAuthority;

/// Why a login did not start a session.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong password or unknown username: one error for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many recent failures on this name.
    #[error("locked for {retry_after} s")]
    Locked { retry_after: u64 },
    /// The password is right and the account has a second factor: no
    /// session yet, but a token for `POST /login/mfa`.
    #[error("a second factor is required")]
    MfaRequired { mfa_token: String },
    /// The password is right and the operator disabled the account.
    #[error("the account is disabled")]
    AccountDisabled,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Checks `password` for `username` at `now` and, if it is right and the
/// name is not locked, starts a session from `origin` and returns its tokens.
pub async fn login<S: UserStore + SessionStore + AccountStore + MfaStore + AuditStore + ThrottleStore>(
    store: &S,
    tokens: &TokenAuthority,
    username: &Username,
    password: &Password,
    origin: Origin,
    now: u64,
) -> Result<TokenPair, LoginError> {
    let checked = check_password(store, username, password, now).await?;
    start(store, tokens, username, password, checked, origin, now).await
}

/// Like `login`, with the account's verified email instead of its name:
/// one read more (the address's claim). An unknown or unverified address is
/// `InvalidCredentials` after the same hash as a wrong password.
pub async fn login_by_email<
    S: UserStore + SessionStore + AccountStore + EmailStore + MfaStore + AuditStore + ThrottleStore,
>(
    store: &S,
    tokens: &TokenAuthority,
    email: &Email,
    password: &Password,
    origin: Origin,
    now: u64,
) -> Result<TokenPair, LoginError> {
    let owner = store.email_owner(email).await?;
    let Some((user_id, username)) = owner else {
        password::verify(password, None).await?;
        metrics::count(Metric::LoginFailed);
        tracing::info!("password check failed");
        return Err(LoginError::InvalidCredentials);
    };
    let username = Username::parse(&username).map_err(|_| LoginError::InvalidCredentials)?;
    let checked = check_password(store, &username, password, now).await?;
    // The claim and the account agree, or the address is no longer the account's.
    if checked.user.id != user_id || checked.user.verified_email() != Some(email.normalized()) {
        return Err(LoginError::InvalidCredentials);
    }
    start(store, tokens, &username, password, checked, origin, now).await
}

/// After a right password: finishes an interrupted deletion, upgrades a weak
/// hash, and then either asks for the second factor or clears the failures
/// and starts the session.
async fn start<S: UserStore + SessionStore + AccountStore + MfaStore + AuditStore + ThrottleStore>(
    store: &S,
    tokens: &TokenAuthority,
    username: &Username,
    password: &Password,
    checked: Checked,
    origin: Origin,
    now: u64,
) -> Result<TokenPair, LoginError> {
    let mut user = checked.user;
    if user.deleting {
        // An interrupted deletion, confirmed again by the password: finish it.
        // Without this, a deletion cut off after its access token expired
        // would keep the name taken for good.
        store.delete_user(&user).await?;
        tracing::info!("interrupted account deletion finished at login");
        return Err(LoginError::InvalidCredentials);
    }
    if checked.verdict == Verdict::ValidNeedsRehash {
        let upgraded = password::hash(password).await?;
        // The login stands even if the upgrade cannot be stored: it is retried next time.
        match store
            .replace_password_hash(username, &user.password_hash, &upgraded)
            .await
        {
            // Stored, unless the password changed first: the session's check
            // below then finds neither hash and refuses the login.
            Ok(()) => user.password_hash = upgraded,
            Err(error) => tracing::warn!(%error, "password hash upgrade not stored"),
        }
    }
    if user.disabled || user.totp {
        // The failures stay until the second factor is through: a password
        // alone must not reset the count of wrong codes. Nor does a right
        // password add to it: the attempt counted before its hash was checked is taken back.
        store
            .uncount_attempt(username, checked.counted, checked.failures)
            .await?;
        if user.disabled {
            tracing::info!(user_id = %user.id, "password right, account disabled");
            return Err(LoginError::AccountDisabled);
        }
        let attempt = uuid::Uuid::new_v4().to_string();
        if store.start_mfa_attempt(username, &attempt).await? == Change::Done {
            tracing::info!(user_id = %user.id, "password right, second factor required");
            let pwf = crate::mail::password_fingerprint(&user.password_hash);
            let mfa_token = tokens.issue_mfa(&user.id, &user.username, &pwf, &attempt, now);
            return Err(LoginError::MfaRequired { mfa_token });
        }
        // No active factor behind the mark: removed since the read (a retry
        // logs in by password) or worse. Never a password-only session for it.
        tracing::warn!("the account's TOTP mark has no active factor");
        return Err(LoginError::InvalidCredentials);
    }
    let session = sessions::start(tokens, &user, &[PASSWORD], origin, now);
    // Only while the password is still the one just checked: a change or a
    // reset that went through meanwhile is not outlived by this session.
    let event = Event::new(Kind::LoginSucceeded, now).in_session(&session.id);
    let create = beside(
        store,
        Owner::of(&user),
        event,
        store.create_session(&session, Some(&user)),
    );
    // The name's failures are forgotten beside it, unless attempts were
    // counted since this one (a burst of guesses): then they stay.
    let forget = store.uncount_attempt(username, checked.counted, FailedLogins::default());
    let (created, forgotten) = tokio::join!(Box::pin(create), Box::pin(forget));
    let created = created?;
    forgotten?;
    if created == Change::Conflict {
        tracing::info!("the password changed during the login");
        return Err(LoginError::InvalidCredentials);
    }
    metrics::count(Metric::LoginSucceeded);
    tracing::info!(user_id = %user.id, "login succeeded");
    Ok(sessions::token_pair(tokens, &session, now))
}

/// A password found right for its user.
pub(super) struct Checked {
    pub user: User,
    pub verdict: Verdict,
    /// The failures on the name before this attempt.
    pub failures: FailedLogins,
    /// The user's TOTP factor, read with the user.
    pub totp: Option<TotpFactor>,
    /// The record as this attempt's count left it: every attempt is
    /// counted before its hash is checked.
    pub counted: FailedLogins,
}

/// The user `username` if `password` is theirs, behind the throttle: every
/// attempt is counted on the name before its hash is checked (an ADD sent
/// beside the user's read, so parallel guesses are counted one by one and
/// no more than the limit are ever checked); a locked name is not checked at
/// all. An unknown name costs one hash, like a wrong password. A wrong
/// password of a user is their `login_failed` event (and `login_locked`
/// when it locks the name).
pub(super) async fn check_password<S: UserStore + AuditStore + ThrottleStore>(
    store: &S,
    username: &Username,
    password: &Password,
    now: u64,
) -> Result<Checked, LoginError> {
    // In a cold instance, argon2's memory is made ready while the user is read.
    // Boxed: joined SDK futures are large, and a test thread's stack is 2 MiB.
    let (record, added, blocked, ()) = tokio::join!(
        Box::pin(store.login_record(username)),
        Box::pin(store.add_attempt(username, now)),
        Box::pin(throttle::blocked(store, Counter::Failures, now)),
        password::prepare()
    );
    let (record, added) = (record?, added?);
    // An address past its failures is refused whatever the name, its guess
    // unchecked and its count on the name taken back.
    if let Some(retry_after) = blocked? {
        if let Some(seen) = added {
            store.uncount_attempt(username, seen.after_failure(now), seen).await?;
        }
        tracing::info!("source address throttled");
        return Err(LoginError::Locked { retry_after });
    }
    let (before, counted) = match added {
        Some(seen) => (seen, seen.after_failure(now)),
        // At or past the limit: locked, or (its lock over, the failures
        // still recent) counted against the record as read, lock doubled.
        None => (
            record.failures,
            count_attempt(store, username, record.failures, now).await?,
        ),
    };
    let stored_hash = record.user.as_ref().map(|u| u.password_hash.as_str());
    let verdict = password::verify(password, stored_hash).await?;
    match (verdict, record.user) {
        (Verdict::Valid | Verdict::ValidNeedsRehash, Some(user)) => {
            crate::log::record_user(&user.id);
            Ok(Checked {
                user,
                verdict,
                failures: before,
                totp: record.totp,
                counted,
            })
        }
        (_, user) => {
            metrics::count(Metric::LoginFailed);
            tracing::info!("password check failed");
            // The address's count beside the user's event (an unknown name
            // has none): one write after the hash either way.
            let count = throttle::count(store, Counter::Failures, now);
            match &user {
                Some(user) => beside(store, Owner::of(user), Event::new(Kind::LoginFailed, now), count).await?,
                None => count.await?,
            }
            lock_began(store, user.as_ref(), counted, now).await;
            Err(LoginError::InvalidCredentials)
        }
    }
}

/// When the failure just counted (`counted`) locks the name: the
/// `LoginLocked` metric, and the user's `login_locked` event (an unknown
/// name has none).
pub(super) async fn lock_began(store: &impl AuditStore, user: Option<&User>, counted: FailedLogins, now: u64) {
    if counted.locked_for(now).is_none() {
        return;
    }
    metrics::count(Metric::LoginLocked);
    if let Some(user) = user {
        record_event(store, Owner::of(user), Event::new(Kind::LoginLocked, now)).await;
    }
}

/// The login throttle around a check already made that costs nothing (a
/// code): a name with recent failures counts the attempt whatever its
/// outcome, before it is acted on, and takes a right one's count back; a
/// wrong one is counted in any case. `Ok(false)` for a wrong one, `Locked`
/// while the name is locked, even for a right one.
pub(super) async fn throttle(
    store: &impl UserStore,
    username: &Username,
    failures: FailedLogins,
    right: bool,
    now: u64,
) -> Result<bool, LoginError> {
    let suspect = !failures.is_stale(now);
    if suspect || !right {
        let counted = count_attempt(store, username, failures, now).await?;
        // Allowed and right: the count was only a turn in the queue, taken back.
        if right {
            store.uncount_attempt(username, counted, failures).await?;
        }
    }
    Ok(right)
}

/// Counts one attempt against `username` and returns the record as counted,
/// or fails while the name is locked.
async fn count_attempt(
    store: &impl UserStore,
    username: &Username,
    mut seen: FailedLogins,
    now: u64,
) -> Result<FailedLogins, LoginError> {
    for _ in 0..5 {
        if let Some(retry_after) = seen.locked_for(now) {
            return Err(LoginError::Locked { retry_after });
        }
        if let Some(counted) = store.count_attempt(username, seen, now).await? {
            return Ok(counted);
        }
        seen = store.login_record(username).await?.failures;
    }
    // The record kept changing under us: many attempts at once on one name.
    Err(LoginError::Locked {
        retry_after: FailedLogins::BASE_LOCK,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::testing::{dev_authority, user_with_password};
    use crate::token::refresh_token_hash;

    const RIGHT: &str = "correct horse battery staple";

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw).unwrap()
    }

    async fn store_with_alice() -> MemoryStore {
        let store = MemoryStore::default();
        store
            .create_user(&user_with_password("u-1", "Alice", RIGHT).await)
            .await
            .unwrap();
        store
    }

    async fn attempt(store: &MemoryStore, raw: &str, now: u64) -> Result<TokenPair, LoginError> {
        login(
            store,
            &dev_authority(),
            &name("alice"),
            &password(raw),
            Origin::default(),
            now,
        )
        .await
    }

    #[tokio::test]
    async fn a_password_set_before_the_strength_rule_still_logs_in() {
        // New passwords are checked, logins never: a stricter setting locks nobody out.
        let store = MemoryStore::default();
        let weak = user_with_password("u-2", "bob", "password123").await;
        store.create_user(&weak).await.unwrap();
        let now = crate::clock::now();
        login(
            &store,
            &dev_authority(),
            &name("bob"),
            &password("password123"),
            Origin::default(),
            now,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn the_right_password_starts_a_session_whose_live_token_is_the_one_returned() {
        let store = store_with_alice().await;
        let tokens = dev_authority();
        let now = crate::clock::now();
        let origin = Origin {
            ip: "203.0.113.10".into(),
            user_agent: "curl/8.5.0".into(),
        };
        let pair = login(&store, &tokens, &name("ALICE"), &password(RIGHT), origin.clone(), now)
            .await
            .unwrap();
        let access = tokens.verify_access(&pair.access_token, now).unwrap();
        assert_eq!((access.sub.as_str(), access.username.as_str()), ("u-1", "Alice"));
        let refresh = tokens.verify_refresh(&pair.refresh_token, now).unwrap();
        let session = store.session_now(&refresh.session_key()).unwrap();
        assert_eq!(session.token_hash, refresh_token_hash(&pair.refresh_token));
        assert_eq!((session.origin, session.amr), (origin, vec!["pwd".to_owned()]));
        assert_eq!((access.sid, access.amr), (session.id, vec!["pwd".to_owned()]));
    }

    #[tokio::test]
    async fn a_good_login_makes_five_calls_in_two_round_trips_with_or_without_failures() {
        // Calls, not round trips: the read goes beside the attempt's count,
        // the session beside its event and the failures forgotten (`tokio::join!`).
        let store = store_with_alice().await;
        let now = crate::clock::now();
        let before = store.calls();
        attempt(&store, RIGHT, now).await.unwrap();
        assert_eq!(store.calls() - before, 5, "read and count; session, event and forget");
        let _ = attempt(&store, "wrong password", now).await;
        let before = store.calls();
        attempt(&store, RIGHT, now).await.unwrap();
        assert_eq!(store.calls() - before, 5, "the same after a failure");
        assert_eq!(
            store.login_record(&name("alice")).await.unwrap().failures.count,
            0,
            "forgotten"
        );
    }

    /// alice's address as the store holds it after a code was sent to it, verified or not.
    async fn with_email(store: &MemoryStore, address: &str, verified: bool) {
        use crate::store::{EmailCode, EmailStore};
        let alice = store.user_now("alice");
        if verified {
            return crate::testing::verify_address(store, &alice, address).await;
        }
        let code = EmailCode {
            email: address.into(),
            code_hash: "h".into(),
            attempts: 0,
            expires_at: u64::MAX,
        };
        store.put_email_code(&alice, &code).await.unwrap();
    }

    async fn by_email(store: &MemoryStore, address: &str, raw: &str) -> Result<TokenPair, LoginError> {
        let email = Email::parse(address).unwrap();
        let now = crate::clock::now();
        login_by_email(store, &dev_authority(), &email, &password(raw), Origin::default(), now).await
    }

    #[tokio::test]
    async fn a_verified_email_logs_in_with_one_read_more_than_the_name() {
        let store = store_with_alice().await;
        with_email(&store, "Alice@Example.com", true).await;
        let before = store.calls();
        let pair = by_email(&store, "alice@EXAMPLE.com", RIGHT).await.unwrap();
        assert_eq!(store.calls() - before, 6, "the claim, then as by name: five calls");
        let access = dev_authority()
            .verify_access(&pair.access_token, crate::clock::now())
            .unwrap();
        assert_eq!((access.sub.as_str(), access.username.as_str()), ("u-1", "Alice"));
    }

    #[tokio::test]
    async fn an_unverified_or_unknown_email_is_invalid_credentials_even_with_the_right_password() {
        let store = store_with_alice().await;
        with_email(&store, "alice@example.com", false).await;
        for address in ["alice@example.com", "nobody@example.com"] {
            assert!(matches!(
                by_email(&store, address, RIGHT).await,
                Err(LoginError::InvalidCredentials)
            ));
        }
    }

    #[tokio::test]
    async fn a_wrong_password_by_email_counts_against_the_name() {
        let store = store_with_alice().await;
        with_email(&store, "alice@example.com", true).await;
        for _ in 0..5 {
            assert!(matches!(
                by_email(&store, "alice@example.com", "wrong password").await,
                Err(LoginError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            attempt(&store, RIGHT, crate::clock::now()).await,
            Err(LoginError::Locked { .. })
        ));
        assert!(matches!(
            by_email(&store, "alice@example.com", RIGHT).await,
            Err(LoginError::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn no_session_is_written_for_a_user_whose_password_changed_since_it_was_checked() {
        let store = store_with_alice().await;
        let read = store.user_now("alice");
        store.change_password(&read, "a newer hash", &[]).await.unwrap();
        let session = crate::testing::password_session(&dev_authority(), &read, crate::clock::now());
        assert_eq!(
            store.create_session(&session, Some(&read)).await.unwrap(),
            Change::Conflict
        );
        assert!(store.session_now(&session.key()).is_none());
        store.mark_deleting("alice");
        let now_read = store.user_now("alice");
        assert_eq!(
            store.create_session(&session, Some(&now_read)).await.unwrap(),
            Change::Conflict,
            "nor while deleting"
        );
    }

    #[tokio::test]
    async fn a_wrong_password_and_an_unknown_user_are_the_same_error() {
        let store = store_with_alice().await;
        let now = crate::clock::now();
        assert!(matches!(
            attempt(&store, "wrong password", now).await,
            Err(LoginError::InvalidCredentials)
        ));
        let unknown = login(
            &store,
            &dev_authority(),
            &name("nobody"),
            &password(RIGHT),
            Origin::default(),
            now,
        )
        .await;
        assert!(matches!(unknown, Err(LoginError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn five_failures_lock_the_name_even_for_the_right_password() {
        let store = store_with_alice().await;
        let now = crate::clock::now();
        for _ in 0..FailedLogins::LIMIT {
            assert!(matches!(
                attempt(&store, "wrong password", now).await,
                Err(LoginError::InvalidCredentials)
            ));
        }
        let locked = attempt(&store, RIGHT, now).await;
        assert!(
            matches!(locked, Err(LoginError::Locked { retry_after: 30 })),
            "{locked:?}"
        );
    }

    #[tokio::test]
    async fn once_the_lock_has_expired_the_right_password_works_and_clears_the_count() {
        let store = store_with_alice().await;
        let now = crate::clock::now();
        for _ in 0..FailedLogins::LIMIT {
            let _ = attempt(&store, "wrong password", now).await;
        }
        assert!(attempt(&store, RIGHT, now + FailedLogins::BASE_LOCK - 1).await.is_err());
        assert!(attempt(&store, RIGHT, now + FailedLogins::BASE_LOCK).await.is_ok());
        assert_eq!(
            store.login_record(&name("alice")).await.unwrap().failures,
            FailedLogins::default()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_guesses_on_a_suspect_name_are_counted_before_checking_so_at_most_five_get_through() {
        let store = std::sync::Arc::new(store_with_alice().await);
        let now = crate::clock::now();
        let _ = attempt(&store, "wrong password", now).await;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { attempt(&store, "wrong password", now).await })
            })
            .collect();
        let (mut checked, mut locked) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Err(LoginError::InvalidCredentials) => checked += 1,
                Err(LoginError::Locked { .. }) => locked += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((checked, locked), (4, 16));
    }

    #[tokio::test]
    async fn a_weak_hash_is_upgraded_on_a_good_login() {
        use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password(RIGHT.as_bytes())
        .unwrap()
        .to_string();
        let store = MemoryStore::default();
        let mut alice = crate::testing::user("u-1", "alice");
        alice.password_hash = weak.clone();
        store.create_user(&alice).await.unwrap();
        attempt(&store, RIGHT, crate::clock::now()).await.unwrap();
        let upgraded = store
            .login_record(&name("alice"))
            .await
            .unwrap()
            .user
            .unwrap()
            .password_hash;
        assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{upgraded}");
    }

    #[tokio::test]
    async fn a_user_whose_deletion_was_interrupted_cannot_log_in_and_the_right_password_finishes_it() {
        let store = MemoryStore::default();
        let mut alice = user_with_password("u-1", "alice", RIGHT).await;
        alice.deleting = true;
        store.create_user(&alice).await.unwrap();
        let wrong = attempt(&store, "wrong password", crate::clock::now()).await;
        assert!(matches!(wrong, Err(LoginError::InvalidCredentials)), "{wrong:?}");
        assert!(
            store.user(&name("alice")).await.unwrap().is_some(),
            "a guess deletes nothing"
        );
        let result = attempt(&store, RIGHT, crate::clock::now()).await;
        assert!(matches!(result, Err(LoginError::InvalidCredentials)), "{result:?}");
        assert_eq!(store.user(&name("alice")).await.unwrap(), None, "the name is free");
    }

    #[tokio::test]
    async fn an_unreachable_store_is_a_store_error() {
        let store = MemoryStore::unreachable();
        assert!(matches!(
            attempt(&store, RIGHT, crate::clock::now()).await,
            Err(LoginError::Store(_))
        ));
    }

    async fn kinds(store: &MemoryStore, username: &str) -> Vec<crate::audit::Kind> {
        use crate::store::AuditStore;
        let page = store.events(username, None, 100).await.unwrap();
        page.events.iter().map(|e| e.kind).collect()
    }

    #[tokio::test]
    async fn a_wrong_password_is_the_users_login_failed_and_the_lock_it_begins_their_login_locked() {
        use crate::audit::Kind::{LoginFailed, LoginLocked};
        let store = store_with_alice().await;
        let now = crate::clock::now();
        for _ in 0..FailedLogins::LIMIT {
            assert!(matches!(
                attempt(&store, "wrong password", now).await,
                Err(LoginError::InvalidCredentials)
            ));
        }
        let mut expected = vec![LoginLocked];
        expected.extend(std::iter::repeat_n(LoginFailed, FailedLogins::LIMIT as usize));
        assert_eq!(kinds(&store, "alice").await, expected, "newest first");
        // Refused while locked: no guess checked, nothing more recorded.
        assert!(matches!(
            attempt(&store, RIGHT, now).await,
            Err(LoginError::Locked { .. })
        ));
        assert_eq!(kinds(&store, "alice").await.len(), expected.len());
    }

    #[tokio::test]
    async fn a_login_as_nobody_stores_no_event_anywhere() {
        let store = store_with_alice().await;
        let nobody = login(
            &store,
            &dev_authority(),
            &name("mallory"),
            &password("wrong password"),
            Origin::default(),
            crate::clock::now(),
        )
        .await;
        assert!(matches!(nobody, Err(LoginError::InvalidCredentials)));
        assert!(kinds(&store, "mallory").await.is_empty());
        assert!(kinds(&store, "alice").await.is_empty());
    }

    #[tokio::test]
    async fn a_good_login_is_login_succeeded_with_its_session_and_client() {
        use crate::store::AuditStore;
        let store = store_with_alice().await;
        let client = Origin {
            ip: "198.51.100.4".into(),
            user_agent: "Firefox".into(),
        };
        let now = crate::clock::now();
        let pair = crate::audit::from_client(client, attempt(&store, RIGHT, now))
            .await
            .unwrap();
        let sid = dev_authority().verify_access(&pair.access_token, now).unwrap().sid;
        let events = store.events("alice", None, 10).await.unwrap().events;
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.kind, crate::audit::Kind::LoginSucceeded);
        assert_eq!(
            (
                event.ip.as_deref(),
                event.user_agent.as_deref(),
                event.session_id.as_deref()
            ),
            (Some("198.51.100.4"), Some("Firefox"), Some(sid.as_str()))
        );
    }

    #[tokio::test]
    async fn a_disabled_account_refuses_the_right_password_as_disabled_and_a_wrong_one_as_wrong() {
        use crate::store::AdminStore;
        let store = store_with_alice().await;
        store.set_disabled(&store.user_now("alice"), true).await.unwrap();
        let now = crate::clock::now();
        assert!(matches!(
            attempt(&store, RIGHT, now).await,
            Err(LoginError::AccountDisabled)
        ));
        assert!(matches!(
            attempt(&store, "wrong password", now).await,
            Err(LoginError::InvalidCredentials)
        ));
        assert!(store.sessions("alice").await.unwrap().is_empty(), "no session");
        // The right password did not count as a failure.
        assert_eq!(store.login_record(&name("alice")).await.unwrap().failures.count, 1);
        store.set_disabled(&store.user_now("alice"), false).await.unwrap();
        attempt(&store, RIGHT, now).await.unwrap();
    }

    #[tokio::test]
    async fn an_address_past_its_failures_is_refused_before_its_guess_is_checked_and_others_are_not() {
        let mut store = store_with_alice().await;
        store.ip_limits.failures = 2;
        let now = crate::clock::now();
        let from = |ip: &str| Origin {
            ip: ip.into(),
            user_agent: String::new(),
        };
        for _ in 0..2 {
            let wrong = crate::audit::from_client(from("203.0.113.9"), attempt(&store, "wrong password", now)).await;
            assert!(matches!(wrong, Err(LoginError::InvalidCredentials)));
        }
        let right = crate::audit::from_client(from("203.0.113.9"), attempt(&store, RIGHT, now)).await;
        assert!(matches!(right, Err(LoginError::Locked { retry_after }) if retry_after > 0));
        assert_eq!(
            store.login_record(&name("alice")).await.unwrap().failures.count,
            2,
            "the refused attempt is not counted on the name"
        );
        let elsewhere = crate::audit::from_client(from("198.51.100.3"), attempt(&store, RIGHT, now)).await;
        assert!(elsewhere.is_ok(), "another address logs in");
    }
}
