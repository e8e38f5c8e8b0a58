//! The signing keys: one current key that signs, and the keys that only
//! verify (the next one, published ahead of its turn, and the previous ones,
//! kept until every token they signed has expired). Each key's `kid` is
//! derived from the key itself, so it can never disagree with it.
//!
//! Stored as JSON (in `JWT_SECRET` or the Secrets Manager secret):
//! `{"keys": [{"alg": "EdDSA", "status": "current", "since": 1764000000, "key": "<PKCS#8 DER, base64>"}]}`.
//! A plain string instead of JSON is one HS256 secret, the simplest setup.

use crate::config::{ConfigError, MIN_SECRET_BYTES};
use crate::token::LEEWAY;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::rand_core::{OsRng, RngCore};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Most keys a set may hold: current, next, and a few previous ones.
const MAX_KEYS: usize = 8;
/// RSA modulus size of generated keys, bits.
const RSA_BITS: usize = 2048;

/// The signing algorithms a key can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alg {
    HS256,
    RS256,
    EdDSA,
}

impl Alg {
    fn algorithm(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::RS256 => Algorithm::RS256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Whether other parties can verify its tokens from a published public key.
    pub fn is_public(self) -> bool {
        self != Self::HS256
    }
}

impl std::str::FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::HS256, Self::RS256, Self::EdDSA]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown algorithm {s:?}: use HS256, RS256 or EdDSA"))
    }
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Verifies and is published, does not sign yet: every cache learns it before it signs.
    Next,
    /// Signs new tokens (exactly one key).
    Current,
    /// Verifies the tokens it signed until they have all expired, then goes.
    Previous,
}

/// One key as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    pub alg: Alg,
    pub status: Status,
    /// When the key took its status, seconds since the epoch.
    pub since: u64,
    /// HS256: the secret itself. RS256 and EdDSA: the private key, PKCS#8 DER in base64.
    pub key: String,
}

// Never print key material.
impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("alg", &self.alg)
            .field("status", &self.status)
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

impl StoredKey {
    /// A new random key.
    pub fn generate(alg: Alg, status: Status, since: u64) -> Self {
        let key = match alg {
            Alg::HS256 => {
                let mut bytes = [0u8; 48];
                OsRng.fill_bytes(&mut bytes);
                URL_SAFE_NO_PAD.encode(bytes)
            }
            Alg::EdDSA => {
                let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
                STANDARD.encode(key.to_pkcs8_der().expect("an Ed25519 key encodes").as_bytes())
            }
            Alg::RS256 => {
                let key = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).expect("RSA key generation");
                STANDARD.encode(key.to_pkcs8_der().expect("an RSA key encodes").as_bytes())
            }
        };
        Self {
            alg,
            status,
            since,
            key,
        }
    }
}

/// The keys as stored: what the rotation tool edits and the functions read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySet {
    pub keys: Vec<StoredKey>,
}

/// How fast a new key reaches every verifier, and how long a token lives.
#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// Seconds until every function and every JWKS cache has seen a change
    /// (the functions' key refresh interval plus the JWKS max-age).
    pub propagation: u64,
    /// The longest lifetime of any token, seconds (the refresh token's).
    pub max_token_lifetime: u64,
}

