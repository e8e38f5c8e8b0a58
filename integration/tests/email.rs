//! Email verification and password reset: end to end over HTTP with the mail
//! read back from aws-ses-v2-local; the store's single-use and uniqueness
//! rules under concurrency on DynamoDB Local; SES and DynamoDB faults; and
//! the time a forgot-password request takes, known account or not.

use integration::{
    Api, Fault, FaultProxy, as_word, code_mailed_to, fresh_store, mails_to, new_address, request, required_env,
    reset_token_mailed_to, status_and_json,
};
use reqwest::Method;
use serde_json::{Value, json};
use shared::credentials::{Email, Username};
use shared::mail::ses::SesMailer;
use shared::mail::{MAILS_PER_HOUR, code_hash, password_fingerprint, reset_token_hash};
use shared::service::register::PasswordRules;
use shared::store::dynamo::{DynamoStore, local_client};
use shared::store::{AccountStore, Change, EmailCode, EmailStore, ResetToken, SessionStore, UserStore, Verification};
use shared::testing::{dev_authority, password_session, user, user_with_password};
use shared::{Outbox, now};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

/// Registers a fresh user with `email`; returns the username.
async fn register_with(api: &Api, email: &str) -> String {
    let username = format!("user-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let r = api
        .post(
            "/register",
            json!({"username": username, "password": PASSWORD, "email": email}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    username
}

async fn login(api: &Api, who: Value) -> integration::Reply {
    let mut body = who;
    body["password"] = PASSWORD.into();
    api.post("/login", body).await
}

async fn verify(api: &Api, access: &str, code: &str) -> integration::Reply {
    api.with_bearer(
        Method::POST,
        "/account/email/verify",
        Some(access),
        Some(json!({ "code": code })),
    )
    .await
}

async fn set_email(api: &Api, access: &str, email: &str) -> integration::Reply {
    api.with_bearer(
        Method::POST,
        "/account/email",
        Some(access),
        Some(json!({ "email": email })),
    )
    .await
}

/// A fresh user registered with a fresh address, verified; (username, address, access token).
async fn verified_user(api: &Api) -> (String, String, String) {
    let address = new_address();
    let username = register_with(api, &address).await;
    let access = login(api, json!({ "username": username })).await.field("access_token");
    let code = code_mailed_to(&address).await;
    let r = verify(api, &access, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    (username, address, access)
}

fn a_wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

#[tokio::test]
async fn a_user_verifies_an_email_logs_in_with_it_and_resets_a_forgotten_password_by_mail() {
    let api = Api::from_env();
    let address = new_address().replace('u', "U");
    let username = register_with(&api, &address).await;
    let first = login(&api, json!({ "username": username })).await;
    let access = first.field("access_token");
    let code = code_mailed_to(&address).await;

    let wrong = verify(&api, &access, a_wrong(&code)).await;
    assert_eq!((wrong.status, wrong.field("error").as_str()), (400, "invalid_code"));
    let r = login(&api, json!({ "email": address })).await;
    assert_eq!(
        (r.status, r.field("error").as_str()),
        (401, "invalid_credentials"),
        "not verified yet"
    );

    let r = verify(&api, &access, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json["email"].as_str(), r.json["email_verified"].as_bool()),
        (Some(address.as_str()), Some(true))
    );
    let account = api.get("/account", Some(&access)).await;
    assert_eq!(account.json["email_verified"], true, "{}", account.text);

    let by_email = login(&api, json!({ "email": address.to_lowercase() })).await;
    assert_eq!(by_email.status, 200, "{}", by_email.text);

    let forgot = api.post("/password/forgot", json!({ "email": address })).await;
    assert_eq!(forgot.status, 202, "{}", forgot.text);
    let token = reset_token_mailed_to(&address).await;
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    let new_password = "a brand new horse battery";
    let reset = api
        .post(
            "/password/reset",
            json!({ "token": token, "new_password": new_password }),
        )
        .await;
    assert_eq!(reset.status, 204, "{}", reset.text);

    for session in [&first, &by_email] {
        let r = api.refresh(&session.field("refresh_token")).await;
        assert_eq!(r.status, 401, "every session ended: {}", r.text);
    }
    let old = login(&api, json!({ "username": username })).await;
    assert_eq!(old.status, 401);
    let new = api
        .post("/login", json!({ "email": address, "password": new_password }))
        .await;
    assert_eq!(new.status, 200, "{}", new.text);
    let again = api
        .post("/password/reset", json!({ "token": token, "new_password": PASSWORD }))
        .await;
    assert_eq!((again.status, again.field("error").as_str()), (400, "invalid_token"));
}

#[tokio::test]
async fn the_code_mail_holds_the_code_as_its_only_run_of_six_digits_and_the_reset_link_uses_app_url() {
    let api = Api::from_env();
    let (_, address, _) = verified_user(&api).await;
    let mails = mails_to(&address).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["from"], "no-reply@example.com");
    api.post("/password/forgot", json!({ "email": address })).await;
    let text = integration::last_mail_to(&address).await;
    let link = format!("{}/reset-password#token=", integration::required_env("E2E_APP_URL"));
    assert!(text.contains(&link), "{text}");
}

#[tokio::test]
async fn an_unknown_or_unverified_email_cannot_log_in() {
    let api = Api::from_env();
    let address = new_address();
    register_with(&api, &address).await;
    for who in [address, new_address()] {
        let r = login(&api, json!({ "email": who })).await;
        assert_eq!((r.status, r.field("error").as_str()), (401, "invalid_credentials"));
    }
}

#[tokio::test]
async fn an_address_verified_by_one_account_is_taken_until_that_account_is_deleted() {
    let api = Api::from_env();
    let (_, address, access) = verified_user(&api).await;
    let other = api.logged_in().await.field("access_token");
    let r = set_email(&api, &other, &address.to_uppercase()).await;
    assert_eq!((r.status, r.field("error").as_str()), (409, "email_taken"));
    // Registration answers as for a free address (it tells nobody who holds
    // one); the owner gets a notice, and the new account never the address.
    let mails_before = integration::mails_to(&address).await.len();
    let newcomer = format!("x{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let r = api
        .post(
            "/register",
            json!({"username": newcomer, "password": PASSWORD, "email": address}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mails = integration::mails_to(&address).await;
    assert_eq!(mails.len(), mails_before + 1);
    let notice = &mails[mails.len() - 1];
    assert_eq!(notice["subject"], "Someone registered with your address");
    let text = notice["body"]["text"].as_str().unwrap_or_default();
    assert!(
        !text.chars().any(|c| c.is_ascii_digit()),
        "no code in the notice: {text}"
    );
    let newcomer_access = api
        .post("/login", json!({"username": newcomer, "password": PASSWORD}))
        .await
        .field("access_token");
    let account = api
        .with_bearer(Method::GET, "/account", Some(&newcomer_access), None)
        .await;
    assert_eq!(account.json["email_verified"], false, "{}", account.text);

    let r = api
        .with_bearer(
            Method::DELETE,
            "/account",
            Some(&access),
            Some(json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = set_email(&api, &other, &address).await;
    assert_eq!(r.status, 202, "free again: {}", r.text);
    let r = verify(&api, &other, &code_mailed_to(&address).await).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn after_logout_the_access_token_can_no_longer_touch_the_address() {
    let api = Api::from_env();
    let (_, _, access) = verified_user(&api).await;
    let pair = api.logged_in().await;
    let r = api
        .post("/logout", json!({ "refresh_token": pair.field("refresh_token") }))
        .await;
    assert_eq!(r.status, 204);
    let r = set_email(&api, &pair.field("access_token"), &new_address()).await;
    assert_eq!(
        (r.status, r.field("error").as_str()),
        (401, "invalid_token"),
        "{}",
        r.text
    );
    assert_eq!(
        set_email(&api, &access, &new_address()).await.status,
        202,
        "another session is unaffected"
    );
}

#[tokio::test]
async fn five_wrong_codes_void_the_code() {
    let api = Api::from_env();
    let address = new_address();
    let username = register_with(&api, &address).await;
    let access = login(&api, json!({ "username": username })).await.field("access_token");
    let code = code_mailed_to(&address).await;
    for _ in 0..5 {
        let r = verify(&api, &access, a_wrong(&code)).await;
        assert_eq!((r.status, r.field("error").as_str()), (400, "invalid_code"));
    }
    let r = verify(&api, &access, &code).await;
    assert_eq!((r.status, r.field("error").as_str()), (400, "invalid_code"), "void");
    let account = api.get("/account", Some(&access)).await;
    assert_eq!(account.json["email_verified"], false);
}

#[tokio::test]
async fn forgot_answers_the_same_for_unknown_unverified_and_verified_accounts() {
    let api = Api::from_env();
    let (verified, verified_address, _) = verified_user(&api).await;
    let unverified_address = new_address();
    let unverified = register_with(&api, &unverified_address).await;
    let mut answers = Vec::new();
    for who in [
        json!({ "username": verified }),
        json!({ "email": verified_address }),
        json!({ "username": unverified }),
        json!({ "email": unverified_address }),
        json!({ "username": "nobody-at-all" }),
        json!({ "email": new_address() }),
    ] {
        let r = api.post("/password/forgot", who).await;
        answers.push((r.status, r.text));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 202);
    assert_eq!(
        mails_to(&unverified_address).await.len(),
        1,
        "only its verification code"
    );
    assert_eq!(mails_to(&verified_address).await.len(), 3, "its code and two links");
}

#[tokio::test]
async fn two_parallel_resets_with_one_token_one_wins() {
    let api = Api::from_env();
    let (_, address, _) = verified_user(&api).await;
    api.post("/password/forgot", json!({ "email": address })).await;
    let token = reset_token_mailed_to(&address).await;
    let reset = |password: &'static str| {
        let (api, token) = (api.clone(), token.clone());
        async move {
            api.post("/password/reset", json!({ "token": token, "new_password": password }))
                .await
                .status
        }
    };
    let (a, b) = tokio::join!(reset("first new password"), reset("second new password"));
    let mut statuses = [a, b];
    statuses.sort();
    assert_eq!(statuses, [204, 400]);
}

#[tokio::test]
async fn mail_routes_answer_only_post_and_refuse_bad_bodies() {
    let api = Api::from_env();
    for path in [
        "/password/forgot",
        "/password/reset",
        "/account/email",
        "/account/email/verify",
    ] {
        let r = api.get(path, None).await;
        assert_eq!((r.status, r.header("allow")), (405, "POST"), "{path}");
    }
    let r = api.post("/password/forgot", json!({ "email": "not an address" })).await;
    assert_eq!((r.status, r.field("error").as_str()), (400, "invalid_request"));
    let r = api
        .send(
            Method::POST,
            "/password/reset",
            &[("content-type", b"application/json")],
            Some(b"[1, 2]".to_vec()),
        )
        .await;
    assert_eq!((r.status, r.field("error").as_str()), (400, "invalid_request"));
    let r = api
        .post(
            "/password/reset",
            json!({ "token": "x".repeat(5000), "new_password": PASSWORD }),
        )
        .await;
    assert_eq!((r.status, r.field("error").as_str()), (400, "invalid_token"));
    let r = set_email(&api, "not-a-token", &new_address()).await;
    assert_eq!(r.status, 401);
}

// ---- The store on DynamoDB Local -------------------------------------------

fn mail(address: &str) -> Email {
    Email::parse(address).unwrap()
}

/// A code for `address` stored for `user` (verification skipped past the mail).
fn code_for(user: &shared::store::User, address: &str, code: &str) -> EmailCode {
    EmailCode {
        email: address.to_owned(),
        code_hash: code_hash(&user.id, code),
        attempts: 0,
        expires_at: now() + 900,
    }
}

#[tokio::test]
async fn a_user_keeps_its_address_and_verification_through_the_store() {
    let (store, _) = fresh_store().await;
    let alice = user("u-1", "Alice");
    store.create_user(&alice).await.unwrap();
    let code = code_for(&alice, "Alice@Example.com", "123456");
    assert_eq!(store.put_email_code(&alice, &code).await.unwrap(), Change::Done);
    let name = Username::parse("alice").unwrap();
    let (read, stored) = store.email_code(&name).await.unwrap();
    let read = read.unwrap();
    assert_eq!(
        (read.email.as_deref(), read.email_verified),
        (Some("Alice@Example.com"), false)
    );
    assert_eq!(stored.as_ref(), Some(&code));
    assert_eq!(store.verify_email(&read, &code).await.unwrap(), Verification::Verified);
    let verified = store.user(&name).await.unwrap().unwrap();
    assert_eq!(verified.verified_email().as_deref(), Some("alice@example.com"));
    let owner = store
        .email_owner(&Email::parse("ALICE@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(owner, Some(("u-1".to_owned(), "Alice".to_owned())));
    assert_eq!(store.email_code(&name).await.unwrap().1, None, "the code is used up");
    // Login still reads the user, whatever else lives in the partition now.
    store
        .count_mail(&name, &mail("alice@example.com"), now())
        .await
        .unwrap();
    assert_eq!(store.login_record(&name).await.unwrap().user, Some(verified.clone()));
    assert_eq!(store.delete_user(&verified).await.unwrap(), Change::Done);
    let owner = store
        .email_owner(&Email::parse("alice@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(owner, None, "the address is free with the user gone");
}

#[tokio::test]
async fn a_deletion_that_read_the_user_before_a_verification_went_through_deletes_nothing() {
    let (store, _) = fresh_store().await;
    let alice = user("u-1", "alice");
    store.create_user(&alice).await.unwrap();
    let first = code_for(&alice, "a@example.com", "111111");
    store.put_email_code(&alice, &first).await.unwrap();
    store.verify_email(&alice, &first).await.unwrap();
    let name = Username::parse("alice").unwrap();
    let as_read = store.user(&name).await.unwrap().unwrap();
    // Meanwhile, a verification of another address goes through.
    let second = code_for(&alice, "b@example.com", "222222");
    store.put_email_code(&as_read, &second).await.unwrap();
    assert_eq!(
        store.verify_email(&as_read, &second).await.unwrap(),
        Verification::Verified
    );
    assert_eq!(store.delete_user(&as_read).await.unwrap(), Change::Conflict);
    let now_verified = store.user(&name).await.unwrap().unwrap();
    assert_eq!(now_verified.verified_email().as_deref(), Some("b@example.com"));
    let owner = |raw| {
        let store = store.clone();
        async move { store.email_owner(&mail(raw)).await.unwrap() }
    };
    assert_eq!(owner("b@example.com").await.map(|o| o.0).as_deref(), Some("u-1"));
    assert_eq!(owner("a@example.com").await, None);
    // Read again, the deletion goes through and frees the address.
    assert_eq!(store.delete_user(&now_verified).await.unwrap(), Change::Done);
    assert_eq!(owner("b@example.com").await, None);
}

#[tokio::test]
async fn a_wrong_code_counts_and_the_fifth_voids_it() {
    let (store, _) = fresh_store().await;
    let alice = user("u-1", "alice");
    store.create_user(&alice).await.unwrap();
    let code = code_for(&alice, "a@example.com", "123456");
    store.put_email_code(&alice, &code).await.unwrap();
    let name = Username::parse("alice").unwrap();
    for _ in 0..5 {
        store.count_code_failure(&name, &code).await.unwrap();
    }
    let (read, stored) = store.email_code(&name).await.unwrap();
    assert_eq!(stored.as_ref().map(|c| c.attempts), Some(5));
    assert_eq!(
        store.verify_email(&read.unwrap(), &code).await.unwrap(),
        Verification::Conflict,
        "void: the store refuses it too"
    );
}

#[tokio::test]
async fn of_many_accounts_verifying_one_address_at_once_exactly_one_owns_it() {
    let (store, _) = fresh_store().await;
    let mut users = Vec::new();
    for i in 0..8 {
        let u = user(&format!("u-{i}"), &format!("user{i}"));
        store.create_user(&u).await.unwrap();
        let code = code_for(&u, "Shared@Example.com", "123456");
        store.put_email_code(&u, &code).await.unwrap();
        let read = store
            .user(&Username::parse(&u.username).unwrap())
            .await
            .unwrap()
            .unwrap();
        users.push((read, code));
    }
    let outcomes = futures_join(users.iter().map(|(u, c)| store.verify_email(u, c))).await;
    let verified = outcomes.iter().filter(|o| **o == Verification::Verified).count();
    let taken = outcomes.iter().filter(|o| **o == Verification::Taken).count();
    assert_eq!((verified, taken), (1, 7), "{outcomes:?}");
}

#[tokio::test]
async fn one_code_used_many_times_at_once_verifies_once() {
    let (store, _) = fresh_store().await;
    let alice = user("u-1", "alice");
    store.create_user(&alice).await.unwrap();
    let code = code_for(&alice, "a@example.com", "123456");
    store.put_email_code(&alice, &code).await.unwrap();
    let outcomes = futures_join((0..8).map(|_| store.verify_email(&alice, &code))).await;
    let verified = outcomes.iter().filter(|o| **o == Verification::Verified).count();
    assert_eq!(verified, 1, "{outcomes:?}");
}

#[tokio::test]
async fn one_reset_token_used_many_times_at_once_resets_once() {
    let (store, _) = fresh_store().await;
    let alice = user_with_password("u-1", "alice", PASSWORD).await;
    store.create_user(&alice).await.unwrap();
    let session = password_session(&dev_authority(), &alice, now());
    store.create_session(&session, None).await.unwrap();
    let token = ResetToken {
        token_hash: reset_token_hash("the-token"),
        username: "alice".into(),
        user_id: "u-1".into(),
        password_fingerprint: password_fingerprint(&alice.password_hash),
        expires_at: now() + 900,
    };
    store.put_reset_token(&token).await.unwrap();
    assert_eq!(
        store.reset_token(&token.token_hash).await.unwrap().as_ref(),
        Some(&token)
    );
    let revoke = [session.key()];
    let outcomes = futures_join(
        (0..8).map(|i| store.reset_password(&alice, &token, if i % 2 == 0 { "hash-a" } else { "hash-b" }, &revoke)),
    )
    .await;
    let done = outcomes.iter().filter(|o| **o == Change::Done).count();
    assert_eq!(done, 1, "{outcomes:?}");
    assert_eq!(store.reset_token(&token.token_hash).await.unwrap(), None, "consumed");
    assert!(store.session(&session.key()).await.unwrap().unwrap().revoked);
}

#[tokio::test]
async fn mails_stop_at_the_hourly_limit_per_account_and_per_address() {
    let (store, _) = fresh_store().await;
    let hour = now() / 3600 * 3600;
    let (ann, ben) = (Username::parse("ann").unwrap(), Username::parse("ben").unwrap());
    for i in 0..MAILS_PER_HOUR {
        assert!(
            store
                .count_mail(&ann, &mail(&format!("a{i}@example.com")), hour)
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .count_mail(&ann, &mail("fresh@example.com"), hour + 10)
            .await
            .unwrap(),
        "per account"
    );
    assert!(
        store
            .count_mail(&ann, &mail("fresh@example.com"), hour + 3600)
            .await
            .unwrap(),
        "next hour"
    );
    for _ in 1..MAILS_PER_HOUR {
        assert!(
            store
                .count_mail(&ben, &mail("Fresh+tag@Example.com"), hour + 3600)
                .await
                .unwrap()
        );
    }
    let cat = Username::parse("cat").unwrap();
    assert!(
        !store
            .count_mail(&cat, &mail("FRESH@example.com"), hour + 3600)
            .await
            .unwrap(),
        "per address"
    );
    // Refused as a whole: cat's own count did not move.
    for i in 0..MAILS_PER_HOUR {
        assert!(
            store
                .count_mail(&cat, &mail(&format!("c{i}@example.com")), hour + 3600)
                .await
                .unwrap()
        );
    }
    // Many at once on one address: exactly the limit gets through.
    let outcomes = futures_join((0..8).map(|i| {
        let name = Username::parse(&format!("racer{i}")).unwrap();
        let store = store.clone();
        async move { store.count_mail(&name, &mail("race@example.com"), hour).await }
    }))
    .await;
    let sent = outcomes.iter().filter(|sent| **sent).count();
    assert_eq!(sent, MAILS_PER_HOUR as usize, "{outcomes:?}");
}

/// Runs futures concurrently and collects their outputs, unwrapping store errors.
async fn futures_join<T, F>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = Result<T, shared::store::StoreError>>,
{
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    for result in join_all(handles).await {
        out.push(result.expect("the store answers"));
    }
    out
}

/// Polls every future to completion at once, in this task (the store's futures borrow it).
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("ready")).collect()
}

// ---- Faults -----------------------------------------------------------------

/// A stand-in SES that answers every call with SES's throttling error.
async fn throttling_ses() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let body = r#"{"message":"Maximum sending rate exceeded."}"#;
                let answer = format!(
                    "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
                     x-amzn-errortype: TooManyRequestsException\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

/// Mail through SES at `endpoint`, with the dev settings.
async fn outbox_at(endpoint: &str) -> Outbox<SesMailer> {
    let settings = shared::testing::outbox().settings;
    Outbox {
        mailer: SesMailer::local(endpoint, settings.from.clone()).await,
        settings,
    }
}

/// How many items of `table` have a partition key starting with `prefix`.
async fn items_starting(client: &aws_sdk_dynamodb::Client, table: &str, prefix: &str) -> usize {
    let out = client.scan().table_name(table).send().await.unwrap();
    out.items()
        .iter()
        .filter(|i| {
            i["pk"].as_s().is_ok_and(|pk| pk.starts_with(prefix)) || i["sk"].as_s().is_ok_and(|sk| sk == prefix)
        })
        .count()
}

/// A verified user in `store`: alice, with alice@example.com.
async fn verified_alice(store: &DynamoStore) -> shared::store::User {
    let alice = user_with_password("u-1", "alice", PASSWORD).await;
    store.create_user(&alice).await.unwrap();
    shared::testing::verify_address(store, &alice, "alice@example.com").await;
    store.user(&Username::parse("alice").unwrap()).await.unwrap().unwrap()
}

fn unavailable(answer: &(u16, Value)) {
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert_eq!(answer.1["error"], "unavailable");
    let text = answer.1.to_string();
    for leak in ["SES", "ses", "TooManyRequests", "rate", "connection"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

#[tokio::test]
async fn ses_unreachable_or_throttling_is_503_and_leaves_no_user_code_or_token_behind() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for endpoint in [closed, throttling_ses().await] {
        let (store, client) = fresh_store().await;
        let outbox = outbox_at(&endpoint).await;
        let started = Instant::now();

        let body = json!({"username": "newbie", "password": PASSWORD, "email": "newbie@example.com"});
        let answer = status_and_json(
            &register::handle(
                &store,
                &outbox,
                &PasswordRules::default(),
                request("POST", "/register", body),
            )
            .await
            .unwrap(),
        );
        unavailable(&answer);
        let record = store.login_record(&Username::parse("newbie").unwrap()).await.unwrap();
        assert_eq!(record.user, None, "{endpoint}: nobody left registered");

        let alice = verified_alice(&store).await;
        let state = email::State {
            keys: shared::key_cache::KeyCache::ready(dev_authority().into_verifier()),
            store: store.clone(),
        };
        let session = password_session(&dev_authority(), &alice, now());
        store.create_session(&session, None).await.unwrap();
        let access = shared::service::sessions::token_pair(&dev_authority(), &session, now()).access_token;
        let req = integration::bearer_request(
            "POST",
            "/account/email",
            &access,
            Some(json!({"email": "new@example.com"})),
        );
        unavailable(&status_and_json(&email::handle(&state, &outbox, req).await.unwrap()));
        assert_eq!(
            items_starting(&client, store.table(), "EMAIL_CODE").await,
            0,
            "{endpoint}: no code"
        );

        let req = request("POST", "/password/forgot", json!({"email": "alice@example.com"}));
        unavailable(&status_and_json(
            &password_reset::handle(&store, &outbox, &PasswordRules::default(), req)
                .await
                .unwrap(),
        ));
        assert_eq!(
            items_starting(&client, store.table(), "RESET#").await,
            0,
            "{endpoint}: no token"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }
}

#[tokio::test]
async fn dynamodb_unreachable_is_503_for_forgot_and_reset() {
    let (direct, _) = fresh_store().await;
    verified_alice(&direct).await;
    let proxy = FaultProxy::start().await;
    let store = DynamoStore::new(local_client(&proxy.url).await, direct.table());
    let outbox = outbox_at(&required_env("SES_ENDPOINT")).await;
    proxy.set(Fault::Refuse);
    let forgot = request("POST", "/password/forgot", json!({"username": "alice"}));
    unavailable(&status_and_json(
        &password_reset::handle(&store, &outbox, &PasswordRules::default(), forgot)
            .await
            .unwrap(),
    ));
    let reset = request(
        "POST",
        "/password/reset",
        json!({"token": "t".repeat(43), "new_password": PASSWORD}),
    );
    unavailable(&status_and_json(
        &password_reset::handle(&store, &outbox, &PasswordRules::default(), reset)
            .await
            .unwrap(),
    ));
}

// ---- Time -------------------------------------------------------------------

#[tokio::test]
async fn forgot_takes_the_same_time_for_a_verified_account_and_an_unknown_one() {
    let (store, _) = fresh_store().await;
    let outbox = outbox_at(&required_env("SES_ENDPOINT")).await;
    let (verified, unknown, addresses) = integration::forgot_timing(&store, &outbox, 15).await;
    for address in &addresses {
        assert_eq!(mails_to(address).await.len(), 1, "a link went to {address}");
    }
    let ratio = unknown.as_secs_f64() / verified.as_secs_f64();
    println!("median forgot: verified {verified:?}, unknown {unknown:?}, ratio {ratio:.3}");
    assert!(
        (0.9..=1.1).contains(&ratio),
        "unknown {unknown:?} vs verified {verified:?}: ratio {ratio:.3}"
    );
}

// ---- Logs -------------------------------------------------------------------

#[tokio::test]
async fn no_code_token_or_link_reaches_the_functions_log() {
    let api = Api::from_env();
    let address = new_address();
    let username = register_with(&api, &address).await;
    let access = login(&api, json!({ "username": username })).await.field("access_token");
    let code = code_mailed_to(&address).await;
    assert_eq!(verify(&api, &access, a_wrong(&code)).await.status, 400);
    assert_eq!(verify(&api, &access, &code).await.status, 200);
    api.post("/password/forgot", json!({ "email": address })).await;
    let token = reset_token_mailed_to(&address).await;
    let r = api
        .post(
            "/password/reset",
            json!({ "token": token, "new_password": "a brand new horse battery" }),
        )
        .await;
    assert_eq!(r.status, 204);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = std::fs::read_to_string(required_env("E2E_LOG_FILE")).expect("the functions' log");
    assert!(
        logs.contains("verification code sent") && logs.contains("password reset"),
        "the functions' log"
    );
    assert!(!as_word(&logs, &code), "the code appears in the logs");
    for (what, value) in [
        ("reset token", token.clone()),
        ("reset token hash", reset_token_hash(&token)),
        ("reset link", "reset-password#token".to_owned()),
        ("verification mail", "Your verification code".to_owned()),
    ] {
        assert!(!logs.contains(&value), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn a_session_is_written_only_while_the_password_is_the_one_checked() {
    let (store, _) = fresh_store().await;
    let alice = user_with_password("u-1", "alice", PASSWORD).await;
    store.create_user(&alice).await.unwrap();
    let now = now();
    let session = || password_session(&dev_authority(), &alice, now);
    assert_eq!(
        store.create_session(&session(), Some(&alice)).await.unwrap(),
        Change::Done
    );
    // A reset (or change) goes through between the password check and the session write.
    assert_eq!(
        store.change_password(&alice, "a new hash", &[]).await.unwrap(),
        Change::Done
    );
    let late = session();
    assert_eq!(
        store.create_session(&late, Some(&alice)).await.unwrap(),
        Change::Conflict
    );
    assert_eq!(store.session(&late.key()).await.unwrap(), None, "nothing written");
    let gone = user("u-2", "nobody");
    assert_eq!(
        store
            .create_session(&password_session(&dev_authority(), &gone, now), Some(&gone))
            .await
            .unwrap(),
        Change::Conflict,
        "nor for a user who is not there"
    );
}
