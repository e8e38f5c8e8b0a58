//! The HTTP edge shared by every function: request parsing that never
//! panics, and the one place where errors become responses.

use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use std::future::Future;
use std::time::{Duration, SystemTime};
use tracing::Instrument;

/// Largest request body accepted; anything bigger is `413`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "lambda-jwt-auth";

/// Every error a client can get. The variant decides status, code and headers, here and nowhere else.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The body or a field is not what the route expects; the message says which and why.
    InvalidRequest(String),
    /// Wrong password or unknown username: one answer for both.
    InvalidCredentials,
    /// A token that is missing, malformed, badly signed, expired, of the wrong kind, revoked or reused.
    InvalidToken,
    /// Like `InvalidToken`, from a resource route: adds the RFC 6750 challenge.
    BearerChallenge {
        token_sent: bool,
    },
    MethodNotAllowed {
        allow: Method,
    },
    UsernameTaken,
    PayloadTooLarge,
    TooManyAttempts {
        retry_after: u64,
    },
    /// A dependency (DynamoDB, the secret store) is unreachable or throttling.
    Unavailable,
}

/// The JSON body of every error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// Shorthand for a `400 invalid_request` with a message for the client.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }

    /// The response a client sees: status, `{"error", "message"}` and any headers the error needs.
    pub fn into_response(self) -> Response<Body> {
        let (status, code, message): (StatusCode, &str, &str) = match &self {
            Self::InvalidRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
            Self::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "username or password is incorrect",
            ),
            Self::InvalidToken | Self::BearerChallenge { .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is missing, invalid, expired or revoked",
            ),
            Self::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not answer that method",
            ),
            Self::UsernameTaken => (
                StatusCode::CONFLICT,
                "username_taken",
                "that username is already registered",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than 16 KiB",
            ),
            Self::TooManyAttempts { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed logins for this username; retry later",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is temporarily unavailable; retry shortly",
            ),
        };
        let mut response = json(status, &ErrorBody { error: code, message });
        let headers = response.headers_mut();
        match self {
            Self::BearerChallenge { token_sent } => {
                let challenge = if token_sent {
                    format!("Bearer realm=\"{REALM}\", error=\"invalid_token\"")
                } else {
                    format!("Bearer realm=\"{REALM}\"")
                };
                headers.insert(header::WWW_AUTHENTICATE, header_value(&challenge));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, header_value(allow.as_str()));
            }
            Self::TooManyAttempts { retry_after } => {
                headers.insert(header::RETRY_AFTER, header_value(&retry_after.max(1).to_string()));
            }
            Self::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::error!(%error, "store unavailable");
        Self::Unavailable
    }
}

impl From<crate::password::HashError> for ApiError {
    fn from(error: crate::password::HashError) -> Self {
        tracing::error!(%error, "password hashing unavailable");
        Self::Unavailable
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header values built here are ASCII")
}

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

/// The token response of RFC 6749 §5.1.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
}