impl KeySet {
    /// Reads a key set, or a plain HS256 secret (`load` checks the keys).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let set = if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
                .map_err(|e| ConfigError::Invalid("JWT_SECRET", format!("it is not a key set ({e})")))?
        } else {
            Self {
                keys: vec![StoredKey {
                    alg: Alg::HS256,
                    status: Status::Current,
                    since: 0,
                    key: text.to_owned(),
                }],
            }
        };
        Ok(set)
    }

    /// A set of one new current key.
    pub fn generate(alg: Alg, now: u64) -> Self {
        Self {
            keys: vec![StoredKey::generate(alg, Status::Current, now)],
        }
    }

    /// The set as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a key set serialises")
    }

    /// Every key made usable, after checking the set: exactly one current
    /// key, distinct key ids, strong secrets, well-formed private keys.
    pub fn load(&self) -> Result<Vec<LoadedKey>, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid("JWT_SECRET", why);
        if self.keys.len() > MAX_KEYS {
            return Err(invalid(format!("it holds more than {MAX_KEYS} keys")));
        }
        let current = self.keys.iter().filter(|k| k.status == Status::Current).count();
        if current != 1 {
            return Err(invalid(format!("it must hold exactly one current key, not {current}")));
        }
        let keys = self.keys.iter().map(LoadedKey::new).collect::<Result<Vec<_>, _>>()?;
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(invalid(format!("key {} is in it twice", key.kid)));
            }
        }
        Ok(keys)
    }

    /// One step of a rotation, whichever is due: retire previous keys whose
    /// tokens have all expired; make the next key current once every cache
    /// has seen it; or, with neither a next key waiting nor a previous key
    /// left, add a next key (of `alg`, else of the current key's algorithm).
    /// Running it again and again walks whole rotations, one after another,
    /// without ever rejecting a valid token, and never holds more than two
    /// keys. Says what it did, or what it waits for.
    pub fn rotate(&mut self, alg: Option<Alg>, policy: RotationPolicy, now: u64) -> Result<Vec<String>, ConfigError> {
        let mut said = Vec::new();
        let retire_after = policy.propagation + policy.max_token_lifetime + LEEWAY;
        let before = self.load()?;
        let mut kept = Vec::with_capacity(self.keys.len());
        for (stored, loaded) in self.keys.drain(..).zip(&before) {
            if stored.status == Status::Previous && now >= stored.since.saturating_add(retire_after) {
                said.push(format!(
                    "retired {} ({}): every token it signed has expired",
                    loaded.kid,
                    stored.alg.name()
                ));
            } else {
                kept.push(stored);
            }
        }
        self.keys = kept;
        match self.keys.iter().position(|k| k.status == Status::Next) {
            Some(next) if now >= self.keys[next].since + policy.propagation => {
                for key in &mut self.keys {
                    if key.status == Status::Current {
                        key.status = Status::Previous;
                        key.since = now;
                    }
                }
                self.keys[next].status = Status::Current;
                self.keys[next].since = now;
                said.push(format!(
                    "made {} current; the old key verifies until {} and is retired by the first run after that",
                    LoadedKey::new(&self.keys[next])?.kid,
                    now + retire_after
                ));
            }
            Some(next) => said.push(format!(
                "{} becomes current at {} (in {} s), once every cache has it: run again then",
                LoadedKey::new(&self.keys[next])?.kid,
                self.keys[next].since + policy.propagation,
                self.keys[next].since + policy.propagation - now
            )),
            None if said.is_empty() && self.keys.iter().any(|k| k.status == Status::Previous) => {
                let until = self
                    .keys
                    .iter()
                    .filter(|k| k.status == Status::Previous)
                    .map(|k| k.since.saturating_add(retire_after))
                    .max()
                    .unwrap_or(now);
                said.push(format!(
                    "the previous key verifies until {until} (in {} s); the next rotation starts on a run after that",
                    until - now
                ));
            }
            None if !said.is_empty() => {}
            None => {
                let alg = alg.unwrap_or_else(|| {
                    self.keys
                        .iter()
                        .find(|k| k.status == Status::Current)
                        .map_or(Alg::EdDSA, |k| k.alg)
                });
                let key = StoredKey::generate(alg, Status::Next, now);
                said.push(format!(
                    "added {} ({}), published now; it becomes current on a run after {}",
                    LoadedKey::new(&key)?.kid,
                    alg.name(),
                    now + policy.propagation
                ));
                self.keys.push(key);
            }
        }
        self.load()?;
        Ok(said)
    }

    /// The public keys, as a JSON Web Key Set: never an HMAC secret.
    pub fn jwks(keys: &[LoadedKey]) -> serde_json::Value {
        let keys: Vec<_> = keys.iter().filter_map(|k| k.public_jwk.clone()).collect();
        serde_json::json!({ "keys": keys })
    }
}

/// A key ready to sign (if current) and verify.
#[derive(Clone)]
pub struct LoadedKey {
    pub kid: String,
    pub alg: Alg,
    pub status: Status,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// The public JWK (`kty`, key parameters, `kid`, `alg`, `use`); none for HS256.
    pub public_jwk: Option<serde_json::Value>,
}

