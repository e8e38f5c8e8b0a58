//! Abuse resistance end to end, over HTTP through the local stack: one
//! source address trying many names is throttled at its limit while others
//! log in, and IPv6 addresses count by their /64. Each client speaks from
//! an address of its own: bound to a loopback address (`Api::from_env`),
//! which the stack's front door passes on, or, for IPv6, named in
//! X-Forwarded-For (`Api::from`).

use integration::Api;
use serde_json::json;
use shared::throttle::IpLimits;

/// The stack runs with the default limits, as `make dev` does.
fn limits() -> IpLimits {
    IpLimits::default()
}

fn window(limits: &IpLimits) -> u64 {
    shared::now() / limits.window
}

/// A made-up name, never registered.
fn nobody(i: usize) -> String {
    format!("nobody{i}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Wrong logins from `api` for `names`; the statuses, or `None` when a
/// window ended in between (the counts started again: the run says nothing).
async fn stuff(api: &Api, names: &[String]) -> Option<Vec<(u16, String)>> {
    let limits = limits();
    let started = window(&limits);
    let mut answers = Vec::new();
    for name in names {
        let r = api
            .post("/login", json!({"username": name, "password": "Winter2024!wrong"}))
            .await;
        answers.push((r.status, r.header("retry-after").to_owned()));
    }
    (window(&limits) == started).then_some(answers)
}

#[tokio::test]
async fn credential_stuffing_from_one_address_is_throttled_at_its_limit_while_another_address_logs_in() {
    let limit = limits().failures as usize;
    let names: Vec<String> = (0..50).map(nobody).collect();
    assert!(names.len() > limit, "the run goes past the limit");
    let owner = Api::from_env();
    let (username, password) = owner.new_user().await;
    let answers = loop {
        // A fresh address each try: a window ending mid-run spoils only that try.
        if let Some(answers) = stuff(&Api::from_env(), &names).await {
            break answers;
        }
    };
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert!(statuses[..limit].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[limit..].iter().all(|s| *s == 429), "{statuses:?}");
    for (_, retry_after) in &answers[limit..] {
        let seconds: u64 = retry_after.parse().expect("Retry-After in seconds");
        assert!((1..=limits().window).contains(&seconds), "{retry_after}");
    }
    // Another address is not held back, and the names tried are not locked for it.
    let r = owner
        .post("/login", json!({"username": username, "password": password}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = owner
        .post("/login", json!({"username": names[0], "password": "Winter2024!wrong"}))
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test]
async fn a_throttled_address_is_refused_even_the_right_password() {
    let limit = limits().failures as usize;
    let names: Vec<String> = (0..limit).map(nobody).collect();
    let owner = Api::from_env();
    let (username, password) = owner.new_user().await;
    loop {
        let stuffer = Api::from_env();
        let started = window(&limits());
        let Some(answers) = stuff(&stuffer, &names).await else {
            continue;
        };
        assert!(answers.iter().all(|(s, _)| *s == 401), "{answers:?}");
        let r = stuffer
            .post("/login", json!({"username": username, "password": password}))
            .await;
        if window(&limits()) != started {
            continue;
        }
        assert_eq!((r.status, r.field("error").as_str()), (429, "too_many_attempts"));
        break;
    }
}

#[tokio::test]
async fn the_machines_own_address_is_not_throttled_by_address() {
    // A client as curl or a browser is: bound to nothing, naming nothing.
    let http = reqwest::Client::new();
    let base = integration::required_env("E2E_BASE_URL");
    for i in 0..=limits().failures as usize {
        let r = http
            .post(format!("{base}/login"))
            .json(&json!({"username": nobody(i), "password": "Winter2024!wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "attempt {i}: {}", r.text().await.unwrap());
    }
}

#[tokio::test]
async fn addresses_of_one_ipv6_64_share_their_allowance_and_the_next_64_has_its_own() {
    let limit = limits().failures as usize;
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    let prefix = format!(
        "2001:db8:{:x}:{:x}",
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]])
    );
    let started = window(&limits());
    for i in 0..limit {
        // Every failure from another host of the same /64.
        let host = Api::from(format!("{prefix}:{:x}::{:x}", i + 1, i + 7));
        let r = host
            .post("/login", json!({"username": nobody(i), "password": "Winter2024!wrong"}))
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let same = Api::from(format!("{prefix}:ffff:ffff:ffff:ffff"));
    let r = same
        .post(
            "/login",
            json!({"username": nobody(99), "password": "Winter2024!wrong"}),
        )
        .await;
    if window(&limits()) == started {
        assert_eq!(r.status, 429, "the same /64: {}", r.text);
    }
    let next = Api::from(format!("2001:db8:{:x}:1::1", u16::from_be_bytes([b[4], b[5]])));
    let r = next
        .post(
            "/login",
            json!({"username": nobody(100), "password": "Winter2024!wrong"}),
        )
        .await;
    assert_eq!(r.status, 401, "another /64: {}", r.text);
}

#[tokio::test]
async fn one_address_registers_at_most_its_allowance_in_a_window() {
    let limit = limits().register as usize;
    loop {
        let api = Api::from_env();
        let started = window(&limits());
        let mut statuses = Vec::new();
        for i in 0..=limit {
            let r = api
                .post(
                    "/register",
                    json!({"username": nobody(i), "password": "correct horse battery staple"}),
                )
                .await;
            statuses.push((r.status, r.header("retry-after").to_owned()));
        }
        if window(&limits()) != started {
            continue;
        }
        assert!(statuses[..limit].iter().all(|(s, _)| *s == 201), "{statuses:?}");
        let (status, retry_after) = &statuses[limit];
        assert_eq!(*status, 429, "{statuses:?}");
        assert!(retry_after.parse::<u64>().is_ok_and(|s| s >= 1));
        break;
    }
    let other = Api::from_env();
    let r = other
        .post(
            "/register",
            json!({"username": nobody(999), "password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(r.status, 201, "another address registers: {}", r.text);
}

#[tokio::test]
async fn one_address_asks_for_at_most_its_allowance_of_reset_mails_whatever_the_accounts() {
    let limit = limits().forgot as usize;
    loop {
        let api = Api::from_env();
        let started = window(&limits());
        let mut statuses = Vec::new();
        for i in 0..=limit {
            let r = api.post("/password/forgot", json!({"username": nobody(i)})).await;
            statuses.push(r.status);
        }
        if window(&limits()) != started {
            continue;
        }
        assert!(statuses[..limit].iter().all(|s| *s == 202), "{statuses:?}");
        assert_eq!(statuses[limit], 429, "{statuses:?}");
        break;
    }
}
