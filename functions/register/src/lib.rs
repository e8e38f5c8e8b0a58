//! Registration: validate, hash, create the user with a conditional write.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{ApiError, require_method, respond};
use shared::store::{CreateUserError, User, UserStore};

/// Answers one request.
pub async fn handle(store: &impl UserStore, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, register(store, &req)).await
}

async fn register(store: &impl UserStore, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, Method::POST)?;
    let (username, password) = shared::credentials::from_request(req)?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.as_str().to_owned(),
        password_hash: shared::password::hash(&password).await?,
        created_at: shared::now(),
    };
    store.create_user(&user).await.map_err(|e| match e {
        CreateUserError::Taken => ApiError::UsernameTaken,
        CreateUserError::Store(e) => e.into(),
    })?;
    shared::http::record_user(&user.id);
    tracing::info!("user registered");
    Ok(shared::http::json(
        StatusCode::CREATED,
        &json!({ "id": user.id, "username": user.username }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::memory::MemoryStore;
    use shared::testing::event;

    async fn call(store: &MemoryStore, req: Request) -> (u16, serde_json::Value) {
        let response = handle(store, req).await.unwrap();
        let body = match response.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            _ => serde_json::Value::Null,
        };
        (response.status().as_u16(), body)
    }

    #[tokio::test]
    async fn registering_returns_201_with_id_and_username_and_no_password() {
        let store = MemoryStore::default();
        let (status, body) = call(&store, event("register-ok", None)).await;
        assert_eq!(status, 201, "{body}");
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
        let (status, body) = call(&MemoryStore::default(), event("register-rest-api", None)).await;
        assert_eq!((status, body["username"].as_str()), (201, Some("bob.rest")));
    }

    #[tokio::test]
    async fn the_same_name_in_another_case_is_409() {
        let store = MemoryStore::default();
        assert_eq!(call(&store, event("register-ok", None)).await.0, 201);
        let json = shared::testing::event_json("register-ok").replace("\\\"alice\\\"", "\\\"ALICE\\\"");
        let (status, body) = call(&store, lambda_http::request::from_str(&json).unwrap()).await;
        assert_eq!((status, body["error"].as_str()), (409, Some("username_taken")));
    }

    #[tokio::test]
    async fn names_and_passwords_outside_the_rules_are_400() {
        let (status, body) = call(&MemoryStore::default(), event("register-invalid", None)).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    }

    #[tokio::test]
    async fn a_form_encoded_body_is_400() {
        let (status, _) = call(&MemoryStore::default(), event("register-not-json", None)).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503_with_no_internals() {
        let store = MemoryStore::unreachable();
        let (status, body) = call(&store, event("register-ok", None)).await;
        assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")));
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
