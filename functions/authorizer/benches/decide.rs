//! The authorizer's decision in process, on the committed sample event, with
//! an HS256 key and with the dev key set (RS256).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shared::key_cache::KeyCache;
use shared::keyset::{Alg, KeySet};
use shared::testing::{dev_authority, dev_settings, event_json};
use shared::token::TokenAuthority;

fn decide(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hs256 = TokenAuthority::from_secret(dev_settings(), &KeySet::generate(Alg::HS256, 0).to_json()).unwrap();
    for (name, authority) in [
        ("authorizer_decision", hs256),
        ("authorizer_decision_rs256", dev_authority()),
    ] {
        let token = shared::testing::access_token(&authority, "u-1", "alice", shared::now());
        let keys = KeyCache::ready(authority.into_verifier());
        let json = event_json("authorizer-ok").replace("${ACCESS_TOKEN}", &token);
        c.bench_function(name, |b| {
            b.iter_batched(
                || serde_json::from_str::<authorizer::Event>(&json).unwrap(),
                |event| {
                    assert!(
                        rt.block_on(authorizer::handle(&keys, &authorizer::RequireMfa::Nowhere, event))
                            .unwrap()
                            .is_authorized
                    )
                },
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, decide);
criterion_main!(benches);
