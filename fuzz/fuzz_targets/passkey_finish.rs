//! Any bytes as the body of `POST /passkeys/register/finish` and
//! `POST /login/passkey/finish`, through the passkeys handler on a memory
//! store: never a panic, never a 5xx. To reach past the parsing, most inputs
//! are spliced into a live ceremony: a store holding alice, her session, one
//! registered passkey and a live challenge of each ceremony, and a valid
//! answer to each (made once by a software authenticator with a fixed key,
//! over fixed challenges, so an input means the same thing in every run).
//!
//! The first byte picks the route (bit 0) and how the rest is used (bits 1-2):
//! - 0: the whole body;
//! - 1: the `credential` of an envelope with the live `challenge_id` (the
//!   rest as JSON, or as a string when it is not JSON);
//! - 2: the valid answer with one of its binary parts patched (byte 1 picks
//!   the part, byte 2 the offset, byte 3 bit 0 truncates there, the rest is
//!   written at the offset), its CBOR and authenticator data rebuilt around it;
//! - 3: the valid envelope's JSON text patched the same way (bytes 1-2 the offset).
//!
//! And one property: a login the service accepts signed exactly the
//! authenticator data and client data of the valid answer, with alice's user
//! handle (anything else would be a forged assertion).
#![no_main]

use lambda_http::http::header::{AUTHORIZATION, CONTENT_TYPE};
use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared::State;
use shared::key_cache::KeyCache;
use shared::passkey::{MAX_PER_USER, RelyingParty};
use shared::session::Session;
use shared::store::memory::MemoryStore;
use shared::store::{Ceremony, Challenge, NewPasskey, PasskeyStore, SessionStore, StoredPasskey, User, UserStore};
use shared::testing::{b64, dev_authority, password_session, user};
use std::sync::LazyLock;
use webauthn_rs_proto::PublicKeyCredential;

const ALICE: &str = "6a1f0c7e-3b2d-4e5f-8a9b-0c1d2e3f4a5b";
const ORIGIN: &str = "http://localhost:8090";
const REGISTER: &str = "/passkeys/register/finish";
const LOGIN: &str = "/login/passkey/finish";
/// The ids of the two live challenges in every store.
const REGISTRATION_ID: &str = "0123456789abcdef0123456789abcdef";
const LOGIN_ID: &str = "fedcba9876543210fedcba9876543210";

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

static RP: LazyLock<RelyingParty> = LazyLock::new(|| {
    RelyingParty::from_lookup(|name| match name {
        "WEBAUTHN_RP_ID" => Some("localhost".into()),
        "WEBAUTHN_ORIGIN" => Some(ORIGIN.into()),
        _ => None,
    })
    .expect("a relying party for localhost")
});

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| RT.block_on(Fixture::new()));

/// What every iteration starts from.
struct Fixture {
    alice: User,
    session: Session,
    access_token: String,
    /// alice's passkey, the one the login answer is signed by.
    passkey: StoredPasskey,
    /// The webauthn-rs states of the two live challenges.
    registration_state: String,
    login_state: String,
    registration: Registration,
    login: Assertion,
}

/// A registration answer in parts (attestation "none").
#[derive(Clone)]
struct Registration {
    client_data: Vec<u8>,
    /// rpIdHash, flags, signCount, AAGUID.
    head: Vec<u8>,
    credential_id: Vec<u8>,
    cose_key: Vec<u8>,
    raw_id: Vec<u8>,
}

/// A login answer in parts.
#[derive(Clone)]
struct Assertion {
    client_data: Vec<u8>,
    authenticator_data: Vec<u8>,
    signature: Vec<u8>,
    user_handle: Vec<u8>,
    raw_id: Vec<u8>,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).expect("a valid scalar")
}

fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
    format!(r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{ORIGIN}","crossOrigin":false}}"#).into_bytes()
}

fn rp_id_hash() -> Vec<u8> {
    Sha256::digest(b"localhost").to_vec()
}

