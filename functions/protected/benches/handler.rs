//! The protected handler in process, on the committed sample event, with an
//! HS256 key and with the dev key set (RS256).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shared::http::testing::event;
use shared::key_cache::KeyCache;
use shared::keyset::{Alg, KeySet};
use shared::testing::{dev_authority, dev_settings};
use shared::token::TokenAuthority;

fn handler(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hs256 = TokenAuthority::from_secret(dev_settings(), &KeySet::generate(Alg::HS256, 0).to_json()).unwrap();
    for (name, authority) in [
        ("protected_handler", hs256),
        ("protected_handler_rs256", dev_authority()),
    ] {
        let token = shared::testing::access_token(
            &authority,
            "7d0c5d5e-0b6f-4a43-9d55-3f2f0f8c1a11",
            "alice",
            shared::now(),
        );
        let keys = KeyCache::ready(authority.into_verifier());
        c.bench_function(name, |b| {
            b.iter_batched(
                || event("protected-ok", Some(&token)),
                |req| {
                    let response = rt.block_on(protected::handle(&keys, req)).unwrap();
                    assert_eq!(response.status(), 200);
                },
                BatchSize::SmallInput,
            )
        });
    }
}

/// What lambda_http spends dropping the request it parsed, inside every call
/// above (its parsing is not: it happens in the setup).
fn request_teardown(c: &mut Criterion) {
    let token = shared::testing::access_token(
        &dev_authority(),
        "7d0c5d5e-0b6f-4a43-9d55-3f2f0f8c1a11",
        "alice",
        shared::now(),
    );
    c.bench_function("protected_request_teardown", |b| {
        b.iter_batched(|| event("protected-ok", Some(&token)), drop, BatchSize::SmallInput)
    });
}

criterion_group!(benches, handler, request_teardown);
criterion_main!(benches);
