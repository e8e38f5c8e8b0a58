//! Access and refresh tokens: JWTs signed by the current key of the key set;
//! the key (found by `kid` among the configured keys only), its algorithm,
//! the issuer and the audience are pinned by configuration, never taken from
//! the token.

use crate::config::TokenConfig;
use crate::keyset::{LoadedKey, Status};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Header, encode};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds (the spec allows at most 60).
pub const LEEWAY: u64 = 30;
/// Longest token accepted before any parsing: ours are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// What a token is for: the marker that keeps a refresh token from being used as an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    Access,
    Refresh,
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    pub username: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub token_use: TokenUse,
}

/// Claims of a refresh token: one generation of one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub username: String,
    /// The session id.
    pub sid: String,
    /// The session generation this token belongs to; each rotation adds one.
    pub generation: u64,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub token_use: TokenUse,
}

impl RefreshClaims {
    /// Where the token's session is stored.
    pub fn session_key(&self) -> crate::store::SessionKey {
        crate::store::SessionKey::new(&self.username, &self.sid)
    }
}

/// The state of a session a refresh token is derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGeneration<'a> {
    pub session_id: &'a str,
    pub user_id: &'a str,
    pub username: &'a str,
    pub generation: u64,
    /// When this generation was issued.
    pub issued_at: u64,
    /// The session's absolute end.
    pub session_expires_at: u64,
}

/// Why a token was refused. Only logged: the client always sees `invalid_token`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is too long")]
    TooLong,
    #[error("token header is unacceptable: {0}")]
    Header(&'static str),
    #[error("token failed validation: {0}")]
    Invalid(String),
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token expires later than any token of its kind can")]
    TooLongLived,
    #[error("token is of the wrong kind")]
    WrongUse,
}

/// Issues tokens with the current key and verifies them with any configured key.
pub struct TokenKeys {
    /// Index of the current key in `config.keys`.
    current: usize,
    config: TokenConfig,
}

impl TokenKeys {
    /// Builds the keys from the configuration, which holds exactly one current key.
    pub fn new(config: TokenConfig) -> Self {
        let current = config
            .keys
            .iter()
            .position(|k| k.status == Status::Current)
            .expect("a loaded key set has a current key");
        Self { current, config }
    }

    /// The configuration the keys were built from (lifetimes, grace window).
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    fn signing_key(&self) -> &LoadedKey {
        &self.config.keys[self.current]
    }

    /// The id of the key that signs: every token carries it in its header.
    pub fn kid(&self) -> &str {
        &self.signing_key().kid
    }

    /// The public keys, a JSON Web Key Set (no HMAC secret is ever in it).
    pub fn jwks(&self) -> serde_json::Value {
        crate::keyset::KeySet::jwks(&self.config.keys)
    }

    fn sign<T: Serialize>(&self, claims: &T) -> String {
        let key = self.signing_key();
        let mut header = Header::new(key.algorithm());
        header.kid = Some(key.kid.clone());
        encode(&header, claims, &key.encoding).expect("a loaded key signs plain claims")
    }

