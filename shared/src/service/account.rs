//! The caller's own account: reading it, changing its password (which ends
//! every other session), deleting it (which ends everything).

use super::audit::{Owner, beside};
use super::login::{LoginError, check_password};
use super::register::{NewPasswordError, PasswordRules};
use crate::audit::{Event, Kind};
use crate::breached::Breached;
use crate::credentials::{Password, Username};
use crate::lockout::FailedLogins;
use crate::password::HashError;
use crate::store::{AccountStore, AuditStore, Change, SessionStore, StoreError, ThrottleStore, User, UserStore};
use crate::strength::Weak;
use crate::token::AccessClaims;

/// Why an account operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The password given is not the account's: counted like a failed login.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many recent failures on this name.
    #[error("locked for {retry_after} s")]
    Locked { retry_after: u64 },
    /// The token's user no longer exists (deleted, or the name is someone else's now).
    #[error("the account of this token is gone")]
    Gone,
    /// The new password is guessable.
    #[error(transparent)]
    WeakPassword(Weak),
    /// The new password is in a known breach.
    #[error(transparent)]
    BreachedPassword(Breached),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<LoginError> for AccountError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::InvalidCredentials => Self::InvalidCredentials,
            LoginError::Locked { retry_after } => Self::Locked { retry_after },
            // Only a login asks for a second factor or refuses a disabled account; a password check never does.
            LoginError::MfaRequired { .. } | LoginError::AccountDisabled => Self::InvalidCredentials,
            LoginError::Store(e) => Self::Store(e),
            LoginError::Hash(e) => Self::Hash(e),
        }
    }
}

impl From<NewPasswordError> for AccountError {
    fn from(error: NewPasswordError) -> Self {
        match error {
            NewPasswordError::Weak(weak) => Self::WeakPassword(weak),
            NewPasswordError::Breached(breached) => Self::BreachedPassword(breached),
            NewPasswordError::Hash(e) => Self::Hash(e),
        }
    }
}

/// The username of a verified token (it was valid when signed; it parses).
fn username_of(claims: &AccessClaims) -> Result<Username, AccountError> {
    Username::parse(&claims.username).map_err(|_| AccountError::Gone)
}

/// The account of the caller of `claims`, in one read.
pub async fn account<S: AccountStore>(store: &S, claims: &AccessClaims) -> Result<User, AccountError> {
    match store.user(&username_of(claims)?).await? {
        Some(user) if user.id == claims.sub && !user.deleting => Ok(user),
        _ => Err(AccountError::Gone),
    }
}

/// The caller's user if `password` is theirs, behind the login throttle.
async fn confirm<S: UserStore + AuditStore + ThrottleStore>(
    store: &S,
    claims: &AccessClaims,
    password: &Password,
    now: u64,
) -> Result<super::login::Checked, AccountError> {
    let checked = check_password(store, &username_of(claims)?, password, now).await?;
    if checked.user.id != claims.sub {
        return Err(AccountError::Gone);
    }
    Ok(checked)
}

/// Sets the caller's password to `new` if `current` is theirs and `new`
/// passes `rules` (the account's name and email count as guessable words),
/// and ends every other session of theirs in the same write: a thief's
/// refresh token dies with the old password. The caller's own session (the
/// `sid` of the token) stays live. Their `password_changed` event, in that
/// session, is written beside the change.
pub async fn change_password<S: UserStore + SessionStore + AccountStore + AuditStore + ThrottleStore>(
    store: &S,
    rules: &PasswordRules,
    claims: &AccessClaims,
    current: &Password,
    new: &Password,
    now: u64,
) -> Result<(), AccountError> {
    let checked = confirm(store, claims, current, now).await?;
    if checked.user.deleting {
        return Err(AccountError::InvalidCredentials);
    }
    let user = &checked.user;
    let new_hash = match rules.hash(new, &user.username, user.email.as_deref()).await {
        Ok(hash) => hash,
        Err(refused) => {
            // `current` was right: its attempt is not held against the name,
            // or a few refused new passwords would lock the caller out.
            let forget = FailedLogins::default();
            store
                .uncount_attempt(&username_of(claims)?, checked.counted, forget)
                .await?;
            return Err(refused.into());
        }
    };
    // Every live session but the caller's, whatever its generation: a refresh
    // racing this either rotated before the write below (and its session is
    // revoked by it) or after (and finds its session revoked).
    let others: Vec<_> = store
        .sessions(&checked.user.username)
        .await?
        .into_iter()
        .filter(|s| s.is_live(now) && s.user_id == checked.user.id && s.id != claims.sid)
        .map(|s| s.key())
        .collect();
    let event = Event::new(Kind::PasswordChanged, now).in_session(&claims.sid);
    let changed = beside(
        store,
        Owner::of(&checked.user),
        event,
        store.change_password(&checked.user, &new_hash, &others),
    )
    .await?;
    match changed {
        Change::Done => {
            tracing::info!(revoked = others.len(), "password changed");
            Ok(())
        }
        // Changed by someone else meanwhile: `current` is no longer the password.
        Change::Conflict => Err(AccountError::InvalidCredentials),
    }
}

