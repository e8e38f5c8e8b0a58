//! The account's email address: a 6-digit code sent to it, entered back to
//! verify it. A verified address is unique among accounts and can log in.

use super::audit::{Owner, beside};
use crate::audit::{Event, Kind};
use crate::credentials::{Email, Username};
use crate::mail::{self, MAX_CODE_ATTEMPTS, MailError, MailSettings, Mailer};
use crate::store::{
    AccountStore, AuditStore, Change, EmailCode, EmailStore, SessionStore, StoreError, User, Verification,
};
use crate::token::AccessClaims;

/// Why an address was not set or verified.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// Another account holds the address verified.
    #[error("the address is another account's")]
    Taken,
    /// The hour's mails to this account or address are spent.
    #[error("too many mails; retry in {retry_after} s")]
    Limited { retry_after: u64 },
    /// Wrong, expired, used, voided, or no code at all.
    #[error("invalid code")]
    InvalidCode,
    /// The token's user no longer exists, its session has ended (logout, a
    /// password change or reset), or the user changed under the request.
    #[error("the account or session of this token is gone")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// Sends a code for `email` to the account of `claims` (a new code voids the last).
pub async fn request_verification<S: EmailStore + AccountStore + SessionStore>(
    store: &S,
    mailer: &impl Mailer,
    settings: &MailSettings,
    claims: &AccessClaims,
    email: &Email,
    now: u64,
) -> Result<(), EmailError> {
    let (user, live) = tokio::join!(super::account::account(store, claims), live_session(store, claims, now));
    let user = user.map_err(|e| match e {
        super::AccountError::Store(e) => EmailError::Store(e),
        _ => EmailError::Gone,
    })?;
    live?;
    send_code(store, mailer, settings, &user, email, now).await
}

/// The session of `claims` is live (`sessions::is_live`): the address is
/// how the account is recovered.
async fn live_session<S: SessionStore>(store: &S, claims: &AccessClaims, now: u64) -> Result<(), EmailError> {
    match super::sessions::is_live(store, claims, now).await? {
        true => Ok(()),
        false => Err(EmailError::Gone),
    }
}

/// Sends a verification code for `email` to `user`: refused if another
/// account holds the address, or past the hour's mails; the code is stored
/// (hashed) before it is sent and taken back if it could not be.
pub(super) async fn send_code<S: EmailStore>(
    store: &S,
    mailer: &impl Mailer,
    settings: &MailSettings,
    user: &User,
    email: &Email,
    now: u64,
) -> Result<(), EmailError> {
    if store.email_owner(email).await?.is_some_and(|(id, _)| id != user.id) {
        return Err(EmailError::Taken);
    }
    let username = Username::parse(&user.username).map_err(|_| EmailError::Gone)?;
    if !store.count_mail(&username, email, now).await? {
        return Err(EmailError::Limited {
            retry_after: 3600 - now % 3600,
        });
    }
    let code = mail::new_code();
    let stored = EmailCode {
        email: email.as_str().to_owned(),
        code_hash: mail::code_hash(&user.id, &code),
        attempts: 0,
        expires_at: now.saturating_add(settings.code_ttl),
    };
    if store.put_email_code(user, &stored).await? == Change::Conflict {
        return Err(EmailError::Gone);
    }
    if let Err(error) = mailer.send(&settings.verification(email, &code)).await {
        // Nobody received this code: take it back. Should that fail too, the
        // code left is harmless: only its hash is stored, nobody knows it,
        // five guesses void it, it expires, and the next request replaces it.
        if let Err(e) = store.delete_email_code(&username, &stored).await {
            tracing::warn!(error = %e, "unsent verification code not deleted; it expires unused");
        }
        return Err(error.into());
    }
    tracing::info!("verification code sent");
    Ok(())
}

