//! Login: throttle, verify the password (or the dummy hash), start a session.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};
use shared::credentials::Username;
use shared::http::{ApiError, require_method, respond, tokens};
use shared::password::{self, Verdict};
use shared::store::{FailedLogins, SessionStore, UserStore};

pub use shared::State;

/// Answers one request.
pub async fn handle<S: UserStore + SessionStore>(state: &State<S>, req: Request) -> Result<Response<Body>, Error> {
    respond(&req, login(state, &req)).await
}

async fn login<S: UserStore + SessionStore>(state: &State<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    require_method(req, Method::POST)?;
    let keys = state.keys.get().await?;
    let keys = keys.as_ref();
    let (username, password) = shared::credentials::from_request(req)?;
    let store = &state.store;
    let now = shared::now();

    // In a cold instance, argon2's memory is made ready while the user is read.
    let (record, ()) = tokio::join!(store.login_record(&username), password::prepare());
    let record = record?;
    // A name with recent failures counts this attempt before the password is
    // checked, so parallel guesses cannot all slip in under the limit; a
    // name without any costs no extra write.
    let suspect = !record.failures.is_stale(now);
    if suspect {
        count_attempt(store, &username, record.failures, now).await?;
    }
    let stored_hash = record.user.as_ref().map(|u| u.password_hash.as_str());
    let verdict = password::verify(&password, stored_hash).await?;
    let user = match (verdict, record.user) {
        (Verdict::Valid | Verdict::ValidNeedsRehash, Some(user)) => user,
        _ => {
            if !suspect {
                count_attempt(store, &username, record.failures, now).await?;
            }
            tracing::info!("login failed");
            return Err(ApiError::InvalidCredentials);
        }
    };
    shared::http::record_user(&user.id);
    if verdict == Verdict::ValidNeedsRehash {
        let upgraded = password::hash(&password).await?;
        // The login stands even if the upgrade cannot be stored: it is retried next time.
        if let Err(error) = store
            .replace_password_hash(&username, &user.password_hash, &upgraded)
            .await
        {
            tracing::warn!(%error, "password hash upgrade not stored");
        }
    }
    if record.failures.count > 0 {
        store.clear_failed_logins(&username).await?;
    }
    let session = shared::session::start(keys, &user, now);
    store.create_session(&session).await?;
    tracing::info!(user_id = %user.id, "login succeeded");
    Ok(tokens(&shared::session::token_response(keys, &session, now)))
}

