//! The caller's own account: `GET /account` reads it, `POST /account/password`
//! changes the password (ending every other session), `DELETE /account`
//! deletes it, `GET /account/events` lists what happened to it. Each needs
//! a valid access token; the password change and the deletion the password.

use lambda_http::RequestExt;
use lambda_http::{Body, Error, Request, Response};
use shared::audit::{Cursor, DEFAULT_PAGE, MAX_PAGE};
use shared::http::{ApiError, JsonObject, account_view, authenticate, last_segment, no_content, no_store, respond};
use shared::service::account;
use shared::service::audit::events;
use shared::service::register::PasswordRules;
use shared::store::{AccountStore, AuditStore, SessionStore, ThrottleStore, UserStore};

/// Its keys only verify: it reads the public keys, never the private set.
pub type State<S> = shared::State<S, shared::token::TokenVerifier>;

/// Answers one request, a new password checked against `rules`.
pub async fn handle<S>(state: &State<S>, rules: &PasswordRules, req: Request) -> Result<Response<Body>, Error>
where
    S: UserStore + SessionStore + AccountStore + AuditStore + ThrottleStore,
{
    // Boxed: the routes' futures together (unoptimized, on DynamoDB) are
    // large enough to overflow a test thread's stack where they are awaited.
    respond(&req, Box::pin(route(state, rules, &req))).await
}

async fn route<S>(state: &State<S>, rules: &PasswordRules, req: &Request) -> Result<Response<Body>, ApiError>
where
    S: UserStore + SessionStore + AccountStore + AuditStore + ThrottleStore,
{
    let segment = last_segment(req);
    let password_route = segment.as_deref() == Some("password");
    let events_route = segment.as_deref() == Some("events");
    let method = req.method().as_str();
    let allow = match (password_route, events_route) {
        (true, _) => "POST",
        (_, true) => "GET",
        _ => "GET, DELETE",
    };
    if !allow.split(", ").any(|m| m == method) {
        return Err(ApiError::MethodNotAllowed { allow });
    }
    let claims = authenticate(&state.keys, req).await?;
    let now = shared::now();
    if events_route {
        let (cursor, limit) = page_query(req)?;
        // Events are kept by name: the caller's account is read beside them,
        // so a deleted account's token (live for its last minutes) cannot
        // read those of a new account of the same name.
        let (owner, page) = tokio::join!(
            account::account(&state.store, &claims),
            events(&state.store, &claims, cursor.as_ref(), limit)
        );
        owner?;
        let page = page?;
        let body = serde_json::json!({
            "events": page.events,
            "next_cursor": page.next.map(|c| c.to_string()),
        });
        Ok(no_store(&body))
    } else if password_route {
        let body = JsonObject::require(req)?;
        let current = body.password("current_password")?;
        let new = body.password("new_password")?;
        // Boxed: with its event beside it, the change's future is large
        // enough (unoptimized, on DynamoDB) to overflow a test thread's stack.
        Box::pin(account::change_password(
            &state.store,
            rules,
            &claims,
            &current,
            &new,
            now,
        ))
        .await?;
        Ok(no_content())
    } else if method == "DELETE" {
        let password = JsonObject::require(req)?.password("password")?;
        account::delete_account(&state.store, &claims, &password, now).await?;
        Ok(no_content())
    } else {
        let user = account::account(&state.store, &claims).await?;
        Ok(account_view(&user))
    }
}

