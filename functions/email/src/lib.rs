//! The caller's email address: `POST /account/email` mails a 6-digit code to
//! a new address, `POST /account/email/verify` takes it back and makes the
//! address the account's verified one. Both need a valid access token.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::Outbox;
use shared::http::{ApiError, JsonObject, account_view, authenticate, json, last_segment, require_method, respond};
use shared::mail::Mailer;
use shared::service::email::{request_verification, verify};
use shared::store::{AccountStore, AuditStore, EmailStore, SessionStore};

/// Its keys only verify: it reads the public keys, never the private set.
pub type State<S> = shared::State<S, shared::token::TokenVerifier>;

/// Answers one request.
pub async fn handle<S: AccountStore + EmailStore + SessionStore + AuditStore>(
    state: &State<S>,
    outbox: &Outbox<impl Mailer>,
    req: Request,
) -> Result<Response<Body>, Error> {
    respond(&req, route(state, outbox, &req)).await
}

async fn route<S: AccountStore + EmailStore + SessionStore + AuditStore>(
    state: &State<S>,
    outbox: &Outbox<impl Mailer>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    require_method(req, "POST")?;
    let claims = authenticate(&state.keys, req).await?;
    let body = JsonObject::require(req)?;
    let now = shared::now();
    if last_segment(req).as_deref() == Some("verify") {
        let user = verify(&state.store, &claims, body.string("code")?, now).await?;
        return Ok(account_view(&user));
    }
    let email = body.email("email")?;
    request_verification(&state.store, &outbox.mailer, &outbox.settings, &claims, &email, now).await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &json!({ "email": email.as_str(), "email_verified": false }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::{call, event, event_with_body, with_token};
    use shared::key_cache::KeyCache;
    use shared::store::UserStore;
    use shared::store::memory::MemoryStore;
    use shared::testing::{access_for, dev_authority, outbox, outbox_unreachable, user};

    /// alice in a store, logged in, and the access token of her session.
    async fn logged_in() -> (State<MemoryStore>, String) {
        let state = State {
            keys: KeyCache::ready(dev_authority().into_verifier()),
            store: MemoryStore::default(),
        };
        let alice = user("u-1", "alice");
        state.store.create_user(&alice).await.unwrap();
        let access = access_for(&dev_authority(), &state.store, &alice).await;
        (state, access)
    }

    #[tokio::test]
    async fn the_token_of_an_ended_session_is_401_though_not_expired() {
        let (state, access) = logged_in().await;
        let now = shared::now();
        let claims = dev_authority().verify_access(&access, now).unwrap();
        let key = shared::session::SessionKey::new("alice", &claims.sid);
        state.store.revoke_session(&key, "u-1", now).await.unwrap();
        for name in ["email-set", "email-verify"] {
            let (response, body) = call(handle(&state, &outbox(), event(name, Some(&access)))).await;
            assert_eq!(
                (response.status().as_u16(), body["error"].as_str()),
                (401, Some("invalid_token")),
                "{name}"
            );
        }
    }

    fn code_in(outbox: &Outbox<shared::mail::MemoryMailer>) -> String {
        let text = outbox.mailer.sent().last().expect("a mail").text.clone();
        text.split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == 6)
            .expect("a code")
            .to_owned()
    }

    #[tokio::test]
    async fn an_address_is_202_then_its_mailed_code_verifies_it_and_shows_the_account() {
        let (state, access) = logged_in().await;
        let outbox = outbox();
        let (response, body) = call(handle(&state, &outbox, event("email-set", Some(&access)))).await;
        assert_eq!(response.status(), 202, "{body}");
        let address = body["email"].as_str().unwrap().to_owned();
        assert_eq!(body["email_verified"], false);
        assert_eq!(outbox.mailer.sent()[0].to, address);
        let code = serde_json::json!({ "code": code_in(&outbox) });
        let req = with_token(event_with_body("email-verify", &code), &access);
        let (response, body) = call(handle(&state, &outbox, req)).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(
            (
                body["email"].as_str(),
                body["email_verified"].as_bool(),
                body["username"].as_str()
            ),
            (Some(address.as_str()), Some(true), Some("alice"))
        );
    }

    #[tokio::test]
    async fn a_wrong_code_is_400_invalid_code() {
        let (state, access) = logged_in().await;
        let outbox = outbox();
        call(handle(&state, &outbox, event("email-set", Some(&access)))).await;
        let wrong = if code_in(&outbox) == "000000" {
            "111111"
        } else {
            "000000"
        };
        let req = with_token(
            event_with_body("email-verify", &serde_json::json!({ "code": wrong })),
            &access,
        );
        let (response, body) = call(handle(&state, &outbox, req)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_code"))
        );
    }

    #[tokio::test]
    async fn a_malformed_address_or_a_missing_code_is_400_and_no_token_401() {
        let (state, access) = logged_in().await;
        let bad = with_token(
            event_with_body("email-set", &serde_json::json!({"email": "nope"})),
            &access,
        );
        let (response, body) = call(handle(&state, &outbox(), bad)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
        let empty = with_token(event_with_body("email-verify", &serde_json::json!({})), &access);
        let (response, body) = call(handle(&state, &outbox(), empty)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
        let (response, _) = call(handle(&state, &outbox(), event("email-set", None))).await;
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key("www-authenticate"));
    }

    #[tokio::test]
    async fn ses_down_is_503_and_dynamodb_down_is_503() {
        let (state, access) = logged_in().await;
        let (response, body) = call(handle(&state, &outbox_unreachable(), event("email-set", Some(&access)))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (503, Some("unavailable"))
        );
        let down = State {
            keys: KeyCache::ready(dev_authority().into_verifier()),
            store: MemoryStore::unreachable(),
        };
        let (response, _) = call(handle(&down, &outbox(), event("email-set", Some(&access)))).await;
        assert_eq!(response.status(), 503);
    }

    #[tokio::test]
    async fn the_fourth_address_in_an_hour_is_429_with_retry_after() {
        let (state, access) = logged_in().await;
        let outbox = outbox();
        for i in 0..4 {
            let body = serde_json::json!({ "email": format!("a{i}@example.com") });
            let req = with_token(event_with_body("email-set", &body), &access);
            let (response, body) = call(handle(&state, &outbox, req)).await;
            if i < 3 {
                assert_eq!(response.status(), 202, "{body}");
            } else {
                assert_eq!(
                    (response.status().as_u16(), body["error"].as_str()),
                    (429, Some("too_many_attempts"))
                );
                assert!(
                    response.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                        > 0
                );
            }
        }
    }

    #[tokio::test]
    async fn other_methods_are_405() {
        let (state, access) = logged_in().await;
        let mut req = event("email-set", Some(&access));
        *req.method_mut() = lambda_http::http::Method::GET;
        let (response, _) = call(handle(&state, &outbox(), req)).await;
        assert_eq!(
            (response.status().as_u16(), &response.headers()["allow"]),
            (405, &"POST".parse::<lambda_http::http::HeaderValue>().unwrap())
        );
    }
}
