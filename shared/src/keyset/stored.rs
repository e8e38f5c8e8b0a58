//! The key set as stored: what the rotation tool edits and the functions read.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs8::EncodePrivateKey;
use rsa::rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a key set cannot be used; the text says what is wrong, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeySetError(pub String);

/// Most keys a set may hold: current, next, and a few previous ones.
pub(super) const MAX_KEYS: usize = 8;
/// RSA modulus size of generated keys, bits.
pub(super) const RSA_BITS: usize = 2048;

/// The signing algorithms a key can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alg {
    HS256,
    RS256,
    EdDSA,
}

impl Alg {
    pub(crate) fn algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
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

impl KeySet {
    /// Reads a key set, or a plain HS256 secret (`load` checks the keys).
    pub fn parse(text: &str) -> Result<Self, KeySetError> {
        let set = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| KeySetError(format!("it is not a key set ({e})")))?
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_reads_back_as_it_was_stored() {
        let mut set = KeySet::generate(Alg::EdDSA, 7);
        set.keys.push(StoredKey::generate(Alg::HS256, Status::Previous, 3));
        let text = set.to_json();
        assert_eq!(KeySet::parse(&text).unwrap(), set);
        assert!(text.contains("\"status\": \"previous\""), "{text}");
    }

    #[test]
    fn a_stored_key_debugs_as_its_algorithm_status_and_date_only() {
        let key = StoredKey::generate(Alg::HS256, Status::Next, 42);
        let shown = format!("{key:?}");
        assert!(
            shown.contains("HS256") && shown.contains("Next") && shown.contains("42"),
            "{shown}"
        );
        assert!(!shown.contains(&key.key));
    }
}
