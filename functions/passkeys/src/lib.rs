//! Passkeys (WebAuthn):
//! - `POST /passkeys/register/start`, `POST /passkeys/register/finish`:
//!   the caller (Bearer) registers a passkey;
//! - `GET /passkeys`, `DELETE /passkeys/{id}`: the caller's passkeys;
//! - `POST /login/passkey/start`, `POST /login/passkey/finish`: a login
//!   with a discoverable passkey, no username, answered with tokens.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{ApiError, JsonObject, authenticate, last_segment, no_content, no_store, origin, respond, tokens};
use shared::passkey::{RelyingParty, passkey_name};
use shared::service::passkeys::{self, Started};
use shared::store::{AccountStore, AuditStore, PasskeyStore, SessionStore, StoredPasskey};

pub use shared::State;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The routes, told apart by the end of the path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    RegisterStart,
    RegisterFinish,
    List,
    Remove,
    LoginStart,
    LoginFinish,
}

impl Route {
    fn of(req: &Request) -> Self {
        let path = req.uri().path().trim_end_matches('/');
        let mut segments = path.rsplit('/');
        match (segments.next(), segments.next()) {
            (Some("start"), Some("register")) => Self::RegisterStart,
            (Some("finish"), Some("register")) => Self::RegisterFinish,
            (Some("start"), Some("passkey")) => Self::LoginStart,
            (Some("finish"), Some("passkey")) => Self::LoginFinish,
            (Some("passkeys"), _) => Self::List,
            _ => Self::Remove,
        }
    }

    fn allow(&self) -> &'static str {
        match self {
            Self::List => "GET",
            Self::Remove => "DELETE",
            _ => "POST",
        }
    }
}

/// Answers one request.
pub async fn handle<S: AccountStore + SessionStore + PasskeyStore + AuditStore>(
    state: &State<S>,
    rp: &RelyingParty,
    req: Request,
) -> Result<Response<Body>, Error> {
    respond(&req, route(state, rp, &req)).await
}

async fn route<S: AccountStore + SessionStore + PasskeyStore + AuditStore>(
    state: &State<S>,
    rp: &RelyingParty,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let route = Route::of(req);
    let allow = route.allow();
    if req.method().as_str() != allow {
        return Err(ApiError::MethodNotAllowed { allow });
    }
    let (store, now) = (&state.store, shared::now());
    match route {
        Route::LoginStart => Ok(started(passkeys::start_login(store, rp, now).await?)),
        Route::LoginFinish => {
            let authority = state.keys.get().await?;
            let body = JsonObject::require(req)?;
            let (challenge_id, credential) = (body.string("challenge_id")?, body.object("credential")?);
            let pair =
                passkeys::finish_login(store, rp, &authority, challenge_id, credential, origin(req), now).await?;
            Ok(tokens(&pair))
        }
        _ => {
            let claims = authenticate(&state.keys, req).await?;
            match route {
                Route::RegisterStart => Ok(started(passkeys::start_registration(store, rp, &claims, now).await?)),
                Route::RegisterFinish => {
                    let body = JsonObject::require(req)?;
                    let (challenge_id, credential) = (body.string("challenge_id")?, body.object("credential")?);
                    let name = passkey_name(body.optional_string("name")?)
                        .map_err(|rule| ApiError::invalid(format!("name: {rule}")))?;
                    let passkey =
                        passkeys::finish_registration(store, rp, &claims, challenge_id, credential, name, now).await?;
                    Ok(shared::http::json(StatusCode::CREATED, &view(&passkey)))
                }
                Route::List => {
                    let list = passkeys::list(store, &claims, now).await?;
                    let list: Vec<_> = list.iter().map(view).collect();
                    Ok(shared::http::json(StatusCode::OK, &json!({ "passkeys": list })))
                }
                _ => {
                    let id = last_segment(req).unwrap_or_default();
                    passkeys::remove(store, &claims, &id, now).await?;
                    Ok(no_content())
                }
            }
        }
    }
}

/// A passkey as its owner sees it.
fn view(passkey: &StoredPasskey) -> serde_json::Value {
    json!({
        "id": passkey.id,
        "name": passkey.name,
        "created_at": passkey.created_at,
        "last_used_at": passkey.last_used_at,
    })
}

