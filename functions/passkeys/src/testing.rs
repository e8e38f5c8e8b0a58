//! A software WebAuthn authenticator and client for the tests (feature `testing`): it answers
//! the creation and request options of `/passkeys/register/start` and
//! `/login/passkey/start` as a browser with a platform authenticator would
//! (`PublicKeyCredential.toJSON()`), with a P-256 key (ES256), attestation
//! "none", a discoverable credential holding the user handle, and a sign
//! counter. `Tamper` makes it answer wrongly on purpose (another origin, RP
//! id, challenge, user handle, flags, counter or key).
//!
//! A test client only: it never verifies anything the server says.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Authenticator data flag: the user was present.
pub const UP: u8 = 0x01;
/// Authenticator data flag: the user was verified (PIN, biometric).
pub const UV: u8 = 0x04;
/// Authenticator data flag: the credential may be backed up (synced).
pub const BE: u8 = 0x08;
/// Authenticator data flag: the credential is backed up.
pub const BS: u8 = 0x10;
/// Authenticator data flag: attested credential data follows.
pub const AT: u8 = 0x40;

/// How an answer departs from an honest one; `Default` is honest.
#[derive(Clone, Default)]
pub struct Tamper {
    /// This origin in the client data instead of the one given.
    pub origin: Option<String>,
    /// The hash of this RP id in the authenticator data instead of the options'.
    pub rp_id: Option<String>,
    /// This challenge in the client data instead of the options'.
    pub challenge: Option<Vec<u8>>,
    /// This client data `type` instead of `webauthn.create` / `webauthn.get`.
    pub client_data_type: Option<String>,
    /// These authenticator data flags instead of UP|UV (and AT at registration).
    pub flags: Option<u8>,
    /// This sign counter instead of the next one (login); the counter is
    /// then where this leaves it.
    pub counter: Option<u32>,
    /// Login: this user handle instead of the one registered.
    pub user_handle: Option<Vec<u8>>,
    /// Login: no user handle at all.
    pub no_user_handle: bool,
    /// Login: signed with a key of its own instead of the credential's.
    pub sign_with_another_key: bool,
}

/// One discoverable credential on a software authenticator.
#[derive(Clone)]
pub struct SoftAuthenticator {
    key: SigningKey,
    credential_id: Vec<u8>,
    counter: u32,
    /// The user handle of the last registration (`user.id` of its options).
    user_handle: Option<Vec<u8>>,
}