    /// A fresh access token for the user, valid from `now` for the access lifetime.
    pub fn issue_access(&self, user_id: &str, username: &str, now: u64) -> String {
        self.sign(&AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user_id.to_owned(),
            username: username.to_owned(),
            iat: now,
            nbf: now,
            exp: now + self.config.access_ttl,
            jti: uuid::Uuid::new_v4().to_string(),
            token_use: TokenUse::Access,
        })
    }

    /// The refresh token of one session generation. It is a pure function of
    /// the session state, so a retry within the grace window gets back exactly
    /// the token of the current generation, never a new branch.
    pub fn issue_refresh(&self, s: &SessionGeneration<'_>) -> String {
        self.sign(&RefreshClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: s.user_id.to_owned(),
            username: s.username.to_owned(),
            sid: s.session_id.to_owned(),
            generation: s.generation,
            iat: s.issued_at,
            nbf: s.issued_at,
            exp: (s.issued_at + self.config.refresh_ttl).min(s.session_expires_at),
            jti: format!("{}.{}", s.session_id, s.generation),
            token_use: TokenUse::Refresh,
        })
    }

    /// Verifies an access token fully: signature, algorithm, key id, issuer,
    /// audience, lifetimes and kind.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verify(token, self.config.access_ttl, crate::now())
    }

    /// `verify_access` at another time: for walking a simulated clock in tests.
    #[cfg(test)]
    pub(crate) fn verify_access_at(&self, token: &str, now: u64) -> Result<AccessClaims, TokenError> {
        self.verify(token, self.config.access_ttl, now)
    }

    /// `verify_refresh` at another time: for walking a simulated clock in tests.
    #[cfg(test)]
    pub(crate) fn verify_refresh_at(&self, token: &str, now: u64) -> Result<RefreshClaims, TokenError> {
        self.verify(token, self.config.refresh_ttl, now)
    }

    /// Verifies a refresh token's signature and claims; the store decides whether it is still live.
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        self.verify(token, self.config.refresh_ttl, crate::now())
    }

    /// One pass over the token: header, signature, claims parsed once, then
    /// every rule of the configuration. Nothing in the token chooses how it
    /// is checked.
    fn verify<T: DeserializeOwned + Registered>(&self, token: &str, ttl: u64, now: u64) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid("not three parts".into()));
        };
        let header: JoseHeader = decode_part(header)?;
        let Some(key) = self
            .config
            .keys
            .iter()
            .find(|k| Some(k.kid.as_str()) == header.kid.as_deref())
        else {
            return Err(TokenError::Header("unknown key id"));
        };
        if header.alg != key.alg.name() {
            return Err(TokenError::Header("algorithm is not the key's"));
        }
        if header.jku.is_some()
            || header.x5u.is_some()
            || header.jwk.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(TokenError::Header("key references and critical extensions are refused"));
        }
        let signed = &token[..token.len() - signature.len() - 1];
        let valid = jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key.decoding, key.algorithm())
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        if !valid {
            return Err(TokenError::Invalid("bad signature".into()));
        }
        let claims: T = decode_part(payload)?;
        let c = claims.registered();
        if c.token_use != T::USE {
            Err(TokenError::WrongUse)
        } else if c.iss != self.config.issuer {
            Err(TokenError::Invalid("another issuer".into()))
        } else if c.aud != self.config.audience {
            Err(TokenError::Invalid("another audience".into()))
        } else if c.exp.saturating_add(LEEWAY) < now {
            Err(TokenError::Invalid("expired".into()))
        } else if c.nbf > now + LEEWAY {
            Err(TokenError::Invalid("not yet valid".into()))
        } else if c.iat > now + LEEWAY {
            Err(TokenError::IssuedInFuture)
        } else if c.exp > now.saturating_add(ttl).saturating_add(LEEWAY) {
            Err(TokenError::TooLongLived)
        } else {
            Ok(claims)
        }
    }
}

/// The header fields verification reads; any key reference present is refused.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
    crit: Option<IgnoredAny>,
}

/// A base64url (unpadded) JSON part of a token, parsed.
fn decode_part<T: DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| TokenError::Invalid(e.to_string()))
}

/// The registered claims of a token, as verification checks them.
struct RegisteredClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    token_use: TokenUse,
}

/// A kind of token: which `token_use` it must carry, and its registered claims.
trait Registered {
    const USE: TokenUse;
    fn registered(&self) -> RegisteredClaims<'_>;
}

impl Registered for AccessClaims {
    const USE: TokenUse = TokenUse::Access;
    fn registered(&self) -> RegisteredClaims<'_> {
        let (iss, aud, iat, nbf, exp, token_use) = (&self.iss, &self.aud, self.iat, self.nbf, self.exp, self.token_use);
        RegisteredClaims {
            iss,
            aud,
            iat,
            nbf,
            exp,
            token_use,
        }
    }
}

impl Registered for RefreshClaims {
    const USE: TokenUse = TokenUse::Refresh;
    fn registered(&self) -> RegisteredClaims<'_> {
        let (iss, aud, iat, nbf, exp, token_use) = (&self.iss, &self.aud, self.iat, self.nbf, self.exp, self.token_use);
        RegisteredClaims {
            iss,
            aud,
            iat,
            nbf,
            exp,
            token_use,
        }
    }
}