/// Flags UP|UV|AT, counter 0, AAGUID of zeros.
fn registration(challenge: &str, key: &SigningKey, credential_id: &[u8]) -> Registration {
    let mut head = rp_id_hash();
    head.push(0x45);
    head.extend([0; 4 + 16]);
    let point = key.verifying_key().to_encoded_point(false);
    // COSE_Key {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}.
    let mut cose_key = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
    cose_key.extend(point.x().expect("uncompressed"));
    cose_key.extend([0x22, 0x58, 0x20]);
    cose_key.extend(point.y().expect("uncompressed"));
    Registration {
        client_data: client_data("webauthn.create", challenge),
        head,
        credential_id: credential_id.to_vec(),
        cose_key,
        raw_id: credential_id.to_vec(),
    }
}

fn cbor_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = match bytes.len() {
        n @ 0..=23 => vec![0x40 | n as u8],
        n @ 24..=0xff => vec![0x58, n as u8],
        n => [vec![0x59], (n.min(0xffff) as u16).to_be_bytes().to_vec()].concat(),
    };
    out.extend(&bytes[..bytes.len().min(0xffff)]);
    out
}

impl Registration {
    fn authenticator_data(&self) -> Vec<u8> {
        let mut data = self.head.clone();
        data.extend((self.credential_id.len().min(0xffff) as u16).to_be_bytes());
        data.extend(&self.credential_id);
        data.extend(&self.cose_key);
        data
    }

    fn attestation_object(authenticator_data: &[u8]) -> Vec<u8> {
        // {"fmt": "none", "attStmt": {}, "authData": <bytes>}
        let mut cbor = vec![0xa3, 0x63];
        cbor.extend(b"fmt");
        cbor.push(0x64);
        cbor.extend(b"none");
        cbor.push(0x67);
        cbor.extend(b"attStmt");
        cbor.extend([0xa0, 0x68]);
        cbor.extend(b"authData");
        cbor.extend(cbor_bytes(authenticator_data));
        cbor
    }