/// `200` with the token pair, never to be cached.
pub fn tokens(body: &TokenResponse) -> Response<Body> {
    let mut response = json(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Time kept back from the invocation's deadline to send our own answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
/// The budget when there is no usable deadline (in-process tests, `cargo lambda watch`).
const DEFAULT_BUDGET: Duration = Duration::from_secs(8);

/// Runs a handler and turns its outcome into what the runtime wants: errors
/// are responses, never failures, and a handler still waiting on a slow
/// dependency near the invocation's deadline becomes our 503, not Lambda's timeout.
pub async fn respond(
    req: &Request,
    work: impl Future<Output = Result<Response<Body>, ApiError>>,
) -> Result<Response<Body>, lambda_http::Error> {
    let started = std::time::Instant::now();
    // A deadline already past means there is none to trust: `cargo lambda watch`
    // sends a fixed 600000 ms (in 1970); a real invocation's is always ahead.
    let budget = req
        .lambda_context_ref()
        .and_then(|ctx| ctx.deadline().duration_since(SystemTime::now()).ok())
        .map_or(DEFAULT_BUDGET, |left| left.saturating_sub(DEADLINE_MARGIN));
    // Handlers record who the request is for with `record_user`.
    let span = tracing::info_span!("request", user_id = tracing::field::Empty);
    let result = tokio::time::timeout(budget, work.instrument(span.clone()))
        .await
        .unwrap_or_else(|_| {
            tracing::error!(
                budget_ms = budget.as_millis() as u64,
                "deadline reached before an answer"
            );
            Err(ApiError::Unavailable)
        });
    let response = result.unwrap_or_else(ApiError::into_response);
    // One line per request; the runtime's span adds the request id.
    span.in_scope(|| {
        tracing::info!(
            method = %req.method(),
            route = req.uri().path(),
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        )
    });
    Ok(response)
}

/// Names the user a request is for in its log line (an id, never a credential).
pub fn record_user(user_id: &str) {
    tracing::Span::current().record("user_id", user_id);
}

/// `405` unless the request uses the route's one method.
pub fn require_method(req: &Request, allow: Method) -> Result<(), ApiError> {
    if req.method() == allow {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// A request body that parsed as a JSON object.
#[derive(Debug)]
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    /// Parses the body: `None` when it is empty, `400` when it is not a JSON
    /// object, `413` when it is too large. Unknown fields are kept and ignored.
    pub fn from_request(req: &Request) -> Result<Option<Self>, ApiError> {
        let bytes: &[u8] = match req.body() {
            Body::Empty => return Ok(None),
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => return Err(ApiError::invalid("the request body could not be read")),
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Some(Self(map))),
            _ => Err(ApiError::invalid("the request body must be a JSON object")),
        }
    }

    /// Like `from_request`, for routes where a body is required.
    pub fn require(req: &Request) -> Result<Self, ApiError> {
        Self::from_request(req)?.ok_or_else(|| ApiError::invalid("the request body must be a JSON object"))
    }

    /// A required string field.
    pub fn string(&self, field: &str) -> Result<&str, ApiError> {
        self.optional_string(field)?
            .ok_or_else(|| ApiError::invalid(format!("field \"{field}\" is required")))
    }

    /// A boolean field, `false` when absent (or `null`).
    pub fn flag(&self, field: &str) -> Result<bool, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::invalid(format!("field \"{field}\" must be true or false"))),
        }
    }

    /// A string field that may be absent (or `null`), but is a string when present.
    pub fn optional_string(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(format!("field \"{field}\" must be a string"))),
        }
    }
}

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
pub async fn authenticate(keys: &crate::keys::Keys, req: &Request) -> Result<crate::token::AccessClaims, ApiError> {
    let keys = keys.get().await?;
    let token = bearer_token(req)
        .map_err(|_| ApiError::BearerChallenge {
            token_sent: tried_bearer(req),
        })?
        .ok_or(ApiError::BearerChallenge { token_sent: false })?;
    let claims = keys.verify_access(token).map_err(|reason| {
        tracing::info!(%reason, "access token refused");
        ApiError::BearerChallenge { token_sent: true }
    })?;
    record_user(&claims.sub);
    Ok(claims)
}

