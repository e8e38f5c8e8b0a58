//! The caller's TOTP second factor. Every route needs a valid access token
//! of a live session:
//! - `POST /mfa/totp` starts an enrollment: a new secret and its
//!   `otpauth://` URI, pending until its first code;
//! - `POST /mfa/totp/confirm` takes that code, activates the factor and
//!   answers the recovery codes, shown this once;
//! - `DELETE /mfa/totp` removes the factor, given a current code or the password;
//! - `POST /mfa/recovery-codes` replaces the recovery codes, likewise.

use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{ApiError, JsonObject, authenticate, last_segment, no_content, no_store, respond};
use shared::service::mfa;
use shared::store::{AuditStore, MfaStore, SessionStore, ThrottleStore, UserStore};
use shared::totp::TotpIssuer;

/// Its keys only verify: it reads the public keys, never the private set.
pub type State<S> = shared::State<S, shared::token::TokenVerifier>;

/// Answers one request.
pub async fn handle<S: UserStore + SessionStore + MfaStore + AuditStore + ThrottleStore>(
    state: &State<S>,
    issuer: &TotpIssuer,
    req: Request,
) -> Result<Response<Body>, Error> {
    respond(&req, route(state, issuer, &req)).await
}

async fn route<S: UserStore + SessionStore + MfaStore + AuditStore + ThrottleStore>(
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
            Ok(no_store(&json!({ "recovery_codes": codes })))
        }
        (Some("recovery-codes"), _) => {
            let reauth = JsonObject::require(req)?.reauth()?;
            let codes = mfa::renew_recovery_codes(store, &claims, &reauth, now).await?;
            Ok(no_store(&json!({ "recovery_codes": codes })))
        }
        (_, "DELETE") => {
            let reauth = JsonObject::require(req)?.reauth()?;
            mfa::disable(store, &claims, &reauth, now).await?;
            Ok(no_content())
        }
        _ => {
            let enrollment = mfa::enroll(store, issuer, &claims, now).await?;
            Ok(no_store(&json!({
                "secret": enrollment.secret.base32(),
                "otpauth_uri": enrollment.otpauth_uri,
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::{call, event, event_with_body, with_token};
    use shared::key_cache::KeyCache;
    use shared::store::memory::MemoryStore;
    use shared::testing::{access_for, dev_authority, user_with_password};
    use shared::totp::TotpSecret;

    const RIGHT: &str = "correct horse battery staple";

    /// alice in a store, logged in, and the access token of her session.
    async fn logged_in(store: MemoryStore) -> (State<MemoryStore>, String) {
        let state = State {
            keys: KeyCache::ready(dev_authority().into_verifier()),
            store,
        };
        let alice = user_with_password("u-1", "alice", RIGHT).await;
        state.store.create_user(&alice).await.unwrap();
        let access = access_for(&dev_authority(), &state.store, &alice).await;
        (state, access)
    }

    fn issuer() -> TotpIssuer {
        TotpIssuer::from_lookup(|_| Some("Example App".into())).unwrap()
    }

    fn with_body(name: &str, token: &str, body: serde_json::Value) -> Request {
        with_token(event_with_body(name, &body), token)
    }

    #[tokio::test]
    async fn enrolling_confirming_and_removing_a_factor_over_the_routes() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let (response, body) = call(handle(&state, &issuer(), event("mfa-enroll", Some(&access)))).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let uri = body["otpauth_uri"].as_str().unwrap();
        assert!(uri.starts_with("otpauth://totp/Example%20App:alice?"), "{uri}");
        let secret = TotpSecret::from_base32(body["secret"].as_str().unwrap()).unwrap();

        let code = secret.code_at(shared::now());
        let req = with_body("mfa-confirm", &access, serde_json::json!({ "code": code }));
        let (response, body) = call(handle(&state, &issuer(), req)).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);

        let (response, body) = call(handle(&state, &issuer(), event("mfa-enroll", Some(&access)))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (409, Some("totp_enabled"))
        );

        let req = with_body("mfa-recovery-codes", &access, serde_json::json!({ "password": RIGHT }));
        let (response, body) = call(handle(&state, &issuer(), req)).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);

        let req = with_body(
            "mfa-disable",
            &access,
            serde_json::json!({ "password": "wrong horse battery staple" }),
        );
        let (response, body) = call(handle(&state, &issuer(), req)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_credentials"))
        );
        let (response, _) = call(handle(&state, &issuer(), event("mfa-disable", Some(&access)))).await;
        assert_eq!(response.status(), 204);
        assert!(!state.store.user_now("alice").totp);
    }

    #[tokio::test]
    async fn a_wrong_first_code_is_400_invalid_code_and_nothing_pending_is_404() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let (response, body) = call(handle(&state, &issuer(), event("mfa-confirm", Some(&access)))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (404, Some("not_found"))
        );
        call(handle(&state, &issuer(), event("mfa-enroll", Some(&access)))).await;
        let secret = state.store.totp_now("alice").unwrap().secret;
        let wrong = if secret.code_at(shared::now()) == "000000" {
            "111111"
        } else {
            "000000"
        };
        let req = with_body("mfa-confirm", &access, serde_json::json!({ "code": wrong }));
        let (response, body) = call(handle(&state, &issuer(), req)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_code"))
        );
    }

    #[tokio::test]
    async fn removing_with_a_wrong_code_is_401_invalid_code_and_with_no_factor_404() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let (response, body) = call(handle(&state, &issuer(), event("mfa-disable", Some(&access)))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (404, Some("not_found"))
        );
        let alice = state.store.user_now("alice");
        let (secret, _) = shared::testing::enable_totp(&state.store, &alice, shared::now()).await;
        let wrong = if secret.code_at(shared::now()) == "000000" {
            "111111"
        } else {
            "000000"
        };
        let req = with_body("mfa-disable", &access, serde_json::json!({ "code": wrong }));
        let (response, body) = call(handle(&state, &issuer(), req)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_code"))
        );
    }

    #[tokio::test]
    async fn both_a_code_and_a_password_or_neither_or_a_number_is_400() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        for body in [
            serde_json::json!({ "code": "123456", "password": RIGHT }),
            serde_json::json!({}),
            serde_json::json!({ "code": 123456 }),
            serde_json::json!({ "password": "short" }),
        ] {
            let req = with_body("mfa-disable", &access, body.clone());
            let (response, answer) = call(handle(&state, &issuer(), req)).await;
            assert_eq!(
                (response.status().as_u16(), answer["error"].as_str()),
                (400, Some("invalid_request")),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn each_route_answers_its_methods_only_and_needs_a_token() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let mut get = event("mfa-enroll", Some(&access));
        *get.method_mut() = lambda_http::http::Method::GET;
        let (response, _) = call(handle(&state, &issuer(), get)).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "POST, DELETE")
        );
        let mut delete = event("mfa-confirm", Some(&access));
        *delete.method_mut() = lambda_http::http::Method::DELETE;
        let (response, _) = call(handle(&state, &issuer(), delete)).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "POST")
        );
        let (response, body) = call(handle(&state, &issuer(), event("mfa-enroll", None))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token"))
        );
        assert!(response.headers().contains_key("www-authenticate"));
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503() {
        let state = State {
            keys: KeyCache::ready(dev_authority().into_verifier()),
            store: MemoryStore::unreachable(),
        };
        let access = shared::testing::access_token(&dev_authority(), "u-1", "alice", shared::now());
        let (response, body) = call(handle(&state, &issuer(), event("mfa-enroll", Some(&access)))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (503, Some("unavailable"))
        );
    }
}
