//! Keys made usable: each parsed, checked and named by a `kid` derived from
//! the key itself, and the set of them that signs and verifies.

use super::stored::{Alg, KeySet, KeySetError, MAX_KEYS, RSA_BITS, Status, StoredKey};
use crate::limits::MIN_SECRET_BYTES;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

impl KeySet {
    /// Every key made usable, after checking the set: exactly one current
    /// key, distinct key ids, strong secrets, well-formed private keys.
    pub fn load(&self) -> Result<SigningKeys, KeySetError> {
        if self.keys.len() > MAX_KEYS {
            return Err(KeySetError(format!("it holds more than {MAX_KEYS} keys")));
        }
        let keys = self.keys.iter().map(LoadedKey::new).collect::<Result<Vec<_>, _>>()?;
        SigningKeys::new(keys)
    }

    /// The public keys of the set, as published for the functions that only
    /// verify and for anyone else: a JSON Web Key Set, compact.
    pub fn public_jwks(&self) -> Result<String, KeySetError> {
        Ok(self.load()?.jwks().to_string())
    }
}

/// The keys of one set, checked: exactly one current key that signs, every
/// `kid` distinct. The only way to get one is `KeySet::load`.
#[derive(Clone)]
pub struct SigningKeys {
    keys: Vec<LoadedKey>,
    /// Index of the current key in `keys`.
    current: usize,
}

impl SigningKeys {
    fn new(keys: Vec<LoadedKey>) -> Result<Self, KeySetError> {
        let current: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].status == Status::Current).collect();
        let [current] = current[..] else {
            return Err(KeySetError(format!(
                "it must hold exactly one current key, not {}",
                current.len()
            )));
        };
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(KeySetError(format!("key {} is in it twice", key.kid)));
            }
        }
        Ok(Self { keys, current })
    }

    /// The key that signs.
    pub fn current(&self) -> &LoadedKey {
        &self.keys[self.current]
    }

    /// Every key, in the order of the set.
    pub fn iter(&self) -> impl Iterator<Item = &LoadedKey> {
        self.keys.iter()
    }

    /// The public keys, as a JSON Web Key Set: never an HMAC secret.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self.keys.iter().filter_map(|k| k.public_jwk.clone()).collect();
        serde_json::json!({ "keys": keys })
    }
}

// Never print key material: key ids only.
impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| &k.kid)).finish()
    }
}

/// Keys that only verify: every key of a private set, or the public keys
/// of a published JWKS. A key is found by its `kid`, and its `kid` is the
/// RFC 7638 thumbprint of its public key (for an HMAC secret, a hash of it),
/// checked when the key set is read.
#[derive(Clone)]
pub struct VerifyingKeys {
    keys: Vec<VerifyingKey>,
}

/// A key that verifies the tokens it signed, and only in its own algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: String,
    pub alg: Alg,
    pub(crate) decoding: DecodingKey,
    /// The public JWK; none for HS256.
    pub public_jwk: Option<serde_json::Value>,
}

impl VerifyingKey {
    /// The algorithm of the key, the only one its tokens may name.
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.alg.algorithm()
    }
}

impl VerifyingKeys {
    /// The key a token's `kid` names, among these keys only.
    pub fn find(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Every key.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter()
    }

    /// The public keys, as a JSON Web Key Set: never an HMAC secret.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self.keys.iter().filter_map(|k| k.public_jwk.clone()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// The keys of a published JWKS (`KeySet::public_jwks`), each checked:
    /// an RS256 key of at least 2048 bits or an Ed25519 key, for signatures,
    /// named by its own thumbprint, at most 8, distinct. An empty set is
    /// `Ok(None)`: nothing has been published yet (a stack before its first
    /// rotation).
    pub fn from_jwks(text: &str) -> Result<Option<Self>, KeySetError> {
        let invalid = |why: &str| KeySetError(format!("the public key set is not usable: {why}"));
        #[derive(serde::Deserialize)]
        struct Jwks {
            keys: Vec<serde_json::Map<String, serde_json::Value>>,
        }
        let jwks: Jwks = serde_json::from_str(text).map_err(|_| invalid("it is not a JSON Web Key Set"))?;
        if jwks.keys.is_empty() {
            return Ok(None);
        }
        if jwks.keys.len() > MAX_KEYS {
            return Err(invalid(&format!("it holds more than {MAX_KEYS} keys")));
        }
        let mut keys: Vec<VerifyingKey> = Vec::with_capacity(jwks.keys.len());
        for jwk in jwks.keys {
            let member = |name: &str| jwk.get(name).and_then(|v| v.as_str());
            let bytes = |name: &str| {
                member(name)
                    .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                    .ok_or_else(|| invalid(&format!("a key has no base64url {name:?}")))
            };
            if member("use").is_some_and(|u| u != "sig") {
                return Err(invalid("a key is not for signatures"));
            }
            let (alg, required, decoding) = match (member("alg"), member("kty")) {
                (Some("RS256"), Some("RSA")) => {
                    let (n, e) = (bytes("n")?, bytes("e")?);
                    let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
                    if bits < RSA_BITS {
                        return Err(invalid(&format!("an RS256 key is shorter than {RSA_BITS} bits")));
                    }
                    let required = serde_json::json!({"e": member("e"), "kty": "RSA", "n": member("n")});
                    (Alg::RS256, required, DecodingKey::from_rsa_raw_components(&n, &e))
                }
                (Some("EdDSA"), Some("OKP")) if member("crv") == Some("Ed25519") => {
                    if bytes("x")?.len() != 32 {
                        return Err(invalid("an Ed25519 key is not 32 bytes"));
                    }
                    let x = member("x").expect("decoded above");
                    let required = serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": x});
                    let decoding = DecodingKey::from_ed_components(x).map_err(|_| invalid("an Ed25519 key"))?;
                    (Alg::EdDSA, required, decoding)
                }
                _ => return Err(invalid("a key is neither RS256 (RSA) nor EdDSA (Ed25519)")),
            };
            let kid = thumbprint(&required);
            if member("kid") != Some(kid.as_str()) {
                return Err(invalid("a key's kid is not its RFC 7638 thumbprint"));
            }
            if keys.iter().any(|k| k.kid == kid) {
                return Err(invalid(&format!("key {kid} is in it twice")));
            }
            let mut public_jwk = required;
            public_jwk["kid"] = kid.clone().into();
            public_jwk["alg"] = alg.name().into();
            public_jwk["use"] = "sig".into();
            keys.push(VerifyingKey {
                kid,
                alg,
                decoding,
                public_jwk: Some(public_jwk),
            });
        }
        Ok(Some(Self { keys }))
    }
}

