//! Answers: JSON with its content type, and token pairs that are never cached.

use crate::service::TokenPair;
use crate::store::User;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// A JSON response with the right content type.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).expect("response bodies serialize");
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `204 No Content`.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// `200` with a body that holds a secret or a one-time value: never cached.
pub fn no_store(body: &impl Serialize) -> Response<Body> {
    let mut response = json(StatusCode::OK, body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The token response of RFC 6749 §5.1.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    /// Access token lifetime, seconds.
    expires_in: u64,
}

/// `200` with the token pair, never to be cached.
pub fn tokens(pair: &TokenPair) -> Response<Body> {
    let body = TokenResponse {
        access_token: &pair.access_token,
        refresh_token: &pair.refresh_token,
        token_type: "Bearer",
        expires_in: pair.expires_in,
    };
    let mut response = no_store(&body);
    let headers = response.headers_mut();
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The account as its owner sees it (`GET /account`).
#[derive(Serialize)]
struct Account<'a> {
    id: &'a str,
    username: &'a str,
    email: Option<&'a str>,
    email_verified: bool,
    /// Seconds since the epoch.
    created_at: u64,
    mfa: Factors,
}

/// The second factors of the account.
#[derive(Serialize)]
struct Factors {
    totp: bool,
    passkeys: u32,
}

/// `200` with the account of `user`.
pub fn account_view(user: &User) -> Response<Body> {
    let body = Account {
        id: &user.id,
        username: &user.username,
        email: user.email.as_deref(),
        email_verified: user.email_verified,
        created_at: user.created_at,
        mfa: Factors {
            totp: user.totp,
            passkeys: user.passkeys,
        },
    };
    json(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::response_json;

    #[test]
    fn token_responses_are_never_cached() {
        let r = tokens(&TokenPair {
            access_token: "a".into(),
            refresh_token: "r".into(),
            expires_in: 900,
        });
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["pragma"], "no-cache");
        let body = response_json(&r);
        assert_eq!(
            body,
            serde_json::json!({"access_token": "a", "refresh_token": "r", "token_type": "Bearer", "expires_in": 900})
        );
    }
}