    /// The answer, part `part` patched by `patch` at its stage.
    fn json(&self, part: u8, patch: impl Fn(&mut Vec<u8>)) -> Value {
        let mut parts = self.clone();
        match part % 7 {
            0 => patch(&mut parts.client_data),
            1 => patch(&mut parts.head),
            2 => patch(&mut parts.credential_id),
            3 => patch(&mut parts.cose_key),
            4 => patch(&mut parts.raw_id),
            _ => {}
        }
        let mut authenticator_data = parts.authenticator_data();
        if part % 7 == 5 {
            patch(&mut authenticator_data);
        }
        let mut attestation = Self::attestation_object(&authenticator_data);
        if part % 7 == 6 {
            patch(&mut attestation);
        }
        json!({
            "id": b64(&parts.raw_id),
            "rawId": b64(&parts.raw_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&parts.client_data),
                "attestationObject": b64(&attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }
}

/// Flags UP|UV, counter 1, signed by `key`.
fn assertion(challenge: &str, key: &SigningKey, credential_id: &[u8], user_handle: &[u8]) -> Assertion {
    let client_data = client_data("webauthn.get", challenge);
    let mut authenticator_data = rp_id_hash();
    authenticator_data.push(0x05);
    authenticator_data.extend(1u32.to_be_bytes());
    let mut signed = authenticator_data.clone();
    signed.extend(Sha256::digest(&client_data));
    let signature: Signature = key.sign(&signed);
    Assertion {
        client_data,
        authenticator_data,
        signature: signature.to_der().as_bytes().to_vec(),
        user_handle: user_handle.to_vec(),
        raw_id: credential_id.to_vec(),
    }
}

impl Assertion {
    fn json(&self, part: u8, patch: impl Fn(&mut Vec<u8>)) -> Value {
        let mut parts = self.clone();
        match part % 5 {
            0 => patch(&mut parts.client_data),
            1 => patch(&mut parts.authenticator_data),
            2 => patch(&mut parts.signature),
            3 => patch(&mut parts.user_handle),
            _ => patch(&mut parts.raw_id),
        }
        json!({
            "id": b64(&parts.raw_id),
            "rawId": b64(&parts.raw_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&parts.client_data),
                "authenticatorData": b64(&parts.authenticator_data),
                "signature": b64(&parts.signature),
                "userHandle": b64(&parts.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}

/// The state of the challenge `id`, taken from `store`, its challenge made `fixed`.
async fn fixed_state(store: &MemoryStore, id: &str, ceremony: &Ceremony, options: &Value, fixed: &str) -> String {
    let challenge = store.take_challenge(id, ceremony).await.unwrap().expect("a challenge");
    let random = options["challenge"].as_str().expect("a challenge in the options");
    assert_eq!(
        challenge.state.matches(random).count(),
        1,
        "the state holds its challenge once"
    );
    challenge.state.replace(random, fixed)
}

impl Fixture {
    async fn new() -> Self {
        let authority = dev_authority();
        let now = shared::now();
        let alice = user(ALICE, "alice");
        let session = password_session(&authority, &alice, now);
        let access_token = shared::service::sessions::token_pair(&authority, &session, now).access_token;
        let claims = authority.verify_access(&access_token, now).expect("a valid token");
        let store = MemoryStore::default();
        store.create_user(&alice).await.unwrap();
        store.create_session(&session, None).await.unwrap();
        let rp = &*RP;
        let handle = uuid_bytes(ALICE);

        // alice registers the passkey that signs the login answer.
        let started = shared::service::passkeys::start_registration(&store, rp, &claims, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let challenge = started.public_key["challenge"].as_str().unwrap();
        let answer = registration(challenge, &key(1), &[1; 16]).json(0xff, |_| {});
        let passkey = shared::service::passkeys::finish_registration(
            &store,
            rp,
            &claims,
            &started.challenge_id,
            &answer,
            "Laptop".into(),
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("the fixture's registration: {e}"));

        // A registration of a second passkey and a login, both over fixed challenges.
        let (fixed_registration, fixed_login) = (b64(&[2; 32]), b64(&[3; 32]));
        let started = shared::service::passkeys::start_registration(&store, rp, &claims, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ceremony = Ceremony::Registration { user_id: ALICE.into() };
        let registration_state = fixed_state(
            &store,
            &started.challenge_id,
            &ceremony,
            &started.public_key,
            &fixed_registration,
        )
        .await;
        let started = shared::service::passkeys::start_login(&store, rp, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let login_state = fixed_state(
            &store,
            &started.challenge_id,
            &Ceremony::Login,
            &started.public_key,
            &fixed_login,
        )
        .await;
        assert_eq!(started.public_key["rpId"], "localhost");
        let fixture = Self {
            alice,
            session,
            access_token,
            passkey,
            registration_state,
            login_state,
            registration: registration(&fixed_registration, &key(2), &[2; 16]),
            login: assertion(&fixed_login, &key(1), &[1; 16], &handle),
        };
        // The unpatched answers are accepted: the fuzzing starts from a working ceremony.
        let (status, body) = fixture.answer(REGISTER, &fixture.envelope(REGISTER, 0xff, &[])).await;
        assert_eq!(status, 201, "the valid registration: {body}");
        let (status, body) = fixture.answer(LOGIN, &fixture.envelope(LOGIN, 0xff, &[])).await;
        assert_eq!(status, 200, "the valid login: {body}");
        fixture
    }

    /// A store as the fixture left it, both challenges live.
    async fn store(&self) -> MemoryStore {
        let store = MemoryStore::default();
        store.create_user(&self.alice).await.unwrap();
        store.create_session(&self.session, None).await.unwrap();
        let added = store
            .add_passkey(&self.alice, &self.passkey, MAX_PER_USER)
            .await
            .unwrap();
        assert_eq!(added, NewPasskey::Added);
        let expires_at = shared::now() + 300;
        for (id, ceremony, state) in [
            (
                REGISTRATION_ID,
                Ceremony::Registration { user_id: ALICE.into() },
                &self.registration_state,
            ),
            (LOGIN_ID, Ceremony::Login, &self.login_state),
        ] {
            let challenge = Challenge {
                id: id.into(),
                ceremony,
                state: state.clone(),
                expires_at,
            };
            store.put_challenge(&challenge).await.unwrap();
        }
        store
    }

    /// The valid answer of `path`'s ceremony in its envelope, part `part` patched by `data`.
    fn envelope(&self, path: &str, part: u8, data: &[u8]) -> Vec<u8> {
        let patcher = |bytes: &mut Vec<u8>| patch(bytes, data);
        let (id, credential) = if path == REGISTER {
            (REGISTRATION_ID, self.registration.json(part, patcher))
        } else {
            (LOGIN_ID, self.login.json(part, patcher))
        };
        json!({ "challenge_id": id, "credential": credential })
            .to_string()
            .into_bytes()
    }

    /// The status and JSON body of `body` sent to `path` on a fresh store.
    async fn answer(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let state = State {
            keys: KeyCache::ready(dev_authority()),
            store: self.store().await,
        };
        let mut req = lambda_http::http::Request::builder()
            .method("POST")
            .uri(path)
            .header(CONTENT_TYPE, "application/json");
        if path == REGISTER {
            req = req.header(AUTHORIZATION, format!("Bearer {}", self.access_token));
        }
        let req: Request = req.body(Body::Binary(body.to_vec())).expect("a request");
        let response = passkeys::handle(&state, &RP, req).await.expect("the handler answers");
        let status = response.status().as_u16();
        let body = match response.body() {
            Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
            Body::Empty => Value::Null,
            other => panic!("a text body, got {other:?}"),
        };
        (status, body)
    }
}

/// `data` is: byte 0 the offset, byte 1 bit 0 truncate there, then the bytes written at the offset.
fn patch(bytes: &mut Vec<u8>, data: &[u8]) {
    let Some((&offset, data)) = data.split_first() else {
        return;
    };
    spliced(bytes, usize::from(offset), data);
}

/// `data` is: byte 0 bit 0 truncate at `offset`, then the bytes written at `offset`.
fn spliced(bytes: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let offset = offset.min(bytes.len());
    let (truncate, data) = match data.split_first() {
        Some((&flags, rest)) => (flags & 1 == 1, rest),
        None => (false, data),
    };
    if truncate {
        bytes.truncate(offset);
    }
    for (i, &b) in data.iter().enumerate() {
        match bytes.get_mut(offset + i) {
            Some(slot) => *slot = b,
            None => bytes.push(b),
        }
    }
}

/// A UUID's 16 bytes, as WebAuthn's user handle carries it.
fn uuid_bytes(id: &str) -> Vec<u8> {
    u128::from_str_radix(&id.replace('-', ""), 16)
        .expect("a UUID")
        .to_be_bytes()
        .to_vec()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let fixture = &*FIXTURE;
    let path = if selector & 1 == 0 { LOGIN } else { REGISTER };
    let body = match (selector >> 1) & 3 {
        0 => rest.to_vec(),
        1 => {
            let credential = serde_json::from_slice(rest)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(rest).into_owned()));
            let id = if path == REGISTER { REGISTRATION_ID } else { LOGIN_ID };
            json!({ "challenge_id": id, "credential": credential })
                .to_string()
                .into_bytes()
        }
        2 => match rest.split_first() {
            Some((&part, data)) => fixture.envelope(path, part, data),
            None => fixture.envelope(path, 0xff, &[]),
        },
        _ => {
            let mut body = fixture.envelope(path, 0xff, &[]);
            if let [high, low, data @ ..] = rest {
                spliced(&mut body, usize::from(u16::from_be_bytes([*high, *low])), data);
            }
            body
        }
    };
    let (status, answer) = RT.block_on(fixture.answer(path, &body));
    assert!(status < 500, "{path}: {status} {answer}");
    if status >= 400 {
        assert!(answer["error"].is_string(), "{path}: an error names itself: {answer}");
    }
    if path == LOGIN && status == 200 {
        // Only the valid answer's signed bytes can log in.
        let body: Value = serde_json::from_slice(&body).expect("an accepted body is JSON");
        let credential: PublicKeyCredential =
            serde_json::from_value(body["credential"].clone()).expect("an accepted credential parses");
        let valid = &fixture.login;
        assert_eq!(credential.response.authenticator_data, valid.authenticator_data);
        assert_eq!(credential.response.client_data_json, valid.client_data);
        assert_eq!(credential.response.user_handle.as_deref(), Some(&valid.user_handle[..]));
        assert!(answer["access_token"].is_string(), "{answer}");
    }
});
