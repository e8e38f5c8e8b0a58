//! The second step of a passkey login (`POST /login/passkey/finish`,
//! `service::passkeys::finish_login`) in process against DynamoDB Local,
//! beside its parts: one P-256 ECDSA signature verification (ES256, over
//! authenticator data and the client data's hash, as WebAuthn signs), and
//! its DynamoDB round trips as it makes them, each measured alone as the
//! store calls: the challenge taken (a conditional DeleteItem) beside the
//! passkey read (the credential's claim, then the passkey and its user in
//! parallel), then the transaction that stores the new counter and the
//! session.
//!
//! Every iteration answers a fresh challenge: its `/login/passkey/start`
//! and the software authenticator's assertion are made outside the
//! measured time, as the browser would make them.

use aws_sdk_dynamodb::types::AttributeValue;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use integration::authenticator::SoftAuthenticator;
use integration::fresh_store;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::passkey::{RelyingParty, passkey_id};
use shared::service::passkeys::{finish_login, start_login, start_registration};
use shared::session::Origin;
use shared::store::{Ceremony, Change, PasskeyStore, SessionStore, UserStore};
use shared::testing::{dev_authority, password_session, user};
use std::cell::RefCell;
use std::time::{Duration, Instant};

const ORIGIN: &str = "http://localhost:8090";

fn passkey_finish(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (store, client) = rt.block_on(fresh_store());
    let rp = RelyingParty::from_lookup(|name| match name {
        "WEBAUTHN_RP_ID" => Some("localhost".into()),
        "WEBAUTHN_ORIGIN" => Some(ORIGIN.into()),
        _ => None,
    })
    .unwrap();
    let tokens = dev_authority();

    // A user with a live session registers one passkey, as through the API.
    let alice = user(&uuid::Uuid::new_v4().to_string(), "bench");
    let now = shared::now();
    rt.block_on(store.create_user(&alice)).unwrap();
    let session = password_session(&tokens, &alice, now);
    rt.block_on(store.create_session(&session, None)).unwrap();
    let access = shared::service::sessions::token_pair(&tokens, &session, now).access_token;
    let claims = tokens.verify_access(&access, now).unwrap();
    let authenticator = RefCell::new(SoftAuthenticator::new());
    let started = rt
        .block_on(start_registration(&store, &rp, &claims, now))
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = authenticator.borrow_mut().register(&started.public_key, ORIGIN);
    let registered = rt
        .block_on(shared::service::passkeys::finish_registration(
            &store,
            &rp,
            &claims,
            &started.challenge_id,
            &answer,
            "bench".into(),
            now,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let id = passkey_id(authenticator.borrow().credential_id());
    assert_eq!(registered.id, id);

    // What the browser sends back for a fresh challenge. Not measured.
    let browser = || {
        let started = rt
            .block_on(start_login(&store, &rp, shared::now()))
            .unwrap_or_else(|e| panic!("{e}"));
        let credential = authenticator.borrow_mut().login(&started.public_key, ORIGIN);
        (started.challenge_id, credential)
    };
    let finish = |(challenge_id, credential): (String, Value)| {
        rt.block_on(finish_login(
            &store,
            &rp,
            &tokens,
            &challenge_id,
            &credential,
            Origin::default(),
            shared::now(),
        ))
        .unwrap_or_else(|e| panic!("login/passkey/finish refused: {e:?}"))
    };

    // One ES256 verification as WebAuthn makes it: a DER signature over the
    // authenticator data (37 bytes) and the SHA-256 of the client data.
    let key = SigningKey::random(&mut rand_core::OsRng);
    let verifying_key = VerifyingKey::from(&key);
    let client_data = br#"{"type":"webauthn.get","challenge":"Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE","origin":"http://localhost:8090","crossOrigin":false}"#;
    let mut message = Sha256::digest(b"localhost").to_vec();
    message.extend([0x05, 0, 0, 0, 1]);
    message.extend(Sha256::digest(client_data));
    let der: DerSignature = Signer::<Signature>::sign(&key, &message).to_der();
    let verify = || {
        let signature = Signature::from_der(der.as_bytes()).unwrap();
        verifying_key.verify(&message, &signature).unwrap();
    };

    // Its round trips as the store calls alone: a live challenge (made by
    // `start_login`, not measured) taken beside the passkey read ...
    let live_challenge = || {
        rt.block_on(start_login(&store, &rp, shared::now()))
            .unwrap_or_else(|e| panic!("{e}"))
            .challenge_id
    };
    let take_beside_read = |challenge_id: String| {
        let (taken, found) = rt.block_on(async {
            tokio::join!(
                store.take_challenge(&challenge_id, &Ceremony::Login),
                store.passkey(&id)
            )
        });
        assert!(taken.unwrap().is_some() && found.unwrap().is_some());
    };
    // ... and the transaction, on the passkey and user as just read (not
    // measured), with a new session.
    let as_read = || {
        let (user, stored) = rt.block_on(store.passkey(&id)).unwrap().expect("the passkey");
        let session = shared::service::sessions::start(
            &tokens,
            &user,
            &shared::service::passkeys::AMR,
            Origin::default(),
            shared::now(),
        );
        (user, stored, session)
    };
    let transaction = |(user, stored, session): (shared::store::User, shared::store::StoredPasskey, _)| {
        let done = rt
            .block_on(store.finish_passkey_login(&user, &stored, &stored.credential, &session))
            .unwrap();
        assert_eq!(done, Change::Done);
    };
    // The plain floor beside them: one GetItem of a small item.
    let table = store.table().to_owned();
    let key_of = |pk: &str| {
        std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
            ("sk".to_owned(), AttributeValue::S("FLOOR".to_owned())),
        ])
    };
    rt.block_on(
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(key_of("FLOOR#bench")))
            .send(),
    )
    .unwrap();
    let get_item = || {
        rt.block_on(
            client
                .get_item()
                .table_name(&table)
                .set_key(Some(key_of("FLOOR#bench")))
                .send(),
        )
        .unwrap()
    };

    // DynamoDB Local is a JVM: warm its DeleteItem, GetItem, PutItem and
    // TransactWriteItems paths first, as the other DynamoDB benches do.
    let warm_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < warm_until {
        finish(browser());
        take_beside_read(live_challenge());
        transaction(as_read());
        get_item();
    }

    let mut group = c.benchmark_group("passkey_finish");
    group.sample_size(20);
    group.bench_function("finish_login", |b| {
        b.iter_batched(browser, finish, BatchSize::PerIteration)
    });
    group.bench_function("floor_p256_verify", |b| b.iter(&verify));
    group.bench_function("part_take_beside_passkey", |b| {
        b.iter_batched(live_challenge, take_beside_read, BatchSize::PerIteration)
    });
    group.bench_function("part_finish_transaction", |b| {
        b.iter_batched(as_read, transaction, BatchSize::PerIteration)
    });
    group.bench_function("floor_dynamodb_get_item", |b| b.iter(&get_item));
    group.finish();
}

criterion_group!(benches, passkey_finish);
criterion_main!(benches);
