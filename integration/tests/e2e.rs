//! End to end: HTTP through `cargo lambda watch` to the real functions and DynamoDB Local.

use integration::{Api, Reply, authorize, dynamodb, required_env};
use reqwest::Method;
use serde_json::json;
use shared::testing::{dev_env, forge, forge_with, forge_with_dev_key};
use std::time::Duration;

fn api() -> Api {
    Api::from_env()
}

fn grace() -> u64 {
    required_env("E2E_REUSE_GRACE").parse().expect("a number of seconds")
}

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"], code, "{}", r.text);
    assert!(r.json["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
    assert_eq!(r.header("content-type"), "application/json");
}

fn now() -> u64 {
    shared::now()
}

// ---- the happy path -------------------------------------------------------

#[tokio::test]
async fn register_login_protected_refresh_logout_walkthrough() {
    let api = api();
    let (username, password) = api.new_user().await;
    let login = api
        .post("/login", json!({"username": username, "password": password}))
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.header("cache-control"), "no-store");
    assert_eq!(login.json["token_type"], "Bearer");
    assert_eq!(login.json["expires_in"], 900);

    let me = api.get("/protected", Some(&login.field("access_token"))).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(
        (me.field("username"), me.field("logged_in_as")),
        (username.clone(), username.clone())
    );
    assert!(!me.field("id").is_empty());

    let refreshed = api.refresh(&login.field("refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(refreshed.header("cache-control"), "no-store");
    assert_ne!(refreshed.field("refresh_token"), login.field("refresh_token"));
    assert_eq!(
        api.get("/protected", Some(&refreshed.field("access_token")))
            .await
            .status,
        200
    );

    let out = api
        .post("/logout", json!({"refresh_token": refreshed.field("refresh_token")}))
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    assert_error(
        &api.refresh(&refreshed.field("refresh_token")).await,
        401,
        "invalid_token",
    );
}

#[tokio::test]
async fn register_answers_201_with_id_and_username_as_typed() {
    let api = api();
    let name = format!("Mixed.Case-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let r = api
        .post(
            "/register",
            json!({"username": name, "password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.field("username"), name);
    assert_eq!(
        r.json.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "username"]
    );
}

#[tokio::test]
async fn the_function_url_paths_of_cargo_lambda_serve_the_same_api() {
    let api = api();
    let login = api.logged_in().await;
    let r = api
        .get("/lambda-url/protected", Some(&login.field("access_token")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn login_is_case_insensitive_on_the_username() {
    let api = api();
    let (username, password) = api.new_user().await;
    let r = api
        .post(
            "/login",
            json!({"username": username.to_uppercase(), "password": password}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn refresh_and_logout_take_the_token_from_the_authorization_header_too() {
    let api = api();
    let login = api.logged_in().await;
    let bearer = format!("Bearer {}", login.field("refresh_token"));
    let r = api
        .send(Method::POST, "/refresh", &[("authorization", bearer.as_bytes())], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bearer = format!("Bearer {}", r.field("refresh_token"));
    let r = api
        .send(Method::POST, "/logout", &[("authorization", bearer.as_bytes())], None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

// ---- refresh rotation -----------------------------------------------------

#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_new_token_not_a_branch() {
    let api = api();
    let login = api.logged_in().await;
    let first = api.refresh(&login.field("refresh_token")).await;
    let retry = api.refresh(&login.field("refresh_token")).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.field("refresh_token"), first.field("refresh_token"));
    let next = api.refresh(&first.field("refresh_token")).await;
    assert_eq!(next.status, 200, "the lineage goes on: {}", next.text);
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_session() {
    let api = api();
    let login = api.logged_in().await;
    let rotated = api.refresh(&login.field("refresh_token")).await;
    tokio::time::sleep(Duration::from_secs(grace() + 2)).await;
    assert_error(&api.refresh(&login.field("refresh_token")).await, 401, "invalid_token");
    assert_error(
        &api.refresh(&rotated.field("refresh_token")).await,
        401,
        "invalid_token",
    );
}

#[tokio::test]
async fn an_older_generation_revokes_the_session_at_once() {
    let api = api();
    let login = api.logged_in().await;
    let second = api.refresh(&login.field("refresh_token")).await;
    let third = api.refresh(&second.field("refresh_token")).await;
    assert_eq!(third.status, 200);
    assert_error(&api.refresh(&login.field("refresh_token")).await, 401, "invalid_token");
    assert_error(&api.refresh(&third.field("refresh_token")).await, 401, "invalid_token");
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_continue_a_single_lineage() {
    let api = api();
    let login = api.logged_in().await;
    let token = login.field("refresh_token");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (api, token) = (api.clone(), token.clone());
            tokio::spawn(async move { api.refresh(&token).await })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(
            r.status, 200,
            "every racer is a retry within the grace window: {}",
            r.text
        );
        tokens.insert(r.field("refresh_token"));
    }
    assert_eq!(tokens.len(), 1, "one new generation, not branches");
    let next = api.refresh(tokens.iter().next().unwrap()).await;
    assert_eq!(next.status, 200, "{}", next.text);
}

#[tokio::test]
async fn logout_with_a_spent_refresh_token_revokes_the_session_but_answers_401() {
    let api = api();
    let login = api.logged_in().await;
    let second = api.refresh(&login.field("refresh_token")).await;
    let third = api.refresh(&second.field("refresh_token")).await;
    let r = api
        .post("/logout", json!({"refresh_token": login.field("refresh_token")}))
        .await;
    assert_error(&r, 401, "invalid_token");
    assert_error(&api.refresh(&third.field("refresh_token")).await, 401, "invalid_token");
}

#[tokio::test]
async fn a_session_ends_with_logout_and_a_second_logout_is_401() {
    let api = api();
    let login = api.logged_in().await;
    let token = login.field("refresh_token");
    assert_eq!(api.post("/logout", json!({"refresh_token": token})).await.status, 204);
    assert_error(
        &api.post("/logout", json!({"refresh_token": token})).await,
        401,
        "invalid_token",
    );
    assert_error(&api.refresh(&token).await, 401, "invalid_token");
}

// ---- registration under concurrency ---------------------------------------

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_name_have_exactly_one_winner() {
    let api = api();
    let name = format!("race-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let api = api.clone();
            let spelled = if i % 2 == 0 { name.clone() } else { name.to_uppercase() };
            tokio::spawn(async move {
                api.post(
                    "/register",
                    json!({"username": spelled, "password": "correct horse battery staple"}),
                )
                .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        if r.status == 409 {
            assert_error(&r, 409, "username_taken");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 19, "{statuses:?}");
}

// ---- storage --------------------------------------------------------------

#[tokio::test]
async fn the_table_holds_no_password_and_no_refresh_token_only_their_hashes() {
    let api = api();
    let (username, password) = api.new_user().await;
    let login = api
        .post("/login", json!({"username": username, "password": password}))
        .await;
    let refresh = login.field("refresh_token");
    let client = dynamodb().await;
    let table = required_env("E2E_TABLE");
    let items = client.scan().table_name(&table).send().await.unwrap();
    let dump = format!("{:?}", items.items());
    assert!(dump.contains(&username), "the scan sees this test's user");
    assert!(!dump.contains(&password));
    assert!(!dump.contains(&refresh));
    assert!(
        !dump.contains(refresh.rsplit('.').next().unwrap()),
        "not even the signature"
    );
    assert!(dump.contains(&shared::token::refresh_token_hash(&refresh)));
}

// ---- the error table ------------------------------------------------------

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_400_invalid_request() {
    let api = api();
    for body in [
        &b"{not json"[..],
        b"[1,2]",
        b"\"text\"",
        b"null",
        b"42",
        b"username=alice&password=x",
        b"",
    ] {
        let r = api
            .send(
                Method::POST,
                "/register",
                &[("content-type", b"application/json")],
                Some(body.to_vec()),
            )
            .await;
        assert_error(&r, 400, "invalid_request");
    }
}

#[tokio::test]
async fn non_utf8_bytes_labelled_as_binary_are_415_unsupported_media_type() {
    // Labelled as binary, as API Gateway passes it on (base64): not JSON, so
    // refused before it is read. (cargo lambda watch itself answers 500 to
    // non-UTF-8 labelled JSON before any function runs; the handler's own
    // test, with events/login-not-utf8.json, shows that is a 400.)
    let body = vec![b'{', 0xff, 0xfe, 0x80, b'}'];
    let r = api()
        .send(
            Method::POST,
            "/login",
            &[("content-type", b"application/octet-stream")],
            Some(body),
        )
        .await;
    assert_error(&r, 415, "unsupported_media_type");
}

#[tokio::test]
async fn missing_fields_and_wrong_types_are_400_invalid_request() {
    let api = api();
    for path in ["/register", "/login"] {
        for body in [
            json!({}),
            json!({"username": "alice"}),
            json!({"password": "correct horse battery staple"}),
            json!({"username": 42, "password": "correct horse battery staple"}),
            json!({"username": "alice", "password": ["correct horse battery staple"]}),
            json!({"username": null, "password": "correct horse battery staple"}),
            json!({"username": {"$gt": ""}, "password": "correct horse battery staple"}),
        ] {
            assert_error(&api.post(path, body).await, 400, "invalid_request");
        }
    }
    assert_error(
        &api.post("/refresh", json!({"refresh_token": 12})).await,
        400,
        "invalid_request",
    );
}

#[tokio::test]
async fn usernames_and_passwords_outside_the_rules_are_400() {
    let api = api();
    let ok = "correct horse battery staple";
    for (username, password) in [
        ("", ok),
        ("ab", ok),
        (&*"a".repeat(65), ok),
        ("bad name", ok),
        ("émile", ok),
        ("alice", ""),
        ("alice", "short"),
        ("alice", &*"p".repeat(1025)),
    ] {
        let r = api
            .post("/register", json!({"username": username, "password": password}))
            .await;
        assert_error(&r, 400, "invalid_request");
    }
}

#[tokio::test]
async fn a_body_over_16_kib_is_413() {
    let big = json!({"username": "alice", "password": "x".repeat(17 * 1024)});
    let r = api().post("/register", big).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.json["error"], "payload_too_large");
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_never_echoed() {
    let api = api();
    let name = format!("role-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let r = api
        .post(
            "/register",
            json!({"username": name, "password": "correct horse battery staple", "role": "admin", "id": "x"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.field("id"), "x");
    assert!(!r.text.contains("admin") && !r.text.contains("password"), "{}", r.text);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let api = api();
    let (username, _) = api.new_user().await;
    let wrong = api
        .post("/login", json!({"username": username, "password": "not the password"}))
        .await;
    let unknown = api
        .post(
            "/login",
            json!({"username": "no-such-user-anywhere", "password": "not the password"}),
        )
        .await;
    assert_error(&wrong, 401, "invalid_credentials");
    assert_eq!(wrong.text, unknown.text);
}

#[tokio::test]
async fn five_failed_logins_lock_the_name_with_429_and_retry_after() {
    let api = api();
    let (username, password) = api.new_user().await;
    for _ in 0..5 {
        let r = api
            .post("/login", json!({"username": username, "password": "wrong password!"}))
            .await;
        assert_error(&r, 401, "invalid_credentials");
    }
    let r = api
        .post("/login", json!({"username": username, "password": password}))
        .await;
    assert_error(&r, 429, "too_many_attempts");
    let retry_after: u64 = r
        .header("retry-after")
        .parse()
        .expect("Retry-After is a number of seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn parallel_guesses_after_a_failure_cannot_get_past_the_limit() {
    let api = api();
    let (username, _) = api.new_user().await;
    let wrong = json!({"username": username, "password": "wrong password!"});
    assert_eq!(api.post("/login", wrong.clone()).await.status, 401);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (api, wrong) = (api.clone(), wrong.clone());
            tokio::spawn(async move { api.post("/login", wrong).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 16, "{statuses:?}");
}

#[tokio::test]
async fn register_with_a_taken_name_in_another_case_is_409() {
    let api = api();
    let (username, password) = api.new_user().await;
    let r = api
        .post(
            "/register",
            json!({"username": username.to_uppercase(), "password": password}),
        )
        .await;
    assert_error(&r, 409, "username_taken");
}

#[tokio::test]
async fn every_route_answers_only_its_method_with_405_and_allow() {
    let api = api();
    for (path, allowed, wrong) in [
        ("/register", "POST", Method::GET),
        ("/login", "POST", Method::PUT),
        ("/refresh", "POST", Method::GET),
        ("/logout", "POST", Method::DELETE),
        ("/protected", "GET", Method::POST),
    ] {
        let r = api.send(wrong, path, &[], None).await;
        assert_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), allowed, "{path}");
    }
}

#[tokio::test]
async fn malformed_authorization_headers_are_401_with_a_challenge() {
    let api = api();
    // (Non-ASCII header bytes are covered by the unit tests: cargo lambda watch cannot pass them on.)
    let bare = "Bearer realm=\"lambda-jwt-auth\"";
    let invalid = "Bearer realm=\"lambda-jwt-auth\", error=\"invalid_token\"";
    // A malformed bearer token gets the error code; another scheme does not (RFC 6750 §3.1).
    let cases: [(&[u8], &str); 7] = [
        (b"Bearer", invalid),
        (b"Bearer ", invalid),
        (b"Bearer a b c", invalid),
        (b"bearer\tx", invalid),
        (b"Bearer a\"b", invalid),
        (b"Basic YWxpY2U6cGFzcw==", bare),
        (b"Token abc", bare),
    ];
    for (value, challenge) in cases {
        let r = api
            .send(Method::GET, "/protected", &[("authorization", value)], None)
            .await;
        assert_error(&r, 401, "invalid_token");
        assert_eq!(r.header("www-authenticate"), challenge, "{value:?}");
    }
    let r = api.get("/protected", None).await;
    assert_error(&r, 401, "invalid_token");
    assert_eq!(r.header("www-authenticate"), bare);
}

/// The issuer `make test` gives the stack: its own URL, so that discovery has a document to serve.
fn issuer() -> String {
    required_env("E2E_ISSUER")
}

/// Claims like the service's, for signing with the dev key, which the stack's key set holds.
fn claims(token_use: &str) -> serde_json::Value {
    json!({
        "iss": issuer(), "aud": dev_env("JWT_AUDIENCE").unwrap(),
        "sub": "u-1", "username": "mallory", "sid": "s-1", "amr": ["pwd"],
        "iat": now(), "nbf": now(), "exp": now() + 600, "jti": "j-1", "token_use": token_use
    })
}

fn header() -> serde_json::Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": shared::testing::dev_authority().kid()})
}

/// A key of the same kind as the dev key that the stack has never seen.
fn another_key() -> shared::token::TokenAuthority {
    let set = shared::keyset::KeySet::generate(shared::keyset::Alg::RS256, 0);
    shared::token::TokenAuthority::from_secret(shared::testing::dev_settings(), &set.to_json()).unwrap()
}

#[tokio::test]
async fn a_token_made_like_ours_with_the_dev_key_is_accepted_so_the_refusals_below_mean_something() {
    let r = api()
        .get("/protected", Some(&forge_with_dev_key(header(), claims("access"))))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn forged_tampered_expired_and_misaddressed_access_tokens_are_401() {
    let api = api();
    let login = api.logged_in().await;
    let access = login.field("access_token");
    let mut cases: Vec<(&str, String)> = vec![
        ("a refresh token", login.field("refresh_token")),
        (
            "signed with another key",
            forge_with(&another_key(), header(), claims("access")),
        ),
        ("alg none", {
            let h = json!({"alg": "none", "typ": "JWT", "kid": shared::testing::dev_authority().kid()});
            let t = forge_with_dev_key(h, claims("access"));
            format!("{}.", t.rsplit_once('.').unwrap().0)
        }),
        ("algorithm switched to HS512", {
            let mut h = header();
            h["alg"] = "HS512".into();
            forge_with_dev_key(h, claims("access"))
        }),
        ("HS256 keyed with the published public key", {
            let mut h = header();
            h["alg"] = "HS256".into();
            let public = shared::testing::dev_authority().jwks()["keys"][0].to_string();
            forge(h, claims("access"), public.as_bytes())
        }),
        ("unknown kid", {
            let mut h = header();
            h["kid"] = "other".into();
            forge_with_dev_key(h, claims("access"))
        }),
        ("jku header", {
            let mut h = header();
            h["jku"] = "http://127.0.0.1:1/jwks.json".into();
            forge_with_dev_key(h, claims("access"))
        }),
    ];
    let mut field = |name: &'static str, label: &'static str, value: serde_json::Value| {
        let mut c = claims("access");
        c[name] = value;
        cases.push((label, forge_with_dev_key(header(), c)));
    };
    field("exp", "expired", json!(now() - 120));
    field("nbf", "not yet valid", json!(now() + 600));
    field("iss", "another issuer", json!("https://evil.example"));
    field("aud", "another audience", json!("someone-else"));
    field("token_use", "a refresh marker", json!("refresh"));
    let mut tampered = access.clone().into_bytes();
    let middle = access.find('.').unwrap() + 5;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    cases.push(("tampered payload", String::from_utf8(tampered).unwrap()));
    cases.push(("garbage", "not.a.jwt".into()));
    for (label, token) in cases {
        let r = api.get("/protected", Some(&token)).await;
        assert_eq!(r.status, 401, "{label}: {}", r.text);
        assert_eq!(r.json["error"], "invalid_token", "{label}");
        assert_eq!(
            r.header("www-authenticate"),
            "Bearer realm=\"lambda-jwt-auth\", error=\"invalid_token\"",
            "{label}"
        );
    }
}

/// A validly signed refresh token of the largest generation a number holds:
/// the session's arithmetic on it must neither panic (a 500) nor wrap around.
#[tokio::test]
async fn a_signed_refresh_token_of_generation_u64_max_is_401_at_refresh_and_ends_the_session_at_logout() {
    let api = api();
    let login = api.logged_in().await;
    let real = login.field("refresh_token");
    let payload = real.split('.').nth(1).unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(&shared::testing::b64_decode(payload)).unwrap();
    claims["generation"] = u64::MAX.into();
    let forged = forge_with_dev_key(header(), claims);
    assert_error(&api.refresh(&forged).await, 401, "invalid_token");
    assert_eq!(api.refresh(&real).await.status, 200, "refresh only read the session");
    let r = api.post("/logout", json!({"refresh_token": forged})).await;
    assert_error(&r, 401, "invalid_token");
    assert_error(&api.refresh(&real).await, 401, "invalid_token");
}

#[tokio::test]
async fn an_access_token_or_a_forged_token_is_refused_by_refresh_and_logout() {
    let api = api();
    let login = api.logged_in().await;
    let forged_refresh = {
        let mut c = claims("refresh");
        c["sid"] = "no-such-session".into();
        c["generation"] = 0.into();
        forge_with_dev_key(header(), c)
    };
    for token in [login.field("access_token"), forged_refresh, "garbage".into()] {
        assert_error(&api.refresh(&token).await, 401, "invalid_token");
        assert_error(
            &api.post("/logout", json!({"refresh_token": token})).await,
            401,
            "invalid_token",
        );
    }
    assert_error(&api.post("/refresh", json!({})).await, 401, "invalid_token");
}

#[tokio::test]
async fn error_bodies_never_leak_internals() {
    let api = api();
    let replies = [
        api.post("/login", json!({"username": "x"})).await,
        api.send(Method::POST, "/register", &[], Some(b"{".to_vec())).await,
        api.get("/protected", Some("a.b.c")).await,
        api.refresh("a.b.c").await,
    ];
    for r in replies {
        for leak in [
            "serde",
            "jsonwebtoken",
            "DynamoDB",
            "dynamo",
            "line ",
            "column",
            "panicked",
            "auth-e2e",
            ".rs",
        ] {
            assert!(!r.text.contains(leak), "{leak} in {}", r.text);
        }
    }
}

// ---- credentials and sessions ----------------------------------------------

#[tokio::test]
async fn a_hash_stored_with_weaker_parameters_is_upgraded_on_the_next_good_login() {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    use aws_sdk_dynamodb::types::AttributeValue;
    let api = api();
    let (username, password) = api.new_user().await;
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password(password.as_bytes())
    .unwrap()
    .to_string();
    let client = dynamodb().await;
    let table = required_env("E2E_TABLE");
    let key = |item: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
        item.table_name(&table)
            .key("pk", AttributeValue::S(format!("USER#{}", username.to_lowercase())))
            .key("sk", AttributeValue::S("PROFILE".into()))
    };
    key(client.update_item())
        .update_expression("SET password_hash = :h")
        .expression_attribute_values(":h", AttributeValue::S(weak.clone()))
        .send()
        .await
        .unwrap();
    let r = api
        .post("/login", json!({"username": username, "password": password}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("USER#{}", username.to_lowercase())))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .send()
        .await
        .unwrap();
    let stored = item.item().unwrap()["password_hash"].as_s().unwrap().clone();
    assert_ne!(stored, weak);
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
    let again = api
        .post("/login", json!({"username": username, "password": password}))
        .await;
    assert_eq!(again.status, 200, "the upgraded hash verifies");
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_of_the_user() {
    let api = api();
    let (username, password) = api.new_user().await;
    let creds = json!({"username": username, "password": password});
    let laptop = api.post("/login", creds.clone()).await;
    let phone = api.post("/login", creds.clone()).await;
    let phone_next = api.refresh(&phone.field("refresh_token")).await;
    let r = api
        .post(
            "/logout",
            json!({"refresh_token": laptop.field("refresh_token"), "everywhere": true}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(
        &api.refresh(&phone_next.field("refresh_token")).await,
        401,
        "invalid_token",
    );
    assert_error(&api.refresh(&laptop.field("refresh_token")).await, 401, "invalid_token");
    assert_eq!(api.post("/login", creds).await.status, 200, "a new login still works");
    let r = api
        .post("/logout", json!({"refresh_token": "x", "everywhere": "yes"}))
        .await;
    assert_error(&r, 400, "invalid_request");
}

// ---- logs -------------------------------------------------------------------

#[tokio::test]
async fn the_logs_of_a_whole_flow_hold_no_password_hash_token_or_secret() {
    let api = api();
    let username = format!("logs-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let password = format!("Distinctive-{}", uuid::Uuid::new_v4().simple());
    let creds = json!({"username": username, "password": password});
    assert_eq!(api.post("/register", creds.clone()).await.status, 201);
    api.post("/login", json!({"username": username, "password": "a wrong password"}))
        .await;
    let login = api.post("/login", creds).await;
    let access = login.field("access_token");
    let refresh = login.field("refresh_token");
    api.get("/protected", Some(&access)).await;
    api.get("/protected", Some(&format!("{access}x"))).await;
    let rotated = api.refresh(&refresh).await;
    api.refresh(&refresh).await;
    api.post("/logout", json!({"refresh_token": rotated.field("refresh_token")}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = std::fs::read_to_string(required_env("E2E_LOG_FILE")).expect("the functions' log");
    assert!(logs.contains("login succeeded"), "the log is the functions' log");
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    for key in stored_keys().keys {
        // Any stretch of the key material would do; its middle is never a common string.
        let material = key.key[key.key.len() / 2..][..32].to_owned();
        assert!(
            !logs.contains(&material),
            "the {} signing key appears in the logs",
            key.alg.name()
        );
    }
    for (what, value) in [
        ("password", password.clone()),
        ("access token", signature(&access)),
        ("refresh token", signature(&refresh)),
        ("rotated refresh token", signature(&rotated.field("refresh_token"))),
        ("password hash", "$argon2".to_owned()),
        ("refresh token hash", shared::token::refresh_token_hash(&refresh)),
    ] {
        assert!(!logs.contains(&value), "the {what} appears in the logs");
    }
}

// ---- keys from Secrets Manager, the JWKS and the authorizer -----------------

/// The key set `make test` put in the Secrets Manager stand-in.
fn stored_keys() -> shared::keyset::KeySet {
    let text = std::fs::read_to_string(required_env("E2E_KEYS_FILE")).expect("the key set file");
    shared::keyset::KeySet::parse(&text).expect("a key set")
}

/// The current value of a secret of the stand-in the functions read their keys from.
async fn secret_value(id_variable: &str) -> String {
    let sdk = shared::aws::local_config(&required_env("E2E_SECRETS_MANAGER_URL")).await;
    integration::current_secret(&aws_sdk_secretsmanager::Client::new(&sdk), &required_env(id_variable)).await
}

fn header_of(token: &str) -> serde_json::Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&shared::testing::b64_decode(part)).unwrap()
}

#[tokio::test]
async fn tokens_are_signed_by_the_current_key_read_from_secrets_manager_and_the_jwks_serves_the_published_keys() {
    let api = api();
    let login = api.logged_in().await;
    // Read now, not from the file make test started with: key_rotation_e2e.rs rotates them.
    let private = shared::keyset::KeySet::parse(&secret_value("E2E_SECRET_ARN").await).expect("a key set");
    let loaded = private.load().unwrap();
    let current = loaded.current();
    for token in [login.field("access_token"), login.field("refresh_token")] {
        let header = header_of(&token);
        assert_eq!(
            (header["alg"].as_str(), header["kid"].as_str()),
            (Some(current.alg.name()), Some(current.kid.as_str()))
        );
    }
    let published: serde_json::Value =
        serde_json::from_str(&secret_value("E2E_PUBLIC_KEYS_ARN").await).expect("a JWKS");
    assert_eq!(
        published,
        serde_json::from_str::<serde_json::Value>(&private.public_jwks().unwrap()).unwrap(),
        "the published keys are the public keys of the private set"
    );
    let jwks = api.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200, "{}", jwks.text);
    assert_eq!(jwks.header("cache-control"), "public, max-age=300");
    assert_eq!(jwks.json, published, "the JWKS serves the published keys");
    assert!(
        jwks.json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == current.kid.as_str()),
        "{}",
        jwks.text
    );
    let discovery = api.get("/.well-known/openid-configuration", None).await;
    assert_eq!(discovery.status, 200, "{}", discovery.text);
    assert_eq!(discovery.header("cache-control"), "public, max-age=300");
    assert_eq!(discovery.json["issuer"], issuer());
    assert_eq!(
        discovery.json["jwks_uri"],
        format!("{}/.well-known/jwks.json", required_env("E2E_BASE_URL"))
    );
    assert_eq!(
        discovery.json["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
}

#[tokio::test]
async fn a_forged_host_or_forwarded_proto_never_changes_where_discovery_points() {
    let api = api();
    let expected = format!("{}/.well-known/jwks.json", issuer());
    let forged: [&[(&str, &[u8])]; 5] = [
        &[("host", b"evil.example")],
        &[("x-forwarded-proto", b"https")],
        &[("x-forwarded-host", b"evil.example")],
        &[("forwarded", b"host=evil.example;proto=https")],
        &[
            ("host", b"evil.example:443"),
            ("x-forwarded-proto", b"https"),
            ("x-forwarded-host", b"evil.example"),
            ("x-forwarded-port", b"443"),
        ],
    ];
    for headers in forged {
        let r = api
            .send(Method::GET, "/.well-known/openid-configuration", headers, None)
            .await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text);
        assert_eq!(r.json["jwks_uri"], expected.as_str(), "{headers:?}");
        assert_eq!(r.json["issuer"], issuer(), "{headers:?}");
        assert!(!r.text.contains("evil"), "{headers:?}: {}", r.text);
    }
}

#[tokio::test]
async fn the_authorizer_allows_a_live_access_token_and_denies_refresh_forged_and_expired_ones() {
    let api = api();
    let login = api.logged_in().await;
    let me = api.get("/protected", Some(&login.field("access_token"))).await;
    let decision = authorize(&login.field("access_token"), "GET /example").await;
    assert_eq!(
        decision,
        json!({"isAuthorized": true, "context": {"sub": me.field("id"), "username": me.field("username"), "amr": "pwd"}})
    );
    let expired = {
        let mut c = claims("access");
        c["exp"] = (now() - 3600).into();
        c["iat"] = (now() - 4000).into();
        c["nbf"] = (now() - 4000).into();
        forge_with_dev_key(header(), c)
    };
    let forged = forge_with(&another_key(), header(), claims("access"));
    for token in [login.field("refresh_token"), forged, expired, "garbage".to_owned()] {
        assert_eq!(
            authorize(&token, "GET /example").await,
            json!({"isAuthorized": false}),
            "{token}"
        );
    }
}
