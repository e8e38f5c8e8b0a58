//! Forgotten passwords: a reset link mailed to the account's verified
//! address, and the reset itself, which ends every session.

use super::audit::{Owner, beside};
use super::register::{NewPasswordError, PasswordRules};
use crate::audit::{Event, Kind};
use crate::breached::Breached;
use crate::credentials::{Email, Password, Username, Who};
use crate::limits::FORGOT_FLOOR;
use crate::mail::{self, MailError, MailSettings, Mailer};
use crate::password::HashError;
use crate::store::{
    AccountStore, AuditStore, Change, EmailStore, ResetToken, SessionStore, StoreError, ThrottleStore, User, UserStore,
};
use crate::strength::Weak;
use crate::throttle::Counter;

/// Why a reset did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Unknown, expired, used, or issued before the password last changed.
    #[error("invalid reset token")]
    InvalidToken,
    /// The source address asked for its most resets in this window.
    #[error("too many reset requests from this address; retry in {retry_after} s")]
    Limited { retry_after: u64 },
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
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl From<NewPasswordError> for ResetError {
    fn from(error: NewPasswordError) -> Self {
        match error {
            NewPasswordError::Weak(weak) => Self::WeakPassword(weak),
            NewPasswordError::Breached(breached) => Self::BreachedPassword(breached),
            NewPasswordError::Hash(e) => Self::Hash(e),
        }
    }
}

/// Mails a reset link to the verified address of the account `who` names,
/// if there is one and the hour's mails to it are not spent; otherwise
/// nothing. Answers no sooner than `FORGOT_FLOOR` after the call in every
/// case, so that the time says nothing about the account. Each request
/// counts against its source address, whatever the account: past the
/// address's allowance, `Limited` (the same for any account).
pub async fn forgot<S: UserStore + EmailStore + ThrottleStore>(
    store: &S,
    mailer: &impl Mailer,
    settings: &MailSettings,
    who: &Who,
    now: u64,
) -> Result<(), ResetError> {
    if let Some(retry_after) = super::throttle::admit(store, Counter::Forgot, now).await? {
        tracing::info!("source address throttled at forgot-password");
        return Err(ResetError::Limited { retry_after });
    }
    let floor = tokio::time::Instant::now() + FORGOT_FLOOR;
    let result = send_link(store, mailer, settings, who, now).await;
    if tokio::time::Instant::now() > floor {
        tracing::warn!("forgot-password took longer than its floor: its time may tell accounts apart");
    }
    tokio::time::sleep_until(floor).await;
    result
}

async fn send_link<S: UserStore + EmailStore>(
    store: &S,
    mailer: &impl Mailer,
    settings: &MailSettings,
    who: &Who,
    now: u64,
) -> Result<(), ResetError> {
    let Some(user) = find(store, who).await? else {
        tracing::info!("password reset asked for an account without a verified email: nothing sent");
        return Ok(());
    };
    let address = user.email.as_deref().map(Email::parse);
    let (Some(Ok(address)), Ok(username)) = (address, Username::parse(&user.username)) else {
        return Ok(());
    };
    if !store.count_mail(&username, &address, now).await? {
        tracing::info!("password reset over the hour's mails: nothing sent");
        return Ok(());
    }
    let token = mail::new_reset_token();
    let stored = ResetToken {
        token_hash: mail::reset_token_hash(&token),
        username: user.username.clone(),
        user_id: user.id.clone(),
        password_fingerprint: mail::password_fingerprint(&user.password_hash),
        expires_at: now.saturating_add(settings.reset_ttl),
    };
    store.put_reset_token(&stored).await?;
    if let Err(error) = mailer.send(&settings.reset(address.as_str(), &token)).await {
        // Nobody received this token: take it back. Should that fail too, the
        // token left is harmless: only its hash is stored, nobody holds the
        // 256 bits it hashes, and it expires.
        if let Err(e) = store.delete_reset_token(&stored.token_hash).await {
            tracing::warn!(error = %e, "unsent reset token not deleted; it expires unused");
        }
        return Err(error.into());
    }
    tracing::info!(user_id = %user.id, "password reset link sent");
    Ok(())
}