/// Verifies the pending address of the account of `claims` with `code`:
/// the code is used up, the address becomes the account's verified one.
/// A wrong code counts; the fifth voids it. The `email_verified` event, in
/// the caller's session, is written beside the verification.
pub async fn verify<S: EmailStore + SessionStore + AuditStore>(
    store: &S,
    claims: &AccessClaims,
    code: &str,
    now: u64,
) -> Result<User, EmailError> {
    let username = Username::parse(&claims.username).map_err(|_| EmailError::Gone)?;
    let (read, live) = tokio::join!(store.email_code(&username), live_session(store, claims, now));
    let (user, stored) = read?;
    live?;
    let user = user
        .filter(|u| u.id == claims.sub && !u.deleting)
        .ok_or(EmailError::Gone)?;
    let stored = stored
        .filter(|c| c.expires_at > now && c.attempts < MAX_CODE_ATTEMPTS)
        .ok_or(EmailError::InvalidCode)?;
    if !same(&mail::code_hash(&user.id, code), &stored.code_hash) {
        store.count_code_failure(&username, &stored).await?;
        tracing::info!(attempts = stored.attempts + 1, "wrong verification code");
        return Err(EmailError::InvalidCode);
    }
    let event = Event::new(Kind::EmailVerified, now).in_session(&claims.sid);
    match beside(store, Owner::of(&user), event, store.verify_email(&user, &stored)).await? {
        Verification::Verified => {
            tracing::info!("email verified");
            Ok(User {
                email: Some(stored.email),
                email_verified: true,
                ..user
            })
        }
        Verification::Taken => Err(EmailError::Taken),
        // Used by a parallel request, or replaced by a new code.
        Verification::Conflict => Err(EmailError::InvalidCode),
    }
}