/// Counts one attempt against `username`, or answers 429 while the name is locked.
async fn count_attempt(
    store: &impl UserStore,
    username: &Username,
    mut seen: FailedLogins,
    now: u64,
) -> Result<(), ApiError> {
    for _ in 0..5 {
        if let Some(retry_after) = seen.locked_for(now) {
            return Err(ApiError::TooManyAttempts { retry_after });
        }
        if store.count_attempt(username, seen, now).await?.is_some() {
            return Ok(());
        }
        seen = store.login_record(username).await?.failures;
    }
    // The record kept changing under us: many attempts at once on one name.
    Err(ApiError::TooManyAttempts {
        retry_after: FailedLogins::BASE_LOCK,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::keys::Keys;
    use shared::store::User;
    use shared::store::memory::MemoryStore;
    use shared::testing::{dev_keys, event, event_json};

    async fn state_with_alice(hash: Option<String>) -> State<MemoryStore> {
        let store = MemoryStore::default();
        let password_hash = match hash {
            Some(h) => h,
            None => password::hash(&shared::credentials::Password::parse("correct horse battery staple").unwrap())
                .await
                .unwrap(),
        };
        store
            .create_user(&User {
                id: "u-1".into(),
                username: "Alice".into(),
                password_hash,
                created_at: 1,
            })
            .await
            .unwrap();
        State {
            keys: Keys::ready(dev_keys()),
            store,
        }
    }

    async fn call(state: &State<MemoryStore>, req: Request) -> (Response<Body>, serde_json::Value) {
        call_any(state, req).await
    }

    async fn call_any<S: UserStore + SessionStore>(
        state: &State<S>,
        req: Request,
    ) -> (Response<Body>, serde_json::Value) {
        let response = handle(state, req).await.unwrap();
        let body = match response.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            _ => serde_json::Value::Null,
        };
        (response, body)
    }

    #[tokio::test]
    async fn a_good_login_returns_a_bearer_token_pair_that_must_not_be_cached() {
        let state = state_with_alice(None).await;
        let (response, body) = call(&state, event("login-ok", None)).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(
            (body["token_type"].as_str(), body["expires_in"].as_u64()),
            (Some("Bearer"), Some(900))
        );
        let access = state
            .keys
            .loaded()
            .unwrap()
            .verify_access(body["access_token"].as_str().unwrap())
            .unwrap();
        assert_eq!((access.sub.as_str(), access.username.as_str()), ("u-1", "Alice"));
        let refresh = state
            .keys
            .loaded()
            .unwrap()
            .verify_refresh(body["refresh_token"].as_str().unwrap())
            .unwrap();
        let session = state.store.session_now(&refresh.session_key()).unwrap();
        assert_eq!(
            session.token_hash,
            shared::token::refresh_token_hash(body["refresh_token"].as_str().unwrap())
        );
    }

    #[tokio::test]
    async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
        let state = state_with_alice(None).await;
        let (wrong, wrong_body) = call(&state, event("login-wrong-password", None)).await;
        let unknown_json = event_json("login-ok").replace("\\\"alice\\\"", "\\\"nobody\\\"");
        let (unknown, unknown_body) = call(&state, lambda_http::request::from_str(&unknown_json).unwrap()).await;
        assert_eq!((wrong.status().as_u16(), unknown.status().as_u16()), (401, 401));
        assert_eq!(wrong_body, unknown_body);
        assert_eq!(wrong_body["error"], "invalid_credentials");
    }

    #[tokio::test]
    async fn five_failures_lock_the_name_with_retry_after_even_for_the_right_password() {
        let state = state_with_alice(None).await;
        for _ in 0..FailedLogins::LIMIT {
            assert_eq!(call(&state, event("login-wrong-password", None)).await.0.status(), 401);
        }
        let (response, body) = call(&state, event("login-ok", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (429, Some("too_many_attempts"))
        );
        let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=FailedLogins::BASE_LOCK).contains(&retry), "{retry}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_guesses_on_a_suspect_name_are_counted_before_checking_so_at_most_five_get_through() {
        let state = std::sync::Arc::new(state_with_alice(None).await);
        assert_eq!(call(&state, event("login-wrong-password", None)).await.0.status(), 401);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let state = state.clone();
                tokio::spawn(async move {
                    call(&state, event("login-wrong-password", None))
                        .await
                        .0
                        .status()
                        .as_u16()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 4, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 16, "{statuses:?}");
    }

    #[tokio::test]
    async fn once_the_lock_has_expired_the_right_password_works_and_clears_the_count() {
        let state = state_with_alice(None).await;
        let alice = Username::parse("alice").unwrap();
        let mut seen = FailedLogins::default();
        let long_ago = shared::now() - FailedLogins::BASE_LOCK - 10;
        for _ in 0..FailedLogins::LIMIT {
            seen = state
                .store
                .count_attempt(&alice, seen, long_ago)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(seen.locked_for(long_ago), Some(FailedLogins::BASE_LOCK));
        assert_eq!(call(&state, event("login-ok", None)).await.0.status(), 200);
        assert_eq!(
            state.store.login_record(&alice).await.unwrap().failures,
            FailedLogins::default()
        );
    }

    #[tokio::test]
    async fn a_good_login_clears_earlier_failures() {
        let state = state_with_alice(None).await;
        for _ in 0..FailedLogins::LIMIT - 1 {
            call(&state, event("login-wrong-password", None)).await;
        }
        assert_eq!(call(&state, event("login-ok", None)).await.0.status(), 200);
        let record = state
            .store
            .login_record(&Username::parse("alice").unwrap())
            .await
            .unwrap();
        assert_eq!(record.failures, FailedLogins::default());
    }

    #[tokio::test]
    async fn a_weak_hash_is_upgraded_on_a_good_login() {
        use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password(b"correct horse battery staple")
        .unwrap()
        .to_string();
        let state = state_with_alice(Some(weak.clone())).await;
        assert_eq!(call(&state, event("login-ok", None)).await.0.status(), 200);
        let record = state
            .store
            .login_record(&Username::parse("alice").unwrap())
            .await
            .unwrap();
        let upgraded = record.user.unwrap().password_hash;
        assert_ne!(upgraded, weak);
        assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{upgraded}");
    }

    #[tokio::test]
    async fn a_base64_body_that_is_not_utf8_is_400() {
        let state = state_with_alice(None).await;
        let (response, body) = call(&state, event("login-not-utf8", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }

    #[tokio::test]
    async fn get_is_405_with_allow_post() {
        let state = state_with_alice(None).await;
        let (response, _) = call(&state, event("login-wrong-method", None)).await;
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (405, "POST")
        );
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503() {
        let state = State {
            keys: Keys::ready(dev_keys()),
            store: MemoryStore::unreachable(),
        };
        assert_eq!(call(&state, event("login-ok", None)).await.0.status(), 503);
    }

    #[tokio::test]
    async fn dynamodb_on_a_closed_port_is_503_unavailable() {
        let state = State {
            keys: Keys::ready(dev_keys()),
            store: shared::testing::unreachable_store().await,
        };
        let (response, body) = call_any(&state, event("login-ok", None)).await;
        assert_eq!(
            (response.status().as_u16(), body["error"].as_str()),
            (503, Some("unavailable"))
        );
    }
}
