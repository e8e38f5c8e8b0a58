//! `POST /register`: parse the credentials, create the user, mail a
//! verification code if an email is given, answer 201.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::Outbox;
use shared::http::{ApiError, JsonObject, json, require_method, respond};
use shared::mail::Mailer;
use shared::service::register::{PasswordRules, register, register_with_email};
use shared::store::{AccountStore, EmailStore, ThrottleStore, UserStore};

/// Answers one request, a new password checked against `rules`.
pub async fn handle<S: UserStore + AccountStore + EmailStore + ThrottleStore>(
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

async fn route<S: UserStore + AccountStore + EmailStore + ThrottleStore>(
    store: &S,
    outbox: &Outbox<impl Mailer>,
    rules: &PasswordRules,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    require_method(req, "POST")?;
    let body = JsonObject::require(req)?;
    let username = body.username("username")?;
    let password = body.password("password")?;
    let now = shared::now();
    let user = match body.optional_email("email")? {
        None => register(store, rules, &username, &password, None, now).await?,
        Some(email) => {
            register_with_email(
                store,
                rules,
                &outbox.mailer,
                &outbox.settings,
                &username,
                &password,
                &email,
                now,
            )
            .await?
        }
    };
    Ok(json(
        StatusCode::CREATED,
        &json!({ "id": user.id, "username": user.username }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use shared::http::testing::{call, event, event_with_body};
    use shared::store::memory::MemoryStore;
    use shared::testing::{outbox, outbox_unreachable};

    /// `handle` with the default password rules: the response and its JSON body.
    async fn send(
        store: &(impl UserStore + AccountStore + EmailStore + ThrottleStore),
        outbox: &Outbox<impl Mailer>,
        req: Request,
    ) -> (Response<Body>, Value) {
        call(handle(store, outbox, &PasswordRules::default(), req)).await
    }

    fn with_email(email: &str) -> Value {
        json!({"username": "alice", "password": "correct horse battery staple", "email": email})
    }

    #[tokio::test]
    async fn an_email_given_at_registration_gets_a_code_and_waits_for_it() {
        let (store, outbox) = (MemoryStore::default(), outbox());
        let req = event_with_body("register-ok", &with_email("Alice@Example.com"));
        let (response, body) = send(&store, &outbox, req).await;
        assert_eq!(response.status(), 201, "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        let sent = outbox.mailer.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, "Alice@Example.com");
        let user = store.user_now("alice");
        assert_eq!(
            (user.email.as_deref(), user.email_verified),
            (Some("Alice@Example.com"), false)
        );
    }

    #[tokio::test]
    async fn a_malformed_email_is_400_and_registers_nobody() {
        let store = MemoryStore::default();
        let req = event_with_body("register-ok", &with_email("alice at example"));
        let (response, body) = send(&store, &outbox(), req).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
        let again = send(&store, &outbox(), event("register-ok", None)).await;
        assert_eq!(again.0.status(), 201, "the name is still free");
    }

    #[tokio::test]
    async fn when_the_code_cannot_be_mailed_the_answer_is_503_and_nobody_is_registered() {
        let store = MemoryStore::default();
        let req = || event_with_body("register-ok", &with_email("alice@example.com"));
        let (response, body) = send(&store, &outbox_unreachable(), req()).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (503, Some("unavailable"))
        );
        let (retry, body) = send(&store, &outbox(), req()).await;
        assert_eq!(
            retry.status(),
            201,
            "the same registration goes through once SES is back: {body}"
        );
    }

    #[tokio::test]
    async fn registering_returns_201_with_id_and_username_and_no_password() {
        let store = MemoryStore::default();
        let (response, body) = send(&store, &outbox(), event("register-ok", None)).await;
        assert_eq!(response.status(), 201, "{body}");
        assert_eq!(body["username"], "alice");
        assert!(body["id"].as_str().is_some_and(|id| id.len() == 36));
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "nothing but id and username: {body}"
        );
    }

    #[tokio::test]
    async fn a_rest_api_event_registers_too() {
        let (response, body) = send(&MemoryStore::default(), &outbox(), event("register-rest-api", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["username"].as_str()),
            (201, Some("bob.rest"))
        );
    }

    #[tokio::test]
    async fn the_same_name_in_another_case_is_409() {
        let store = MemoryStore::default();
        assert_eq!(
            send(&store, &outbox(), event("register-ok", None)).await.0.status(),
            201
        );
        let shouted = serde_json::json!({"username": "ALICE", "password": "correct horse battery staple"});
        let (response, body) = send(&store, &outbox(), event_with_body("register-ok", &shouted)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (409, Some("username_taken"))
        );
    }

    #[tokio::test]
    async fn names_and_passwords_outside_the_rules_are_400() {
        let (response, body) = send(&MemoryStore::default(), &outbox(), event("register-invalid", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }

    #[tokio::test]
    async fn a_form_encoded_body_is_415_whatever_it_holds() {
        let (response, body) = send(&MemoryStore::default(), &outbox(), event("register-not-json", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (415, Some("unsupported_media_type"))
        );
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503_with_no_internals() {
        let (response, body) = send(&MemoryStore::unreachable(), &outbox(), event("register-ok", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (503, Some("unavailable"))
        );
        assert!(!body.to_string().contains("memory"), "{body}");
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let store = shared::testing::unreachable_store().await;
        let (response, _) = send(&store, &outbox(), event("register-ok", None)).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
    }
}