impl From<&SigningKeys> for VerifyingKeys {
    fn from(keys: &SigningKeys) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| VerifyingKey {
                    kid: k.kid.clone(),
                    alg: k.alg,
                    decoding: k.decoding.clone(),
                    public_jwk: k.public_jwk.clone(),
                })
                .collect(),
        }
    }
}

// Never print key material: key ids only.
impl std::fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| &k.kid)).finish()
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
    pub(super) fn new(stored: &StoredKey) -> Result<Self, KeySetError> {
        let invalid = KeySetError;
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

    /// The algorithm of the key, the only one its tokens may name.
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
fn check_secret_strength(secret: &[u8]) -> Result<(), KeySetError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(KeySetError(format!(
            "it is {} bytes; use at least {MIN_SECRET_BYTES} random bytes",
            secret.len()
        )));
    }
    let mut seen = [false; 256];
    secret.iter().for_each(|&b| seen[b as usize] = true);
    if seen.iter().filter(|&&s| s).count() < 8 {
        return Err(KeySetError(
            "it repeats too few distinct characters to be random".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_string_is_one_hs256_key_with_the_kid_it_always_had() {
        let set = KeySet::parse("unit-test-secret-0123456789abcdefghijklmnop").unwrap();
        let keys = set.load().unwrap();
        let only: Vec<_> = keys.iter().collect();
        assert_eq!(
            (only.len(), only[0].alg, only[0].status),
            (1, Alg::HS256, Status::Current)
        );
        assert_eq!(only[0].kid, hmac_key_id(b"unit-test-secret-0123456789abcdefghijklmnop"));
        assert_eq!(only[0].kid.len(), 16);
    }

    #[test]
    fn the_jwks_holds_public_keys_only_with_rfc_7638_thumbprints_as_kids() {
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 0));
        set.keys.push(StoredKey::generate(Alg::HS256, Status::Previous, 0));
        let jwks = set.load().unwrap().jwks();
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
    fn malformed_key_sets_are_refused_with_the_reason() {
        let hs = StoredKey::generate(Alg::HS256, Status::Current, 0);
        let ed = StoredKey::generate(Alg::EdDSA, Status::Current, 0);
        let with = |keys: Vec<StoredKey>| KeySet { keys }.load().err().map(|e| e.to_string());
        assert!(with(vec![]).unwrap().contains("exactly one current key, not 0"));
        assert!(
            with(vec![hs.clone(), ed.clone()])
                .unwrap()
                .contains("exactly one current key, not 2")
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
        let repetitive = StoredKey {
            key: "ab".repeat(32),
            ..hs.clone()
        };
        assert!(with(vec![repetitive]).unwrap().contains("too few distinct"));
        let just_enough = StoredKey {
            key: "abcdefgh".repeat(4),
            ..hs.clone()
        };
        assert_eq!(with(vec![just_enough]), None, "32 bytes of 8 distinct characters pass");
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
        let eight: Vec<StoredKey> = (0..8)
            .map(|i| {
                let status = if i == 0 { Status::Current } else { Status::Previous };
                StoredKey::generate(Alg::HS256, status, 0)
            })
            .collect();
        assert_eq!(with(eight), None, "eight keys are allowed");
        let many = (0..9)
            .map(|i| StoredKey::generate(Alg::HS256, if i == 0 { Status::Current } else { Status::Previous }, 0))
            .collect();
        assert!(with(many).unwrap().contains("more than 8"));
        for text in [
            "{",
            r#"{"keys": [], "extra": 1}"#,
            r#"{"keys": [{"alg": "none", "status": "current", "since": 0, "key": "x"}]}"#,
        ] {
            assert!(KeySet::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused_and_one_of_32_is_not() {
        let error = KeySet::parse("0123456789abcdef0123456789abcde")
            .unwrap()
            .load()
            .unwrap_err();
        assert!(error.to_string().contains("31 bytes"), "{error}");
        assert!(
            KeySet::parse("0123456789abcdef0123456789abcdef")
                .unwrap()
                .load()
                .is_ok()
        );
    }

    #[test]
    fn the_published_public_keys_read_back_as_the_keys_that_verify() {
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 0));
        set.keys.push(StoredKey::generate(Alg::HS256, Status::Previous, 0));
        let signing = set.load().unwrap();
        let public = VerifyingKeys::from_jwks(&set.public_jwks().unwrap()).unwrap().unwrap();
        assert_eq!(public.jwks(), signing.jwks());
        let kids: Vec<&str> = public.iter().map(|k| k.kid.as_str()).collect();
        let expected: Vec<&str> = signing
            .iter()
            .filter(|k| k.alg != Alg::HS256)
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, expected, "every public key, never the HMAC secret");
        assert!(
            VerifyingKeys::from_jwks(r#"{"keys": []}"#).unwrap().is_none(),
            "nothing published yet"
        );
    }

    #[test]
    fn a_public_key_set_that_is_not_exactly_ours_is_refused_with_the_reason() {
        let set = KeySet::generate(Alg::RS256, 0);
        let jwks: serde_json::Value = serde_json::from_str(&set.public_jwks().unwrap()).unwrap();
        let key = jwks["keys"][0].clone();
        let refused = |keys: Vec<serde_json::Value>| {
            VerifyingKeys::from_jwks(&serde_json::json!({ "keys": keys }).to_string())
                .err()
                .map(|e| e.to_string())
        };
        let with = |member: &str, value: serde_json::Value| {
            let mut k = key.clone();
            k[member] = value;
            k
        };
        assert!(
            refused(vec![with("kid", "someone-elses".into())])
                .unwrap()
                .contains("thumbprint")
        );
        assert!(refused(vec![with("use", "enc".into())]).unwrap().contains("signatures"));
        assert!(refused(vec![with("alg", "RS512".into())]).unwrap().contains("neither"));
        assert!(refused(vec![with("alg", "HS256".into())]).is_some());
        assert!(
            refused(vec![with("n", "AQAB".into())])
                .unwrap()
                .contains("shorter than 2048")
        );
        assert!(
            refused(vec![with("n", "not base64!".into())])
                .unwrap()
                .contains("base64url")
        );
        assert!(refused(vec![key.clone(), key.clone()]).unwrap().contains("twice"));
        assert!(refused(vec![key.clone(); 9]).unwrap().contains("more than 8"));
        let ed = KeySet::generate(Alg::EdDSA, 0);
        let ed_jwks: serde_json::Value = serde_json::from_str(&ed.public_jwks().unwrap()).unwrap();
        let mut short = ed_jwks["keys"][0].clone();
        short["x"] = "AQAB".into();
        assert!(refused(vec![short]).unwrap().contains("32 bytes"));
        let mut curve = ed_jwks["keys"][0].clone();
        curve["crv"] = "X25519".into();
        assert!(refused(vec![curve]).is_some());
        assert_eq!(
            refused(vec![key.clone(), ed_jwks["keys"][0].clone()]),
            None,
            "RS256 and EdDSA together"
        );
        let mut no_use = key.clone();
        no_use.as_object_mut().unwrap().remove("use");
        assert_eq!(refused(vec![no_use]), None, "`use` may be left out");
        for text in ["", "[]", r#"{"keys": {}}"#, r#"{"keys": [1]}"#] {
            assert!(VerifyingKeys::from_jwks(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn eight_public_keys_are_allowed_and_debug_output_names_them_by_kid_only() {
        let eight: Vec<serde_json::Value> = (0..8)
            .map(|_| {
                let set = KeySet::generate(Alg::EdDSA, 0);
                let jwks: serde_json::Value = serde_json::from_str(&set.public_jwks().unwrap()).unwrap();
                jwks["keys"][0].clone()
            })
            .collect();
        let text = serde_json::json!({ "keys": eight }).to_string();
        let keys = VerifyingKeys::from_jwks(&text).unwrap().unwrap();
        assert_eq!(keys.iter().count(), 8);
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(format!("{keys:?}"), format!("{kids:?}"));
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let set = KeySet::generate(Alg::EdDSA, 0);
        assert!(!format!("{set:?}").contains(&set.keys[0].key));
        let loaded = set.load().unwrap();
        assert_eq!(format!("{loaded:?}"), format!("[{:?}]", loaded.current().kid));
    }
}
