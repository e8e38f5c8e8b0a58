//! The second step of a login (`POST /login/mfa`) in process against
//! DynamoDB Local, beside its parts: one `mfa_token` verify, one DynamoDB
//! round trip (the login record read, with the try's count beside it) and
//! one transaction of four items (the code consumed and the attempt ended,
//! the session written, the password still the one checked, the failures
//! cleared), whose floor is a transaction of the same four kinds of item on
//! items of its own. No argon2 on this path.
//!
//! A code is accepted once per 30 s step, so the service is measured on a
//! simulated clock that moves one step per iteration: every iteration has a
//! fresh step. Its `mfa_token` and live attempt are made outside the
//! measured time, as the first step (`POST /login`) would make them.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use integration::{fresh_store, request};
use serde_json::json;
use shared::credentials::Username;
use shared::mail::password_fingerprint;
use shared::service::mfa::{SecondFactor, login_mfa};
use shared::service::register::PasswordRules;
use shared::session::Origin;
use shared::store::{Change, MfaStore, Proof, UserStore};
use shared::testing::{dev_authority, enable_totp};
use shared::totp::STEP;
use std::cell::Cell;
use std::time::{Duration, Instant};

fn login_mfa_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (store, client) = rt.block_on(fresh_store());
    let creds = json!({"username": "bench", "password": "correct horse battery staple"});
    let created = rt
        .block_on(register::handle(
            &store,
            &shared::testing::outbox(),
            &PasswordRules::default(),
            request("POST", "/register", creds),
        ))
        .unwrap();
    assert_eq!(created.status(), 201);
    let username = Username::parse("bench").unwrap();
    let user = rt.block_on(store.login_record(&username)).unwrap().user.unwrap();
    let tokens = dev_authority();
    // The factor's last accepted step is two before the real now's; the
    // simulated clock starts at the real now and only moves forward.
    let real_now = shared::now();
    let (secret, _) = rt.block_on(enable_totp(&store, &user, real_now));
    let user = rt.block_on(store.login_record(&username)).unwrap().user.unwrap();
    let pwf = password_fingerprint(&user.password_hash);
    let clock = Cell::new(real_now);

    // What `POST /login` leaves for the second step, at the next step of the
    // simulated clock: a live attempt and its `mfa_token`. Not measured.
    let first_step = || {
        let now = clock.get() + STEP;
        clock.set(now);
        let attempt = uuid::Uuid::new_v4().to_string();
        let token = tokens.issue_mfa(&user.id, &user.username, &pwf, &attempt, now);
        let started = rt.block_on(store.start_mfa_attempt(&username, &attempt)).unwrap();
        assert_eq!(started, Change::Done);
        (token, SecondFactor::Code(secret.code_at(now)), now)
    };
    let second_step = |(token, code, now): (String, SecondFactor, u64)| {
        rt.block_on(login_mfa(&store, &tokens, &token, &code, Origin::default(), now))
            .unwrap_or_else(|e| panic!("login/mfa refused: {e:?}"))
    };
    // Four items as `finish_mfa_login` writes them (a conditional update, a
    // put, a condition check, a delete), on a partition of their own.
    let table = store.table().to_owned();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let key =
        |sk: &str| std::collections::HashMap::from([("pk".to_owned(), s("FLOOR#bench")), ("sk".to_owned(), s(sk))]);
    rt.block_on(client.put_item().table_name(&table).set_item(Some(key("A"))).send())
        .unwrap();
    let transaction = || {
        let id = uuid::Uuid::new_v4().to_string();
        let items = vec![
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&table)
                        .set_key(Some(key("A")))
                        .update_expression("SET last_step = :id REMOVE attempt")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":id", s(&id))
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&table)
                        .set_item(Some(key(&format!("S#{id}"))))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&table)
                        .set_key(Some(key("B")))
                        .condition_expression("attribute_not_exists(deleting)")
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&table)
                        .set_key(Some(key("C")))
                        .build()
                        .unwrap(),
                )
                .build(),
        ];
        rt.block_on(client.transact_write_items().set_transact_items(Some(items)).send())
            .unwrap();
    };
    // DynamoDB Local is a JVM: warm its Query, UpdateItem and
    // TransactWriteItems paths first, as the login bench does.
    let warm_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < warm_until {
        rt.block_on(store.login_record(&username)).unwrap();
        transaction();
        second_step(first_step());
    }
    let (token, _, now) = first_step();
    // Its two round trips as it makes them, each measured alone: the read
    // beside the try's count, and the transaction that finishes the login.
    let live_attempt = || {
        let attempt = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            rt.block_on(store.start_mfa_attempt(&username, &attempt)).unwrap(),
            Change::Done
        );
        attempt
    };
    let read_and_count = |attempt: String| {
        let (record, counted) = rt
            .block_on(async { tokio::join!(store.login_record(&username), store.count_mfa_try(&username, &attempt)) });
        assert!(record.unwrap().totp.is_some() && counted.unwrap());
    };
    let counted_attempt = || {
        let now = clock.get() + STEP;
        clock.set(now);
        let attempt = live_attempt();
        assert!(rt.block_on(store.count_mfa_try(&username, &attempt)).unwrap());
        let session = shared::service::sessions::start(&tokens, &user, &["pwd", "otp"], Origin::default(), now);
        (attempt, Proof::Step(now / STEP), session)
    };
    let finish = |(attempt, proof, session): (String, Proof, shared::session::Session)| {
        let done = rt
            .block_on(store.finish_mfa_login(&user, &attempt, &proof, &session))
            .unwrap();
        assert_eq!(done, Change::Done);
    };

    let mut group = c.benchmark_group("login_mfa");
    group.sample_size(20);
    group.bench_function("login_mfa", |b| {
        b.iter_batched(first_step, second_step, BatchSize::PerIteration)
    });
    group.bench_function("floor_mfa_token_verify", |b| {
        b.iter(|| tokens.verify_mfa(&token, now).unwrap())
    });
    group.bench_function("floor_dynamodb_round_trip", |b| {
        b.iter(|| rt.block_on(store.login_record(&username)).unwrap())
    });
    group.bench_function("floor_dynamodb_transaction", |b| b.iter(&transaction));
    group.bench_function("part_read_beside_try_count", |b| {
        b.iter_batched(live_attempt, read_and_count, BatchSize::PerIteration)
    });
    group.bench_function("part_finish_transaction", |b| {
        b.iter_batched(counted_attempt, finish, BatchSize::PerIteration)
    });
    group.finish();
}

criterion_group!(benches, login_mfa_bench);
criterion_main!(benches);
