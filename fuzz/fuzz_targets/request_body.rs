//! Any bytes as a request body, through the parsing every function does:
//! register and login's credentials, refresh and logout's token and flag.
//! (A random body never holds a valid token: verification fails, as it must.)
#![no_main]

use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use shared::http::{JsonObject, refresh_token};
use std::sync::LazyLock;

static KEYS: LazyLock<shared::token::TokenAuthority> = LazyLock::new(shared::testing::dev_authority);

fn request(data: &[u8]) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/x")
        .header("content-type", "application/json")
        .body(Body::Binary(data.to_vec()))
        .expect("a request")
}

/// What register and login read from their body: the account (a username,
/// else an email), the password, an optional email.
fn credentials(req: &Request) {
    if let Ok(body) = JsonObject::require(req) {
        let _ = body.who();
        let _ = body.password("password");
        let _ = body.optional_email("email");
    }
}

fuzz_target!(|data: &[u8]| {
    let req = request(data);
    credentials(&req);
    if let Ok(body) = JsonObject::from_request(&req) {
        if let Ok(token) = refresh_token(&req, body.as_ref()) {
            assert!(
                KEYS.verify_refresh(token, shared::now()).is_err(),
                "a random body never holds a valid token"
            );
        }
        if let Some(body) = body {
            let _ = body.flag("everywhere");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let req = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/x")
            .body(Body::Text(text.into()))
            .unwrap();
        credentials(&req);
    }
});
