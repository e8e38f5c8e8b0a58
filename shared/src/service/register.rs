//! Registering: hash the password, create the user with a conditional write;
//! with an email, send it a verification code.

use super::email::{EmailError, send_code};
use crate::breached::{Breached, BreachedCheck};
use crate::config::ConfigError;
use crate::credentials::{Email, Password, Username};
use crate::mail::{MailSettings, Mailer};
use crate::password::{self, HashError};
use crate::store::{AccountStore, CreateUserError, EmailStore, StoreError, ThrottleStore, User, UserStore};
use crate::strength::{self, StrengthPolicy, Weak};
use crate::throttle::Counter;

/// What a new password must pass before it is stored (register, password
/// change, reset; never login, so a stricter setting locks nobody out),
/// built once per cold start.
pub struct PasswordRules {
    pub strength: StrengthPolicy,
    pub breached: BreachedCheck,
}

/// Why a new password was not hashed.
#[derive(Debug, thiserror::Error)]
pub enum NewPasswordError {
    /// Guessable: `400 weak_password`.
    #[error(transparent)]
    Weak(#[from] Weak),
    /// In a known breach, and the check blocks: `400 breached_password`.
    #[error(transparent)]
    Breached(#[from] Breached),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl Default for PasswordRules {
    /// The strength rule at its default and no breached check: for tools and
    /// tests; the functions read theirs from the environment.
    fn default() -> Self {
        Self {
            strength: StrengthPolicy::default(),
            breached: BreachedCheck::off(),
        }
    }
}

impl PasswordRules {
    /// The rules from `PASSWORD_MIN_SCORE` and the `BREACHED_PASSWORD_*` variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            strength: StrengthPolicy::from_env()?,
            breached: BreachedCheck::from_env()?,
        })
    }

    /// The hash to store for `password`, the new password of the account
    /// `username` (with `email`, if any), if it passes: first the strength
    /// estimate (CPU only, so a weak password's prefix is sent nowhere), then
    /// the breached check beside argon2, so its round trip hides behind the hash.
    pub async fn hash(
        &self,
        password: &Password,
        username: &str,
        email: Option<&str>,
    ) -> Result<String, NewPasswordError> {
        let inputs = strength::user_inputs(username, email);
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.strength.check(password, &inputs)?;
        // Boxed: the HTTP client's future is large, and it is part of every
        // flow that sets a password (a test thread's stack overflowed).
        let (breached, hash) = tokio::join!(Box::pin(self.breached.enforce(password)), password::hash(password));
        breached?;
        Ok(hash?)
    }
}

/// Why a user was not created.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The name exists, in any case.
    #[error("username is taken")]
    Taken,
    /// The source address registered its most in this window.
    #[error("too many registrations from this address; retry in {retry_after} s")]
    Limited { retry_after: u64 },
    /// The password is guessable.
    #[error(transparent)]
    WeakPassword(Weak),
    /// The password is in a known breach.
    #[error(transparent)]
    BreachedPassword(Breached),
    /// The code could not go to the address (taken, too many mails, not
    /// sent): nothing is left registered.
    #[error(transparent)]
    Email(#[from] EmailError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<NewPasswordError> for RegisterError {
    fn from(error: NewPasswordError) -> Self {
        match error {
            NewPasswordError::Weak(weak) => Self::WeakPassword(weak),
            NewPasswordError::Breached(breached) => Self::BreachedPassword(breached),
            NewPasswordError::Hash(e) => Self::Hash(e),
        }
    }
}