/// `200` with the options of a ceremony and its `challenge_id`: never cached.
fn started(started: Started) -> Response<Body> {
    no_store(&json!({ "challenge_id": started.challenge_id, "publicKey": started.public_key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::request;
    use serde_json::Value;
    use shared::http::testing::call;
    use shared::key_cache::KeyCache;
    use shared::store::memory::MemoryStore;
    use shared::store::{Ceremony, UserStore};
    use shared::testing::{access_for, dev_authority, user};

    const ALICE: &str = "6a1f0c7e-3b2d-4e5f-8a9b-0c1d2e3f4a5b";

    fn rp() -> RelyingParty {
        RelyingParty::from_lookup(|name| match name {
            "WEBAUTHN_RP_ID" => Some("localhost".into()),
            "WEBAUTHN_ORIGIN" => Some("http://localhost:8090".into()),
            _ => None,
        })
        .unwrap()
    }

    /// alice in a store, logged in, and the access token of her session.
    async fn logged_in(store: MemoryStore) -> (State<MemoryStore>, String) {
        let state = State {
            keys: KeyCache::ready(dev_authority()),
            store,
        };
        let alice = user(ALICE, "alice");
        state.store.create_user(&alice).await.unwrap();
        let access = access_for(&state.keys.loaded().unwrap(), &state.store, &alice).await;
        (state, access)
    }

    /// An HTTP API event for `method path`, with a bearer token and a JSON body if given.
    fn req(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Request {
        let mut headers = json!({ "content-type": "application/json" });
        if let Some(token) = token {
            headers["authorization"] = format!("Bearer {token}").into();
        }
        let id = path.rsplit('/').next().unwrap();
        let event = json!({
            "version": "2.0",
            "routeKey": format!("{method} {path}"),
            "rawPath": path,
            "rawQueryString": "",
            "headers": headers,
            "pathParameters": if path.starts_with("/passkeys/") && !path.contains("register") { json!({ "id": id }) } else { json!({}) },
            "requestContext": {
                "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "test" },
                "routeKey": format!("{method} {path}"),
                "stage": "$default",
                "requestId": "r",
                "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d", "time": "t", "timeEpoch": 0
            },
            "body": body.map(|b| b.to_string()),
            "isBase64Encoded": false
        });
        request::from_str(&event.to_string()).unwrap()
    }

    async fn answer(state: &State<MemoryStore>, req: Request) -> (u16, Value) {
        let (response, body) = call(handle(state, &rp(), req)).await;
        (response.status().as_u16(), body)
    }

    /// A parseable assertion that names a credential nobody registered.
    fn unknown_assertion() -> Value {
        let b64 = |bytes: &[u8]| shared::testing::b64(bytes);
        json!({
            "id": b64(b"unknown credential"),
            "rawId": b64(b"unknown credential"),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&[0; 37]),
                "clientDataJSON": b64(br#"{"type":"webauthn.get","challenge":"AAAA","origin":"http://localhost:8090"}"#),
                "signature": b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]),
                "userHandle": b64(uuid_bytes(ALICE).as_slice()),
            },
            "extensions": {}
        })
    }

    /// A registration answer that parses and proves nothing.
    fn registration_stub() -> Value {
        json!({
            "id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": { "attestationObject": "AAAA", "clientDataJSON": "AAAA" },
            "extensions": {}
        })
    }

    fn uuid_bytes(id: &str) -> Vec<u8> {
        id.replace('-', "")
            .as_bytes()
            .chunks(2)
            .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn registration_options_require_a_discoverable_credential_and_user_verification() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let (response, body) = call(handle(
            &state,
            &rp(),
            req("POST", "/passkeys/register/start", Some(&access), None),
        ))
        .await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(body["challenge_id"].as_str().is_some_and(|id| id.len() == 32), "{body}");
        let options = &body["publicKey"];
        let selection = &options["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required", "{options}");
        assert_eq!(selection["requireResidentKey"], true);
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(options["attestation"], "none");
        assert_eq!(options["rp"]["id"], "localhost");
        assert_eq!(options["user"]["name"], "alice");
        assert_eq!(
            shared::testing::b64_decode(options["user"]["id"].as_str().unwrap()),
            uuid_bytes(ALICE)
        );
    }

    #[tokio::test]
    async fn login_options_name_no_credential_and_require_user_verification() {
        let (state, _) = logged_in(MemoryStore::default()).await;
        let (status, body) = answer(&state, req("POST", "/login/passkey/start", None, None)).await;
        assert_eq!(status, 200, "{body}");
        let options = &body["publicKey"];
        assert_eq!(options["userVerification"], "required", "{options}");
        assert_eq!(options["rpId"], "localhost");
        assert!(
            options["allowCredentials"].as_array().is_none_or(Vec::is_empty),
            "{options}"
        );
        assert!(body.get("mediation").is_none());
    }

    #[tokio::test]
    async fn a_challenge_is_taken_by_its_first_finish_whatever_the_credential() {
        let (state, _) = logged_in(MemoryStore::default()).await;
        let (_, started) = answer(&state, req("POST", "/login/passkey/start", None, None)).await;
        let finish = json!({ "challenge_id": started["challenge_id"], "credential": unknown_assertion() });
        let (status, body) = answer(&state, req("POST", "/login/passkey/finish", None, Some(finish.clone()))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_credentials")),
            "{body}"
        );
        let (status, body) = answer(&state, req("POST", "/login/passkey/finish", None, Some(finish))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_challenge")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_challenge_serves_only_its_own_ceremony_and_user() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let (_, login) = answer(&state, req("POST", "/login/passkey/start", None, None)).await;
        let (_, registration) = answer(&state, req("POST", "/passkeys/register/start", Some(&access), None)).await;
        let credential = registration_stub();
        let finish = json!({ "challenge_id": login["challenge_id"], "credential": credential });
        let (status, body) = answer(
            &state,
            req("POST", "/passkeys/register/finish", Some(&access), Some(finish)),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_challenge")),
            "{body}"
        );
        // Neither was consumed by the wrong use.
        let ceremony = Ceremony::Registration { user_id: ALICE.into() };
        let id = registration["challenge_id"].as_str().unwrap();
        assert!(
            state
                .store
                .take_challenge(id, &Ceremony::Login)
                .await
                .unwrap()
                .is_none()
        );
        assert!(state.store.take_challenge(id, &ceremony).await.unwrap().is_some());
        let id = login["challenge_id"].as_str().unwrap();
        assert!(
            state
                .store
                .take_challenge(id, &Ceremony::Login)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn malformed_finish_bodies_are_400_and_never_a_500() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let (_, started) = answer(&state, req("POST", "/passkeys/register/start", Some(&access), None)).await;
        let id = started["challenge_id"].clone();
        for body in [
            json!({}),
            json!({ "challenge_id": id }),
            json!({ "challenge_id": id, "credential": "a string" }),
            json!({ "challenge_id": id, "credential": {} }),
            json!({ "challenge_id": id, "credential": { "id": "AAAA", "rawId": "!!", "type": "public-key", "response": {} } }),
            json!({ "challenge_id": 7, "credential": unknown_assertion() }),
            json!({ "challenge_id": id, "credential": unknown_assertion(), "name": "" }),
            json!({ "challenge_id": id, "credential": unknown_assertion(), "name": "x".repeat(65) }),
        ] {
            let (status, reply) = answer(
                &state,
                req("POST", "/passkeys/register/finish", Some(&access), Some(body.clone())),
            )
            .await;
            assert_eq!(
                (status, reply["error"].as_str()),
                (400, Some("invalid_request")),
                "{body} -> {reply}"
            );
        }
        for body in [
            json!({ "challenge_id": "nope", "credential": {} }),
            json!({ "credential": unknown_assertion() }),
        ] {
            let (status, reply) = answer(&state, req("POST", "/login/passkey/finish", None, Some(body.clone()))).await;
            assert_eq!(
                (status, reply["error"].as_str()),
                (400, Some("invalid_request")),
                "{body} -> {reply}"
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_challenge_id_is_invalid_challenge() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let body = json!({ "challenge_id": "0123456789abcdef0123456789abcdef", "credential": unknown_assertion() });
        let (status, reply) = answer(&state, req("POST", "/login/passkey/finish", None, Some(body))).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (400, Some("invalid_challenge")),
            "{reply}"
        );
        let credential = registration_stub();
        let body = json!({ "challenge_id": "0123456789abcdef0123456789abcdef", "credential": credential });
        let (status, reply) = answer(
            &state,
            req("POST", "/passkeys/register/finish", Some(&access), Some(body)),
        )
        .await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (400, Some("invalid_challenge")),
            "{reply}"
        );
    }

    #[tokio::test]
    async fn the_callers_routes_need_a_live_session() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        for (method, path) in [
            ("POST", "/passkeys/register/start"),
            ("GET", "/passkeys"),
            ("DELETE", "/passkeys/abc"),
        ] {
            let (response, body) = call(handle(&state, &rp(), req(method, path, None, None))).await;
            assert_eq!(
                (response.status().as_u16(), body["error"].as_str()),
                (401, Some("invalid_token")),
                "{path}"
            );
            assert!(response.headers().contains_key("www-authenticate"));
        }
        let authority = state.keys.loaded().unwrap();
        let session = authority.verify_access(&access, shared::now()).unwrap().sid;
        let key = shared::session::SessionKey::new("alice", &session);
        state.store.revoke_session(&key, ALICE, shared::now()).await.unwrap();
        let (status, _) = answer(&state, req("GET", "/passkeys", Some(&access), None)).await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn a_token_of_an_account_being_deleted_or_of_a_former_holder_of_the_name_is_refused() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        state.store.mark_deleting("alice");
        let (status, _) = answer(&state, req("GET", "/passkeys", Some(&access), None)).await;
        assert_eq!(status, 401);

        // A live session of an alice who is not the alice stored now.
        let (state, _) = logged_in(MemoryStore::default()).await;
        let authority = state.keys.loaded().unwrap();
        let former = user("0f0f0f0f-0000-4000-8000-000000000000", "alice");
        let stale = access_for(&authority, &state.store, &former).await;
        let (status, _) = answer(&state, req("POST", "/passkeys/register/start", Some(&stale), None)).await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn no_passkeys_lists_empty_and_removing_an_unknown_one_is_404() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let (status, body) = answer(&state, req("GET", "/passkeys", Some(&access), None)).await;
        assert_eq!((status, body), (200, json!({ "passkeys": [] })));
        let (status, body) = answer(&state, req("DELETE", "/passkeys/abc", Some(&access), None)).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    }

    #[tokio::test]
    async fn each_route_answers_its_one_method() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        for (method, path, allow) in [
            ("GET", "/passkeys/register/start", "POST"),
            ("GET", "/passkeys/register/finish", "POST"),
            ("POST", "/passkeys", "GET"),
            ("GET", "/passkeys/abc", "DELETE"),
            ("GET", "/login/passkey/start", "POST"),
            ("PUT", "/login/passkey/finish", "POST"),
        ] {
            let (response, _) = call(handle(&state, &rp(), req(method, path, Some(&access), None))).await;
            assert_eq!(response.status(), 405, "{method} {path}");
            assert_eq!(response.headers()["allow"], allow);
        }
    }

    #[tokio::test]
    async fn an_unreachable_store_is_503() {
        let state = State {
            keys: KeyCache::ready(dev_authority()),
            store: MemoryStore::unreachable(),
        };
        let (status, body) = answer(&state, req("POST", "/login/passkey/start", None, None)).await;
        assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")));
    }

    // The ceremonies through the service, with the software authenticator.

    const ORIGIN: &str = "http://localhost:8090";
    use crate::testing::{SoftAuthenticator, Tamper};
    use shared::service::passkeys as service;

    fn claims_of(state: &State<MemoryStore>, access: &str) -> shared::token::AccessClaims {
        state
            .keys
            .loaded()
            .unwrap()
            .verify_access(access, shared::now())
            .unwrap()
    }

    /// Registers `authenticator` for the caller at `now`.
    async fn registered(
        state: &State<MemoryStore>,
        access: &str,
        authenticator: &mut SoftAuthenticator,
    ) -> Result<shared::store::StoredPasskey, service::PasskeyError> {
        let claims = claims_of(state, access);
        let now = shared::now();
        let started = service::start_registration(&state.store, &rp(), &claims, now).await?;
        let credential = authenticator.register(&started.public_key, ORIGIN);
        service::finish_registration(
            &state.store,
            &rp(),
            &claims,
            &started.challenge_id,
            &credential,
            "Key".into(),
            now,
        )
        .await
    }

    /// A passkey login with `authenticator` at `now`, tampered with as given.
    async fn login_at(
        state: &State<MemoryStore>,
        authenticator: &mut SoftAuthenticator,
        tamper: &Tamper,
        started_at: u64,
        now: u64,
    ) -> Result<shared::service::TokenPair, service::PasskeyError> {
        let started = service::start_login(&state.store, &rp(), started_at).await?;
        let credential = authenticator.login_with(&started.public_key, ORIGIN, tamper);
        let authority = state.keys.loaded().unwrap();
        let origin = shared::session::Origin::default();
        service::finish_login(
            &state.store,
            &rp(),
            &authority,
            &started.challenge_id,
            &credential,
            origin,
            now,
        )
        .await
    }

    async fn login(
        state: &State<MemoryStore>,
        authenticator: &mut SoftAuthenticator,
        tamper: &Tamper,
    ) -> Result<shared::service::TokenPair, service::PasskeyError> {
        login_at(state, authenticator, tamper, shared::now(), shared::now()).await
    }

    fn refused<T: std::fmt::Debug>(result: Result<T, service::PasskeyError>) -> String {
        match result {
            Err(service::PasskeyError::LoginRefused(why)) => why,
            other => panic!("expected a refused login, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_registered_passkey_logs_in_with_amr_hwk_user_and_its_counter_is_kept() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let mut key = SoftAuthenticator::new();
        let stored = registered(&state, &access, &mut key).await.unwrap();
        assert_eq!(stored.id, key.passkey_id());
        assert_eq!((stored.user_id.as_str(), stored.name.as_str()), (ALICE, "Key"));
        assert_eq!(state.store.user_now("alice").passkeys, 1);

        let pair = login(&state, &mut key, &Tamper::default()).await.unwrap();
        let access = state
            .keys
            .loaded()
            .unwrap()
            .verify_access(&pair.access_token, shared::now())
            .unwrap();
        assert_eq!(
            (access.sub.as_str(), access.amr.clone()),
            (ALICE, vec!["hwk".to_owned(), "user".to_owned()])
        );
        let (_, used) = state.store.passkey(&key.passkey_id()).await.unwrap().unwrap();
        assert_eq!(used.last_used_at, Some(shared::now()));
        assert_ne!(used.credential, stored.credential, "the counter moved on");

        // A second login moves the counter on again; an old counter is refused.
        login(&state, &mut key, &Tamper::default()).await.unwrap();
        let replayed = Tamper {
            counter: Some(1),
            ..Tamper::default()
        };
        refused(login(&state, &mut key, &replayed).await);
    }

    #[tokio::test]
    async fn a_login_with_another_users_handle_an_unknown_key_or_a_removed_passkey_is_refused() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let mut key = SoftAuthenticator::new();
        registered(&state, &access, &mut key).await.unwrap();
        let other = Tamper {
            user_handle: Some(vec![7; 16]),
            ..Tamper::default()
        };
        refused(login(&state, &mut key, &other).await);
        let forged = Tamper {
            sign_with_another_key: true,
            ..Tamper::default()
        };
        refused(login(&state, &mut key, &forged).await);
        let elsewhere = Tamper {
            origin: Some("http://localhost:9999".into()),
            ..Tamper::default()
        };
        refused(login(&state, &mut key, &elsewhere).await);
        let no_uv = Tamper {
            flags: Some(crate::testing::UP),
            ..Tamper::default()
        };
        refused(login(&state, &mut key, &no_uv).await);
        refused(login(&state, &mut SoftAuthenticator::new(), &Tamper::default()).await);

        service::remove(
            &state.store,
            &claims_of(&state, &access),
            &key.passkey_id(),
            shared::now(),
        )
        .await
        .unwrap();
        assert_eq!(state.store.user_now("alice").passkeys, 0);
        refused(login(&state, &mut key, &Tamper::default()).await);
    }

    #[tokio::test]
    async fn a_challenge_older_than_five_minutes_is_refused() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let mut key = SoftAuthenticator::new();
        registered(&state, &access, &mut key).await.unwrap();
        let now = shared::now();
        let late = login_at(&state, &mut key, &Tamper::default(), now - 300, now).await;
        assert!(matches!(late, Err(service::PasskeyError::InvalidChallenge)), "{late:?}");
        login_at(&state, &mut key, &Tamper::default(), now - 299, now)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_account_being_deleted_does_not_log_in() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let mut key = SoftAuthenticator::new();
        registered(&state, &access, &mut key).await.unwrap();
        state.store.mark_deleting("alice");
        refused(login(&state, &mut key, &Tamper::default()).await);
    }

    #[tokio::test]
    async fn a_credential_is_registered_once_whoever_offers_it_again() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let mut key = SoftAuthenticator::new();
        registered(&state, &access, &mut key).await.unwrap();
        let again = registered(&state, &access, &mut key).await;
        assert!(matches!(again, Err(service::PasskeyError::Taken)), "{again:?}");

        let bob = user("0b0b0b0b-0000-4000-8000-000000000000", "bob");
        state.store.create_user(&bob).await.unwrap();
        let bob_access = access_for(&state.keys.loaded().unwrap(), &state.store, &bob).await;
        let stolen = registered(&state, &bob_access, &mut key).await;
        assert!(matches!(stolen, Err(service::PasskeyError::Taken)), "{stolen:?}");
        assert_eq!(state.store.user_now("bob").passkeys, 0);
    }

    #[tokio::test]
    async fn a_registration_from_another_origin_or_with_too_long_an_id_is_refused() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let claims = claims_of(&state, &access);
        let now = shared::now();
        for (mut key, origin) in [
            (SoftAuthenticator::new(), "https://evil.example"),
            (SoftAuthenticator::with_credential_id(vec![1; 1024]), ORIGIN),
        ] {
            let started = service::start_registration(&state.store, &rp(), &claims, now)
                .await
                .unwrap();
            let credential = key.register(&started.public_key, origin);
            let result = service::finish_registration(
                &state.store,
                &rp(),
                &claims,
                &started.challenge_id,
                &credential,
                "Key".into(),
                now,
            )
            .await;
            assert!(
                matches!(result, Err(service::PasskeyError::Refused(_))),
                "{origin}: {result:?}"
            );
        }
        let mut longest = SoftAuthenticator::with_credential_id(vec![1; 1023]);
        registered(&state, &access, &mut longest).await.unwrap();
        assert_eq!(state.store.user_now("alice").passkeys, 1);
    }

    #[tokio::test]
    async fn the_options_exclude_the_callers_passkeys_and_the_twentieth_is_the_last() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let claims = claims_of(&state, &access);
        let mut keys: Vec<SoftAuthenticator> = (0..shared::passkey::MAX_PER_USER)
            .map(|_| SoftAuthenticator::new())
            .collect();
        for key in &mut keys {
            registered(&state, &access, key).await.unwrap();
        }
        let listed = service::list(&state.store, &claims, shared::now()).await.unwrap();
        assert_eq!(listed.len(), keys.len());
        let full = service::start_registration(&state.store, &rp(), &claims, shared::now()).await;
        assert!(matches!(full, Err(service::PasskeyError::TooMany)), "{:?}", full.err());
        service::remove(&state.store, &claims, &keys[0].passkey_id(), shared::now())
            .await
            .unwrap();
        let started = service::start_registration(&state.store, &rp(), &claims, shared::now())
            .await
            .unwrap();
        let excluded: Vec<&str> = started.public_key["excludeCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(excluded.len(), keys.len() - 1);
        assert!(excluded.contains(&crate::testing::b64(keys[1].credential_id()).as_str()));
        assert!(!excluded.contains(&crate::testing::b64(keys[0].credential_id()).as_str()));
    }

    fn kinds(events: &[shared::audit::Event]) -> Vec<shared::audit::Kind> {
        events.iter().map(|e| e.kind).collect()
    }

    async fn events(state: &State<MemoryStore>) -> Vec<shared::audit::Event> {
        use shared::store::AuditStore;
        state.store.events("alice", None, 100).await.unwrap().events
    }

    #[tokio::test]
    async fn adding_and_removing_a_passkey_are_passkey_added_and_passkey_removed_in_the_callers_session() {
        use shared::audit::Kind::{PasskeyAdded, PasskeyRemoved};
        let (state, access) = logged_in(MemoryStore::default()).await;
        let claims = claims_of(&state, &access);
        let client = shared::session::Origin {
            ip: "198.51.100.7".into(),
            user_agent: "Firefox".into(),
        };
        let mut key = SoftAuthenticator::new();
        shared::audit::from_client(client.clone(), registered(&state, &access, &mut key))
            .await
            .unwrap();
        let id = key.passkey_id();
        let removed = service::remove(&state.store, &claims, &id, shared::now());
        shared::audit::from_client(client, removed).await.unwrap();
        let events = events(&state).await;
        assert_eq!(kinds(&events), [PasskeyRemoved, PasskeyAdded]);
        for event in &events {
            assert_eq!(
                (
                    event.ip.as_deref(),
                    event.user_agent.as_deref(),
                    event.session_id.as_deref()
                ),
                (Some("198.51.100.7"), Some("Firefox"), Some(claims.sid.as_str()))
            );
        }
    }

    #[tokio::test]
    async fn removing_an_id_that_is_not_one_of_the_callers_passkeys_writes_and_records_nothing() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let bob = user("0b0b0b0b-0000-4000-8000-000000000000", "bob");
        state.store.create_user(&bob).await.unwrap();
        let bob_access = access_for(&state.keys.loaded().unwrap(), &state.store, &bob).await;
        let mut bobs_key = SoftAuthenticator::new();
        registered(&state, &bob_access, &mut bobs_key).await.unwrap();
        let claims = claims_of(&state, &access);
        for id in [bobs_key.passkey_id(), "abc".to_owned(), "x".repeat(2000)] {
            let removed = service::remove(&state.store, &claims, &id, shared::now()).await;
            assert!(matches!(removed, Err(service::PasskeyError::NotFound)), "{removed:?}");
        }
        assert!(events(&state).await.is_empty());
        assert_eq!(state.store.user_now("bob").passkeys, 1, "bob's passkey stays");
    }

    /// `POST /login/passkey/start` then `/finish` with `authenticator`, through the handler.
    async fn http_login(
        state: &State<MemoryStore>,
        authenticator: &mut SoftAuthenticator,
        tamper: &Tamper,
    ) -> (u16, Value) {
        let (status, started) = answer(state, req("POST", "/login/passkey/start", None, None)).await;
        assert_eq!(status, 200, "{started}");
        let credential = authenticator.login_with(&started["publicKey"], ORIGIN, tamper);
        let body = json!({ "challenge_id": started["challenge_id"], "credential": credential });
        answer(state, req("POST", "/login/passkey/finish", None, Some(body))).await
    }

    #[tokio::test]
    async fn a_passkey_login_is_login_succeeded_in_its_new_session_from_the_requests_client() {
        let (state, access) = logged_in(MemoryStore::default()).await;
        let mut key = SoftAuthenticator::new();
        registered(&state, &access, &mut key).await.unwrap();
        let (status, body) = http_login(&state, &mut key, &Tamper::default()).await;
        assert_eq!(status, 200, "{body}");
        let sid = claims_of(&state, body["access_token"].as_str().unwrap()).sid;
        let events = events(&state).await;
        let event = &events[0];
        assert_eq!(event.kind, shared::audit::Kind::LoginSucceeded);
        assert_eq!(
            (
                event.ip.as_deref(),
                event.user_agent.as_deref(),
                event.session_id.as_deref()
            ),
            (Some("203.0.113.10"), Some("test"), Some(sid.as_str()))
        );
    }

    #[tokio::test]
    async fn a_proven_passkey_of_a_disabled_account_is_403_account_disabled_and_starts_no_session() {
        use shared::store::{AdminStore, SessionStore};
        let (state, access) = logged_in(MemoryStore::default()).await;
        let mut key = SoftAuthenticator::new();
        registered(&state, &access, &mut key).await.unwrap();
        state
            .store
            .set_disabled(&state.store.user_now("alice"), true)
            .await
            .unwrap();
        let sessions = state.store.sessions("alice").await.unwrap().len();
        let (status, body) = http_login(&state, &mut key, &Tamper::default()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("account_disabled")),
            "{body}"
        );
        let forged = Tamper {
            sign_with_another_key: true,
            ..Tamper::default()
        };
        let (status, body) = http_login(&state, &mut key, &forged).await;
        assert_eq!(status, 401, "a passkey not proven says nothing of the account: {body}");
        assert_eq!(
            state.store.sessions("alice").await.unwrap().len(),
            sessions,
            "no session"
        );
        assert!(
            !kinds(&events(&state).await).contains(&shared::audit::Kind::LoginSucceeded),
            "no login"
        );
        state
            .store
            .set_disabled(&state.store.user_now("alice"), false)
            .await
            .unwrap();
        let (status, body) = http_login(&state, &mut key, &Tamper::default()).await;
        assert_eq!(status, 200, "enabled again: {body}");
    }
}
