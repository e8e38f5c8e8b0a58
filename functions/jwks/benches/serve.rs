//! The JWKS answer in process, on the committed sample event, for a key set
//! of an RS256 and an EdDSA key.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shared::http::testing::event;
use shared::key_cache::KeyCache;
use shared::keyset::{Alg, KeySet, Status, StoredKey};
use shared::testing::dev_settings;
use shared::token::TokenAuthority;

fn serve(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut set = KeySet::generate(Alg::RS256, 0);
    set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 0));
    let keys = KeyCache::ready(
        TokenAuthority::from_secret(dev_settings(), &set.to_json())
            .unwrap()
            .into_verifier(),
    );
    c.bench_function("jwks_handler", |b| {
        b.iter_batched(
            || event("jwks", None),
            |req| assert_eq!(rt.block_on(jwks::handle(&keys, req)).unwrap().status(), 200),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, serve);
criterion_main!(benches);
