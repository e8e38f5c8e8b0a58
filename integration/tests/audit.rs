//! The audit trail end to end, over HTTP through the running stack: every
//! event type appears in `GET /account/events` after the action that causes
//! it, with its time, the client's address and user agent and the session it
//! concerns, newest first; pages and their cursor; the route's refusals; the
//! events deleted with the account; the operator's disable and enable (the
//! shared admin service on the stack's table); and no password, code or token
//! of any of it in the functions' log, where the EMF metrics are.

use integration::authenticator::{SoftAuthenticator, Tamper};
use integration::{Api, Reply, TotpApp, code_mailed_to, new_address, required_env, reset_token_mailed_to};
use reqwest::Method;
use serde_json::{Value, json};
use shared::credentials::Username;
use shared::store::AccountStore;
use shared::store::dynamo::DynamoStore;
use shared::totp::TotpSecret;
use std::time::Duration;

/// The user agent `cargo lambda watch` puts in every request's context (its
/// own, never the client's header): an event that shows it, with the test
/// client's address, took its client from the HTTP request.
const LOCAL_AGENT: &str = "cargo-lambda";

fn api() -> Api {
    Api::from_env()
}

fn now() -> u64 {
    shared::now()
}

/// `method path` with a bearer token and a JSON body if given.
async fn call(api: &Api, method: Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> Reply {
    api.with_bearer(method, path, bearer, body).await
}

async fn post(api: &Api, path: &str, body: Value) -> Reply {
    api.post(path, body).await
}

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"], code, "{}", r.text);
}

/// The claims of a JWT, read without verifying it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&shared::testing::b64_decode(payload)).expect("JSON claims")
}

/// The session id of a token response.
fn sid(login: &Reply) -> String {
    claims(&login.field("access_token"))["sid"]
        .as_str()
        .expect("a sid")
        .to_owned()
}

