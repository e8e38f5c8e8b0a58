//! The caller's TOTP second factor. Every route needs a valid access token
//! of a live session:
//! - `POST /mfa/totp` starts an enrollment: a new secret and its
//!   `otpauth://` URI, pending until its first code;
//! - `POST /mfa/totp/confirm` takes that code, activates the factor and
//!   answers the recovery codes, shown this once;
//! - `DELETE /mfa/totp` removes the factor, given a current code or the password;
//! - `POST /mfa/recovery-codes` replaces the recovery codes, likewise.

use lambda_http::http::StatusCode;
use lambda_http::http::header::{CACHE_CONTROL, HeaderValue};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{ApiError, JsonObject, authenticate, last_segment, no_content, respond};
use shared::service::mfa;
use shared::store::{MfaStore, SessionStore, UserStore};
use shared::totp::TotpIssuer;

pub use shared::State;

/// Answers one request.
pub async fn handle<S: UserStore + SessionStore + MfaStore>(
    state: &State<S>,
    issuer: &TotpIssuer,
    req: Request,
) -> Result<Response<Body>, Error> {
    respond(&req, route(state, issuer, &req)).await
}

async fn route<S: UserStore + SessionStore + MfaStore>(
    state: &State<S>,
    issuer: &TotpIssuer,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let segment = last_segment(req);
    let route = segment.as_deref();
    let allow = match route {
        Some("confirm" | "recovery-codes") => "POST",
        _ => "POST, DELETE",
    };
    let method = req.method().as_str();
    if !allow.split(", ").any(|m| m == method) {
        return Err(ApiError::MethodNotAllowed { allow });
    }
    let claims = authenticate(&state.keys, req).await?;
    let (store, now) = (&state.store, shared::now());
    match (route, method) {
        (Some("confirm"), _) => {
            let code = JsonObject::require(req)?.string("code")?.to_owned();
            let codes = mfa::confirm(store, &claims, &code, now).await?;
            Ok(secret(json!({ "recovery_codes": codes })))
        }
        (Some("recovery-codes"), _) => {
            let reauth = JsonObject::require(req)?.reauth()?;
            let codes = mfa::renew_recovery_codes(store, &claims, &reauth, now).await?;
            Ok(secret(json!({ "recovery_codes": codes })))
        }
        (_, "DELETE") => {
            let reauth = JsonObject::require(req)?.reauth()?;
            mfa::disable(store, &claims, &reauth, now).await?;
            Ok(no_content())
        }
        _ => {
            let enrollment = mfa::enroll(store, issuer, &claims, now).await?;
            Ok(secret(json!({
                "secret": enrollment.secret.base32(),
                "otpauth_uri": enrollment.otpauth_uri,
            })))
        }
    }
}

/// `200` with a body that holds a secret: never cached.
fn secret(body: serde_json::Value) -> Response<Body> {
    let mut response = shared::http::json(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
