//! The wrapper every handler runs in: its outcome becomes the response, in
//! time, with one log line per request.

use super::error::ApiError;
use lambda_http::{Body, Request, RequestExt, Response};
use std::future::Future;
use std::time::{Duration, SystemTime};
use tracing::Instrument;

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
    // Handlers and services record who the request is for with `record_user`.
    let span = tracing::info_span!("request", user_id = tracing::field::Empty);
    let work = crate::audit::from_client(super::origin(req), work);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::no_content;
    use lambda_http::http::Request as HttpRequest;

    #[tokio::test]
    async fn a_handler_still_waiting_near_the_deadline_answers_503_in_time() {
        let mut context = lambda_http::Context::default();
        let deadline = SystemTime::now() + DEADLINE_MARGIN + Duration::from_millis(200);
        context.deadline = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        let req = HttpRequest::builder()
            .uri("/x")
            .body(Body::Empty)
            .unwrap()
            .with_lambda_context(context);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(no_content())
        };
        let response = respond(&req, slow).await.unwrap();
        assert_eq!(response.status(), 503);
        assert!(SystemTime::now() < deadline, "answered before the deadline");
    }
}