/// The page `?cursor=` and `?limit=` ask for (`limit` 1 to `MAX_PAGE`, `DEFAULT_PAGE` when absent).
fn page_query(req: &Request) -> Result<(Option<Cursor>, usize), ApiError> {
    let query = req.query_string_parameters_ref();
    let cursor = match query.and_then(|q| q.first("cursor")) {
        None => None,
        Some(text) => Some(Cursor::parse(text).map_err(|e| ApiError::invalid(e.to_string()))?),
    };
    let limit = match query.and_then(|q| q.first("limit")) {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("limit must be a whole number from 1 to {MAX_PAGE}")))?,
    };
    Ok((cursor, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::credentials::Username;
    use shared::http::testing::{call, event, event_with_body, with_token};
    use shared::key_cache::KeyCache;
    use shared::session::Session;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_authority, password_session, user_with_password};

    const RIGHT: &str = "correct horse battery staple";

    /// alice with two sessions; the access token of the first.
    async fn logged_in() -> (State<MemoryStore>, String, Session, Session) {
        let state = State {
            keys: KeyCache::ready(dev_authority().into_verifier()),
            store: MemoryStore::default(),
        };
        let alice = user_with_password("u-1", "alice", RIGHT).await;
        state.store.create_user(&alice).await.unwrap();
        let authority = dev_authority();
        let now = shared::now();
        let (mine, other) = (
            password_session(&authority, &alice, now),
            password_session(&authority, &alice, now),
        );
        state.store.create_session(&mine, None).await.unwrap();
        state.store.create_session(&other, None).await.unwrap();
        let access = shared::service::sessions::token_pair(&authority, &mine, now).access_token;
        (state, access, mine, other)
    }

    /// `handle` with the default password rules: the response and its JSON body.
    async fn send<S>(state: &State<S>, req: Request) -> (Response<Body>, serde_json::Value)
    where
        S: UserStore + SessionStore + AccountStore + AuditStore + ThrottleStore,
    {
        call(handle(state, &PasswordRules::default(), req)).await
    }

    #[tokio::test]
    async fn the_account_shows_the_user_and_no_secret() {
        let (state, access, _, _) = logged_in().await;
        let (response, body) = send(&state, event("account-get", Some(&access))).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(
            body,
            serde_json::json!({
                "id": "u-1", "username": "alice", "email": null, "email_verified": false,
                "created_at": 1, "mfa": {"totp": false, "passkeys": 0}
            })
        );
    }

    #[tokio::test]
    async fn no_token_or_a_refresh_token_is_401_with_the_challenge() {
        let (state, _, mine, _) = logged_in().await;
        let (response, _) = send(&state, event("account-no-token", None)).await;
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"lambda-jwt-auth\""
        );
        let refresh = dev_authority().issue_refresh(&mine.generation());
        let (response, body) = send(&state, event("account-get", Some(&refresh))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token"))
        );
    }

    #[tokio::test]
    async fn a_password_change_is_204_and_ends_the_other_session_only() {
        let (state, access, mine, other) = logged_in().await;
        let (response, body) = send(&state, event("account-password", Some(&access))).await;
        assert_eq!(response.status(), 204, "{body}");
        assert!(state.store.session_now(&other.key()).unwrap().revoked);
        assert!(!state.store.session_now(&mine.key()).unwrap().revoked);
    }

    #[tokio::test]
    async fn a_wrong_current_password_is_401_and_a_short_new_one_400() {
        let (state, access, _, _) = logged_in().await;
        let wrong = serde_json::json!({"current_password": "wrong password", "new_password": "a new horse battery"});
        let (response, body) = send(&state, with_token(event_with_body("account-password", &wrong), &access)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_credentials"))
        );
        let short = serde_json::json!({"current_password": RIGHT, "new_password": "short"});
        let (response, body) = send(&state, with_token(event_with_body("account-password", &short), &access)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
        assert!(body["message"].as_str().unwrap().contains("new_password"), "{body}");
    }

    #[tokio::test]
    async fn deleting_with_the_password_is_204_and_the_token_then_gets_401() {
        let (state, access, mine, _) = logged_in().await;
        let (response, _) = send(&state, event("account-delete", Some(&access))).await;
        assert_eq!(response.status(), 204);
        assert_eq!(state.store.session_now(&mine.key()), None);
        assert_eq!(
            state.store.user(&Username::parse("alice").unwrap()).await.unwrap(),
            None
        );
        let (response, body) = send(&state, event("account-get", Some(&access))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token"))
        );
    }

    #[tokio::test]
    async fn a_deleted_accounts_token_cannot_read_the_events_of_a_new_account_of_its_name() {
        use shared::store::AuditStore;
        let (state, access, _, _) = logged_in().await;
        let (response, _) = send(&state, event("account-delete", Some(&access))).await;
        assert_eq!(response.status(), 204);
        let newcomer = user_with_password("u-2", "alice", RIGHT).await;
        state.store.create_user(&newcomer).await.unwrap();
        let event_of_newcomer = shared::audit::Event::new(shared::audit::Kind::LoginSucceeded, 5);
        state
            .store
            .record_event("alice", "u-2", &event_of_newcomer)
            .await
            .unwrap();
        let (response, body) = send(&state, event("account-events", Some(&access))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (401, Some("invalid_token")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn each_route_answers_its_methods_only() {
        let (state, access, _, _) = logged_in().await;
        let mut req = event("account-get", Some(&access));
        *req.method_mut() = lambda_http::http::Method::POST;
        let (response, _) = send(&state, req).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "GET, DELETE")
        );
        let mut req = event("account-password", Some(&access));
        *req.method_mut() = lambda_http::http::Method::GET;
        let (response, _) = send(&state, req).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "POST")
        );
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let (memory, access, _, _) = logged_in().await;
        let state = State {
            keys: memory.keys,
            store: shared::testing::unreachable_store().await,
        };
        for name in ["account-get", "account-password", "account-delete"] {
            let (response, body) = send(&state, event(name, Some(&access))).await;
            assert_eq!(
                (response.status().as_u16(), body["error"].as_str()),
                (503, Some("unavailable")),
                "{name}"
            );
        }
    }
}
