//! End to end over HTTP through `cargo lambda watch`: the account and the
//! sessions routes, every row of the spec's table and each error.

use integration::{Api, Reply};
use reqwest::Method;
use serde_json::json;

fn api() -> Api {
    Api::from_env()
}

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"], code, "{}", r.text);
    assert_eq!(r.header("content-type"), "application/json");
}

/// A fresh user and two logins of it (the second with a user agent header
/// that must not end up in its session: the request context says who asked).
async fn two_sessions(api: &Api) -> (serde_json::Value, Reply, Reply) {
    let (username, password) = api.new_user().await;
    let creds = json!({"username": username, "password": password});
    let first = api.post("/login", creds.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = api
        .send(
            Method::POST,
            "/login",
            &[
                ("content-type", b"application/json"),
                ("user-agent", b"set-by-the-client/1.0"),
            ],
            Some(creds.to_string().into_bytes()),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    (creds, first, second)
}

/// `DELETE /account` with the password in `body`.
async fn delete_account(api: &Api, access: &str, body: serde_json::Value) -> Reply {
    api.with_bearer(Method::DELETE, "/account", Some(access), Some(body))
        .await
}

fn sid_of(access: &str) -> String {
    let payload = access.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&shared::testing::b64_decode(payload)).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_account_shows_the_user_with_no_email_and_no_factors() {
    let api = api();
    let (creds, first, _) = two_sessions(&api).await;
    let r = api.get("/account", Some(&first.field("access_token"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json.as_object().unwrap();
    let mut fields: Vec<&str> = body.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(
        fields,
        ["created_at", "email", "email_verified", "id", "mfa", "username"]
    );
    assert_eq!(r.json["username"], creds["username"]);
    assert_eq!(
        (r.json["email"].clone(), r.json["email_verified"].clone()),
        (json!(null), json!(false))
    );
    assert_eq!(r.json["mfa"], json!({"totp": false, "passkeys": 0}));
    assert!(r.json["created_at"].as_u64().unwrap() <= shared::now());
    assert!(!r.text.contains("argon2"), "no hash: {}", r.text);
}

#[tokio::test]
async fn access_tokens_carry_the_session_id_and_a_password_amr_and_a_refresh_keeps_both() {
    let api = api();
    let (_, first, _) = two_sessions(&api).await;
    let claims = |token: &str| -> serde_json::Value {
        serde_json::from_slice(&shared::testing::b64_decode(token.split('.').nth(1).unwrap())).unwrap()
    };
    let access = claims(&first.field("access_token"));
    assert_eq!(access["amr"], json!(["pwd"]));
    let refreshed = api.refresh(&first.field("refresh_token")).await;
    let again = claims(&refreshed.field("access_token"));
    assert_eq!(
        (again["sid"].clone(), again["amr"].clone()),
        (access["sid"].clone(), json!(["pwd"]))
    );
    assert_eq!(claims(&first.field("refresh_token"))["sid"], access["sid"]);
}

#[tokio::test]
async fn the_sessions_are_listed_newest_first_with_where_they_came_from_and_the_current_one_marked() {
    let api = api();
    let (_, first, second) = two_sessions(&api).await;
    let r = api.get("/sessions", Some(&first.field("access_token"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = r.json["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{}", r.text);
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let (first_sid, second_sid) = (
        sid_of(&first.field("access_token")),
        sid_of(&second.field("access_token")),
    );
    assert!(
        ids.contains(&first_sid.as_str()) && ids.contains(&second_sid.as_str()),
        "{ids:?}"
    );
    let created: Vec<u64> = listed.iter().map(|s| s["created_at"].as_u64().unwrap()).collect();
    assert!(created[0] >= created[1], "newest first: {created:?}");
    for s in listed {
        assert_eq!(s["current"], json!(s["id"] == first_sid.as_str()), "{s}");
        // cargo lambda watch's request context: its own user agent, and its
        // fixed loopback source, for which the client's X-Forwarded-For names the client.
        assert_eq!(
            (s["ip"].as_str(), s["user_agent"].as_str()),
            (Some(api.client_ip()), Some("cargo-lambda")),
            "{s}"
        );
        assert!(s["last_used_at"].as_u64().unwrap() >= s["created_at"].as_u64().unwrap());
        let mut fields: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(
            fields,
            ["created_at", "current", "id", "ip", "last_used_at", "user_agent"]
        );
    }
}

#[tokio::test]
async fn a_refresh_moves_last_used_at_and_keeps_created_at() {
    let api = api();
    let (_, first, _) = two_sessions(&api).await;
    let listed = |token: String| {
        let api = api.clone();
        async move { api.get("/sessions", Some(&token)).await.json["sessions"].clone() }
    };
    let sid = sid_of(&first.field("access_token"));
    let find = |sessions: &serde_json::Value| {
        sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == sid.as_str())
            .unwrap()
            .clone()
    };
    let before = find(&listed(first.field("access_token")).await);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refreshed = api.refresh(&first.field("refresh_token")).await;
    let after = find(&listed(refreshed.field("access_token")).await);
    assert_eq!(after["created_at"], before["created_at"]);
    assert!(
        after["last_used_at"].as_u64() > before["last_used_at"].as_u64(),
        "{before} -> {after}"
    );
}

#[tokio::test]
async fn ending_a_session_kills_its_refresh_token_and_another_users_session_is_404() {
    let api = api();
    let (_, first, second) = two_sessions(&api).await;
    let access = first.field("access_token");
    let path = format!("/sessions/{}", sid_of(&second.field("access_token")));
    let r = api.with_bearer(Method::DELETE, &path, Some(&access), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(&api.refresh(&second.field("refresh_token")).await, 401, "invalid_token");
    assert_eq!(
        api.refresh(&first.field("refresh_token")).await.status,
        200,
        "the caller's own lives on"
    );
    assert_error(
        &api.with_bearer(Method::DELETE, &path, Some(&access), None).await,
        404,
        "not_found",
    );
    let (_, stranger, _) = two_sessions(&api).await;
    let theirs = format!("/sessions/{}", sid_of(&stranger.field("access_token")));
    assert_error(
        &api.with_bearer(Method::DELETE, &theirs, Some(&access), None).await,
        404,
        "not_found",
    );
    assert_eq!(
        api.refresh(&stranger.field("refresh_token")).await.status,
        200,
        "theirs untouched"
    );
    for junk in [
        "/sessions/not-a-session",
        "/sessions/%00",
        &format!("/sessions/{}", "x".repeat(3000)),
    ] {
        assert_error(
            &api.with_bearer(Method::DELETE, junk, Some(&access), None).await,
            404,
            "not_found",
        );
    }
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_keeps_the_callers_and_swaps_the_passwords() {
    let api = api();
    let (creds, first, second) = two_sessions(&api).await;
    let access = first.field("access_token");
    let new = "a whole new horse battery staple";
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let r = api
        .with_bearer(
            Method::POST,
            "/account/password",
            Some(&access),
            Some(change("wrong password", new)),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");
    let r = api
        .with_bearer(
            Method::POST,
            "/account/password",
            Some(&access),
            Some(change(creds["password"].as_str().unwrap(), "short")),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = api
        .with_bearer(
            Method::POST,
            "/account/password",
            Some(&access),
            Some(change(creds["password"].as_str().unwrap(), new)),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(&api.refresh(&second.field("refresh_token")).await, 401, "invalid_token");
    assert_eq!(api.refresh(&first.field("refresh_token")).await.status, 200);
    assert_error(&api.post("/login", creds.clone()).await, 401, "invalid_credentials");
    let with_new = json!({"username": creds["username"], "password": new});
    assert_eq!(api.post("/login", with_new).await.status, 200);
}

#[tokio::test]
async fn wrong_passwords_on_the_account_routes_count_toward_the_lockout() {
    let api = api();
    let (creds, first, _) = two_sessions(&api).await;
    let access = first.field("access_token");
    for _ in 0..5 {
        let r = delete_account(&api, &access, json!({"password": "wrong password"})).await;
        assert_error(&r, 401, "invalid_credentials");
    }
    let r = delete_account(&api, &access, json!({"password": creds["password"]})).await;
    assert_error(&r, 429, "too_many_attempts");
    assert!(r.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1));
    assert_error(&api.post("/login", creds).await, 429, "too_many_attempts");
}

#[tokio::test]
async fn deleting_the_account_ends_everything_and_frees_the_name() {
    let api = api();
    let (creds, first, second) = two_sessions(&api).await;
    let access = first.field("access_token");
    let r = delete_account(&api, &access, json!({"password": "wrong password"})).await;
    assert_error(&r, 401, "invalid_credentials");
    let r = delete_account(&api, &access, json!({"password": creds["password"]})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    for token in [first.field("refresh_token"), second.field("refresh_token")] {
        assert_error(&api.refresh(&token).await, 401, "invalid_token");
    }
    assert_error(&api.post("/login", creds.clone()).await, 401, "invalid_credentials");
    let r = api.get("/account", Some(&access)).await;
    assert_error(&r, 401, "invalid_token");
    assert_eq!(
        api.post("/register", creds.clone()).await.status,
        201,
        "the name is free again"
    );
    let r = api.get("/sessions", Some(&access)).await;
    assert_eq!(
        r.json["sessions"],
        json!([]),
        "the new owner's sessions are not the old token's: {}",
        r.text
    );
}

#[tokio::test]
async fn missing_bad_and_refresh_tokens_are_401_with_the_challenge_on_every_route() {
    let api = api();
    let (_, first, _) = two_sessions(&api).await;
    let refresh = first.field("refresh_token");
    let routes: [(Method, &str, Option<serde_json::Value>); 5] = [
        (Method::GET, "/account", None),
        (
            Method::DELETE,
            "/account",
            Some(json!({"password": "correct horse battery staple"})),
        ),
        (
            Method::POST,
            "/account/password",
            Some(json!({"current_password": "x", "new_password": "y"})),
        ),
        (Method::GET, "/sessions", None),
        (Method::DELETE, "/sessions/00000000-0000-4000-8000-000000000000", None),
    ];
    for (method, path, body) in routes {
        let none = api.with_bearer(method.clone(), path, None, body.clone()).await;
        assert_error(&none, 401, "invalid_token");
        assert_eq!(
            none.header("www-authenticate"),
            "Bearer realm=\"lambda-jwt-auth\"",
            "{method} {path}"
        );
        for token in [refresh.as_str(), "not.a.token"] {
            let r = api.with_bearer(method.clone(), path, Some(token), body.clone()).await;
            assert_error(&r, 401, "invalid_token");
            assert_eq!(
                r.header("www-authenticate"),
                "Bearer realm=\"lambda-jwt-auth\", error=\"invalid_token\"",
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn bad_bodies_are_400_and_wrong_methods_405_with_allow() {
    let api = api();
    let (_, first, _) = two_sessions(&api).await;
    let access = first.field("access_token");
    for body in [
        json!([]),
        json!({}),
        json!({"current_password": 5, "new_password": "x"}),
    ] {
        let r = api
            .with_bearer(Method::POST, "/account/password", Some(&access), Some(body))
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = api.with_bearer(Method::DELETE, "/account", Some(&access), None).await;
    assert_error(&r, 400, "invalid_request");
    for (method, path, allow) in [
        (Method::PUT, "/account", "GET, DELETE"),
        (Method::GET, "/account/password", "POST"),
        (Method::POST, "/sessions", "GET"),
        (Method::GET, "/sessions/00000000-0000-4000-8000-000000000000", "DELETE"),
    ] {
        let r = api.with_bearer(method, path, Some(&access), None).await;
        assert_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), allow, "{path}");
    }
    let big = json!({"password": "x".repeat(17 * 1024)});
    assert_error(
        &api.with_bearer(Method::DELETE, "/account", Some(&access), Some(big))
            .await,
        413,
        "payload_too_large",
    );
}

/// Refreshes of one session racing a password change made from another,
/// over HTTP: afterwards that session is dead whatever the order.
#[tokio::test]
async fn refreshes_racing_a_password_change_never_keep_the_other_session_alive() {
    let api = api();
    for round in 0..4 {
        let (creds, first, second) = two_sessions(&api).await;
        let access = first.field("access_token");
        let change = json!({"current_password": creds["password"], "new_password": "a whole new horse battery staple"});
        let token = second.field("refresh_token");
        let refreshes: Vec<_> = (0..4)
            .map(|_| {
                let (api, token) = (api.clone(), token.clone());
                tokio::spawn(async move { api.refresh(&token).await })
            })
            .collect();
        let changed = api
            .with_bearer(Method::POST, "/account/password", Some(&access), Some(change))
            .await;
        assert_eq!(changed.status, 204, "round {round}: {}", changed.text);
        for refresh in refreshes {
            let reply = refresh.await.unwrap();
            if reply.status == 200 {
                let next = api.refresh(&reply.field("refresh_token")).await;
                assert_error(&next, 401, "invalid_token");
            }
        }
        assert_error(&api.refresh(&token).await, 401, "invalid_token");
    }
}
