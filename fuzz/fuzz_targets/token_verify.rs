//! Token verification on arbitrary bytes, and on tokens whose header and
//! claims are arbitrary but correctly signed, so the claim checks are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::testing::{b64, dev_authority, dev_env};
use std::sync::LazyLock;

static KEYS: LazyLock<shared::token::TokenAuthority> = LazyLock::new(dev_authority);
static SECRET: LazyLock<Vec<u8>> = LazyLock::new(|| dev_env("JWT_SECRET").unwrap().into_bytes());

fuzz_target!(|data: &[u8]| {
    let now = shared::now();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = KEYS.verify_access(text, now);
        let _ = KEYS.verify_refresh(text, now);
    }
    // Split the input into a header and claims, sign them with the real key.
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len() / 2);
    let (header, claims) = data.split_at(cut);
    let input = format!("{}.{}", b64(header), b64(claims.get(1..).unwrap_or_default()));
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(&SECRET),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    let token = format!("{input}.{signature}");
    if let Ok(claims) = KEYS.verify_access(&token, now) {
        // Whatever got through must really be a live access token of ours.
        assert!(claims.exp + shared::limits::LEEWAY >= now && claims.nbf <= now + shared::limits::LEEWAY);
        assert_eq!(claims.token_use, shared::token::TokenUse::Access);
    }
    let _ = KEYS.verify_refresh(&token, now);
});
