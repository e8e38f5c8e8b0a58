//! `Authorization: Bearer` headers (RFC 6750), and authenticating a request by one.

use super::error::ApiError;
use crate::key_cache::{KeyCache, Keys};
use crate::token::{AccessClaims, TokenVerifier};
use lambda_http::Request;
use lambda_http::http::header;

/// The token of an `Authorization: Bearer <token>` header: `None` when the
/// header is absent, `InvalidToken` when it is there but not a bearer token.
pub fn bearer_token(req: &Request) -> Result<Option<&str>, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidToken);
    }
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    parse_bearer(value).map(Some)
}

/// Whether an `Authorization` header names the Bearer scheme, well formed or
/// not. RFC 6750 §3.1: a request that used another scheme (`Basic ...`) gets
/// the challenge without an error code, as one with no credentials does.
fn tried_bearer(req: &Request) -> bool {
    req.headers().get_all(header::AUTHORIZATION).iter().any(|value| {
        let scheme = value.as_bytes().split(|b| matches!(b, b' ' | b'\t')).next();
        scheme.is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer"))
    })
}

/// The token of an `Authorization` header value, if it is `Bearer <b64token>`.
pub fn parse_bearer(value: &str) -> Result<&str, ApiError> {
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidToken)?;
    let token = token.trim_start_matches(' ');
    // RFC 6750 b64token: letters, digits and -._~+/ followed by optional '='.
    let b64token = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if scheme.eq_ignore_ascii_case("bearer") && b64token {
        Ok(token)
    } else {
        Err(ApiError::InvalidToken)
    }
}

/// The verified access token of a request to a protected route (and its user
/// recorded in the request's log line), or `401` with the RFC 6750 challenge.
/// Reads nothing but the key: any protected function is one call away.
pub async fn authenticate<K: Keys + AsRef<TokenVerifier>>(
    keys: &KeyCache<K>,
    req: &Request,
) -> Result<AccessClaims, ApiError> {
    let keys = keys.get().await?;
    let tokens: &TokenVerifier = (*keys).as_ref();
    let token = bearer_token(req)
        .map_err(|_| ApiError::BearerChallenge {
            token_sent: tried_bearer(req),
        })?
        .ok_or(ApiError::BearerChallenge { token_sent: false })?;
    let claims = tokens.verify_access(token, crate::clock::now()).map_err(|reason| {
        tracing::info!(%reason, "access token refused");
        ApiError::BearerChallenge { token_sent: true }
    })?;
    crate::log::record_user(&claims.sub);
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;
    use lambda_http::http::{HeaderValue, Request as HttpRequest};

    fn with_auth(value: &[u8]) -> Request {
        HttpRequest::builder()
            .method("GET")
            .uri("/x")
            .header("authorization", HeaderValue::from_bytes(value).unwrap())
            .body(Body::Empty)
            .unwrap()
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(
            bearer_token(&with_auth(b"Bearer abc.def-_~+/=")).unwrap(),
            Some("abc.def-_~+/=")
        );
        assert_eq!(bearer_token(&with_auth(b"bearer abc")).unwrap(), Some("abc"));
        assert_eq!(bearer_token(&with_auth(b"Bearer   abc")).unwrap(), Some("abc"));
        let bad: [&[u8]; 8] = [
            b"Bearer",
            b"Bearer ",
            b"Basic abc",
            b"Bearerabc",
            b"Bearer a b",
            b"Bearer a\"b",
            b"Token abc",
            b"Bearer \xffabc",
        ];
        for value in bad {
            assert_eq!(
                bearer_token(&with_auth(value)),
                Err(ApiError::InvalidToken),
                "{value:?}"
            );
        }
        let none = HttpRequest::builder().uri("/x").body(Body::Empty).unwrap();
        assert_eq!(bearer_token(&none).unwrap(), None);
        let twice = HttpRequest::builder()
            .uri("/x")
            .header("authorization", "Bearer a")
            .header("authorization", "Bearer b")
            .body(Body::Empty)
            .unwrap();
        assert_eq!(bearer_token(&twice), Err(ApiError::InvalidToken));
    }

    #[test]
    fn only_a_bearer_attempt_counts_as_a_token_sent() {
        for value in [
            &b"Bearer"[..],
            b"Bearer ",
            b"bearer a b",
            b"BEARER\tx",
            b"Bearer \xffabc",
        ] {
            assert!(tried_bearer(&with_auth(value)), "{value:?}");
        }
        for value in [&b"Basic YWxpY2U6cGFzcw=="[..], b"Token abc", b"Bearerabc", b""] {
            assert!(!tried_bearer(&with_auth(value)), "{value:?}");
        }
    }
}
