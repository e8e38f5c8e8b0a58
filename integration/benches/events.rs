//! What audit events cost a login and a refresh, in process on DynamoDB
//! Local: the handlers with events stored and with none, interleaved round
//! by round (alternating which goes first), medians of each. A login writes
//! its event beside its session, so the two should be within 5%; a refresh
//! writes none (only a reuse does). Writes `target/bench/events.json` for
//! the report of `make bench`.

use integration::{fresh_store, request, status_and_json};
use serde_json::{Value, json};
use shared::key_cache::KeyCache;
use shared::service::register::PasswordRules;
use shared::store::dynamo::DynamoStore;
use shared::testing::dev_authority;
use std::time::{Duration, Instant};

const ROUNDS: usize = 41;

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (store, _) = rt.block_on(fresh_store());
    let creds = json!({"username": "bench", "password": "correct horse battery staple"});
    let created = rt
        .block_on(register::handle(
            &store,
            &shared::testing::outbox(),
            &PasswordRules::default(),
            request("POST", "/register", creds.clone()),
        ))
        .unwrap();
    assert_eq!(created.status(), 201);
    let state = |store: DynamoStore| login::State {
        keys: KeyCache::ready(dev_authority()),
        store,
    };
    let (on, off) = (state(store.clone()), state(store.without_events()));
    let log_in = |s: &login::State<DynamoStore>| -> (Duration, Value) {
        let started = Instant::now();
        let response = rt
            .block_on(login::handle(s, request("POST", "/login", creds.clone())))
            .unwrap();
        let elapsed = started.elapsed();
        let (status, body) = status_and_json(&response);
        assert_eq!(status, 200, "{body}");
        (elapsed, body)
    };
    let refresh = |s: &login::State<DynamoStore>, token: &str| -> (Duration, String) {
        let started = Instant::now();
        let response = rt
            .block_on(refresh::handle(
                s,
                request("POST", "/refresh", json!({"refresh_token": token})),
            ))
            .unwrap();
        let elapsed = started.elapsed();
        let (status, body) = status_and_json(&response);
        assert_eq!(status, 200, "{body}");
        (elapsed, body["refresh_token"].as_str().unwrap().to_owned())
    };
    // DynamoDB Local's JIT warms up first (see benches/login.rs).
    let warm_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < warm_until {
        log_in(&on);
        log_in(&off);
    }
    let token = |body: Value| body["refresh_token"].as_str().unwrap().to_owned();
    let (mut on_token, mut off_token) = (token(log_in(&on).1), token(log_in(&off).1));
    let (mut login_on, mut login_off, mut refresh_on, mut refresh_off) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for events in order {
            let s = if events { &on } else { &off };
            let (took, _) = log_in(s);
            let token = if events { &mut on_token } else { &mut off_token };
            let (refreshed, next) = refresh(s, token);
            *token = next;
            match events {
                true => (login_on.push(took), refresh_on.push(refreshed)),
                false => (login_off.push(took), refresh_off.push(refreshed)),
            };
        }
    }
    let figures = json!({
        "rounds": ROUNDS,
        "login_events_ms": median(login_on),
        "login_no_events_ms": median(login_off),
        "refresh_events_ms": median(refresh_on),
        "refresh_no_events_ms": median(refresh_off),
    });
    println!("events: {figures}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/events.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(out, figures.to_string()).unwrap();
}