impl LoadedKey {
    fn new(stored: &StoredKey) -> Result<Self, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid("JWT_SECRET", why);
        let der = || {
            STANDARD
                .decode(stored.key.trim())
                .map_err(|_| invalid(format!("an {} key is not base64 PKCS#8 DER", stored.alg.name())))
        };
        let (kid, encoding, decoding, public) = match stored.alg {
            Alg::HS256 => {
                check_secret_strength(stored.key.as_bytes())?;
                let secret = stored.key.as_bytes();
                (
                    hmac_key_id(secret),
                    EncodingKey::from_secret(secret),
                    DecodingKey::from_secret(secret),
                    None,
                )
            }
            Alg::EdDSA => {
                let der = der()?;
                let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der)
                    .map_err(|_| invalid("an EdDSA key is not an Ed25519 PKCS#8 private key".into()))?;
                let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
                let jwk = serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": x});
                let decoding = DecodingKey::from_ed_components(&x).expect("a valid public key decodes");
                (thumbprint(&jwk), EncodingKey::from_ed_der(&der), decoding, Some(jwk))
            }
            Alg::RS256 => {
                let key = rsa::RsaPrivateKey::from_pkcs8_der(&der()?)
                    .map_err(|_| invalid("an RS256 key is not an RSA PKCS#8 private key".into()))?;
                if key.size() * 8 < RSA_BITS {
                    return Err(invalid(format!("an RS256 key is shorter than {RSA_BITS} bits")));
                }
                let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
                let jwk =
                    serde_json::json!({"e": URL_SAFE_NO_PAD.encode(&e), "kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n)});
                let pkcs1 = key.to_pkcs1_der().expect("an RSA key encodes");
                (
                    thumbprint(&jwk),
                    EncodingKey::from_rsa_der(pkcs1.as_bytes()),
                    DecodingKey::from_rsa_raw_components(&n, &e),
                    Some(jwk),
                )
            }
        };
        let public_jwk = public.map(|mut jwk| {
            jwk["kid"] = kid.clone().into();
            jwk["alg"] = stored.alg.name().into();
            jwk["use"] = "sig".into();
            jwk
        });
        Ok(Self {
            kid,
            alg: stored.alg,
            status: stored.status,
            encoding,
            decoding,
            public_jwk,
        })
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.alg.algorithm()
    }
}

/// The RFC 7638 thumbprint of a public JWK (its required members, in
/// lexicographic order, as `json!` keeps them): a kid anyone can recompute.
fn thumbprint(required_members: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(required_members.to_string().as_bytes()))
}