impl std::fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAuthenticator")
            .field("credential_id", &b64(&self.credential_id))
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftAuthenticator {
    /// A new key and a random 32-byte credential id, counter at 0.
    pub fn new() -> Self {
        Self::with_credential_id(random_bytes(32))
    }

    /// A new key with this credential id.
    pub fn with_credential_id(credential_id: Vec<u8>) -> Self {
        Self {
            key: SigningKey::random(&mut rand_core::OsRng),
            credential_id,
            counter: 0,
            user_handle: None,
        }
    }

    pub fn credential_id(&self) -> &[u8] {
        &self.credential_id
    }

    /// The id the service lists the passkey under: base64url of the SHA-256 of the credential id.
    pub fn passkey_id(&self) -> String {
        b64(&Sha256::digest(&self.credential_id))
    }

    /// The sign counter of the last answer.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The user handle remembered from the last registration.
    pub fn user_handle(&self) -> Option<&[u8]> {
        self.user_handle.as_deref()
    }

    /// `navigator.credentials.create({publicKey})` then `.toJSON()`: `options`
    /// is the `publicKey` of `/passkeys/register/start`.
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        self.register_with(options, origin, &Tamper::default())
    }

    /// `register`, tampered with.
    pub fn register_with(&mut self, options: &Value, origin: &str, tamper: &Tamper) -> Value {
        let rp_id = str_at(options, &["rp", "id"]);
        let challenge = tamper
            .challenge
            .clone()
            .unwrap_or_else(|| b64_at(options, &["challenge"]));
        self.user_handle = Some(b64_at(options, &["user", "id"]));
        let client_data = client_data(
            tamper.client_data_type.as_deref().unwrap_or("webauthn.create"),
            &challenge,
            tamper.origin.as_deref().unwrap_or(origin),
        );
        let (x, y) = self.public_xy();
        // The COSE key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
        let mut cose = cbor_head(5, 5);
        cose.extend(cbor_entry(1, 2));
        cose.extend(cbor_entry(3, -7));
        cose.extend(cbor_entry(-1, 1));
        cose.extend(cbor_int(-2));
        cose.extend(cbor_bytes(&x));
        cose.extend(cbor_int(-3));
        cose.extend(cbor_bytes(&y));
        let mut auth_data = self.auth_data_head(
            tamper.rp_id.as_deref().unwrap_or(&rp_id),
            tamper.flags.unwrap_or(UP | UV | AT),
            self.counter,
        );
        auth_data.extend([0u8; 16]); // AAGUID: none
        let length = u16::try_from(self.credential_id.len()).expect("a credential id under 64 KiB");
        auth_data.extend(length.to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(&cose);
        // {"fmt": "none", "attStmt": {}, "authData": <bytes>}, keys in CTAP2 canonical order.
        let mut attestation = cbor_head(5, 3);
        attestation.extend(cbor_text("fmt"));
        attestation.extend(cbor_text("none"));
        attestation.extend(cbor_text("attStmt"));
        attestation.extend(cbor_head(5, 0));
        attestation.extend(cbor_text("authData"));
        attestation.extend(cbor_bytes(&auth_data));
        let spki = self
            .key
            .verifying_key()
            .to_public_key_der()
            .expect("a P-256 key encodes");
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "attestationObject": b64(&attestation),
                "authenticatorData": b64(&auth_data),
                "transports": ["internal"],
                "publicKey": b64(spki.as_bytes()),
                "publicKeyAlgorithm": -7,
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get({publicKey})` then `.toJSON()`: `options`
    /// is the `publicKey` of `/login/passkey/start`. The counter goes up by one.
    pub fn login(&mut self, options: &Value, origin: &str) -> Value {
        self.login_with(options, origin, &Tamper::default())
    }

    /// `login`, tampered with.
    pub fn login_with(&mut self, options: &Value, origin: &str, tamper: &Tamper) -> Value {
        let rp_id = str_at(options, &["rpId"]);
        let challenge = tamper
            .challenge
            .clone()
            .unwrap_or_else(|| b64_at(options, &["challenge"]));
        let client_data = client_data(
            tamper.client_data_type.as_deref().unwrap_or("webauthn.get"),
            &challenge,
            tamper.origin.as_deref().unwrap_or(origin),
        );
        self.counter = tamper.counter.unwrap_or(self.counter + 1);
        let auth_data = self.auth_data_head(
            tamper.rp_id.as_deref().unwrap_or(&rp_id),
            tamper.flags.unwrap_or(UP | UV),
            self.counter,
        );
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(client_data.as_bytes()));
        let key = if tamper.sign_with_another_key {
            SigningKey::random(&mut rand_core::OsRng)
        } else {
            self.key.clone()
        };
        let signature: Signature = key.sign(&signed);
        let user_handle = if tamper.no_user_handle {
            Value::Null
        } else {
            tamper
                .user_handle
                .as_deref()
                .or(self.user_handle.as_deref())
                .map_or(Value::Null, |h| b64(h).into())
        };
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": user_handle,
            },
            "clientExtensionResults": {},
        })
    }

    /// rpIdHash, flags and signCount: the authenticator data up to its optional parts.
    fn auth_data_head(&self, rp_id: &str, flags: u8, counter: u32) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend(counter.to_be_bytes());
        data
    }

    fn public_xy(&self) -> (Vec<u8>, Vec<u8>) {
        let point = self.key.verifying_key().to_encoded_point(false);
        (
            point.x().expect("an uncompressed point").to_vec(),
            point.y().expect("an uncompressed point").to_vec(),
        )
    }
}

/// Base64url without padding, as WebAuthn's JSON uses.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of a base64url string (padded or not); panics on anything else.
pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("not base64url: {text:?}: {e}"))
}

fn random_bytes(n: usize) -> Vec<u8> {
    use rand_core::RngCore;
    let mut bytes = vec![0; n];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn str_at(value: &Value, path: &[&str]) -> String {
    path.iter()
        .fold(value, |v, k| &v[k])
        .as_str()
        .unwrap_or_else(|| panic!("no string at {path:?} in the options {value}"))
        .to_owned()
}

fn b64_at(value: &Value, path: &[&str]) -> Vec<u8> {
    b64_decode(&str_at(value, path))
}

/// The client data as a browser serializes it (its members in this order).
fn client_data(kind: &str, challenge: &[u8], origin: &str) -> String {
    format!(
        r#"{{"type":{},"challenge":{},"origin":{},"crossOrigin":false}}"#,
        Value::from(kind),
        Value::from(b64(challenge)),
        Value::from(origin)
    )
}

/// A CBOR head: major type and argument, in its shortest form.
fn cbor_head(major: u8, argument: u64) -> Vec<u8> {
    let major = major << 5;
    match argument {
        0..=23 => vec![major | argument as u8],
        24..=0xff => vec![major | 24, argument as u8],
        0x100..=0xffff => [vec![major | 25], (argument as u16).to_be_bytes().to_vec()].concat(),
        0x1_0000..=0xffff_ffff => [vec![major | 26], (argument as u32).to_be_bytes().to_vec()].concat(),
        _ => [vec![major | 27], argument.to_be_bytes().to_vec()].concat(),
    }
}

fn cbor_int(n: i64) -> Vec<u8> {
    if n >= 0 {
        cbor_head(0, n as u64)
    } else {
        cbor_head(1, (-1 - n) as u64)
    }
}

/// A map entry with an integer key and an integer value.
fn cbor_entry(key: i64, value: i64) -> Vec<u8> {
    [cbor_int(key), cbor_int(value)].concat()
}

fn cbor_bytes(bytes: &[u8]) -> Vec<u8> {
    [cbor_head(2, bytes.len() as u64), bytes.to_vec()].concat()
}

fn cbor_text(text: &str) -> Vec<u8> {
    [cbor_head(3, text.len() as u64), text.as_bytes().to_vec()].concat()
}

#[cfg(test)]
mod tests {
    //! The authenticator against `webauthn-rs` in process, so that an
    //! end-to-end failure is the service's, not the test client's.

    use super::*;
    use webauthn_rs::prelude::{
        DiscoverableAuthentication, Passkey, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
        WebauthnBuilder,
    };

    const ORIGIN: &str = "http://localhost:8190";

    fn relying_party() -> Webauthn {
        WebauthnBuilder::new("localhost", &Url::parse(ORIGIN).unwrap())
            .unwrap()
            .build()
            .unwrap()
    }

    fn registered(rp: &Webauthn, user: Uuid) -> (SoftAuthenticator, Passkey) {
        let mut authenticator = SoftAuthenticator::new();
        let (options, state) = rp.start_passkey_registration(user, "alice", "alice", None).unwrap();
        let options = serde_json::to_value(&options.public_key).unwrap();
        let answer = authenticator.register(&options, ORIGIN);
        let credential: RegisterPublicKeyCredential = serde_json::from_value(answer).unwrap();
        let passkey = rp.finish_passkey_registration(&credential, &state).unwrap();
        (authenticator, passkey)
    }

    fn login_options(rp: &Webauthn) -> (Value, DiscoverableAuthentication) {
        let (options, state) = rp.start_discoverable_authentication().unwrap();
        (serde_json::to_value(&options.public_key).unwrap(), state)
    }

    fn login(
        rp: &Webauthn,
        authenticator: &mut SoftAuthenticator,
        passkey: &Passkey,
        tamper: &Tamper,
    ) -> Result<u32, String> {
        let (options, state) = login_options(rp);
        let answer = authenticator.login_with(&options, ORIGIN, tamper);
        let credential: PublicKeyCredential = serde_json::from_value(answer).map_err(|e| e.to_string())?;
        rp.finish_discoverable_authentication_v2(&credential, state, passkey)
            .map(|r| r.counter())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_registration_and_logins_pass_webauthn_rs() {
        let rp = relying_party();
        let user = Uuid::new_v4();
        let (mut authenticator, mut passkey) = registered(&rp, user);
        assert_eq!(passkey.cred_id().as_slice(), authenticator.credential_id());
        assert_eq!(authenticator.user_handle(), Some(&user.as_bytes()[..]));
        let (options, state) = login_options(&rp);
        let answer = authenticator.login(&options, ORIGIN);
        let credential: PublicKeyCredential = serde_json::from_value(answer).unwrap();
        let (handle, id) = rp.identify_discoverable_authentication(&credential).unwrap();
        assert_eq!((handle, id), (user, authenticator.credential_id()));
        let result = rp
            .finish_discoverable_authentication_v2(&credential, state, &passkey)
            .unwrap();
        assert_eq!(result.counter(), 1);
        assert!(result.user_verified());
        passkey.update_credential(&result);
        assert_eq!(login(&rp, &mut authenticator, &passkey, &Tamper::default()), Ok(2));
    }

    #[test]
    fn each_tampered_answer_is_refused_by_webauthn_rs() {
        let rp = relying_party();
        let (mut authenticator, mut passkey) = registered(&rp, Uuid::new_v4());
        // One login first, so that the counter is known to be 1.
        let (options, state) = login_options(&rp);
        let credential = serde_json::from_value(authenticator.login(&options, ORIGIN)).unwrap();
        let result = rp
            .finish_discoverable_authentication_v2(&credential, state, &passkey)
            .unwrap();
        passkey.update_credential(&result);
        for (what, tamper) in [
            (
                "origin",
                Tamper {
                    origin: Some("http://localhost:9999".into()),
                    ..Tamper::default()
                },
            ),
            (
                "rp id",
                Tamper {
                    rp_id: Some("example.com".into()),
                    ..Tamper::default()
                },
            ),
            (
                "challenge",
                Tamper {
                    challenge: Some(vec![7; 32]),
                    ..Tamper::default()
                },
            ),
            (
                "type",
                Tamper {
                    client_data_type: Some("webauthn.create".into()),
                    ..Tamper::default()
                },
            ),
            (
                "no uv",
                Tamper {
                    flags: Some(UP),
                    ..Tamper::default()
                },
            ),
            (
                "key",
                Tamper {
                    sign_with_another_key: true,
                    ..Tamper::default()
                },
            ),
            (
                "counter",
                Tamper {
                    counter: Some(1),
                    ..Tamper::default()
                },
            ),
        ] {
            assert!(login(&rp, &mut authenticator, &passkey, &tamper).is_err(), "{what}");
        }
    }

    #[test]
    fn tampered_registrations_are_refused_by_webauthn_rs() {
        let rp = relying_party();
        for (what, tamper) in [
            (
                "origin",
                Tamper {
                    origin: Some("https://evil.example".into()),
                    ..Tamper::default()
                },
            ),
            (
                "rp id",
                Tamper {
                    rp_id: Some("evil.example".into()),
                    ..Tamper::default()
                },
            ),
            (
                "challenge",
                Tamper {
                    challenge: Some(vec![7; 32]),
                    ..Tamper::default()
                },
            ),
            (
                "no uv",
                Tamper {
                    flags: Some(UP | AT),
                    ..Tamper::default()
                },
            ),
        ] {
            let (options, state) = rp
                .start_passkey_registration(Uuid::new_v4(), "bob", "bob", None)
                .unwrap();
            let options = serde_json::to_value(&options.public_key).unwrap();
            let answer = SoftAuthenticator::new().register_with(&options, ORIGIN, &tamper);
            let credential: RegisterPublicKeyCredential = serde_json::from_value(answer).unwrap();
            assert!(rp.finish_passkey_registration(&credential, &state).is_err(), "{what}");
        }
    }

    #[test]
    fn cbor_heads_take_their_shortest_form() {
        assert_eq!(cbor_int(23), [0x17]);
        assert_eq!(cbor_int(24), [0x18, 24]);
        assert_eq!(cbor_int(-7), [0x26]);
        assert_eq!(cbor_int(-25), [0x38, 24]);
        assert_eq!(cbor_head(2, 300), [0x59, 1, 44]);
        assert_eq!(cbor_text("fmt"), [0x63, b'f', b'm', b't']);
    }
}