/// The only form in which a refresh token is stored: its SHA-256, hex.
pub fn refresh_token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;
    use crate::testing::{b64, forge};
    use jsonwebtoken::decode_header;

    const SECRET: &[u8] = b"unit-test-secret-0123456789abcdefghijklmnop";

    pub(crate) fn config() -> TokenConfig {
        TokenConfig::from_lookup(|k| match k {
            "JWT_SECRET" => Some(String::from_utf8(SECRET.to_vec()).unwrap()),
            "JWT_ISSUER" => Some("https://issuer.test".into()),
            "JWT_AUDIENCE" => Some("test-clients".into()),
            _ => None,
        })
        .unwrap()
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(config())
    }

    fn good_claims(now: u64) -> serde_json::Value {
        serde_json::json!({
            "iss": "https://issuer.test", "aud": "test-clients", "sub": "u1", "username": "alice",
            "iat": now, "nbf": now, "exp": now + 600, "jti": "j1", "token_use": "access"
        })
    }

    fn header(k: &TokenKeys) -> serde_json::Value {
        serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": k.kid()})
    }

    #[test]
    fn an_issued_access_token_verifies_with_all_its_claims() {
        let k = keys();
        let now = crate::now();
        let claims = k.verify_access(&k.issue_access("u1", "Alice", now)).unwrap();
        assert_eq!((claims.sub.as_str(), claims.username.as_str()), ("u1", "Alice"));
        assert_eq!((claims.iat, claims.nbf, claims.exp), (now, now, now + 900));
        assert_eq!(claims.iss, "https://issuer.test");
        assert_eq!(claims.aud, "test-clients");
        assert_eq!(claims.token_use, TokenUse::Access);
        let header = decode_header(k.issue_access("u1", "Alice", now)).unwrap();
        assert_eq!(header.kid.as_deref(), Some(k.kid()));
    }

    #[test]
    fn the_hand_made_signer_agrees_with_the_library() {
        let k = keys();
        let now = crate::now();
        let token = forge(header(&k), good_claims(now), SECRET);
        assert!(k.verify_access(&token).is_ok(), "{:?}", k.verify_access(&token));
    }

    #[test]
    fn every_access_token_has_its_own_jti() {
        let k = keys();
        let a = k.verify_access(&k.issue_access("u1", "a", crate::now())).unwrap();
        let b = k.verify_access(&k.issue_access("u1", "a", crate::now())).unwrap();
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token_and_the_reverse() {
        let k = keys();
        let now = crate::now();
        let s = SessionGeneration {
            session_id: "s1",
            user_id: "u1",
            username: "a",
            generation: 0,
            issued_at: now,
            session_expires_at: now + 10_000_000,
        };
        assert!(k.verify_access(&k.issue_refresh(&s)).is_err());
        assert!(k.verify_refresh(&k.issue_access("u1", "a", now)).is_err());
        let mut claims = good_claims(now);
        claims["token_use"] = "refresh".into();
        assert_eq!(
            k.verify_access(&forge(header(&k), claims, SECRET)),
            Err(TokenError::WrongUse)
        );
    }

    #[test]
    fn the_refresh_token_of_a_generation_is_always_the_same_string() {
        let k = keys();
        let s = SessionGeneration {
            session_id: "s1",
            user_id: "u1",
            username: "a",
            generation: 3,
            issued_at: crate::now(),
            session_expires_at: crate::now() + 100,
        };
        assert_eq!(k.issue_refresh(&s), k.issue_refresh(&s));
        let claims = k.verify_refresh(&k.issue_refresh(&s)).unwrap();
        assert_eq!(claims.exp, s.session_expires_at, "never outlives the session");
        assert_eq!((claims.sid.as_str(), claims.generation), ("s1", 3));
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let k = keys();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let h = serde_json::json!({"alg": alg, "typ": "JWT", "kid": k.kid()});
            let token = format!(
                "{}.{}.",
                b64(h.to_string().as_bytes()),
                b64(good_claims(crate::now()).to_string().as_bytes())
            );
            assert!(k.verify_access(&token).is_err(), "{alg}");
        }
    }

    #[test]
    fn a_tampered_payload_or_signature_is_refused() {
        let k = keys();
        let token = k.issue_access("u1", "alice", crate::now());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let other = k.issue_access("admin", "root", crate::now());
        parts[1] = other.split('.').nth(1).unwrap().to_owned();
        assert!(k.verify_access(&parts.join(".")).is_err(), "payload swapped");
        let mut sig = token.into_bytes();
        let last = sig.len() - 2;
        sig[last] = if sig[last] == b'A' { b'B' } else { b'A' };
        assert!(
            k.verify_access(std::str::from_utf8(&sig).unwrap()).is_err(),
            "signature flipped"
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_or_another_algorithm_is_refused() {
        let k = keys();
        let now = crate::now();
        assert!(
            k.verify_access(&forge(header(&k), good_claims(now), b"secret"))
                .is_err()
        );
        let mut h = header(&k);
        h["alg"] = "HS512".into();
        assert!(k.verify_access(&forge(h, good_claims(now), SECRET)).is_err());
    }

    #[test]
    fn an_unknown_kid_or_a_key_url_in_the_header_is_refused() {
        let k = keys();
        let now = crate::now();

        for (name, value) in [
            ("kid", serde_json::json!("../../etc/passwd")),
            ("jku", serde_json::json!("https://evil.test/jwks.json")),
            ("x5u", serde_json::json!("https://evil.test/cert.pem")),
        ] {
            let mut h = header(&k);
            h[name] = value;
            assert!(k.verify_access(&forge(h, good_claims(now), SECRET)).is_err(), "{name}");
        }
    }

    #[test]
    fn expired_not_yet_valid_and_future_issued_tokens_are_refused_beyond_the_leeway() {
        let k = keys();
        let now = crate::now();

        let with = |field: &str, value: u64| {
            let mut c = good_claims(now);
            c[field] = value.into();
            forge(header(&k), c, SECRET)
        };
        assert!(k.verify_access(&with("exp", now - LEEWAY - 5)).is_err(), "expired");
        assert!(k.verify_access(&with("exp", now - 5)).is_ok(), "within leeway");
        assert!(
            k.verify_access(&with("nbf", now + LEEWAY + 5)).is_err(),
            "not yet valid"
        );
        assert!(
            k.verify_access(&with("iat", now + LEEWAY + 5)).is_err(),
            "issued in the future"
        );
    }

    #[test]
    fn wrong_missing_or_malformed_registered_claims_are_refused() {
        let k = keys();
        let now = crate::now();

        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("iss", "https://evil.test".into()),
            ("aud", "other-clients".into()),
            ("aud", serde_json::json!(["test-clients", "other"])),
            ("exp", "9999999999".into()),
            ("exp", serde_json::json!(1.5)),
            ("exp", serde_json::Value::Null),
            ("nbf", "0".into()),
        ];
        for (field, value) in cases {
            let mut c = good_claims(now);
            c[field] = value.clone();
            assert!(
                k.verify_access(&forge(header(&k), c, SECRET)).is_err(),
                "{field}={value}"
            );
        }
        for field in ["exp", "iss", "aud", "sub", "nbf", "iat", "jti", "token_use"] {
            let mut c = good_claims(now);
            c.as_object_mut().unwrap().remove(field);
            assert!(
                k.verify_access(&forge(header(&k), c, SECRET)).is_err(),
                "missing {field}"
            );
        }
    }

    #[test]
    fn garbage_of_any_shape_is_an_error_not_a_panic() {
        let k = keys();
        for token in ["", ".", "..", "a.b.c", "a.b", "ÿÿÿ.ÿÿÿ.ÿÿÿ", &"A".repeat(10_000)] {
            assert!(k.verify_access(token).is_err(), "{token:?}");
        }
    }

    #[test]
    fn the_kid_does_not_reveal_the_secret_and_changes_with_it() {
        let k = keys();
        assert_eq!(k.kid().len(), 16);
        assert!(!String::from_utf8_lossy(SECRET).contains(k.kid()));
        let other = config()
            .with_secret("another-secret-0123456789abcdefghijklmn".into())
            .unwrap();
        assert_ne!(TokenKeys::new(other).kid(), k.kid());
    }

    #[test]
    fn a_stored_refresh_hash_is_not_the_token() {
        let h = refresh_token_hash("abc.def.ghi");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("abc"));
    }

    // ---- named attack classes -------------------------------------------------

    fn parts(token: &str) -> (String, String) {
        let (input, sig) = token.rsplit_once('.').unwrap();
        (input.to_owned(), sig.to_owned())
    }

    #[test]
    fn attack_stripped_zeroed_and_flipped_signatures_are_refused() {
        let k = keys();
        let (input, sig) = parts(&k.issue_access("u1", "alice", crate::now()));
        let zeroed = b64(&[0u8; 32]);
        let mut cases = vec![format!("{input}."), input.clone(), format!("{input}.{zeroed}")];
        for i in 0..sig.len() {
            let mut flipped = sig.clone().into_bytes();
            flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
            cases.push(format!("{input}.{}", String::from_utf8(flipped).unwrap()));
        }
        for token in cases {
            assert!(k.verify_access(&token).is_err(), "{token}");
        }
    }

    #[test]
    fn attack_alg_none_in_every_spelling_with_or_without_a_signature_is_refused() {
        let k = keys();
        let claims = b64(good_claims(crate::now()).to_string().as_bytes());
        for alg in ["none", "None", "NONE", "nOnE", "", " none"] {
            let h = b64(serde_json::json!({"alg": alg, "typ": "JWT", "kid": k.kid()})
                .to_string()
                .as_bytes());
            for sig in ["", "AAAA"] {
                assert!(
                    k.verify_access(&format!("{h}.{claims}.{sig}")).is_err(),
                    "{alg:?} {sig:?}"
                );
            }
        }
    }

    #[test]
    fn attack_algorithm_switches_are_refused_even_with_the_right_secret() {
        let k = keys();
        let now = crate::now();
        for alg in ["HS384", "HS512", "RS256", "ES256", "PS256", "EdDSA"] {
            let mut h = header(&k);
            h["alg"] = alg.into();
            assert!(k.verify_access(&forge(h, good_claims(now), SECRET)).is_err(), "{alg}");
        }
    }

    #[test]
    fn attack_tokens_signed_with_common_weak_secrets_or_an_empty_key_are_refused() {
        let k = keys();
        let now = crate::now();
        for secret in [
            "",
            "secret",
            "password",
            "123456",
            "changeme",
            "your-256-bit-secret",
            "key",
            "jwt",
            "lambda-jwt-auth",
        ] {
            assert!(
                k.verify_access(&forge(header(&k), good_claims(now), secret.as_bytes()))
                    .is_err(),
                "{secret:?}"
            );
        }
    }

    #[test]
    fn attack_kid_traversal_injection_and_odd_values_are_refused() {
        let k = keys();
        let now = crate::now();
        for kid in [
            serde_json::json!("../../../../../../dev/null"),
            serde_json::json!("/etc/passwd"),
            serde_json::json!("' OR '1'='1"),
            serde_json::json!("x' UNION SELECT 'secret"),
            serde_json::json!(""),
            serde_json::json!(null),
            serde_json::json!(0),
            serde_json::json!([k.kid()]),
        ] {
            let mut h = header(&k);
            h["kid"] = kid.clone();
            assert!(k.verify_access(&forge(h, good_claims(now), SECRET)).is_err(), "{kid}");
        }
    }

    #[test]
    fn attack_embedded_keys_and_key_urls_are_refused_and_never_fetched() {
        let k = keys();
        let now = crate::now();
        let jwk = serde_json::json!({"kty": "oct", "k": b64(b"attacker-key-0123456789abcdefghijkl")});
        for (name, value) in [
            ("jwk", jwk),
            ("jku", serde_json::json!("http://127.0.0.1:9/jwks.json")),
            ("x5u", serde_json::json!("http://127.0.0.1:9/cert.pem")),
            ("x5c", serde_json::json!(["MIIB"])),
            ("crit", serde_json::json!(["exp"])),
        ] {
            let mut h = header(&k);
            h[name] = value;
            let started = std::time::Instant::now();
            assert!(k.verify_access(&forge(h, good_claims(now), SECRET)).is_err(), "{name}");
            assert!(
                started.elapsed() < std::time::Duration::from_millis(100),
                "no outbound fetch: {name}"
            );
        }
    }

    #[test]
    fn attack_exp_missing_string_float_null_huge_or_negative_is_refused() {
        let k = keys();
        let now = crate::now();

        let values = [
            serde_json::json!("9999999999"),
            serde_json::json!(9999999999.5),
            serde_json::Value::Null,
            serde_json::json!(u64::MAX),
            serde_json::json!(1e300),
            serde_json::json!(now + 10 * 365 * 24 * 3600),
            serde_json::json!(-1),
            serde_json::json!(true),
        ];
        for value in values {
            let mut c = good_claims(now);
            c["exp"] = value.clone();
            assert!(k.verify_access(&forge(header(&k), c, SECRET)).is_err(), "exp={value}");
        }
    }

    #[test]
    fn attack_nbf_in_the_future_or_not_a_number_and_iat_far_ahead_are_refused() {
        let k = keys();
        let now = crate::now();

        for (field, value) in [
            ("nbf", serde_json::json!(now + 3600)),
            ("nbf", serde_json::json!("0")),
            ("nbf", serde_json::json!(-5)),
            ("iat", serde_json::json!(now + 365 * 24 * 3600)),
            ("iat", serde_json::json!("now")),
        ] {
            let mut c = good_claims(now);
            c[field] = value.clone();
            assert!(
                k.verify_access(&forge(header(&k), c, SECRET)).is_err(),
                "{field}={value}"
            );
        }
    }

    #[test]
    fn attack_audience_wrong_missing_empty_or_an_array_and_issuer_wrong_are_refused() {
        let k = keys();
        let now = crate::now();

        for (field, value) in [
            ("aud", serde_json::json!("someone-else")),
            ("aud", serde_json::json!("")),
            ("aud", serde_json::json!(["test-clients"])),
            ("aud", serde_json::json!(null)),
            ("iss", serde_json::json!("https://issuer.test.evil")),
            ("iss", serde_json::json!(["https://issuer.test"])),
        ] {
            let mut c = good_claims(now);
            c[field] = value.clone();
            assert!(
                k.verify_access(&forge(header(&k), c, SECRET)).is_err(),
                "{field}={value}"
            );
        }
    }
}