/// A public, stable name for an HMAC secret: a truncated SHA-256 of it, so
/// a new secret gets a new `kid` and the secret itself is never revealed.
fn hmac_key_id(secret: &[u8]) -> String {
    let digest = Sha256::digest([b"kid:".as_slice(), secret].concat());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Rejects secrets that are short or obviously not random.
fn check_secret_strength(secret: &[u8]) -> Result<(), ConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::Invalid(
            "JWT_SECRET",
            format!(
                "it is {} bytes; use at least {MIN_SECRET_BYTES} random bytes",
                secret.len()
            ),
        ));
    }
    let mut seen = [false; 256];
    secret.iter().for_each(|&b| seen[b as usize] = true);
    if seen.iter().filter(|&&s| s).count() < 8 {
        return Err(ConfigError::Invalid(
            "JWT_SECRET",
            "it repeats too few distinct characters to be random".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;
    use crate::testing::{b64, forge};
    use crate::token::{SessionGeneration, TokenKeys};

    fn settings() -> TokenConfig {
        TokenConfig::settings_from_lookup(|k| match k {
            "JWT_ISSUER" => Some("https://issuer.test".into()),
            "ACCESS_TOKEN_TTL" => Some("900".into()),
            "REFRESH_TOKEN_TTL" => Some("3600".into()),
            _ => None,
        })
        .unwrap()
    }

    fn keys_of(set: &KeySet) -> TokenKeys {
        TokenKeys::new(settings().with_secret(set.to_json()).unwrap())
    }

    fn header_of(token: &str) -> serde_json::Value {
        let part = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn generated_rs256_and_eddsa_keys_sign_tokens_that_carry_their_kid_and_verify() {
        for alg in [Alg::EdDSA, Alg::RS256, Alg::HS256] {
            let keys = keys_of(&KeySet::generate(alg, 0));
            let token = keys.issue_access("u1", "alice", crate::now());
            let header = header_of(&token);
            assert_eq!(
                (header["alg"].as_str(), header["kid"].as_str()),
                (Some(alg.name()), Some(keys.kid()))
            );
            assert_eq!(keys.verify_access(&token).unwrap().username, "alice", "{alg:?}");
        }
    }

    #[test]
    fn a_plain_string_is_one_hs256_key_with_the_kid_it_always_had() {
        let set = KeySet::parse("unit-test-secret-0123456789abcdefghijklmnop").unwrap();
        let keys = set.load().unwrap();
        assert_eq!(
            (keys.len(), keys[0].alg, keys[0].status),
            (1, Alg::HS256, Status::Current)
        );
        assert_eq!(keys[0].kid, hmac_key_id(b"unit-test-secret-0123456789abcdefghijklmnop"));
    }

    #[test]
    fn the_jwks_holds_public_keys_only_with_rfc_7638_thumbprints_as_kids() {
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 0));
        set.keys.push(StoredKey::generate(Alg::HS256, Status::Previous, 0));
        let loaded = set.load().unwrap();
        let jwks = KeySet::jwks(&loaded);
        let published = jwks["keys"].as_array().unwrap();
        assert_eq!(published.len(), 2, "the HS256 secret is never published: {jwks}");
        let text = jwks.to_string();
        for stored in &set.keys {
            assert!(!text.contains(&stored.key), "no key material in the JWKS");
        }
        for jwk in published {
            let members: Vec<&str> = jwk.as_object().unwrap().keys().map(String::as_str).collect();
            assert!(!members.contains(&"d") && !members.contains(&"p"), "{jwk}");
            assert_eq!(jwk["use"], "sig");
        }
        assert_eq!(published[0]["kty"], "RSA");
        assert_eq!(published[1]["kty"], "OKP");
        assert_eq!(published[1]["crv"], "Ed25519");
    }

    #[test]
    fn the_thumbprint_matches_the_example_of_rfc_7638() {
        let jwk = serde_json::json!({
            "e": "AQAB", "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn malformed_key_sets_are_startup_errors() {
        let hs = StoredKey::generate(Alg::HS256, Status::Current, 0);
        let ed = StoredKey::generate(Alg::EdDSA, Status::Current, 0);
        let with = |keys: Vec<StoredKey>| KeySet { keys }.load().err().map(|e| e.to_string());
        assert!(with(vec![]).unwrap().contains("exactly one current key"));
        assert!(
            with(vec![hs.clone(), ed.clone()])
                .unwrap()
                .contains("exactly one current key")
        );
        let twin = StoredKey {
            status: Status::Previous,
            ..hs.clone()
        };
        assert!(with(vec![hs.clone(), twin]).unwrap().contains("twice"));
        let weak = StoredKey {
            key: "short".into(),
            ..hs.clone()
        };
        assert!(with(vec![weak]).unwrap().contains("at least 32"));
        for key in ["not base64!", "AAAA", &hs.key] {
            let bad = StoredKey {
                key: key.into(),
                ..ed.clone()
            };
            assert!(with(vec![bad]).is_some(), "{key}");
        }
        let ed_as_rsa = StoredKey {
            alg: Alg::RS256,
            ..ed.clone()
        };
        assert!(with(vec![ed_as_rsa]).unwrap().contains("RSA"));
        for text in [
            "{",
            r#"{"keys": [], "extra": 1}"#,
            r#"{"keys": [{"alg": "none", "status": "current", "since": 0, "key": "x"}]}"#,
        ] {
            assert!(KeySet::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let set = KeySet::generate(Alg::EdDSA, 0);
        assert!(!format!("{set:?}").contains(&set.keys[0].key));
        let config = settings().with_secret(set.to_json()).unwrap();
        assert!(!format!("{config:?}").contains(&set.keys[0].key));
    }

    #[test]
    fn a_token_is_verified_only_by_the_key_its_kid_names_and_only_with_that_keys_algorithm() {
        let set = KeySet::generate(Alg::EdDSA, 0);
        let keys = keys_of(&set);
        let now = crate::now();
        let claims = serde_json::json!({
            "iss": "https://issuer.test", "aud": "lambda-jwt-auth", "sub": "u1", "username": "alice",
            "iat": now, "nbf": now, "exp": now + 60, "jti": "j", "token_use": "access"
        });
        // Key confusion: HMAC with the public key as the secret, under the EdDSA key's kid.
        let public = set.load().unwrap()[0].public_jwk.clone().unwrap();
        for secret in [public["x"].as_str().unwrap().as_bytes(), public.to_string().as_bytes()] {
            let token = forge(
                serde_json::json!({"alg": "HS256", "kid": keys.kid()}),
                claims.clone(),
                secret,
            );
            assert!(keys.verify_access(&token).is_err());
        }
        // A valid signature by a key of another set, even under our kid.
        let other = keys_of(&KeySet::generate(Alg::EdDSA, 0));
        let theirs = other.issue_access("u1", "alice", now);
        assert!(keys.verify_access(&theirs).is_err(), "unknown kid");
        let mut parts: Vec<String> = theirs.split('.').map(str::to_owned).collect();
        parts[0] = b64(serde_json::json!({"alg": "EdDSA", "kid": keys.kid()})
            .to_string()
            .as_bytes());
        assert!(
            keys.verify_access(&parts.join(".")).is_err(),
            "our kid, their signature"
        );
    }

    /// A function instance: the keys it read last, and when it reads again.
    struct Instance {
        keys: TokenKeys,
        offset: u64,
    }

    /// The whole rotation on a simulated clock, run by an operator (a
    /// schedule) every minute: four function instances that read the secret every 300 s at
    /// different moments, and an outside verifier that caches the JWKS for
    /// 300 s. Every instance issues tokens at every step, and every token
    /// still within its lifetime must verify everywhere, at every step.
    #[test]
    fn a_whole_rotation_never_rejects_a_valid_token_anywhere() {
        const REFRESH: u64 = 300;
        const JWKS_MAX_AGE: u64 = 300;
        let policy = RotationPolicy {
            propagation: REFRESH + JWKS_MAX_AGE,
            max_token_lifetime: 3600,
        };
        let start = 1_800_000_000;
        let mut secret = KeySet::generate(Alg::HS256, start);
        let first_kid = secret.load().unwrap()[0].kid.clone();
        let mut instances: Vec<Instance> = (0..4)
            .map(|i| Instance {
                keys: keys_of(&secret),
                offset: i * 97,
            })
            .collect();
        let mut jwks_cache = (KeySet::jwks(&secret.load().unwrap()), start);
        let mut tokens: Vec<(String, bool, u64)> = Vec::new();
        let mut said = Vec::new();
        for step in 0..=300u64 {
            let now = start + step * 60;
            let alg = (step == 0).then_some(Alg::EdDSA);
            said.extend(secret.rotate(alg, policy, now).unwrap());
            assert!(secret.keys.len() <= 2, "step {step}: {secret:?}");
            for instance in &mut instances {
                if (now - start + instance.offset) % REFRESH < 60 {
                    instance.keys = keys_of(&secret);
                }
            }
            if now >= jwks_cache.1 + JWKS_MAX_AGE {
                jwks_cache = (KeySet::jwks(&secret.load().unwrap()), now);
            }
            for (i, instance) in instances.iter().enumerate() {
                tokens.push((instance.keys.issue_access("u1", "alice", now), true, now + 900));
                let session = SessionGeneration {
                    session_id: "s1",
                    user_id: "u1",
                    username: "alice",
                    generation: step * 4 + i as u64,
                    issued_at: now,
                    session_expires_at: now + 100_000,
                };
                tokens.push((instance.keys.issue_refresh(&session), false, now + 3600));
            }
            tokens.retain(|(_, _, exp)| *exp + LEEWAY > now);
            for (token, access, _) in &tokens {
                for instance in &instances {
                    let verified = if *access {
                        instance.keys.verify_access_at(token, now).map(drop)
                    } else {
                        instance.keys.verify_refresh_at(token, now).map(drop)
                    };
                    assert!(verified.is_ok(), "step {step}: {verified:?}; so far: {said:#?}");
                }
                let header = header_of(token);
                if header["alg"] != "HS256" {
                    let published = jwks_cache.0["keys"].as_array().unwrap();
                    assert!(
                        published.iter().any(|k| k["kid"] == header["kid"]),
                        "step {step}: an outside verifier's cached JWKS lacks {}",
                        header["kid"]
                    );
                }
            }
        }
        let kinds: Vec<&str> = said.iter().map(|s| s.split(' ').next().unwrap()).collect();
        let walked = ["added", "made", "retired"];
        assert!(
            walked.iter().all(|w| kinds.contains(w)),
            "the rotation walked add, promote, retire: {said:#?}"
        );
        let loaded = secret.load().unwrap();
        assert!(loaded.iter().all(|k| k.kid != first_kid), "the first key is gone");
        assert_eq!(
            loaded.iter().find(|k| k.status == Status::Current).unwrap().alg,
            Alg::EdDSA
        );
    }

    #[test]
    fn an_early_run_only_says_when_the_next_key_becomes_current() {
        let policy = RotationPolicy {
            propagation: 600,
            max_token_lifetime: 3600,
        };
        let mut set = KeySet::generate(Alg::EdDSA, 0);
        set.rotate(None, policy, 1000).unwrap();
        let before = set.clone();
        let said = set.rotate(None, policy, 1599).unwrap();
        assert_eq!(set, before);
        assert!(said[0].contains("becomes current at 1600"), "{said:?}");
        set.rotate(None, policy, 1600).unwrap();
        let current = set.keys.iter().find(|k| k.status == Status::Current).unwrap();
        assert_eq!((current.since, current.alg), (1600, Alg::EdDSA));
    }
}
