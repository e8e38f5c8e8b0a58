//! The caller's sessions: `GET /sessions` lists the live ones (where and
//! when each began, when it was last used), `DELETE /sessions/{id}` ends one.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::Serialize;
use shared::http::{ApiError, authenticate, json, last_segment, no_content, respond};
use shared::service::sessions;
use shared::session::Session;
use shared::store::{AuditStore, SessionStore};

/// Its keys only verify: it reads the public keys, never the private set.
pub type State<S> = shared::State<S, shared::token::TokenVerifier>;

/// Answers one request.
pub async fn handle<S: SessionStore + AuditStore>(state: &State<S>, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, route(state, &req)).await
}

async fn route<S: SessionStore + AuditStore>(state: &State<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    // `/sessions/{id}`: the route's parameter, else the path's last segment.
    let id = match req.path_parameters_ref().and_then(|p| p.first("id")) {
        Some(id) => Some(id.to_owned()),
        None => last_segment(req).filter(|segment| segment != "sessions"),
    };
    let allow = if id.is_some() { "DELETE" } else { "GET" };
    if req.method().as_str() != allow {
        return Err(ApiError::MethodNotAllowed { allow });
    }
    let claims = authenticate(&state.keys, req).await?;
    let now = shared::now();
    match id {
        Some(id) => {
            sessions::end(&state.store, &claims, &id, now).await?;
            Ok(no_content())
        }
        None => {
            let live = sessions::list(&state.store, &claims, now).await?;
            let listed = live.iter().map(|s| Listed::of(s, &claims.sid)).collect();
            Ok(json(StatusCode::OK, &List { sessions: listed }))
        }
    }
}

/// The body of `GET /sessions`.
#[derive(Serialize)]
struct List<'a> {
    sessions: Vec<Listed<'a>>,
}

/// One session as its user sees it: never its token hash.
#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    /// Seconds since the epoch, as are the other times.
    created_at: u64,
    last_used_at: u64,
    /// `null` when API Gateway did not say.
    user_agent: Option<&'a str>,
    ip: Option<&'a str>,
    /// The session of the access token that asks.
    current: bool,
}

impl<'a> Listed<'a> {
    fn of(session: &'a Session, current: &str) -> Self {
        let known = |s: &'a str| (!s.is_empty()).then_some(s);
        Self {
            id: &session.id,
            created_at: session.created_at,
            last_used_at: session.issued_at,
            user_agent: known(&session.origin.user_agent),
            ip: known(&session.origin.ip),
            current: session.id == current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::testing::{call, event};
    use shared::key_cache::KeyCache;
    use shared::service::sessions::token_pair;
    use shared::session::Origin;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_authority, user};

    /// alice with two sessions, the first from curl; the access token of the first.
    async fn logged_in() -> (State<MemoryStore>, String, Session, Session) {
        let state = State {
            keys: KeyCache::ready(dev_authority().into_verifier()),
            store: MemoryStore::default(),
        };
        let authority = dev_authority();
        let now = shared::now();
        let origin = Origin {
            ip: "203.0.113.10".into(),
            user_agent: "curl/8.5.0".into(),
        };
        let mine = sessions::start(&authority, &user("u-1", "alice"), &["pwd"], origin, now - 10);
        let other = sessions::start(&authority, &user("u-1", "alice"), &["pwd"], Origin::default(), now);
        state.store.create_session(&mine, None).await.unwrap();
        state.store.create_session(&other, None).await.unwrap();
        let access = token_pair(&authority, &mine, now).access_token;
        (state, access, mine, other)
    }

    /// `events/sessions-revoke.json` for session `id`.
    fn revoke(id: &str, token: &str) -> Request {
        let json = shared::testing::event_json("sessions-revoke").replace("00000000-0000-4000-8000-000000000000", id);
        let json = json.replace("${ACCESS_TOKEN}", token);
        lambda_http::request::from_str(&json).unwrap()
    }

    #[tokio::test]
    async fn the_list_shows_the_live_sessions_newest_first_with_the_current_one_marked() {
        let (state, access, mine, other) = logged_in().await;
        let (response, body) = call(handle(&state, event("sessions-list", Some(&access)))).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(
            body,
            serde_json::json!({"sessions": [
                {"id": other.id, "created_at": other.created_at, "last_used_at": other.issued_at,
                 "user_agent": null, "ip": null, "current": false},
                {"id": mine.id, "created_at": mine.created_at, "last_used_at": mine.issued_at,
                 "user_agent": "curl/8.5.0", "ip": "203.0.113.10", "current": true},
            ]})
        );
    }

    #[tokio::test]
    async fn ending_a_session_is_204_then_404_and_another_users_is_404() {
        let (state, access, _, other) = logged_in().await;
        let (response, _) = call(handle(&state, revoke(&other.id, &access))).await;
        assert_eq!(response.status(), 204);
        assert!(state.store.session_now(&other.key()).unwrap().revoked);
        let (response, body) = call(handle(&state, revoke(&other.id, &access))).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (404, Some("not_found"))
        );
        let bobs = sessions::start(
            &dev_authority(),
            &user("u-2", "bob"),
            &["pwd"],
            Origin::default(),
            shared::now(),
        );
        state.store.create_session(&bobs, None).await.unwrap();
        let (response, _) = call(handle(&state, revoke(&bobs.id, &access))).await;
        assert_eq!(response.status(), 404);
        assert!(!state.store.session_now(&bobs.key()).unwrap().revoked);
    }

    #[tokio::test]
    async fn the_wrong_method_is_405_and_no_token_401() {
        let (state, access, _, other) = logged_in().await;
        let mut req = event("sessions-list", Some(&access));
        *req.method_mut() = lambda_http::http::Method::DELETE;
        let (response, _) = call(handle(&state, req)).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "GET")
        );
        let mut req = revoke(&other.id, &access);
        *req.method_mut() = lambda_http::http::Method::GET;
        let (response, _) = call(handle(&state, req)).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "DELETE")
        );
        let (response, _) = call(handle(&state, event("sessions-list", None))).await;
        assert_eq!(response.status(), 401);
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let (memory, access, _, other) = logged_in().await;
        let state = State {
            keys: memory.keys,
            store: shared::testing::unreachable_store().await,
        };
        for req in [event("sessions-list", Some(&access)), revoke(&other.id, &access)] {
            let (response, body) = call(handle(&state, req)).await;
            assert_eq!(
                (response.status().as_u16(), body["error"].as_str()),
                (503, Some("unavailable"))
            );
        }
    }
}
