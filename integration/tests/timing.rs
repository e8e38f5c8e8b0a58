//! An unknown username costs what a wrong password costs, so response times do
//! not tell who has an account. The login handler runs in process on DynamoDB
//! Local; the two cases are interleaved and compared by their medians.

use integration::{fresh_store, request, status_and_json};
use serde_json::json;
use shared::key_cache::KeyCache;
use shared::service::register::PasswordRules;
use shared::testing::dev_authority;
use std::time::{Duration, Instant};

const SAMPLES: usize = 25;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[tokio::test]
async fn unknown_usernames_and_wrong_passwords_take_the_same_time() {
    let (store, _) = fresh_store().await;
    for i in 0..SAMPLES {
        let body = json!({"username": format!("known-{i}"), "password": "correct horse battery staple"});
        let answer = status_and_json(
            &register::handle(
                &store,
                &shared::testing::outbox(),
                &PasswordRules::default(),
                request("POST", "/register", body),
            )
            .await
            .unwrap(),
        );
        assert_eq!(answer.0, 201);
    }
    let state = login::State {
        keys: KeyCache::ready(dev_authority()),
        store,
    };
    let attempt = |name: String| {
        let state = &state;
        async move {
            let body = json!({"username": name, "password": "not the password at all"});
            let started = Instant::now();
            let (status, _) = status_and_json(&login::handle(state, request("POST", "/login", body)).await.unwrap());
            assert_eq!(status, 401);
            started.elapsed()
        }
    };
    // Warm up both paths once, then interleave so drift hits both alike.
    attempt("warm-up-unknown".into()).await;
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        wrong.push(attempt(format!("known-{i}")).await);
        unknown.push(attempt(format!("unknown-{i}")).await);
    }
    let (wrong, unknown) = (median(wrong), median(unknown));
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    println!("median wrong password {wrong:?}, unknown username {unknown:?}, ratio {ratio:.3}");
    assert!(
        (0.8..=1.25).contains(&ratio),
        "unknown {unknown:?} vs wrong {wrong:?}: ratio {ratio:.3}"
    );
}