/// Deletes the caller's account if `password` is theirs: the user, every
/// session and everything else stored under the name. The name is free again.
pub async fn delete_account<S: UserStore + AccountStore + AuditStore + ThrottleStore>(
    store: &S,
    claims: &AccessClaims,
    password: &Password,
    now: u64,
) -> Result<(), AccountError> {
    let checked = confirm(store, claims, password, now).await?;
    match store.delete_user(&checked.user).await? {
        Change::Done => {
            tracing::info!("account deleted");
            Ok(())
        }
        Change::Conflict => Err(AccountError::Gone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password;
    use crate::service::sessions::{self, token_pair};
    use crate::session::{Origin, PASSWORD, Session};
    use crate::store::AuditStore;
    use crate::store::memory::MemoryStore;
    use crate::testing::{dev_authority, user_with_password};
    use crate::token::TokenAuthority;

    const RIGHT: &str = "correct horse battery staple";
    const NEW: &str = "a new horse battery staple";

    fn pw(raw: &str) -> Password {
        Password::parse(raw).unwrap()
    }

    /// alice in a store, with two sessions, and the claims of the first.
    async fn alice_with_two_sessions() -> (MemoryStore, TokenAuthority, AccessClaims, Session, Session) {
        let store = MemoryStore::default();
        let tokens = dev_authority();
        let alice = user_with_password("u-1", "Alice", RIGHT).await;
        store.create_user(&alice).await.unwrap();
        let now = crate::clock::now();
        let mine = sessions::start(&tokens, &alice, &[PASSWORD], Origin::default(), now);
        let other = sessions::start(&tokens, &alice, &[PASSWORD], Origin::default(), now);
        store.create_session(&mine, None).await.unwrap();
        store.create_session(&other, None).await.unwrap();
        let claims = tokens
            .verify_access(&token_pair(&tokens, &mine, now).access_token, now)
            .unwrap();
        (store, tokens, claims, mine, other)
    }

    /// `change_password` under the default rules.
    async fn change_default(
        store: &MemoryStore,
        claims: &AccessClaims,
        current: &Password,
        new: &Password,
        now: u64,
    ) -> Result<(), AccountError> {
        change_password(store, &PasswordRules::default(), claims, current, new, now).await
    }

    fn name() -> Username {
        Username::parse("alice").unwrap()
    }

    #[tokio::test]
    async fn the_account_is_the_callers_user_and_not_a_later_owner_of_the_name() {
        let (store, _, claims, _, _) = alice_with_two_sessions().await;
        assert_eq!(account(&store, &claims).await.unwrap().id, "u-1");
        let stranger = AccessClaims {
            sub: "u-0".into(),
            ..claims.clone()
        };
        assert!(matches!(account(&store, &stranger).await, Err(AccountError::Gone)));
        store
            .delete_user(&store.user(&name()).await.unwrap().unwrap())
            .await
            .unwrap();
        assert!(matches!(account(&store, &claims).await, Err(AccountError::Gone)));
    }

    #[tokio::test]
    async fn a_password_change_ends_every_other_session_and_keeps_the_callers() {
        let (store, _, claims, mine, other) = alice_with_two_sessions().await;
        let now = crate::clock::now();
        change_default(&store, &claims, &pw(RIGHT), &pw(NEW), now)
            .await
            .unwrap();
        assert!(store.session_now(&other.key()).unwrap().revoked);
        assert!(!store.session_now(&mine.key()).unwrap().revoked);
        let hash = store.user(&name()).await.unwrap().unwrap().password_hash;
        assert_eq!(
            password::verify(&pw(NEW), Some(&hash)).await.unwrap(),
            password::Verdict::Valid
        );
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[tokio::test]
    async fn a_wrong_current_password_changes_nothing_and_counts_as_a_failed_login() {
        let (store, _, claims, _, other) = alice_with_two_sessions().await;
        let now = crate::clock::now();
        let before = store.user(&name()).await.unwrap();
        let result = change_default(&store, &claims, &pw("wrong password"), &pw(NEW), now).await;
        assert!(matches!(result, Err(AccountError::InvalidCredentials)));
        assert_eq!(store.user(&name()).await.unwrap(), before);
        assert!(!store.session_now(&other.key()).unwrap().revoked);
        assert_eq!(store.login_record(&name()).await.unwrap().failures.count, 1);
        for _ in 1..FailedLogins::LIMIT {
            let _ = change_default(&store, &claims, &pw("wrong password"), &pw(NEW), now).await;
        }
        let locked = change_default(&store, &claims, &pw(RIGHT), &pw(NEW), now).await;
        assert!(
            matches!(locked, Err(AccountError::Locked { retry_after: 30 })),
            "{locked:?}"
        );
    }

    #[tokio::test]
    async fn a_good_change_clears_earlier_failures() {
        let (store, _, claims, _, _) = alice_with_two_sessions().await;
        let now = crate::clock::now();
        let _ = change_default(&store, &claims, &pw("wrong password"), &pw(NEW), now).await;
        change_default(&store, &claims, &pw(RIGHT), &pw(NEW), now)
            .await
            .unwrap();
        assert_eq!(
            store.login_record(&name()).await.unwrap().failures,
            FailedLogins::default()
        );
    }

    /// The default strength rule and a breached check in `mode` against a
    /// range server listing `BreachedButStrong#2024`.
    async fn rules_with_breached(mode: crate::breached::Mode) -> PasswordRules {
        use crate::breached::test_server::{check_at, range_holding, range_server};
        let range = range_holding("BreachedButStrong#2024", 42);
        let (endpoint, _) = range_server(range, std::time::Duration::ZERO).await;
        PasswordRules {
            strength: crate::strength::StrengthPolicy::default(),
            breached: check_at(mode, &endpoint, 2000),
        }
    }

    #[tokio::test]
    async fn a_weak_or_breached_new_password_is_refused_and_the_old_one_stays() {
        let (store, _, claims, _, other) = alice_with_two_sessions().await;
        let now = crate::clock::now();
        let rules = rules_with_breached(crate::breached::Mode::Block).await;
        let before = store.user(&name()).await.unwrap();
        for (new, weak) in [
            ("password123", true),
            ("alice2026!", true),
            ("BreachedButStrong#2024", false),
        ] {
            let result = change_password(&store, &rules, &claims, &pw(RIGHT), &pw(new), now).await;
            match result {
                Err(AccountError::WeakPassword(w)) if weak => assert!(!w.message.is_empty()),
                Err(AccountError::BreachedPassword(b)) if !weak => assert_eq!(b.count, 42),
                other => panic!("{new}: {other:?}"),
            }
        }
        assert_eq!(store.user(&name()).await.unwrap(), before);
        assert!(!store.session_now(&other.key()).unwrap().revoked);
        assert_eq!(
            store.login_record(&name()).await.unwrap().failures.count,
            0,
            "a refused new password is no failed login"
        );
    }

    #[tokio::test]
    async fn warn_lets_a_breached_new_password_through() {
        let (store, _, claims, _, _) = alice_with_two_sessions().await;
        let now = crate::clock::now();
        let rules = rules_with_breached(crate::breached::Mode::Warn).await;
        let new = pw("BreachedButStrong#2024");
        change_password(&store, &rules, &claims, &pw(RIGHT), &new, now)
            .await
            .unwrap();
        let hash = store.user(&name()).await.unwrap().unwrap().password_hash;
        assert_eq!(
            password::verify(&new, Some(&hash)).await.unwrap(),
            password::Verdict::Valid
        );
    }

    #[tokio::test]
    async fn deleting_the_account_removes_the_user_and_every_session_and_frees_the_name() {
        let (store, _, claims, mine, other) = alice_with_two_sessions().await;
        let now = crate::clock::now();
        let result = delete_account(&store, &claims, &pw("wrong password"), now).await;
        assert!(matches!(result, Err(AccountError::InvalidCredentials)));
        assert!(store.user(&name()).await.unwrap().is_some());
        delete_account(&store, &claims, &pw(RIGHT), now).await.unwrap();
        assert_eq!(store.user(&name()).await.unwrap(), None);
        assert_eq!(store.session_now(&mine.key()), None);
        assert_eq!(store.session_now(&other.key()), None);
        assert_eq!(
            store.login_record(&name()).await.unwrap(),
            Default::default(),
            "no lockout left"
        );
        let again = user_with_password("u-2", "alice", RIGHT).await;
        store.create_user(&again).await.unwrap();
        let result = delete_account(&store, &claims, &pw(RIGHT), now).await;
        assert!(
            matches!(result, Err(AccountError::Gone)),
            "the name is someone else's: {result:?}"
        );
        assert!(store.user(&name()).await.unwrap().is_some());
    }

    async fn events(store: &MemoryStore) -> Vec<crate::audit::Event> {
        store.events("alice", None, 100).await.unwrap().events
    }

    #[tokio::test]
    async fn a_password_change_is_password_changed_in_the_callers_session_from_its_client() {
        let (store, _, claims, _, _) = alice_with_two_sessions().await;
        let client = Origin {
            ip: "198.51.100.7".into(),
            user_agent: "Firefox".into(),
        };
        let now = crate::clock::now();
        let (current, new) = (pw(RIGHT), pw(NEW));
        let change = change_default(&store, &claims, &current, &new, now);
        crate::audit::from_client(client, change).await.unwrap();
        let events = events(&store).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!((event.kind, event.at), (Kind::PasswordChanged, now));
        assert_eq!(
            (
                event.ip.as_deref(),
                event.user_agent.as_deref(),
                event.session_id.as_deref()
            ),
            (Some("198.51.100.7"), Some("Firefox"), Some(claims.sid.as_str()))
        );
    }

    #[tokio::test]
    async fn a_wrong_current_password_is_login_failed_and_no_password_changed() {
        let (store, _, claims, _, _) = alice_with_two_sessions().await;
        let now = crate::clock::now();
        let _ = change_default(&store, &claims, &pw("wrong password"), &pw(NEW), now).await;
        let kinds: Vec<Kind> = events(&store).await.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::LoginFailed]);
    }

    #[tokio::test]
    async fn deleting_the_account_deletes_its_events() {
        let (store, _, claims, _, _) = alice_with_two_sessions().await;
        let now = crate::clock::now();
        change_default(&store, &claims, &pw(RIGHT), &pw(NEW), now)
            .await
            .unwrap();
        assert!(!events(&store).await.is_empty());
        delete_account(&store, &claims, &pw(NEW), now).await.unwrap();
        assert!(events(&store).await.is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_store_is_a_store_error() {
        let (_, _, claims, _, _) = alice_with_two_sessions().await;
        let store = MemoryStore::unreachable();
        let now = crate::clock::now();
        assert!(matches!(account(&store, &claims).await, Err(AccountError::Store(_))));
        let change = change_default(&store, &claims, &pw(RIGHT), &pw(NEW), now).await;
        assert!(matches!(change, Err(AccountError::Store(_))));
        assert!(matches!(
            delete_account(&store, &claims, &pw(RIGHT), now).await,
            Err(AccountError::Store(_))
        ));
    }
}