/// Creates the user `username` with `password` at `now` if the password
/// passes `rules`, with `email` as its address waiting for verification, if
/// given (no code is sent: see `register_with_email`).
pub async fn register(
    store: &(impl UserStore + ThrottleStore),
    rules: &PasswordRules,
    username: &Username,
    password: &Password,
    email: Option<&Email>,
    now: u64,
) -> Result<User, RegisterError> {
    // Counted first, whatever the outcome: a flood from one address is
    // refused before it costs a hash.
    if let Some(retry_after) = super::throttle::admit(store, Counter::Register, now).await? {
        tracing::info!("source address throttled at registration");
        return Err(RegisterError::Limited { retry_after });
    }
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.as_str().to_owned(),
        password_hash: rules
            .hash(password, username.as_str(), email.map(Email::as_str))
            .await?,
        created_at: now,
        deleting: false,
        disabled: false,
        email: email.map(|e| e.as_str().to_owned()),
        email_verified: false,
        totp: false,
        passkeys: 0,
    };
    match store.create_user(&user).await {
        Ok(()) => {}
        // The SDK retries a write whose answer was lost; the retry then finds
        // the name taken by this very request's first write: its user id says so.
        Err(CreateUserError::Taken) if created_by(store, username, &user.id).await? => {}
        Err(CreateUserError::Taken) => return Err(RegisterError::Taken),
        Err(CreateUserError::Store(e)) => return Err(RegisterError::Store(e)),
    }
    crate::log::record_user(&user.id);
    tracing::info!("user registered");
    Ok(user)
}

/// Registers like `register` and sends `email` its verification code. An
/// address another account holds verified is answered the same (that it is
/// taken is not the client's to learn): its owner gets a notice instead of
/// a code, and the new account keeps it pending, never to be verified. If
/// the mail cannot go (the hour's mails are spent, SES fails), the user is
/// deleted again, so the client can retry the same registration.
#[allow(clippy::too_many_arguments)]
pub async fn register_with_email<S: UserStore + AccountStore + EmailStore + ThrottleStore>(
    store: &S,
    rules: &PasswordRules,
    mailer: &impl Mailer,
    settings: &MailSettings,
    username: &Username,
    password: &Password,
    email: &Email,
    now: u64,
) -> Result<User, RegisterError> {
    let user = register(store, rules, username, password, Some(email), now).await?;
    let sent = match store.email_owner(email).await {
        Ok(Some((owner, _))) if owner != user.id => notify_owner(store, mailer, settings, &user, email, now).await,
        Ok(_) => send_code(store, mailer, settings, &user, email, now).await,
        Err(e) => Err(e.into()),
    };
    if let Err(error) = sent {
        if let Err(e) = store.delete_user(&user).await {
            tracing::warn!(error = %e, "registration without its code not undone; the password logs in");
        }
        return Err(error.into());
    }
    Ok(user)
}

/// Tells the owner of `email` that `user` registered with it (within the
/// hour's mails, as a code would be).
async fn notify_owner<S: EmailStore>(
    store: &S,
    mailer: &impl Mailer,
    settings: &MailSettings,
    user: &User,
    email: &Email,
    now: u64,
) -> Result<(), EmailError> {
    let username = Username::parse(&user.username).map_err(|_| EmailError::Gone)?;
    if !store.count_mail(&username, email, now).await? {
        return Err(EmailError::Limited {
            retry_after: 3600 - now % 3600,
        });
    }
    mailer.send(&settings.address_taken(email)).await?;
    tracing::info!("registration with a taken address: its owner notified");
    Ok(())
}