/// Equal digests, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MemoryMailer;
    use crate::session::SessionKey;
    use crate::store::SessionStore;
    use crate::store::UserStore;
    use crate::store::memory::MemoryStore;
    use crate::testing::{access_token, dev_authority, lookup, password_session, user};

    fn settings() -> MailSettings {
        MailSettings::from_lookup(lookup(&[("EMAIL_FROM", "no-reply@example.com")]), false).unwrap()
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    /// A user in a store, logged in, and the claims of the token of that session.
    async fn alice(store: &MemoryStore, id: &str, name: &str) -> AccessClaims {
        store.create_user(&user(id, name)).await.unwrap();
        let tokens = dev_authority();
        let now = crate::clock::now();
        let session = password_session(&tokens, &user(id, name), now);
        store.create_session(&session, None).await.unwrap();
        let pair = crate::service::sessions::token_pair(&tokens, &session, now);
        tokens.verify_access(&pair.access_token, now).unwrap()
    }

    /// Asks for a code for `address` and returns the one mailed.
    async fn code_sent(
        store: &MemoryStore,
        mailer: &MemoryMailer,
        claims: &AccessClaims,
        address: &str,
        now: u64,
    ) -> String {
        request_verification(store, mailer, &settings(), claims, &email(address), now)
            .await
            .unwrap();
        last_code(mailer)
    }

    /// The code in the last mail sent.
    fn last_code(mailer: &MemoryMailer) -> String {
        let text = mailer.sent().last().expect("a mail").text.clone();
        text.split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == 6)
            .expect("a code")
            .to_owned()
    }

    #[tokio::test]
    async fn the_code_mailed_verifies_the_address_once() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        request_verification(&store, &mailer, &settings(), &claims, &email("Alice@Example.com"), now)
            .await
            .unwrap();
        assert_eq!(mailer.sent()[0].to, "Alice@Example.com");
        let pending = store.user_now("alice");
        assert_eq!(
            (pending.email.as_deref(), pending.email_verified),
            (Some("Alice@Example.com"), false)
        );
        let code = last_code(&mailer);
        let verified = verify(&store, &claims, &code, now).await.unwrap();
        assert_eq!(
            (verified.email.as_deref(), verified.email_verified),
            (Some("Alice@Example.com"), true)
        );
        assert_eq!(store.user_now("alice"), verified);
        assert!(matches!(
            verify(&store, &claims, &code, now).await,
            Err(EmailError::InvalidCode)
        ));
        let owner = store.email_owner(&email("alice@example.COM")).await.unwrap();
        assert_eq!(owner, Some(("u-1".to_owned(), "alice".to_owned())));
    }

    #[tokio::test]
    async fn a_verified_address_is_email_verified_in_the_callers_session_and_a_wrong_code_records_nothing() {
        use crate::store::AuditStore;
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        let code = code_sent(&store, &mailer, &claims, "a@example.com", now).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(verify(&store, &claims, wrong, now).await.is_err());
        assert!(store.events("alice", None, 100).await.unwrap().events.is_empty());
        let client = crate::session::Origin {
            ip: "198.51.100.7".into(),
            user_agent: "Firefox".into(),
        };
        crate::audit::from_client(client, verify(&store, &claims, &code, now))
            .await
            .unwrap();
        let events = store.events("alice", None, 100).await.unwrap().events;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(
            (event.kind, event.at, event.session_id.as_deref()),
            (Kind::EmailVerified, now, Some(claims.sid.as_str()))
        );
        assert_eq!(
            (event.ip.as_deref(), event.user_agent.as_deref()),
            (Some("198.51.100.7"), Some("Firefox"))
        );
    }

    #[tokio::test]
    async fn five_wrong_codes_void_the_code_even_for_the_right_one_after() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        let code = code_sent(&store, &mailer, &claims, "a@example.com", now).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..4 {
            assert!(matches!(
                verify(&store, &claims, wrong, now).await,
                Err(EmailError::InvalidCode)
            ));
        }
        assert!(matches!(
            verify(&store, &claims, wrong, now).await,
            Err(EmailError::InvalidCode)
        ));
        assert!(
            matches!(verify(&store, &claims, &code, now).await, Err(EmailError::InvalidCode)),
            "void after five wrong codes"
        );
        assert!(!store.user_now("alice").email_verified);
        let _ = verify(&store, &claims, wrong, now).await;
        let (_, stored) = store.email_code(&Username::parse("alice").unwrap()).await.unwrap();
        assert_eq!(stored.unwrap().attempts, 5, "a void code is not even checked");
    }

    #[tokio::test]
    async fn a_token_of_a_user_being_deleted_or_of_an_earlier_holder_of_the_name_is_gone() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        let code = code_sent(&store, &mailer, &claims, "a@example.com", now).await;
        let mut earlier = claims.clone();
        earlier.sub = "u-0".into();
        assert!(matches!(
            verify(&store, &earlier, &code, now).await,
            Err(EmailError::Gone)
        ));
        let again = request_verification(&store, &mailer, &settings(), &earlier, &email("a@example.com"), now).await;
        assert!(matches!(again, Err(EmailError::Gone)), "{again:?}");
        store.mark_deleting("alice");
        assert!(matches!(
            verify(&store, &claims, &code, now).await,
            Err(EmailError::Gone)
        ));
    }

    #[tokio::test]
    async fn a_token_whose_session_ended_can_neither_set_nor_verify_an_address() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        let code = code_sent(&store, &mailer, &claims, "a@example.com", now).await;
        store
            .revoke_session(&SessionKey::new("alice", &claims.sid), "u-1", now)
            .await
            .unwrap();
        let again = request_verification(&store, &mailer, &settings(), &claims, &email("b@example.com"), now).await;
        assert!(matches!(again, Err(EmailError::Gone)), "{again:?}");
        assert!(matches!(
            verify(&store, &claims, &code, now).await,
            Err(EmailError::Gone)
        ));
        let mut other = claims.clone();
        other.sid = "not-a-session".into();
        assert!(matches!(
            verify(&store, &other, &code, now).await,
            Err(EmailError::Gone)
        ));
        assert_eq!(mailer.sent().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_store_is_a_store_error_not_a_gone_account() {
        let store = MemoryStore::unreachable();
        let claims = dev_authority()
            .verify_access(
                &access_token(&dev_authority(), "u-1", "alice", crate::clock::now()),
                crate::clock::now(),
            )
            .unwrap();
        let now = crate::clock::now();
        let sent = request_verification(
            &store,
            &MemoryMailer::default(),
            &settings(),
            &claims,
            &email("a@example.com"),
            now,
        )
        .await;
        assert!(matches!(sent, Err(EmailError::Store(_))), "{sent:?}");
        assert!(matches!(
            verify(&store, &claims, "123456", now).await,
            Err(EmailError::Store(_))
        ));
    }

    #[test]
    fn digests_are_the_same_only_when_every_byte_is() {
        assert!(same("abcd", "abcd"));
        assert!(!same("abcd", "abce"));
        assert!(!same("ab", "ba"), "differences must not cancel out");
        assert!(!same("abc", "abcd"));
    }

    #[tokio::test]
    async fn four_wrong_codes_leave_the_right_one_working() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        let code = code_sent(&store, &mailer, &claims, "a@example.com", now).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..4 {
            let _ = verify(&store, &claims, wrong, now).await;
        }
        assert!(verify(&store, &claims, &code, now).await.is_ok());
    }

    #[tokio::test]
    async fn an_expired_code_is_refused() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        let settings = settings();
        let code = code_sent(&store, &mailer, &claims, "a@example.com", now).await;
        let later = now + settings.code_ttl;
        assert!(matches!(
            verify(&store, &claims, &code, later).await,
            Err(EmailError::InvalidCode)
        ));
        assert!(verify(&store, &claims, &code, later - 1).await.is_ok());
    }

    #[tokio::test]
    async fn an_address_verified_by_another_account_is_taken() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let alice_claims = alice(&store, "u-1", "alice").await;
        let bob_claims = alice(&store, "u-2", "bob").await;
        let now = crate::clock::now();
        // Both ask for the same address; bob verifies first.
        request_verification(
            &store,
            &mailer,
            &settings(),
            &alice_claims,
            &email("x@example.com"),
            now,
        )
        .await
        .unwrap();
        let alice_code = last_code(&mailer);
        request_verification(&store, &mailer, &settings(), &bob_claims, &email("X@example.com"), now)
            .await
            .unwrap();
        verify(&store, &bob_claims, &last_code(&mailer), now).await.unwrap();
        assert!(matches!(
            verify(&store, &alice_claims, &alice_code, now).await,
            Err(EmailError::Taken)
        ));
        let again = request_verification(
            &store,
            &mailer,
            &settings(),
            &alice_claims,
            &email("x@EXAMPLE.com"),
            now,
        )
        .await;
        assert!(matches!(again, Err(EmailError::Taken)));
    }

    #[tokio::test]
    async fn a_new_verified_address_frees_the_old_one() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        for address in ["old@example.com", "new@example.com"] {
            request_verification(&store, &mailer, &settings(), &claims, &email(address), now)
                .await
                .unwrap();
            if address == "new@example.com" {
                // Until the new one is verified, the old one stays the account's.
                assert_eq!(store.user_now("alice").email.as_deref(), Some("old@example.com"));
            }
            let verified = verify(&store, &claims, &last_code(&mailer), now).await.unwrap();
            assert_eq!(verified.email.as_deref(), Some(address), "the account as it is now");
        }
        assert_eq!(store.email_owner(&email("old@example.com")).await.unwrap(), None);
        assert!(store.email_owner(&email("new@example.com")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn three_mails_an_hour_per_account_then_a_wait_until_the_next_hour() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let claims = alice(&store, "u-1", "alice").await;
        let hour = 1_800_000_000 / 3600 * 3600;
        for i in 0..3 {
            let address = email(&format!("a{i}@example.com"));
            request_verification(&store, &mailer, &settings(), &claims, &address, hour + i)
                .await
                .unwrap();
        }
        let fourth = request_verification(
            &store,
            &mailer,
            &settings(),
            &claims,
            &email("d@example.com"),
            hour + 600,
        )
        .await;
        assert!(
            matches!(fourth, Err(EmailError::Limited { retry_after: 3000 })),
            "{fourth:?}"
        );
        assert_eq!(mailer.sent().len(), 3);
        let next_hour = request_verification(
            &store,
            &mailer,
            &settings(),
            &claims,
            &email("d@example.com"),
            hour + 3600,
        )
        .await;
        assert!(next_hour.is_ok());
    }

    #[tokio::test]
    async fn three_mails_an_hour_per_address_whatever_the_account() {
        let (store, mailer) = (MemoryStore::default(), MemoryMailer::default());
        let now = 1_800_000_000;
        for (i, name) in ["ann", "ben", "cat", "dan"].iter().enumerate() {
            let claims = alice(&store, &format!("u-{i}"), name).await;
            let sent =
                request_verification(&store, &mailer, &settings(), &claims, &email("victim@example.com"), now).await;
            assert_eq!(sent.is_ok(), i < 3, "{name}: {sent:?}");
        }
    }

    #[tokio::test]
    async fn an_unsent_code_is_taken_back_and_the_error_says_so() {
        let store = MemoryStore::default();
        let claims = alice(&store, "u-1", "alice").await;
        let now = crate::clock::now();
        let sent = request_verification(
            &store,
            &MemoryMailer::unreachable(),
            &settings(),
            &claims,
            &email("a@example.com"),
            now,
        )
        .await;
        assert!(matches!(sent, Err(EmailError::Mail(_))), "{sent:?}");
        let (_, code) = store.email_code(&Username::parse("alice").unwrap()).await.unwrap();
        assert_eq!(code, None, "no code nobody received");
    }
}