/// The verified refresh token of a refresh or logout request, taken from the
/// JSON body's `refresh_token`, else the bearer header, with its claims (and its
/// user recorded in the request's log line). Missing or invalid is `401`.
pub fn refresh_token(
    keys: &crate::token::TokenKeys,
    req: &Request,
    body: Option<&JsonObject>,
) -> Result<(String, crate::token::RefreshClaims), ApiError> {
    let token = match body.map(|b| b.optional_string("refresh_token")).transpose()?.flatten() {
        Some(token) => token.to_owned(),
        None => bearer_token(req)?.map(str::to_owned).ok_or(ApiError::InvalidToken)?,
    };
    let claims = keys.verify_refresh(&token).map_err(|reason| {
        tracing::info!(%reason, "refresh token refused");
        ApiError::InvalidToken
    })?;
    record_user(&claims.sub);
    Ok((token, claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::Request as HttpRequest;

    fn request(body: Body) -> Request {
        HttpRequest::builder().method("POST").uri("/x").body(body).unwrap()
    }

    fn with_auth(value: &[u8]) -> Request {
        HttpRequest::builder()
            .method("GET")
            .uri("/x")
            .header("authorization", HeaderValue::from_bytes(value).unwrap())
            .body(Body::Empty)
            .unwrap()
    }

    fn body_json(response: &Response<Body>) -> Value {
        match response.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("expected text body, got {other:?}"),
        }
    }

    #[test]
    fn every_error_is_json_with_a_code_and_a_message() {
        let all = [
            ApiError::invalid("x"),
            ApiError::InvalidCredentials,
            ApiError::InvalidToken,
            ApiError::BearerChallenge { token_sent: true },
            ApiError::MethodNotAllowed { allow: Method::POST },
            ApiError::UsernameTaken,
            ApiError::PayloadTooLarge,
            ApiError::TooManyAttempts { retry_after: 30 },
            ApiError::Unavailable,
        ];
        for error in all {
            let response = error.into_response();
            assert!(response.status().is_client_error() || response.status().is_server_error());
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = body_json(&response);
            assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
        }
    }

    #[test]
    fn status_codes_and_headers_follow_the_spec() {
        let r = ApiError::MethodNotAllowed { allow: Method::GET }.into_response();
        assert_eq!(
            (r.status().as_u16(), &r.headers()["allow"]),
            (405, &HeaderValue::from_static("GET"))
        );
        let r = ApiError::TooManyAttempts { retry_after: 42 }.into_response();
        assert_eq!(
            (r.status().as_u16(), &r.headers()["retry-after"]),
            (429, &HeaderValue::from_static("42"))
        );
        let r = ApiError::Unavailable.into_response();
        assert_eq!(r.status().as_u16(), 503);
        assert_eq!(body_json(&r)["error"], "unavailable");
        let r = ApiError::BearerChallenge { token_sent: false }.into_response();
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"lambda-jwt-auth\"");
        let r = ApiError::BearerChallenge { token_sent: true }.into_response();
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"lambda-jwt-auth\", error=\"invalid_token\""
        );
    }

    #[tokio::test]
    async fn a_handler_still_waiting_near_the_deadline_answers_503_in_time() {
        let mut context = lambda_http::Context::default();
        let deadline = SystemTime::now() + DEADLINE_MARGIN + Duration::from_millis(200);
        context.deadline = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        let req = request(Body::Empty).with_lambda_context(context);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(no_content())
        };
        let response = respond(&req, slow).await.unwrap();
        assert_eq!(response.status(), 503);
        assert!(SystemTime::now() < deadline, "answered before the deadline");
    }

    #[test]
    fn token_responses_are_never_cached() {
        let r = tokens(&TokenResponse {
            access_token: "a".into(),
            refresh_token: "r".into(),
            token_type: "Bearer",
            expires_in: 900,
        });
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(body_json(&r)["token_type"], "Bearer");
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_rejected() {
        for body in ["[]", "\"x\"", "1", "null", "{", "{\"a\":}", "{} {}"] {
            let err = JsonObject::from_request(&request(Body::Text(body.into()))).unwrap_err();
            assert!(matches!(err, ApiError::InvalidRequest(_)), "{body}");
        }
        let err = JsonObject::from_request(&request(Body::Binary(vec![b'{', 0xff, 0xfe, b'}']))).unwrap_err();
        assert!(matches!(err, ApiError::InvalidRequest(_)), "non-UTF-8");
    }

    #[test]
    fn a_body_over_16_kib_is_413() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        assert_eq!(
            JsonObject::from_request(&request(Body::Text(big))).unwrap_err(),
            ApiError::PayloadTooLarge
        );
    }

    #[test]
    fn fields_must_be_present_and_strings() {
        let obj = JsonObject::require(&request(Body::Text(r#"{"a": 1, "b": "x", "c": null}"#.into()))).unwrap();
        assert_eq!(obj.string("b").unwrap(), "x");
        assert!(matches!(obj.string("a"), Err(ApiError::InvalidRequest(m)) if m.contains("must be a string")));
        assert!(matches!(obj.string("c"), Err(ApiError::InvalidRequest(m)) if m.contains("is required")));
        assert!(matches!(obj.string("zz"), Err(ApiError::InvalidRequest(m)) if m.contains("is required")));
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(
            bearer_token(&with_auth(b"Bearer abc.def-_~+/=")).unwrap(),
            Some("abc.def-_~+/=")
        );
        assert_eq!(bearer_token(&with_auth(b"bearer abc")).unwrap(), Some("abc"));
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