/// A password nobody else uses, so the log can be searched for it.
fn distinctive_password() -> String {
    format!("Audit-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh username.
fn new_username() -> String {
    format!("audit-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Registers `username` with `password` (and `email` if given).
async fn register(api: &Api, username: &str, password: &str, email: Option<&str>) {
    let mut body = json!({"username": username, "password": password});
    if let Some(email) = email {
        body["email"] = email.into();
    }
    let r = post(api, "/register", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// `POST /login` by name: the answer, whatever it is.
async fn login(api: &Api, username: &str, password: &str) -> Reply {
    post(api, "/login", json!({"username": username, "password": password})).await
}

/// `POST /login` that must succeed: the token response.
async fn logged_in(api: &Api, username: &str, password: &str) -> Reply {
    let r = login(api, username, password).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

/// `GET /account/events` with `query` (`""` or `?...`).
async fn events_page(api: &Api, access: &str, query: &str) -> Reply {
    call(api, Method::GET, &format!("/account/events{query}"), Some(access), None).await
}

/// Every event of the caller of `access`, newest first, in one page of 100.
async fn events(api: &Api, access: &str) -> Vec<Value> {
    let r = events_page(api, access, "?limit=100").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store");
    assert!(r.json["next_cursor"].is_null(), "fewer than 100: {}", r.text);
    r.json["events"].as_array().expect("a list of events").clone()
}

/// `(type, session_id)` of each event.
fn summary(events: &[Value]) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().expect("a type").to_owned(),
                e["session_id"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// An event as a request over HTTP causes it: exactly the five fields, its
/// time since `since`, and the client of the request's context.
fn assert_from_this_client(api: &Api, event: &Value, since: u64) {
    let fields: Vec<&str> = event
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = fields.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["at", "ip", "session_id", "type", "user_agent"], "{event}");
    let at = event["at"]
        .as_u64()
        .unwrap_or_else(|| panic!("at is unix seconds: {event}"));
    assert!((since..=now() + 1).contains(&at), "at {at} since {since}: {event}");
    assert_eq!(
        (event["ip"].as_str(), event["user_agent"].as_str()),
        (Some(api.client_ip()), Some(LOCAL_AGENT)),
        "the client of the request: {event}"
    );
}

fn pair(kind: &str, session: Option<&str>) -> (String, Option<String>) {
    (kind.to_owned(), session.map(str::to_owned))
}

// ---- each event after the action that causes it -----------------------------

#[tokio::test]
async fn logins_sessions_refreshes_and_a_password_change_are_listed_newest_first_with_their_client_and_session() {
    let api = api();
    let since = now();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    let first = logged_in(&api, &username, &password).await;
    let second = logged_in(&api, &username, &password).await;
    let third = logged_in(&api, &username, &password).await;
    assert_error(
        &login(&api, &username, "a wrong horse battery").await,
        401,
        "invalid_credentials",
    );

    let ended = format!("/sessions/{}", sid(&second));
    let r = call(&api, Method::DELETE, &ended, Some(&first.field("access_token")), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let again = call(&api, Method::DELETE, &ended, Some(&first.field("access_token")), None).await;
    assert_error(&again, 404, "not_found");

    // Two generations on, the first refresh token is a reuse: the session is revoked at once.
    let rotated = post(&api, "/refresh", json!({"refresh_token": third.field("refresh_token")})).await;
    let rotated = post(
        &api,
        "/refresh",
        json!({"refresh_token": rotated.field("refresh_token")}),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let reuse = post(&api, "/refresh", json!({"refresh_token": third.field("refresh_token")})).await;
    assert_error(&reuse, 401, "invalid_token");

    let new_password = distinctive_password();
    let r = call(
        &api,
        Method::POST,
        "/account/password",
        Some(&first.field("access_token")),
        Some(json!({"current_password": password, "new_password": new_password})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);

    let fourth = logged_in(&api, &username, &new_password).await;
    let out = post(&api, "/logout", json!({"refresh_token": fourth.field("refresh_token")})).await;
    assert_eq!(out.status, 204, "{}", out.text);
    let fifth = logged_in(&api, &username, &new_password).await;
    let sixth = logged_in(&api, &username, &new_password).await;
    let everywhere = json!({"refresh_token": sixth.field("refresh_token"), "everywhere": true});
    let out = post(&api, "/logout", everywhere).await;
    assert_eq!(out.status, 204, "{}", out.text);

    let reader = logged_in(&api, &username, &new_password).await;
    let listed = events(&api, &reader.field("access_token")).await;
    let (s1, s2, s3, s4, s5, s6, s7) = (
        sid(&first),
        sid(&second),
        sid(&third),
        sid(&fourth),
        sid(&fifth),
        sid(&sixth),
        sid(&reader),
    );
    assert_eq!(
        summary(&listed),
        [
            pair("login_succeeded", Some(&s7)),
            pair("logout_everywhere", Some(&s6)),
            pair("login_succeeded", Some(&s6)),
            pair("login_succeeded", Some(&s5)),
            pair("logout", Some(&s4)),
            pair("login_succeeded", Some(&s4)),
            pair("password_changed", Some(&s1)),
            pair("refresh_reuse_detected", Some(&s3)),
            pair("session_revoked", Some(&s2)),
            pair("login_failed", None),
            pair("login_succeeded", Some(&s3)),
            pair("login_succeeded", Some(&s2)),
            pair("login_succeeded", Some(&s1)),
        ],
        "newest first; the second DELETE of a session and the refused refresh record nothing more"
    );
    for event in &listed {
        // The reuse is told by the refresh function, which sees the same client.
        assert_from_this_client(&api, event, since);
    }
    let times: Vec<u64> = listed.iter().map(|e| e["at"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
}

#[tokio::test]
async fn failures_that_lock_the_name_are_login_failed_then_login_locked_and_a_locked_attempt_is_nothing() {
    let api = api();
    let since = now();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    let reader = logged_in(&api, &username, &password).await;
    for _ in 0..5 {
        assert_error(
            &login(&api, &username, "a wrong horse battery").await,
            401,
            "invalid_credentials",
        );
    }
    assert_error(&login(&api, &username, &password).await, 429, "too_many_attempts");
    let listed = events(&api, &reader.field("access_token")).await;
    let mut expected = vec![pair("login_locked", None)];
    expected.extend(std::iter::repeat_n(pair("login_failed", None), 5));
    expected.push(pair("login_succeeded", Some(&sid(&reader))));
    assert_eq!(summary(&listed), expected);
    for event in &listed {
        assert_from_this_client(&api, event, since);
    }
}

#[tokio::test]
async fn the_second_factor_is_mfa_enabled_mfa_failed_login_succeeded_and_mfa_disabled() {
    let api = api();
    let since = now();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    let first = logged_in(&api, &username, &password).await;
    let access = first.field("access_token");
    let mut app = enroll(&api, &access).await.0;

    let mfa_token = password_step(&api, &username, &password).await;
    let wrong = second_step(&api, &mfa_token, "code", &app.wrong_code()).await;
    assert_error(&wrong, 401, "invalid_code");
    let unknown = second_step(&api, &mfa_token, "recovery_code", "aaaaa-bbbbb").await;
    assert_error(&unknown, 401, "invalid_code");
    let second = second_step(&api, &mfa_token, "code", &app.code().await).await;
    assert_eq!(second.status, 200, "{}", second.text);

    let off = |body: Value| call(&api, Method::DELETE, "/mfa/totp", Some(&access), Some(body));
    assert_error(&off(json!({"code": app.wrong_code()})).await, 401, "invalid_code");
    let renew = call(
        &api,
        Method::POST,
        "/mfa/recovery-codes",
        Some(&access),
        Some(json!({"code": app.wrong_code()})),
    )
    .await;
    assert_error(&renew, 401, "invalid_code");
    let r = off(json!({"password": password})).await;
    assert_eq!(r.status, 204, "{}", r.text);

    let listed = events(&api, &access).await;
    let (s1, s2) = (sid(&first), sid(&second));
    assert_eq!(
        summary(&listed),
        [
            pair("mfa_disabled", Some(&s1)),
            pair("mfa_failed", Some(&s1)),
            pair("mfa_failed", Some(&s1)),
            pair("login_succeeded", Some(&s2)),
            pair("mfa_failed", None),
            pair("mfa_failed", None),
            pair("mfa_enabled", Some(&s1)),
            pair("login_succeeded", Some(&s1)),
        ],
        "a right password asking for the code is no event; a wrong code at login has no session yet"
    );
    for event in &listed {
        assert_from_this_client(&api, event, since);
    }
}

#[tokio::test]
async fn verifying_an_email_and_resetting_the_password_by_mail_are_email_verified_and_password_reset() {
    let api = api();
    let since = now();
    let (username, password, address) = (new_username(), distinctive_password(), new_address());
    register(&api, &username, &password, Some(&address)).await;
    let first = logged_in(&api, &username, &password).await;
    let code = code_mailed_to(&address).await;
    let access = first.field("access_token");
    let verify = |code: String| {
        call(
            &api,
            Method::POST,
            "/account/email/verify",
            Some(&access),
            Some(json!({"code": code})),
        )
    };
    assert_error(&verify(a_wrong(&code).to_owned()).await, 400, "invalid_code");
    assert_eq!(verify(code).await.status, 200);

    let forgot = post(&api, "/password/forgot", json!({"email": address})).await;
    assert_eq!(forgot.status, 202, "{}", forgot.text);
    let token = reset_token_mailed_to(&address).await;
    let new_password = distinctive_password();
    let reset = json!({"token": token, "new_password": new_password});
    assert_eq!(post(&api, "/password/reset", reset.clone()).await.status, 204);
    assert_error(&post(&api, "/password/reset", reset).await, 400, "invalid_token");

    let reader = logged_in(&api, &username, &new_password).await;
    let listed = events(&api, &reader.field("access_token")).await;
    assert_eq!(
        summary(&listed),
        [
            pair("login_succeeded", Some(&sid(&reader))),
            pair("password_reset", None),
            pair("email_verified", Some(&sid(&first))),
            pair("login_succeeded", Some(&sid(&first))),
        ],
        "a wrong code and a used reset token record nothing"
    );
    for event in &listed {
        assert_from_this_client(&api, event, since);
    }
}

#[tokio::test]
async fn passkeys_are_passkey_added_login_succeeded_and_passkey_removed() {
    let api = api();
    let since = now();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    let first = logged_in(&api, &username, &password).await;
    let access = first.field("access_token");
    let mut key = SoftAuthenticator::new();
    add_passkey(&api, &access, &mut key).await;
    let second = passkey_login(&api, &mut key, &Tamper::default()).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let unknown = call(&api, Method::DELETE, "/passkeys/not-one-of-mine", Some(&access), None).await;
    assert_error(&unknown, 404, "not_found");
    let path = format!("/passkeys/{}", key.passkey_id());
    let r = call(&api, Method::DELETE, &path, Some(&access), None).await;
    assert_eq!(r.status, 204, "{}", r.text);

    let listed = events(&api, &access).await;
    let (s1, s2) = (sid(&first), sid(&second));
    assert_eq!(
        summary(&listed),
        [
            pair("passkey_removed", Some(&s1)),
            pair("login_succeeded", Some(&s2)),
            pair("passkey_added", Some(&s1)),
            pair("login_succeeded", Some(&s1)),
        ],
        "removing a passkey that is not the caller's records nothing"
    );
    for event in &listed {
        assert_from_this_client(&api, event, since);
    }
}

// ---- the operator: disable and enable -----------------------------------------

/// The stack's own table, as the admin tool reaches it.
async fn operator_store() -> DynamoStore {
    DynamoStore::new(integration::dynamodb().await, required_env("E2E_TABLE"))
}

async fn stored_user(store: &DynamoStore, username: &str) -> shared::store::User {
    let name = Username::parse(username).unwrap();
    store.user(&name).await.unwrap().expect("the user is stored")
}

async fn disable(username: &str) {
    let store = operator_store().await;
    let user = stored_user(&store, username).await;
    shared::service::admin::disable(&store, &user, now())
        .await
        .expect("disabled");
}

async fn enable(username: &str) {
    let store = operator_store().await;
    let user = stored_user(&store, username).await;
    shared::service::admin::enable(&store, &user, now())
        .await
        .expect("enabled");
}

/// The operator's event: no address, the admin tool as user agent, no session.
fn assert_by_the_operator(event: &Value, kind: &str) {
    assert_eq!(event["type"], kind, "{event}");
    assert!(event["ip"].is_null(), "{event}");
    assert_eq!(event["user_agent"], "admin", "{event}");
    assert!(event["session_id"].is_null(), "{event}");
}

#[tokio::test]
async fn a_disabled_account_refuses_the_right_password_with_403_a_wrong_one_with_401_and_its_old_sessions() {
    let api = api();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    let before = logged_in(&api, &username, &password).await;
    disable(&username).await;

    assert_error(&login(&api, &username, &password).await, 403, "account_disabled");
    assert_error(
        &login(&api, &username, "a wrong horse battery").await,
        401,
        "invalid_credentials",
    );
    let refresh = post(
        &api,
        "/refresh",
        json!({"refresh_token": before.field("refresh_token")}),
    )
    .await;
    assert_error(&refresh, 401, "invalid_token");

    enable(&username).await;
    let after = logged_in(&api, &username, &password).await;
    let listed = events(&api, &after.field("access_token")).await;
    assert_eq!(
        summary(&listed),
        [
            pair("login_succeeded", Some(&sid(&after))),
            pair("account_enabled", None),
            pair("login_failed", None),
            pair("account_disabled", None),
            pair("login_succeeded", Some(&sid(&before))),
        ],
        "the right password of a disabled account is no login"
    );
    assert_by_the_operator(&listed[1], "account_enabled");
    assert_by_the_operator(&listed[3], "account_disabled");
    assert_eq!(
        post(
            &api,
            "/refresh",
            json!({"refresh_token": before.field("refresh_token")})
        )
        .await
        .status,
        401,
        "enabling brings no session back"
    );
}

#[tokio::test]
async fn a_disabled_account_refuses_the_right_second_factor_code_and_a_proven_passkey_with_403() {
    let api = api();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    let first = logged_in(&api, &username, &password).await;
    let access = first.field("access_token");
    let mut key = SoftAuthenticator::new();
    add_passkey(&api, &access, &mut key).await;
    let (mut app, recovery) = enroll(&api, &access).await;
    // The password step before the operator acts: the code comes after.
    let mfa_token = password_step(&api, &username, &password).await;
    disable(&username).await;

    let wrong = second_step(&api, &mfa_token, "code", &app.wrong_code()).await;
    assert_error(&wrong, 401, "invalid_code");
    let right = second_step(&api, &mfa_token, "code", &app.code().await).await;
    assert_error(&right, 403, "account_disabled");
    let recovery_code = second_step(&api, &mfa_token, "recovery_code", &recovery[0]).await;
    assert_error(&recovery_code, 403, "account_disabled");
    let forged = Tamper {
        sign_with_another_key: true,
        ..Tamper::default()
    };
    assert_error(
        &passkey_login(&api, &mut key, &forged).await,
        401,
        "invalid_credentials",
    );
    assert_error(
        &passkey_login(&api, &mut key, &Tamper::default()).await,
        403,
        "account_disabled",
    );
    assert_eq!(
        session_ids(&operator_store().await, &username).await.len(),
        0,
        "no session"
    );

    enable(&username).await;
    let by_passkey = passkey_login(&api, &mut key, &Tamper::default()).await;
    assert_eq!(by_passkey.status, 200, "{}", by_passkey.text);
    let mfa_token = password_step(&api, &username, &password).await;
    let by_code = second_step(&api, &mfa_token, "recovery_code", &recovery[0]).await;
    assert_eq!(
        by_code.status, 200,
        "the recovery code was not used up: {}",
        by_code.text
    );
    let listed = events(&api, &access).await;
    assert_eq!(
        summary(&listed)[..5],
        [
            pair("login_succeeded", Some(&sid(&by_code))),
            pair("login_succeeded", Some(&sid(&by_passkey))),
            pair("account_enabled", None),
            pair("mfa_failed", None),
            pair("account_disabled", None),
        ],
        "neither the right code nor the proven passkey of a disabled account is a login"
    );
}

/// The ids of the live sessions under `username` in the stack's table.
async fn session_ids(store: &DynamoStore, username: &str) -> Vec<String> {
    use shared::store::SessionStore;
    let now = now();
    store
        .sessions(username)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.is_live(now))
        .map(|s| s.id)
        .collect()
}

// ---- the route: pages, refusals, deletion ---------------------------------------

#[tokio::test]
async fn events_come_a_page_at_a_time_newest_first_and_the_last_page_has_no_cursor() {
    let api = api();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    logged_in(&api, &username, &password).await;
    for _ in 0..3 {
        assert_eq!(login(&api, &username, "a wrong horse battery").await.status, 401);
    }
    let reader = logged_in(&api, &username, &password).await;
    let access = reader.field("access_token");
    let all = events(&api, &access).await;
    assert_eq!(all.len(), 5, "{all:?}");

    let default = events_page(&api, &access, "").await;
    assert_eq!(default.status, 200, "{}", default.text);
    assert_eq!(default.json["events"].as_array().unwrap(), &all, "20 by default");
    assert!(default.json["next_cursor"].is_null());
    let exact = events_page(&api, &access, "?limit=5").await;
    assert_eq!(exact.json["events"].as_array().unwrap(), &all);
    assert!(
        exact.json["next_cursor"].is_null(),
        "nothing after the last: {}",
        exact.text
    );

    let mut walked = Vec::new();
    let mut sizes = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = events_page(&api, &access, &query).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let events = page.json["events"].as_array().unwrap();
        sizes.push(events.len());
        walked.extend(events.iter().cloned());
        match page.json["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(
                    cursor
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "opaque and safe in a query: {cursor}"
                );
                query = format!("?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(walked, all, "the pages, one after another, are the whole list");
}

#[tokio::test]
async fn a_bad_cursor_or_limit_is_400_no_token_401_and_another_method_405() {
    let api = api();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    let reader = logged_in(&api, &username, &password).await;
    let access = reader.field("access_token");
    for query in [
        "?limit=0",
        "?limit=101",
        "?limit=-1",
        "?limit=ten",
        "?limit=1.5",
        "?limit=",
        "?cursor=x",
        "?cursor=not-a-cursor",
        "?cursor=MTIz",
        "?cursor=",
        "?cursor=MTIzNDU2Nzg5MCNub3QtYS11dWlk",
    ] {
        let r = events_page(&api, &access, query).await;
        assert_error(&r, 400, "invalid_request");
        assert!(
            r.json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{query}: {}",
            r.text
        );
    }
    assert_eq!(events_page(&api, &access, "?limit=100").await.status, 200);
    assert_eq!(events_page(&api, &access, "?limit=1").await.status, 200);

    for bearer in [None, Some(reader.field("refresh_token")), Some(format!("{access}x"))] {
        let r = call(&api, Method::GET, "/account/events", bearer.as_deref(), None).await;
        assert_error(&r, 401, "invalid_token");
        assert!(r.header("www-authenticate").starts_with("Bearer"), "{}", r.text);
    }
    let r = call(&api, Method::POST, "/account/events", Some(&access), Some(json!({}))).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), "GET");
}

#[tokio::test]
async fn deleting_the_account_deletes_its_events_and_a_new_user_of_the_name_starts_with_none() {
    let api = api();
    let (username, password) = (new_username(), distinctive_password());
    register(&api, &username, &password, None).await;
    let first = logged_in(&api, &username, &password).await;
    assert_eq!(login(&api, &username, "a wrong horse battery").await.status, 401);
    let access = first.field("access_token");
    assert_eq!(events(&api, &access).await.len(), 2);
    let r = call(
        &api,
        Method::DELETE,
        "/account",
        Some(&access),
        Some(json!({"password": password})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(event_items(&username).await, 0, "no event item is left in the table");

    register(&api, &username, &password, None).await;
    let again = logged_in(&api, &username, &password).await;
    assert_eq!(
        summary(&events(&api, &again.field("access_token")).await),
        [pair("login_succeeded", Some(&sid(&again)))],
        "the new user sees only its own login"
    );
}

/// How many event items the table holds under `username`.
async fn event_items(username: &str) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = integration::dynamodb()
        .await
        .query()
        .table_name(required_env("E2E_TABLE"))
        .key_condition_expression("pk = :pk AND begins_with(sk, :event)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("USER#{}", username.to_lowercase())))
        .expression_attribute_values(":event", AttributeValue::S("EVENT#".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("the table answers");
    out.items().len()
}

// ---- the functions' log: no secret, the metrics ---------------------------------

#[tokio::test]
async fn no_password_code_recovery_code_reset_token_or_token_reaches_the_functions_log_and_the_metrics_do() {
    let api = api();
    let mut secrets: Vec<(&str, String)> = Vec::new();
    let mut codes: Vec<String> = Vec::new();
    let (username, password, address) = (new_username(), distinctive_password(), new_address());
    let wrong_password = distinctive_password();
    secrets.extend([
        ("password", password.clone()),
        ("wrong password", wrong_password.clone()),
    ]);
    register(&api, &username, &password, Some(&address)).await;
    assert_eq!(login(&api, &username, &wrong_password).await.status, 401);
    let first = logged_in(&api, &username, &password).await;
    let access = first.field("access_token");
    let rotated = post(&api, "/refresh", json!({"refresh_token": first.field("refresh_token")})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    for reply in [&first, &rotated] {
        secrets.extend(token_secrets(reply));
    }

    let code = code_mailed_to(&address).await;
    let verify = |code: String| {
        call(
            &api,
            Method::POST,
            "/account/email/verify",
            Some(&access),
            Some(json!({"code": code})),
        )
    };
    assert_eq!(verify(a_wrong(&code).to_owned()).await.status, 400);
    assert_eq!(verify(code.clone()).await.status, 200);
    codes.extend([code.clone(), a_wrong(&code).to_owned()]);
    assert_eq!(
        post(&api, "/password/forgot", json!({"email": address})).await.status,
        202
    );
    let reset_token = reset_token_mailed_to(&address).await;
    let new_password = distinctive_password();
    let reset = json!({"token": reset_token, "new_password": new_password});
    assert_eq!(post(&api, "/password/reset", reset).await.status, 204);
    secrets.extend([("reset token", reset_token), ("new password", new_password.clone())]);

    let second = logged_in(&api, &username, &new_password).await;
    secrets.extend(token_secrets(&second));
    let access = second.field("access_token");
    let (mut app, recovery) = enroll(&api, &access).await;
    secrets.push(("TOTP secret", app.secret.base32()));
    codes.push(app.last_code());
    let mfa_token = password_step(&api, &username, &new_password).await;
    secrets.push(("mfa_token", signature(&mfa_token)));
    let wrong = app.wrong_code();
    assert_eq!(second_step(&api, &mfa_token, "code", &wrong).await.status, 401);
    let code = app.code().await;
    let third = second_step(&api, &mfa_token, "code", &code).await;
    assert_eq!(third.status, 200, "{}", third.text);
    codes.extend([wrong, code]);
    secrets.extend(token_secrets(&third));
    let mfa_token = password_step(&api, &username, &new_password).await;
    let by_recovery = second_step(&api, &mfa_token, "recovery_code", &recovery[0]).await;
    assert_eq!(by_recovery.status, 200, "{}", by_recovery.text);
    secrets.extend(token_secrets(&by_recovery));
    for recovery_code in recovery {
        secrets.push(("recovery code", recovery_code));
    }
    let off = json!({"password": new_password});
    let r = call(&api, Method::DELETE, "/mfa/totp", Some(&access), Some(off)).await;
    assert_eq!(r.status, 204, "{}", r.text);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = std::fs::read_to_string(required_env("E2E_LOG_FILE")).expect("the functions' log");
    assert!(logs.contains("login succeeded"), "the log is the functions' log");
    for (what, value) in &secrets {
        assert!(!logs.contains(value.as_str()), "a {what} appears in the functions' log");
    }
    for code in &codes {
        assert!(!as_number(&logs, code), "the code {code} appears in the functions' log");
    }

    let metrics = emf_documents(&logs);
    for name in ["LoginSucceeded", "LoginFailed", "MfaFailed"] {
        assert!(
            metrics.iter().any(|doc| counts(doc, name)),
            "an EMF line counting {name} in the functions' log"
        );
    }
}

/// The signatures of the tokens of a token response: any other part of a JWT is claims anyone can read.
fn token_secrets(reply: &Reply) -> [(&'static str, String); 2] {
    [
        ("access token", signature(&reply.field("access_token"))),
        ("refresh token", signature(&reply.field("refresh_token"))),
    ]
}

fn signature(token: &str) -> String {
    token.rsplit('.').next().expect("a JWT").to_owned()
}

/// Whether `digits` stand in `text` as a number of their own: not inside a
/// longer run, an id, or the decimals of a figure (`latency_ms=0.123456`).
fn as_number(text: &str, digits: &str) -> bool {
    text.match_indices(digits).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + digits.len()..].chars().next();
        let joins = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.');
        !joins(before) && !joins(after)
    })
}

/// Every line of `logs` that is an EMF document (a JSON object with the
/// `_aws` directive, from the line's first `{` on), parsed.
fn emf_documents(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter(|line| line.contains("\"_aws\""))
        .filter_map(|line| line.find('{').map(|at| &line[at..]))
        .filter_map(|doc| serde_json::from_str::<Value>(doc).ok())
        .filter(|doc| doc["_aws"].is_object())
        .collect()
}

/// Whether `doc` is a well-formed EMF document counting one `metric`: its
/// directive names it with unit Count, every dimension is a member, the value is 1.
fn counts(doc: &Value, metric: &str) -> bool {
    let aws = &doc["_aws"];
    let Some(directive) = aws["CloudWatchMetrics"].as_array().and_then(|d| d.first()) else {
        return false;
    };
    let named = directive["Metrics"]
        .as_array()
        .is_some_and(|ms| ms.iter().any(|m| m["Name"] == metric && m["Unit"] == "Count"));
    let dimensions_present = directive["Dimensions"].as_array().is_some_and(|sets| {
        sets.iter().all(|set| {
            set.as_array()
                .is_some_and(|keys| keys.iter().all(|k| k.as_str().is_some_and(|k| doc[k].is_string())))
        })
    });
    named
        && dimensions_present
        && aws["Timestamp"].as_u64().is_some()
        && directive["Namespace"].as_str().is_some_and(|n| !n.is_empty())
        && doc[metric] == 1
}

// ---- helpers for codes and passkeys --------------------------------------------

fn a_wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

/// Enrolls and confirms a TOTP factor for the caller of `access`: the app and the recovery codes.
async fn enroll(api: &Api, access: &str) -> (TotpApp, Vec<String>) {
    let r = call(api, Method::POST, "/mfa/totp", Some(access), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = TotpSecret::from_base32(&r.field("secret")).expect("a base32 secret");
    let mut app = TotpApp::new(secret);
    let code = app.code().await;
    let r = call(
        api,
        Method::POST,
        "/mfa/totp/confirm",
        Some(access),
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let recovery = r.json["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (app, recovery)
}

/// `POST /login` with the right password of an account with a factor: the `mfa_token`.
async fn password_step(api: &Api, username: &str, password: &str) -> String {
    let r = login(api, username, password).await;
    assert_error(&r, 403, "mfa_required");
    r.field("mfa_token")
}

/// `POST /login/mfa` with `field` (`code` or `recovery_code`) set to `value`.
async fn second_step(api: &Api, mfa_token: &str, field: &str, value: &str) -> Reply {
    let mut body = json!({"mfa_token": mfa_token});
    body[field] = value.into();
    post(api, "/login/mfa", body).await
}

/// The origin the stack's relying party accepts.
fn webauthn_origin() -> String {
    std::env::var("E2E_WEBAUTHN_ORIGIN").unwrap_or_else(|_| "http://localhost:8190".into())
}

/// Registers `key` for the caller of `access`.
async fn add_passkey(api: &Api, access: &str, key: &mut SoftAuthenticator) {
    let r = call(api, Method::POST, "/passkeys/register/start", Some(access), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let credential = key.register(&r.json["publicKey"], &webauthn_origin());
    let body = json!({"challenge_id": r.field("challenge_id"), "credential": credential});
    let r = call(api, Method::POST, "/passkeys/register/finish", Some(access), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// A whole passkey login with `key`, tampered with as `tamper` says.
async fn passkey_login(api: &Api, key: &mut SoftAuthenticator, tamper: &Tamper) -> Reply {
    let r = post(api, "/login/passkey/start", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let credential = key.login_with(&r.json["publicKey"], &webauthn_origin(), tamper);
    let body = json!({"challenge_id": r.field("challenge_id"), "credential": credential});
    post(api, "/login/passkey/finish", body).await
}
