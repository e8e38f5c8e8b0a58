//! Passkeys (WebAuthn):
//! - `POST /passkeys/register/start`, `POST /passkeys/register/finish`:
//!   the caller (Bearer) registers a passkey;
//! - `GET /passkeys`, `DELETE /passkeys/{id}`: the caller's passkeys;
//! - `POST /login/passkey/start`, `POST /login/passkey/finish`: a login
//!   with a discoverable passkey, no username, answered with tokens.

use lambda_http::http::StatusCode;
use lambda_http::http::header::{CACHE_CONTROL, HeaderValue};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{ApiError, JsonObject, authenticate, last_segment, no_content, origin, respond, tokens};
use shared::passkey::{RelyingParty, passkey_name};
use shared::service::passkeys::{self, Started};
use shared::store::{AccountStore, PasskeyStore, SessionStore, StoredPasskey};

pub use shared::State;

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
pub async fn handle<S: AccountStore + SessionStore + PasskeyStore>(
    state: &State<S>,
    rp: &RelyingParty,
    req: Request,
) -> Result<Response<Body>, Error> {
    respond(&req, route(state, rp, &req)).await
}

async fn route<S: AccountStore + SessionStore + PasskeyStore>(
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
    let body = json!({ "challenge_id": started.challenge_id, "publicKey": started.public_key });
    let mut response = shared::http::json(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
