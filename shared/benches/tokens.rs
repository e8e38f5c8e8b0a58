//! Token and password costs at the configured parameters, each beside its floor.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, crypto::sign};
use shared::credentials::Password;
use shared::keyset::{Alg, KeySet};
use shared::testing::dev_settings;
use shared::token::{AccessClaims, TokenAuthority};
use std::hint::black_box;

/// An HS256 secret (the rows without a suffix, and their floor, are HMAC).
const HS256_SECRET: &str = "bench-only-0f3a9c1d7e5b2468-an-hs256-secret-of-48-bytes";

fn tokens(c: &mut Criterion) {
    let keys = TokenAuthority::from_secret(dev_settings(), HS256_SECRET).unwrap();
    let now = shared::now();
    let token = shared::testing::access_token(&keys, "7d0c5d5e-0b6f-4a43-9d55-3f2f0f8c1a11", "alice", now);
    c.bench_function("access_token_issue", |b| {
        b.iter(|| shared::testing::access_token(&keys, "u-1", black_box("alice"), now))
    });
    c.bench_function("access_token_verify", |b| {
        b.iter(|| keys.verify_access(black_box(&token), now).unwrap())
    });

    // The floor of any verify: one HMAC-SHA256 over the signing input, and the
    // claims decoded from base64 and parsed from JSON.
    let secret = EncodingKey::from_secret(HS256_SECRET.as_bytes());
    let (input, _) = token.rsplit_once('.').unwrap();
    let payload = input.split_once('.').unwrap().1.to_owned();
    c.bench_function("floor_hmac_sha256_and_claims_json", |b| {
        b.iter(|| {
            let signature = sign(black_box(input.as_bytes()), &secret, Algorithm::HS256).unwrap();
            use base64::Engine;
            let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(black_box(&payload))
                .unwrap();
            (signature, serde_json::from_slice::<AccessClaims>(&json).unwrap())
        })
    });
    c.bench_function("refresh_token_hash", |b| {
        b.iter(|| shared::token::refresh_token_hash(black_box(&token)))
    });

    // The same with the asymmetric algorithms of a key set.
    for (name, alg) in [("eddsa", Alg::EdDSA), ("rs256", Alg::RS256)] {
        let keys = TokenAuthority::from_secret(dev_settings(), &KeySet::generate(alg, 0).to_json()).unwrap();
        let token = shared::testing::access_token(&keys, "7d0c5d5e-0b6f-4a43-9d55-3f2f0f8c1a11", "alice", now);
        c.bench_function(&format!("access_token_issue_{name}"), |b| {
            b.iter(|| shared::testing::access_token(&keys, "u-1", black_box("alice"), now))
        });
        c.bench_function(&format!("access_token_verify_{name}"), |b| {
            b.iter(|| keys.verify_access(black_box(&token), now).unwrap())
        });
    }
}

fn passwords(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let password = Password::parse("correct horse battery staple").unwrap();
    let hash = rt.block_on(shared::password::hash(&password)).unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    group.bench_function("password_hash", |b| {
        b.iter(|| rt.block_on(shared::password::hash(&password)).unwrap())
    });
    group.bench_function("password_verify", |b| {
        b.iter_batched(
            || (),
            |_| rt.block_on(shared::password::verify(&password, Some(&hash))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The strength estimate a register, password change or reset makes of a
/// new password (issue 22 asks under 5 ms), with a user's name and email as
/// its words: a passphrase, a long mixed password, and the worst case the
/// estimator is held to (the longest password, all l33t stand-ins, whose
/// readings multiply). The dictionaries are built in criterion's warm-up.
fn strength(c: &mut Criterion) {
    let policy = shared::strength::StrengthPolicy::default();
    let inputs = shared::strength::user_inputs("alice", Some("alice@example.com"));
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("strength");
    for (name, raw) in [
        ("check_28_chars", "correct horse battery staple".to_owned()),
        ("check_78_chars", "Tr0ub4dor&3-correct-horse-".repeat(3)),
        ("check_1024_passphrase", "plum-Harbor 8 ".repeat(74)[..1024].to_owned()),
        (
            "check_1024_l33t",
            "4@8({[<3691!|1|70$5+7%2>?".repeat(41)[..1024].to_owned(),
        ),
    ] {
        let password = Password::parse(&raw).unwrap();
        group.bench_function(name, |b| b.iter(|| policy.check(&password, &inputs)));
    }
    group.finish();
}

criterion_group!(benches, tokens, passwords, strength);
criterion_main!(benches);