/// The account `who` names, if it has a verified address and is not being deleted.
async fn find<S: UserStore + EmailStore>(store: &S, who: &Who) -> Result<Option<User>, StoreError> {
    let user = match who {
        Who::Username(username) => store.login_record(username).await?.user,
        Who::Email(email) => match store.email_owner(email).await? {
            Some((id, name)) => match Username::parse(&name) {
                Ok(username) => store.login_record(&username).await?.user.filter(|u| u.id == id),
                Err(_) => None,
            },
            None => None,
        },
    };
    Ok(user.filter(|u| u.email_verified && !u.deleting))
}

/// Sets the password of the account `token` was mailed for to `new`, if it
/// passes `rules` (the account's name and email count as guessable words),
/// and revokes every session of the account and the token in the same
/// write; the account's `password_reset` event is written beside it. A
/// refused password leaves the token usable for another.
pub async fn reset<S: AccountStore + SessionStore + EmailStore + AuditStore>(
    store: &S,
    rules: &PasswordRules,
    token: &str,
    new: &Password,
    now: u64,
) -> Result<(), ResetError> {
    let stored = store
        .reset_token(&mail::reset_token_hash(token))
        .await?
        .filter(|t| t.expires_at > now)
        .ok_or(ResetError::InvalidToken)?;
    let username = Username::parse(&stored.username).map_err(|_| ResetError::InvalidToken)?;
    let user = store
        .user(&username)
        .await?
        .filter(|u| {
            u.id == stored.user_id
                && !u.deleting
                && mail::password_fingerprint(&u.password_hash) == stored.password_fingerprint
        })
        .ok_or(ResetError::InvalidToken)?;
    let new_hash = rules.hash(new, &user.username, user.email.as_deref()).await?;
    let live: Vec<_> = store
        .sessions(&user.username)
        .await?
        .into_iter()
        .filter(|s| s.is_live(now) && s.user_id == user.id)
        .map(|s| s.key())
        .collect();
    let event = Event::new(Kind::PasswordReset, now);
    let reset = store.reset_password(&user, &stored, &new_hash, &live);
    match beside(store, Owner::of(&user), event, reset).await? {
        Change::Done => {
            crate::log::record_user(&user.id);
            tracing::info!(revoked = live.len(), "password reset");
            Ok(())
        }
        // Used by a parallel reset, or the password changed meanwhile.
        Change::Conflict => Err(ResetError::InvalidToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MemoryMailer;
    use crate::password::{self, Verdict};
    use crate::store::memory::MemoryStore;
    use crate::testing::{dev_authority, lookup, password_session, user_with_password, verify_address};
    use std::time::Duration;

    const OLD: &str = "correct horse battery staple";
    const NEW: &str = "a new horse battery staple";

    /// The default rules: the strength check, no breached check.
    fn rules() -> PasswordRules {
        PasswordRules::default()
    }

    fn settings() -> MailSettings {
        MailSettings::from_lookup(
            lookup(&[
                ("EMAIL_FROM", "no-reply@example.com"),
                ("APP_URL", "https://app.example.com"),
            ]),
            true,
        )
        .unwrap()
    }

    /// alice with `address` verified, and a live session.
    async fn alice_verified(address: &str) -> MemoryStore {
        let store = MemoryStore::default();
        let alice = user_with_password("u-1", "Alice", OLD).await;
        store.create_user(&alice).await.unwrap();
        verify_address(&store, &alice, address).await;
        let now = crate::clock::now();
        let session = password_session(&dev_authority(), &store.user_now("alice"), now);
        store.create_session(&session, None).await.unwrap();
        store
    }

    fn token_in(mail: &crate::mail::Mail) -> String {
        let (_, rest) = mail.text.split_once("#token=").expect("a link");
        rest.split_whitespace().next().unwrap().to_owned()
    }

    fn who_email(raw: &str) -> Who {
        Who::Email(Email::parse(raw).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_verified_address_gets_a_link_whose_token_resets_the_password_once_and_ends_every_session() {
        let store = alice_verified("Alice@Example.com").await;
        let mailer = MemoryMailer::default();
        let now = crate::clock::now();
        forgot(&store, &mailer, &settings(), &who_email("alice@example.com"), now)
            .await
            .unwrap();
        let sent = mailer.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, "Alice@Example.com");
        let token = token_in(&sent[0]);
        reset(&store, &rules(), &token, &Password::parse(NEW).unwrap(), now)
            .await
            .unwrap();
        let user = store.user_now("alice");
        let verdict = password::verify(&Password::parse(NEW).unwrap(), Some(&user.password_hash)).await;
        assert_eq!(verdict.unwrap(), Verdict::Valid);
        let sessions = store.sessions("alice").await.unwrap();
        assert!(sessions.iter().all(|s| s.revoked), "every session ended");
        let again = reset(&store, &rules(), &token, &Password::parse(OLD).unwrap(), now).await;
        assert!(matches!(again, Err(ResetError::InvalidToken)), "single use");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_is_password_reset_from_its_client_and_a_bad_token_records_nothing() {
        use crate::store::AuditStore;
        let store = alice_verified("alice@example.com").await;
        let mailer = MemoryMailer::default();
        let now = crate::clock::now();
        forgot(&store, &mailer, &settings(), &who_email("alice@example.com"), now)
            .await
            .unwrap();
        let token = token_in(&mailer.sent()[0]);
        let bad = reset(&store, &rules(), "not-a-token", &Password::parse(NEW).unwrap(), now).await;
        assert!(matches!(bad, Err(ResetError::InvalidToken)));
        assert!(store.events("alice", None, 100).await.unwrap().events.is_empty());
        let client = crate::session::Origin {
            ip: "198.51.100.7".into(),
            user_agent: "Firefox".into(),
        };
        let new = Password::parse(NEW).unwrap();
        let rules = rules();
        let good = reset(&store, &rules, &token, &new, now);
        crate::audit::from_client(client, good).await.unwrap();
        let events = store.events("alice", None, 100).await.unwrap().events;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(
            (event.kind, event.at, event.session_id.as_deref()),
            (Kind::PasswordReset, now, None)
        );
        assert_eq!(
            (event.ip.as_deref(), event.user_agent.as_deref()),
            (Some("198.51.100.7"), Some("Firefox"))
        );
    }

    #[tokio::test]
    async fn a_weak_or_breached_new_password_is_refused_and_the_link_still_works() {
        use crate::breached::Mode;
        use crate::breached::test_server::{check_at, range_holding, range_server};
        let (endpoint, _) = range_server(range_holding("BreachedButStrong#2024", 42), Duration::ZERO).await;
        let store = alice_verified("alice@example.com").await;
        let mailer = MemoryMailer::default();
        let now = crate::clock::now();
        let who = Who::Username(Username::parse("alice").unwrap());
        send_link(&store, &mailer, &settings(), &who, now).await.unwrap();
        let token = token_in(&mailer.sent()[0]);
        let blocking = PasswordRules {
            strength: crate::strength::StrengthPolicy::default(),
            breached: check_at(Mode::Block, &endpoint, 2000),
        };
        let weak = reset(&store, &blocking, &token, &Password::parse("password123").unwrap(), now).await;
        assert!(matches!(weak, Err(ResetError::WeakPassword(_))), "{weak:?}");
        let by_address = reset(
            &store,
            &blocking,
            &token,
            &Password::parse("alice@example").unwrap(),
            now,
        )
        .await;
        assert!(matches!(by_address, Err(ResetError::WeakPassword(_))), "{by_address:?}");
        let new = Password::parse("BreachedButStrong#2024").unwrap();
        let breached = reset(&store, &blocking, &token, &new, now).await;
        assert!(matches!(breached, Err(ResetError::BreachedPassword(_))), "{breached:?}");
        assert!(
            store.sessions("alice").await.unwrap().iter().all(|s| !s.revoked),
            "nothing changed"
        );
        let warning = PasswordRules {
            breached: check_at(Mode::Warn, &endpoint, 2000),
            ..blocking
        };
        reset(&store, &warning, &token, &new, now).await.unwrap();
        let user = store.user_now("alice");
        let verdict = password::verify(&new, Some(&user.password_hash)).await;
        assert_eq!(verdict.unwrap(), Verdict::Valid);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_unverified_and_known_accounts_answer_alike_after_the_floor() {
        let store = alice_verified("alice@example.com").await;
        let bob = user_with_password("u-2", "bob", OLD).await;
        store.create_user(&bob).await.unwrap();
        let mailer = MemoryMailer::default();
        let now = crate::clock::now();
        for who in [
            who_email("nobody@example.com"),
            Who::Username(Username::parse("nobody").unwrap()),
            Who::Username(Username::parse("bob").unwrap()),
            Who::Username(Username::parse("ALICE").unwrap()),
        ] {
            let started = tokio::time::Instant::now();
            forgot(&store, &mailer, &settings(), &who, now).await.unwrap();
            assert_eq!(started.elapsed(), FORGOT_FLOOR, "{who:?}");
        }
        assert_eq!(mailer.sent().len(), 1, "only alice, verified, gets a mail");
        store.mark_deleting("alice");
        forgot(&store, &mailer, &settings(), &who_email("alice@example.com"), now)
            .await
            .unwrap();
        assert_eq!(mailer.sent().len(), 1, "nor while her account is being deleted");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_token_or_one_issued_before_a_password_change_is_invalid() {
        let store = alice_verified("alice@example.com").await;
        let mailer = MemoryMailer::default();
        let now = crate::clock::now();
        let settings = settings();
        let who = Who::Username(Username::parse("alice").unwrap());
        forgot(&store, &mailer, &settings, &who, now).await.unwrap();
        let first = token_in(&mailer.sent()[0]);
        let later = now + settings.reset_ttl;
        let expired = reset(&store, &rules(), &first, &Password::parse(NEW).unwrap(), later).await;
        assert!(matches!(expired, Err(ResetError::InvalidToken)));
        forgot(&store, &mailer, &settings, &who, now).await.unwrap();
        let second = token_in(&mailer.sent()[1]);
        reset(&store, &rules(), &second, &Password::parse(NEW).unwrap(), now)
            .await
            .unwrap();
        let stale = reset(&store, &rules(), &first, &Password::parse(OLD).unwrap(), now).await;
        assert!(
            matches!(stale, Err(ResetError::InvalidToken)),
            "the password changed since"
        );
        let unknown = reset(&store, &rules(), "not-a-token", &Password::parse(OLD).unwrap(), now).await;
        assert!(matches!(unknown, Err(ResetError::InvalidToken)));
    }

    #[tokio::test(start_paused = true)]
    async fn past_three_links_an_hour_nothing_is_sent_and_the_answer_is_the_same() {
        let store = alice_verified("alice@example.com").await;
        let mailer = MemoryMailer::default();
        let now = 1_800_000_000;
        for _ in 0..5 {
            forgot(&store, &mailer, &settings(), &who_email("alice@example.com"), now)
                .await
                .unwrap();
        }
        assert_eq!(mailer.sent().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unsent_link_is_an_error_and_its_token_is_taken_back() {
        let store = alice_verified("alice@example.com").await;
        let now = crate::clock::now();
        let who = who_email("alice@example.com");
        let sent = forgot(&store, &MemoryMailer::unreachable(), &settings(), &who, now).await;
        assert!(matches!(sent, Err(ResetError::Mail(_))), "{sent:?}");
        assert_eq!(store.reset_tokens_now(), 0);
    }
}
