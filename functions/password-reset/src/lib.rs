//! A forgotten password: `POST /password/forgot` mails a reset link to the
//! account's verified address (and answers the same whether or not there is
//! one), `POST /password/reset` sets the new password with the link's token
//! and ends every session of the account.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::Outbox;
use shared::http::{ApiError, JsonObject, json, last_segment, no_content, require_method, respond};
use shared::mail::Mailer;
use shared::service::register::PasswordRules;
use shared::service::{forgot, reset};
use shared::store::{AccountStore, AuditStore, EmailStore, SessionStore, ThrottleStore, UserStore};

/// The one answer to a forgot-password request.
pub const FORGOT_ANSWER: &str = "If the account exists and has a verified email, a reset link has been sent to it.";

/// Longest token looked up; a real one is 43 characters.
const MAX_TOKEN: usize = 128;

/// Answers one request, a new password checked against `rules`.
pub async fn handle<S: UserStore + AccountStore + SessionStore + EmailStore + AuditStore + ThrottleStore>(
    store: &S,
    outbox: &Outbox<impl Mailer>,
    rules: &PasswordRules,
    req: Request,
) -> Result<Response<Body>, Error> {
    // Boxed: with the breached-password check's client in it, the route's
    // future (unoptimized, on DynamoDB) is large enough to overflow a test
    // thread's stack where it is awaited.
    respond(&req, Box::pin(route(store, outbox, rules, &req))).await
}

async fn route<S: UserStore + AccountStore + SessionStore + EmailStore + AuditStore + ThrottleStore>(
    store: &S,
    outbox: &Outbox<impl Mailer>,
    rules: &PasswordRules,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    require_method(req, "POST")?;
    let body = JsonObject::require(req)?;
    let now = shared::now();
    if last_segment(req).as_deref() == Some("reset") {
        let token = body.string("token")?;
        let new = body.password("new_password")?;
        if token.len() > MAX_TOKEN {
            return Err(ApiError::InvalidResetToken);
        }
        reset(store, rules, token, &new, now).await?;
        return Ok(no_content());
    }
    let who = body.who()?;
    forgot(store, &outbox.mailer, &outbox.settings, &who, now).await?;
    Ok(json(StatusCode::ACCEPTED, &json!({ "message": FORGOT_ANSWER })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::credentials::Username;
    use shared::http::testing::{call, event, event_with_body};
    use shared::store::memory::MemoryStore;
    use shared::store::{SessionStore, UserStore};
    use shared::testing::{
        dev_authority, outbox, outbox_unreachable, password_session, user_with_password, verify_address,
    };

    const OLD: &str = "correct horse battery staple";

    /// bob with alice@example.com verified and a live session.
    async fn alice() -> MemoryStore {
        let store = MemoryStore::default();
        let alice = user_with_password("u-1", "alice", OLD).await;
        store.create_user(&alice).await.unwrap();
        verify_address(&store, &alice, "alice@example.com").await;
        let session = password_session(&dev_authority(), &alice, shared::now());
        store.create_session(&session, None).await.unwrap();
        store
    }

    /// `handle` with the default password rules: the response and its JSON body.
    async fn send(
        store: &MemoryStore,
        outbox: &Outbox<impl Mailer>,
        req: Request,
    ) -> (Response<Body>, serde_json::Value) {
        call(handle(store, outbox, &PasswordRules::default(), req)).await
    }

    fn token_in(outbox: &Outbox<shared::mail::MemoryMailer>) -> String {
        let text = outbox.mailer.sent().last().expect("a mail").text.clone();
        let (_, rest) = text.split_once("#token=").expect("a link");
        rest.split_whitespace().next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn forgot_answers_202_alike_for_known_and_unknown_accounts_and_mails_only_the_verified() {
        let store = alice().await;
        let outbox = outbox();
        let mut answers = Vec::new();
        for body in [
            serde_json::json!({"email": "alice@example.com"}),
            serde_json::json!({"email": "nobody@example.com"}),
            serde_json::json!({"username": "nobody"}),
            serde_json::json!({"username": "ALICE"}),
        ] {
            let (response, body) = send(&store, &outbox, event_with_body("password-forgot", &body)).await;
            answers.push((response.status().as_u16(), body));
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        assert_eq!(answers[0].0, 202);
        assert_eq!(answers[0].1["message"], FORGOT_ANSWER);
        let sent = outbox.mailer.sent();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|m| m.to == "alice@example.com"));
        assert!(
            sent[0].text.contains("http://localhost:8090/reset-password#token="),
            "{}",
            sent[0].text
        );
    }

    #[tokio::test]
    async fn the_mailed_token_resets_the_password_once_and_ends_every_session() {
        let store = alice().await;
        let outbox = outbox();
        send(&store, &outbox, event("password-forgot", None)).await;
        let reset = serde_json::json!({"token": token_in(&outbox), "new_password": "a brand new password"});
        let (response, body) = send(&store, &outbox, event_with_body("password-reset", &reset)).await;
        assert_eq!(response.status(), 204, "{body}");
        assert!(store.sessions("alice").await.unwrap().iter().all(|s| s.revoked));
        let (response, body) = send(&store, &outbox, event_with_body("password-reset", &reset)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_token"))
        );
        assert_eq!(
            store
                .login_record(&Username::parse("alice").unwrap())
                .await
                .unwrap()
                .failures
                .count,
            0
        );
    }

    #[tokio::test]
    async fn unknown_or_absurd_tokens_are_400_invalid_token_and_short_passwords_400_invalid_request() {
        let store = alice().await;
        for token in ["nope".to_owned(), "x".repeat(10_000)] {
            let body = serde_json::json!({"token": token, "new_password": "a brand new password"});
            let (response, body) = send(&store, &outbox(), event_with_body("password-reset", &body)).await;
            assert_eq!(
                (response.status().as_u16(), body["error"].as_str()),
                (400, Some("invalid_token")),
                "{body}"
            );
        }
        let body = serde_json::json!({"token": "nope", "new_password": "short"});
        let (response, body) = send(&store, &outbox(), event_with_body("password-reset", &body)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }

    #[tokio::test]
    async fn forgot_without_a_name_or_address_is_400() {
        let store = alice().await;
        for body in [serde_json::json!({}), serde_json::json!({"email": "not an address"})] {
            let (response, body) = send(&store, &outbox(), event_with_body("password-forgot", &body)).await;
            assert_eq!(
                (response.status().as_u16(), body["error"].as_str()),
                (400, Some("invalid_request"))
            );
        }
    }

    #[tokio::test]
    async fn ses_or_dynamodb_down_is_503() {
        let store = alice().await;
        let (response, body) = send(&store, &outbox_unreachable(), event("password-forgot", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (503, Some("unavailable"))
        );
        let (response, _) = send(&MemoryStore::unreachable(), &outbox(), event("password-forgot", None)).await;
        assert_eq!(response.status(), 503);
    }
}
