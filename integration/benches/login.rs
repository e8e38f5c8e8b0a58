//! The login handler in process against DynamoDB Local, beside its parts,
//! each measured alone as the handler makes it: the reads (the user, beside
//! the attempt's count on the name and the address's count of failures), one
//! argon2 verify, the writes (the session, beside its event and the count
//! taken back) and the two tokens signed. Also the plain floors: one read,
//! one put.

use criterion::{Criterion, criterion_group, criterion_main};
use integration::{fresh_store, request, status_and_json};
use serde_json::json;
use shared::audit::{Event, Kind};
use shared::credentials::{Password, Username};
use shared::key_cache::KeyCache;
use shared::lockout::FailedLogins;
use shared::service::register::PasswordRules;
use shared::store::{AuditStore, SessionStore, ThrottleStore, UserStore};
use shared::testing::dev_authority;
use shared::throttle::Counter;
use std::time::{Duration, Instant};

fn login(c: &mut Criterion) {
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
    let state = login::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let password = Password::parse("correct horse battery staple").unwrap();
    let hash = rt.block_on(shared::password::hash(&password)).unwrap();
    let username = Username::parse("bench").unwrap();
    let user = rt.block_on(store.login_record(&username)).unwrap().user.unwrap();
    let keys = dev_authority();
    let write_session = || {
        let session = shared::testing::password_session(&keys, &user, shared::now());
        rt.block_on(store.create_session(&session, None)).unwrap()
    };
    // An attempt counted (and taken back) on a name of its own, so that the
    // bench's user is never locked by the parts.
    let other = Username::parse("bench-parts").unwrap();
    let ip = "198.51.100.7";
    let reads = || {
        let window = store.ip_limits().window_start(shared::now());
        let (record, added, count) = rt.block_on(async {
            tokio::join!(
                Box::pin(store.login_record(&username)),
                Box::pin(store.add_attempt(&other, shared::now())),
                Box::pin(store.ip_count(ip, Counter::Failures, window))
            )
        });
        record.unwrap();
        added.unwrap();
        count.unwrap();
    };
    let writes = || {
        let session = shared::testing::password_session(&keys, &user, shared::now());
        let event = Event::new(Kind::LoginSucceeded, shared::now()).in_session(&session.id);
        let (created, recorded, uncounted) = rt.block_on(async {
            tokio::join!(
                Box::pin(store.create_session(&session, Some(&user))),
                Box::pin(store.record_event(&user.username, &user.id, &event)),
                Box::pin(store.uncount_attempt(&other, FailedLogins::default(), FailedLogins::default()))
            )
        });
        created.unwrap();
        recorded.unwrap();
        uncounted.unwrap();
    };
    // DynamoDB Local is a JVM: until its JIT has compiled the paths of every
    // request a login makes (Query, GetItem, UpdateItem, TransactWriteItems,
    // PutItem), each call is several times slower, and its compiler threads
    // take a core from argon2 meanwhile. That is the server's warm-up, not
    // the handler's cost: measured, the handler at 21.5 ms right after the
    // 5 s of Query and PutItem alone this loop had been, 19.1 ms after this
    // (one run each, a fresh DynamoDB Local).
    let warm_until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < warm_until {
        reads();
        writes();
        write_session();
    }

    let mut group = c.benchmark_group("login");
    group.sample_size(20);
    group.bench_function("login_handler", |b| {
        b.iter(|| {
            let response = rt
                .block_on(login::handle(&state, request("POST", "/login", creds.clone())))
                .unwrap();
            assert_eq!(status_and_json(&response).0, 200);
        })
    });
    group.bench_function("part_reads_beside_counts", |b| b.iter(&reads));
    group.bench_function("part_writes_beside_event_and_uncount", |b| b.iter(&writes));
    group.bench_function("part_sign_token_pair", |b| {
        let session = shared::testing::password_session(&keys, &user, shared::now());
        b.iter(|| shared::service::sessions::token_pair(&keys, &session, shared::now()))
    });
    group.bench_function("floor_argon2_verify", |b| {
        b.iter(|| rt.block_on(shared::password::verify(&password, Some(&hash))).unwrap())
    });
    group.bench_function("floor_dynamodb_round_trip", |b| {
        b.iter(|| rt.block_on(store.login_record(&username)).unwrap())
    });
    group.bench_function("floor_dynamodb_session_write", |b| b.iter(&write_session));
    group.finish();
}

criterion_group!(benches, login);
criterion_main!(benches);
