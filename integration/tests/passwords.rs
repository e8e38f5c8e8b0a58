//! New passwords end to end over HTTP through the running stack: the strength
//! rule (zxcvbn, the account's name as a guessable word) and the
//! breached-password check against the project's range server
//! (`integration/src/bin/pwned.rs`, which `make test` starts and points
//! `BREACHED_PASSWORD_ENDPOINT` at, blocking), at register, password change
//! and reset. The range of `Slow&Steady-Tortoise-2024` is answered after 5 s:
//! past the check's deadline (800 ms), the password goes through.
//!
//! The stack runs in one mode, `block`; `warn` is shown by the register
//! function in process, on DynamoDB Local and against the same range server.

use integration::{
    Api, Reply, code_mailed_to, fresh_store, new_address, request, required_env, reset_token_mailed_to, status_and_json,
};
use reqwest::Method;
use serde_json::{Value, json};
use shared::breached::BreachedCheck;
use shared::credentials::Username;
use shared::password::{Verdict, verify};
use shared::service::register::PasswordRules;
use shared::store::UserStore;
use std::time::{Duration, Instant};

const GOOD: &str = "correct horse battery staple";
/// Scores 4 with zxcvbn, and is in the range server's data set.
const BREACHED: &str = "BreachedButStrong#2024";
/// Scores 4, in the data set, and its range is always answered too late.
const SLOW: &str = "Slow&Steady-Tortoise-2024";

fn fresh_name() -> String {
    format!("zorb{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn assert_refused(r: &Reply, code: &str) {
    assert_eq!((r.status, r.json["error"].as_str()), (400, Some(code)), "{}", r.text);
    assert!(r.json["message"].as_str().is_some_and(|m| m.len() > 10), "{}", r.text);
}

async fn register(api: &Api, username: &str, password: &str, email: Option<&str>) -> Reply {
    let mut body = json!({"username": username, "password": password});
    if let Some(email) = email {
        body["email"] = email.into();
    }
    api.post("/register", body).await
}

async fn login(api: &Api, username: &str, password: &str) -> Reply {
    api.post("/login", json!({"username": username, "password": password}))
        .await
}

async fn change(api: &Api, access: &str, current: &str, new: &str) -> Reply {
    let body = json!({"current_password": current, "new_password": new});
    api.with_bearer(Method::POST, "/account/password", Some(access), Some(body))
        .await
}

#[tokio::test]
async fn a_common_password_is_400_weak_password_with_the_estimators_advice() {
    let api = Api::from_env();
    let name = fresh_name();
    let r = register(&api, &name, "password123", None).await;
    assert_refused(&r, "weak_password");
    assert!(
        r.json["message"].as_str().unwrap().contains("common password"),
        "{}",
        r.text
    );
    let r = login(&api, &name, "password123").await;
    assert_eq!(r.status, 401, "nobody was registered: {}", r.text);
}

#[tokio::test]
async fn the_username_with_a_year_is_weak_for_its_owner_and_not_for_a_stranger() {
    let api = Api::from_env();
    let name = fresh_name();
    let password = format!("{name}2026!");
    assert_refused(&register(&api, &name, &password, None).await, "weak_password");
    let r = register(&api, &fresh_name(), &password, None).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_breached_password_is_400_breached_password_and_registers_nobody() {
    let api = Api::from_env();
    let name = fresh_name();
    let r = register(&api, &name, BREACHED, None).await;
    assert_refused(&r, "breached_password");
    assert!(r.json["message"].as_str().unwrap().contains("breach"), "{}", r.text);
    let r = register(&api, &name, GOOD, None).await;
    assert_eq!(r.status, 201, "the name is still free: {}", r.text);
}

/// The register function as deployed with `BREACHED_PASSWORD_CHECK=mode`,
/// asking the range server `make test` started.
fn rules(mode: &str) -> PasswordRules {
    let endpoint = required_env("E2E_PWNED_URL");
    let breached = BreachedCheck::from_lookup(|name| match name {
        "BREACHED_PASSWORD_CHECK" => Some(mode.to_owned()),
        "BREACHED_PASSWORD_ENDPOINT" => Some(endpoint.clone()),
        _ => None,
    })
    .unwrap();
    PasswordRules {
        breached,
        ..PasswordRules::default()
    }
}

#[tokio::test]
async fn warn_registers_a_breached_password_that_block_refuses() {
    let (store, _) = fresh_store().await;
    let outbox = shared::testing::outbox();
    let try_register = |mode: &'static str, name: String| {
        let (store, outbox) = (&store, &outbox);
        async move {
            let body = json!({"username": name, "password": BREACHED});
            let answer = register::handle(store, outbox, &rules(mode), request("POST", "/register", body)).await;
            status_and_json(&answer.unwrap())
        }
    };
    let (status, body) = try_register("block", fresh_name()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("breached_password")),
        "{body}"
    );

    let name = fresh_name();
    let (status, body) = try_register("warn", name.clone()).await;
    assert_eq!(status, 201, "{body}");
    let record = store.login_record(&Username::parse(&name).unwrap()).await.unwrap();
    let user = record.user.expect("the user is stored");
    let password = shared::credentials::Password::parse(BREACHED).unwrap();
    assert_eq!(
        verify(&password, Some(&user.password_hash)).await.unwrap(),
        Verdict::Valid
    );
}

