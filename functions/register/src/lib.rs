//! `POST /register`: parse the credentials, create the user, answer 201.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{ApiError, credentials, json, require_method, respond};
use shared::store::UserStore;

/// Answers one request.
pub async fn handle(store: &impl UserStore, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, register(store, &req)).await
}

async fn register(store: &impl UserStore, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, "POST")?;
    let (username, password) = credentials(req)?;
    let user = shared::service::register(store, &username, &password, shared::now()).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "id": user.id, "username": user.username }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::{call, event, event_with_body};
    use shared::store::memory::MemoryStore;

    #[tokio::test]
    async fn registering_returns_201_with_id_and_username_and_no_password() {
        let store = MemoryStore::default();
        let (response, body) = call(handle(&store, event("register-ok", None))).await;
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
        let (response, body) = call(handle(&MemoryStore::default(), event("register-rest-api", None))).await;
        assert_eq!(
            (response.status().as_u16(), body["username"].as_str()),
            (201, Some("bob.rest"))
        );
    }

    #[tokio::test]
    async fn the_same_name_in_another_case_is_409() {
        let store = MemoryStore::default();
        assert_eq!(call(handle(&store, event("register-ok", None))).await.0.status(), 201);
        let shouted = serde_json::json!({"username": "ALICE", "password": "correct horse battery staple"});
        let (response, body) = call(handle(&store, event_with_body("register-ok", &shouted))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (409, Some("username_taken"))
        );
    }

    #[tokio::test]
    async fn names_and_passwords_outside_the_rules_are_400() {
        let (response, body) = call(handle(&MemoryStore::default(), event("register-invalid", None))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }

    #[tokio::test]
    async fn a_form_encoded_body_is_400() {
        let (response, _) = call(handle(&MemoryStore::default(), event("register-not-json", None))).await;
        assert_eq!(response.status(), 400);
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503_with_no_internals() {
        let (response, body) = call(handle(&MemoryStore::unreachable(), event("register-ok", None))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (503, Some("unavailable"))
        );
        assert!(!body.to_string().contains("memory"), "{body}");
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let store = shared::testing::unreachable_store().await;
        let response = handle(&store, event("register-ok", None)).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
    }
}
