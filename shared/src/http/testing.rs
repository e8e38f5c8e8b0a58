//! Test support for the HTTP edge: the committed sample events as requests,
//! and a handler's answer read back.

use crate::testing::event_json;
use lambda_http::{Body, Error, Request, Response, request};

/// The JSON body of a response (`Null` when it has none).
pub fn response_json(response: &Response<Body>) -> serde_json::Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
        Body::Empty => serde_json::Value::Null,
        other => panic!("expected a text body, got {other:?}"),
    }
}

/// Awaits a handler's answer: the response and its JSON body.
pub async fn call(
    answer: impl std::future::Future<Output = Result<Response<Body>, Error>>,
) -> (Response<Body>, serde_json::Value) {
    let response = answer.await.expect("handlers answer errors as responses");
    let body = response_json(&response);
    (response, body)
}

/// `events/<name>.json` as the request a function receives, its
/// `${REFRESH_TOKEN}` or `${ACCESS_TOKEN}` placeholder replaced by `token` when given.
pub fn event(name: &str, token: Option<&str>) -> Request {
    let mut json = event_json(name);
    if let Some(token) = token {
        json = json
            .replace("${REFRESH_TOKEN}", token)
            .replace("${ACCESS_TOKEN}", token);
    }
    request::from_str(&json).unwrap_or_else(|e| panic!("events/{name}.json is not an event: {e}"))
}

/// `events/<name>.json` with `body` as its body (any body it had is replaced).
pub fn event_with_body(name: &str, body: &serde_json::Value) -> Request {
    let mut event: serde_json::Value = serde_json::from_str(&event_json(name)).expect("an event is JSON");
    event["body"] = body.to_string().into();
    request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("events/{name}.json is not an event: {e}"))
}

/// `req` with `Authorization: Bearer <token>`.
pub fn with_token(mut req: Request, token: &str) -> Request {
    let value = format!("Bearer {token}").parse().expect("a token is a header value");
    req.headers_mut().insert("authorization", value);
    req
}