#[tokio::test]
async fn a_breached_check_past_its_deadline_lets_the_password_through() {
    let api = Api::from_env();
    let name = fresh_name();
    let started = Instant::now();
    let r = register(&api, &name, SLOW, None).await;
    let took = started.elapsed();
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        took >= Duration::from_millis(700),
        "the check waited for its deadline: {took:?}"
    );
    assert!(took < Duration::from_millis(4500), "not for the answer (5 s): {took:?}");
    assert_eq!(login(&api, &name, SLOW).await.status, 200);
}

#[tokio::test]
async fn a_password_change_refuses_weak_and_breached_new_passwords_and_keeps_the_old_one() {
    let api = Api::from_env();
    let name = fresh_name();
    assert_eq!(register(&api, &name, GOOD, None).await.status, 201);
    let access = login(&api, &name, GOOD).await.field("access_token");
    assert_refused(&change(&api, &access, GOOD, "password123").await, "weak_password");
    assert_refused(
        &change(&api, &access, GOOD, &format!("{name}2026!")).await,
        "weak_password",
    );
    // More refusals than the lockout allows failures: a right current password is no failure.
    for _ in 0..5 {
        assert_refused(&change(&api, &access, GOOD, BREACHED).await, "breached_password");
    }
    assert_eq!(login(&api, &name, GOOD).await.status, 200, "the old password stays");
    let r = change(&api, &access, GOOD, "a new horse battery staple").await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(login(&api, &name, "a new horse battery staple").await.status, 200);
}

/// A fresh user registered with a fresh address, verified; (username, address).
async fn verified_user(api: &Api) -> (String, String) {
    let (name, address) = (fresh_name(), new_address());
    let r = register(api, &name, GOOD, Some(&address)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let access = login(api, &name, GOOD).await.field("access_token");
    let code = code_mailed_to(&address).await;
    let body: Value = json!({ "code": code });
    let r = api
        .with_bearer(Method::POST, "/account/email/verify", Some(&access), Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    (name, address)
}

#[tokio::test]
async fn a_reset_refuses_weak_and_breached_new_passwords_and_its_link_still_works() {
    let api = Api::from_env();
    let (name, address) = verified_user(&api).await;
    let r = api.post("/password/forgot", json!({ "email": address })).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let token = reset_token_mailed_to(&address).await;
    let reset = |new: String| {
        let body = json!({"token": token, "new_password": new});
        let api = &api;
        async move { api.post("/password/reset", body).await }
    };
    assert_refused(&reset("password123".into()).await, "weak_password");
    assert_refused(&reset(format!("{name}2026!")).await, "weak_password");
    assert_refused(&reset(BREACHED.into()).await, "breached_password");
    assert_eq!(login(&api, &name, GOOD).await.status, 200, "nothing changed");
    let r = reset("a brand new horse battery".into()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(login(&api, &name, "a brand new horse battery").await.status, 200);
}