/// Whether the user stored under `username` is the one of id `id`.
async fn created_by(store: &impl UserStore, username: &Username, id: &str) -> Result<bool, StoreError> {
    let record = store.login_record(username).await?;
    Ok(record.user.is_some_and(|user| user.id == id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::Verdict;
    use crate::store::memory::MemoryStore;

    /// `name` registered with `password` under the default rules, with no address, at `now`.
    async fn register_default(
        store: &(impl UserStore + ThrottleStore),
        name: &str,
        password: &Password,
        now: u64,
    ) -> Result<User, RegisterError> {
        register(
            store,
            &PasswordRules::default(),
            &Username::parse(name).unwrap(),
            password,
            None,
            now,
        )
        .await
    }

    #[tokio::test]
    async fn a_registered_user_keeps_the_name_as_typed_and_a_hash_of_the_password() {
        let store = MemoryStore::default();
        let password = Password::parse("correct horse battery staple").unwrap();
        let user = register_default(&store, "Alice", &password, 7).await.unwrap();
        assert_eq!((user.username.as_str(), user.created_at), ("Alice", 7));
        let stored = stored(&store, "alice").await;
        assert_eq!(stored, user);
        assert_eq!(
            password::verify(&password, Some(&stored.password_hash)).await.unwrap(),
            Verdict::Valid
        );
    }

    /// The user stored under `name`.
    async fn stored(store: &MemoryStore, name: &str) -> User {
        let record = store.login_record(&Username::parse(name).unwrap()).await.unwrap();
        record.user.expect("a stored user")
    }

    /// A store whose first write lands but answers "taken", as DynamoDB does
    /// to the SDK's retry of a conditional put whose answer was lost.
    struct LostAnswer(MemoryStore);

    impl crate::store::ThrottleStore for LostAnswer {
        fn ip_limits(&self) -> crate::throttle::IpLimits {
            self.0.ip_limits()
        }
        async fn ip_count(&self, key: &str, counter: Counter, start: u64) -> Result<u64, StoreError> {
            self.0.ip_count(key, counter, start).await
        }
        async fn add_ip(&self, key: &str, counter: Counter, start: u64) -> Result<u64, StoreError> {
            self.0.add_ip(key, counter, start).await
        }
    }

    impl UserStore for LostAnswer {
        async fn create_user(&self, user: &User) -> Result<(), CreateUserError> {
            self.0.create_user(user).await?;
            Err(CreateUserError::Taken)
        }
        async fn login_record(&self, username: &Username) -> Result<crate::store::LoginRecord, StoreError> {
            self.0.login_record(username).await
        }
        async fn replace_password_hash(&self, _: &Username, _: &str, _: &str) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn count_attempt(
            &self,
            _: &Username,
            _: crate::lockout::FailedLogins,
            _: u64,
        ) -> Result<Option<crate::lockout::FailedLogins>, StoreError> {
            unreachable!()
        }
        async fn add_attempt(&self, _: &Username, _: u64) -> Result<Option<crate::lockout::FailedLogins>, StoreError> {
            unreachable!()
        }
        async fn uncount_attempt(
            &self,
            _: &Username,
            _: crate::lockout::FailedLogins,
            _: crate::lockout::FailedLogins,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn a_retried_write_that_finds_its_own_user_is_a_registration_not_a_conflict() {
        let store = LostAnswer(MemoryStore::default());
        let password = Password::parse("correct horse battery staple").unwrap();
        let user = register_default(&store, "alice", &password, 0).await.unwrap();
        assert_eq!(stored(&store.0, "alice").await.id, user.id);
        let again = register_default(&store, "Alice", &password, 0).await;
        assert!(
            matches!(again, Err(RegisterError::Taken)),
            "another request's user is a conflict"
        );
    }

    #[tokio::test]
    async fn the_same_name_in_another_case_is_taken() {
        let store = MemoryStore::default();
        let password = Password::parse("correct horse battery staple").unwrap();
        register_default(&store, "alice", &password, 0).await.unwrap();
        let again = register_default(&store, "ALICE", &password, 0).await;
        assert!(matches!(again, Err(RegisterError::Taken)));
    }

    use crate::breached::Mode;
    use crate::breached::test_server::{check_at, range_holding, range_server};
    use std::time::Duration;

    /// The default strength rule and a breached check in `mode` against `endpoint`.
    fn rules(mode: Mode, endpoint: &str, timeout_ms: u64) -> PasswordRules {
        PasswordRules {
            strength: StrengthPolicy::default(),
            breached: check_at(mode, endpoint, timeout_ms),
        }
    }

    async fn try_register(
        rules: &PasswordRules,
        store: &MemoryStore,
        name: &str,
        password: &str,
    ) -> Result<User, RegisterError> {
        let (name, password) = (Username::parse(name).unwrap(), Password::parse(password).unwrap());
        register(store, rules, &name, &password, None, 1).await
    }

    #[tokio::test]
    async fn a_weak_password_is_refused_with_the_estimators_advice_before_anything_is_sent() {
        let (endpoint, heads) = range_server(range_holding("password123", 2_418_984), Duration::ZERO).await;
        let store = MemoryStore::default();
        let refused = try_register(&rules(Mode::Block, &endpoint, 2000), &store, "alice", "password123").await;
        let Err(RegisterError::WeakPassword(weak)) = refused else {
            panic!("{refused:?}")
        };
        assert!(weak.score < 3 && weak.message.contains("common password"), "{weak:?}");
        assert!(
            heads.lock().unwrap().is_empty(),
            "a weak password's prefix goes nowhere"
        );
        assert_eq!(
            store
                .login_record(&Username::parse("alice").unwrap())
                .await
                .unwrap()
                .user,
            None
        );
    }

    #[tokio::test]
    async fn the_name_and_the_email_count_as_words_an_attacker_tries_first() {
        let store = MemoryStore::default();
        let rules = PasswordRules::default();
        let own = try_register(&rules, &store, "zorblax", "zorblax2026!").await;
        assert!(matches!(own, Err(RegisterError::WeakPassword(_))), "{own:?}");
        let by_mail = register(
            &store,
            &rules,
            &Username::parse("zed").unwrap(),
            &Password::parse("zorblax2026!").unwrap(),
            Some(&Email::parse("zorblax@example.com").unwrap()),
            1,
        )
        .await;
        assert!(matches!(by_mail, Err(RegisterError::WeakPassword(_))), "{by_mail:?}");
        try_register(&rules, &store, "stranger", "zorblax2026!").await.unwrap();
    }

    #[tokio::test]
    async fn a_breached_password_is_refused_when_the_check_blocks_and_registers_nobody() {
        let (endpoint, heads) = range_server(range_holding("BreachedButStrong#2024", 42), Duration::ZERO).await;
        let store = MemoryStore::default();
        let refused = try_register(
            &rules(Mode::Block, &endpoint, 2000),
            &store,
            "alice",
            "BreachedButStrong#2024",
        )
        .await;
        assert!(
            matches!(refused, Err(RegisterError::BreachedPassword(Breached { count: 42 }))),
            "{refused:?}"
        );
        assert_eq!(heads.lock().unwrap().len(), 1);
        assert_eq!(
            store
                .login_record(&Username::parse("alice").unwrap())
                .await
                .unwrap()
                .user,
            None
        );
        try_register(
            &rules(Mode::Block, &endpoint, 2000),
            &store,
            "alice",
            "correct horse battery staple",
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn warn_lets_a_breached_password_through() {
        let (endpoint, heads) = range_server(range_holding("BreachedButStrong#2024", 42), Duration::ZERO).await;
        let store = MemoryStore::default();
        try_register(
            &rules(Mode::Warn, &endpoint, 2000),
            &store,
            "alice",
            "BreachedButStrong#2024",
        )
        .await
        .unwrap();
        assert_eq!(heads.lock().unwrap().len(), 1, "checked all the same");
    }

    #[tokio::test]
    async fn a_check_past_its_deadline_or_unreachable_lets_the_password_through() {
        let (slow, _) = range_server(range_holding("BreachedButStrong#2024", 42), Duration::from_secs(5)).await;
        let store = MemoryStore::default();
        let started = std::time::Instant::now();
        try_register(
            &rules(Mode::Block, &slow, 200),
            &store,
            "alice",
            "BreachedButStrong#2024",
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        try_register(
            &rules(Mode::Block, &closed, 2000),
            &store,
            "bob",
            "BreachedButStrong#2024",
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn registering_with_an_address_another_account_holds_answers_as_usual_and_tells_its_owner() {
        let store = MemoryStore::default();
        let outbox = crate::testing::outbox();
        let password = Password::parse("correct horse battery staple").unwrap();
        let owner = register_default(&store, "alice", &password, 1).await.unwrap();
        crate::testing::verify_address(&store, &owner, "alice@example.com").await;
        let email = Email::parse("Alice@Example.com").unwrap();
        let name = Username::parse("mallory").unwrap();
        let rules = PasswordRules::default();
        let newcomer = register_with_email(
            &store,
            &rules,
            &outbox.mailer,
            &outbox.settings,
            &name,
            &password,
            &email,
            2,
        )
        .await
        .unwrap();
        assert_eq!(newcomer.email.as_deref(), Some("Alice@Example.com"));
        assert!(!newcomer.email_verified);
        let sent = outbox.mailer.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].subject, "Someone registered with your address");
        assert!(
            !sent[0].text.chars().any(|c| c.is_ascii_digit()),
            "no code: {}",
            sent[0].text
        );
        assert_eq!(
            store.email_owner(&email).await.unwrap().map(|(id, _)| id),
            Some(owner.id)
        );
    }
}
