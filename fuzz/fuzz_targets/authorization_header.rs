//! Any bytes as an `Authorization` header: parsing, then verification of whatever token it yields.
#![no_main]

use lambda_http::Body;
use lambda_http::http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEYS: LazyLock<shared::token::TokenAuthority> = LazyLock::new(shared::testing::dev_authority);

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let req = lambda_http::http::Request::builder()
        .method("GET")
        .uri("/protected")
        .header("authorization", value)
        .body(Body::Empty)
        .expect("a request");
    if let Ok(Some(token)) = shared::http::bearer_token(&req) {
        assert!(
            KEYS.verify_access(token, shared::now()).is_err(),
            "a random header is never a valid token"
        );
    }
});
