//! Access and refresh tokens: JWTs signed by the current key of the key set;
//! the key (found by `kid` among the configured keys only), its algorithm,
//! the issuer and the audience are pinned by configuration, never taken from
//! the token.

use crate::config::{ConfigError, TokenSettings};
use crate::keyset::{KeySet, LoadedKey, SigningKeys, VerifyingKeys};
use crate::limits::LEEWAY;
use crate::session::{SessionGeneration, SessionKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation, decode, decode_header, encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest token accepted before any parsing: ours are a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// What a token is for: the marker that keeps a refresh token from being used as an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    Access,
    Refresh,
    /// The second step of a login with a second factor (`POST /login/mfa`).
    Mfa,
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    pub username: String,
    /// The session the token was issued for.
    pub sid: String,
    /// How the user logged in (RFC 8176): `["pwd"]` after a password.
    pub amr: Vec<String>,
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
    /// How the user logged in (RFC 8176), passed on to every access token of the session.
    /// Sessions started before `amr` existed were all password logins.
    #[serde(default = "password_login")]
    pub amr: Vec<String>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub token_use: TokenUse,
}

/// Claims of an `mfa_token`: a right password for a user with a second
/// factor, good for `POST /login/mfa` only, for `MFA_TOKEN_TTL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MfaClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub username: String,
    /// `mail::password_fingerprint` of the password hash that was checked:
    /// a password changed since voids the token.
    pub pwf: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// The login attempt: the factor remembers the newest one, and only it is good.
    pub jti: String,
    pub token_use: TokenUse,
}

/// How long an `mfa_token` lives, seconds.
pub const MFA_TOKEN_TTL: u64 = 5 * 60;

fn password_login() -> Vec<String> {
    vec![crate::session::PASSWORD.to_owned()]
}

impl RefreshClaims {
    /// Where the token's session is stored.
    pub fn session_key(&self) -> SessionKey {
        SessionKey::new(&self.username, &self.sid)
    }
}

/// Why a token was refused, one variant per reason. Only logged: the client
/// always sees `invalid_token`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is too long")]
    TooLong,
    #[error("token is not a well-formed JWT of this kind: {0}")]
    Malformed(String),
    #[error("token names no key of ours")]
    UnknownKey,
    #[error("token's algorithm is not its key's")]
    WrongAlgorithm,
    #[error("token's header refers to a key or a critical extension")]
    KeyReference,
    #[error("token's signature is not valid")]
    BadSignature,
    #[error("token is for another issuer")]
    WrongIssuer,
    #[error("token is for another audience")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token expires later than any token of its kind can")]
    TooLongLived,
    #[error("token is of the wrong kind")]
    WrongUse,
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            _ => Self::Malformed(error.to_string()),
        }
    }
}

/// Verifies tokens with any key it holds: the one place that checks a
/// token. The functions that only verify hold the public keys (or, with
/// HS256, the secret); `TokenAuthority` holds one and signs too.
pub struct TokenVerifier {
    settings: TokenSettings,
    keys: VerifyingKeys,
    /// The `Validation` of each algorithm of the keys, built once: `decode` reads it for every token.
    validations: Vec<Validation>,
}

impl TokenVerifier {
    /// The verifier of these settings and keys.
    pub fn new(settings: TokenSettings, keys: VerifyingKeys) -> Self {
        let mut validations: Vec<Validation> = Vec::new();
        for key in keys.iter() {
            if !validations.iter().any(|v| v.algorithms == [key.algorithm()]) {
                let mut validation = Validation::new(key.algorithm());
                validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
                validation.set_issuer(&[&settings.issuer]);
                // Any of ours here; `verify` then requires the one of the token's kind.
                validation.set_audience(&[
                    settings.audience.clone(),
                    audience_of(&settings.audience, TokenUse::Refresh),
                    audience_of(&settings.audience, TokenUse::Mfa),
                ]);
                // The clock is the caller's: `verify` checks `exp` and `nbf` against `now`.
                validation.validate_exp = false;
                validation.validate_nbf = false;
                validations.push(validation);
            }
        }
        Self {
            settings,
            keys,
            validations,
        }
    }

    /// The verifier of a published public key set (`KeySet::public_jwks`);
    /// `None` while it holds no key yet.
    pub fn from_public(settings: TokenSettings, jwks: &str) -> Result<Option<Self>, ConfigError> {
        let keys = VerifyingKeys::from_jwks(jwks).map_err(|e| ConfigError::Invalid("JWT_PUBLIC_KEYS_ARN", e.0))?;
        Ok(keys.map(|keys| Self::new(settings, keys)))
    }

    /// Lifetimes, grace window, issuer and audience.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The public keys, a JSON Web Key Set (no HMAC secret is ever in it).
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.jwks()
    }

    /// Verifies an `mfa_token` at `now`, like an access token; the store
    /// decides whether its attempt is still the live one.
    pub fn verify_mfa(&self, token: &str, now: u64) -> Result<MfaClaims, TokenError> {
        self.verify(token, MFA_TOKEN_TTL, now)
    }

    /// Verifies an access token fully at `now`: signature, algorithm, key id,
    /// issuer, audience, lifetimes and kind.
    pub fn verify_access(&self, token: &str, now: u64) -> Result<AccessClaims, TokenError> {
        self.verify(token, self.settings.access_ttl, now)
    }

    /// Verifies a refresh token's signature and claims at `now`; the store
    /// decides whether it is still live.
    pub fn verify_refresh(&self, token: &str, now: u64) -> Result<RefreshClaims, TokenError> {
        self.verify(token, self.settings.refresh_ttl, now)
    }

    /// `jsonwebtoken::decode` with a strict `Validation` (the key chosen by
    /// `kid` among ours, its one algorithm, `iss`, `aud` and the registered
    /// claims required; the typed claims refuse a missing or mistyped claim
    /// before `Validation` sees them), then what `Validation` cannot do:
    /// - the clock: it reads the system time and takes no other, so `exp` and
    ///   `nbf` are checked here against `now` (a simulated clock walks whole
    ///   key rotations in the tests), with the same leeway rule;
    /// - `iat` in the future and a lifetime longer than any token of its kind;
    /// - the token kind (`token_use`);
    /// - refusing `jku`, `x5u`, `jwk`, `x5c` and `crit`: it ignores them (and
    ///   never fetches), but a token that names them is not one of ours;
    /// - a length bound before any parsing.
    fn verify<T: DeserializeOwned + Registered>(&self, token: &str, ttl: u64, now: u64) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let header = decode_header(token)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.find(kid))
            .ok_or(TokenError::UnknownKey)?;
        if header.alg != key.algorithm() {
            return Err(TokenError::WrongAlgorithm);
        }
        if header.jku.is_some()
            || header.x5u.is_some()
            || header.jwk.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(TokenError::KeyReference);
        }
        let validation = self
            .validations
            .iter()
            .find(|v| v.algorithms == [key.algorithm()])
            .expect("a validation for every key's algorithm");
        let claims: T = decode(token, &key.decoding, validation)?.claims;
        let c = claims.registered();
        let audience = &self.settings.audience;
        // Refresh and mfa tokens issued before they had audiences of their own carry the access one.
        let legacy = T::USE != TokenUse::Access && c.aud == audience;
        if c.token_use != T::USE {
            Err(TokenError::WrongUse)
        } else if c.aud != audience_of(audience, T::USE) && !legacy {
            Err(TokenError::WrongAudience)
        } else if c.exp.saturating_add(LEEWAY) < now {
            Err(TokenError::Expired)
        } else if c.nbf > now.saturating_add(LEEWAY) {
            Err(TokenError::NotYetValid)
        } else if c.iat > now.saturating_add(LEEWAY) {
            Err(TokenError::IssuedInFuture)
        } else if c.exp > now.saturating_add(ttl).saturating_add(LEEWAY) {
            Err(TokenError::TooLongLived)
        } else {
            Ok(claims)
        }
    }
}

/// Signs tokens with the current key of a private key set, and verifies
/// them (as a `TokenVerifier`, which it derefs to) with any key of the set.
pub struct TokenAuthority {
    verifier: TokenVerifier,
    signer: LoadedKey,
}

impl std::ops::Deref for TokenAuthority {
    type Target = TokenVerifier;
    fn deref(&self) -> &TokenVerifier {
        &self.verifier
    }
}

impl AsRef<TokenVerifier> for TokenAuthority {
    fn as_ref(&self) -> &TokenVerifier {
        &self.verifier
    }
}

impl AsRef<TokenVerifier> for TokenVerifier {
    fn as_ref(&self) -> &TokenVerifier {
        self
    }
}

impl TokenAuthority {
    /// The authority of these settings and keys.
    pub fn new(settings: TokenSettings, keys: SigningKeys) -> Self {
        Self {
            signer: keys.current().clone(),
            verifier: TokenVerifier::new(settings, VerifyingKeys::from(&keys)),
        }
    }

    /// The authority of `secret` (a key set, or a plain HS256 secret), once
    /// every key in it is known to be well formed and strong enough.
    pub fn from_secret(settings: TokenSettings, secret: &str) -> Result<Self, ConfigError> {
        let keys = KeySet::parse(secret)
            .and_then(|set| set.load())
            .map_err(|e| ConfigError::Invalid("JWT_SECRET", e.0))?;
        Ok(Self::new(settings, keys))
    }

    /// The settings and `JWT_SECRET`, read through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let secret = lookup("JWT_SECRET")
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing(
                "JWT_SECRET",
                "set it to a key set (`cargo run -p keytool -- new RS256`) or a random string of at least 32 bytes \
             (HS256), or set JWT_SECRET_ARN to a Secrets Manager secret that holds one",
            ))?;
        Self::from_secret(TokenSettings::from_lookup(lookup)?, &secret)
    }

    /// The id of the key that signs: every token carries it in its header.
    pub fn kid(&self) -> &str {
        &self.signer.kid
    }

    /// The signature of `input` by the current key (tests forge tokens with it).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn sign_input(&self, input: &[u8]) -> String {
        jsonwebtoken::crypto::sign(input, &self.signer.encoding, self.signer.algorithm()).expect("a loaded key signs")
    }

    /// The verifier of the same keys, without the signing key.
    pub fn into_verifier(self) -> TokenVerifier {
        self.verifier
    }

    fn sign<T: Serialize>(&self, claims: &T) -> String {
        let key = &self.signer;
        let mut header = Header::new(key.algorithm());
        header.kid = Some(key.kid.clone());
        encode(&header, claims, &key.encoding).expect("a loaded key signs plain claims")
    }

    /// A fresh access token for the user of session `s`, valid from `now` for the access lifetime.
    pub fn issue_access(&self, s: &SessionGeneration<'_>, now: u64) -> String {
        self.sign(&AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: s.user_id.to_owned(),
            username: s.username.to_owned(),
            sid: s.session_id.to_owned(),
            amr: s.amr.to_vec(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.settings.access_ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            token_use: TokenUse::Access,
        })
    }

    /// The refresh token of one session generation. It is a pure function of
    /// the session state, so a retry within the grace window gets back exactly
    /// the token of the current generation, never a new branch.
    pub fn issue_refresh(&self, s: &SessionGeneration<'_>) -> String {
        self.sign(&RefreshClaims {
            iss: self.settings.issuer.clone(),
            aud: audience_of(&self.settings.audience, TokenUse::Refresh),
            sub: s.user_id.to_owned(),
            username: s.username.to_owned(),
            sid: s.session_id.to_owned(),
            generation: s.generation,
            amr: s.amr.to_vec(),
            iat: s.issued_at,
            nbf: s.issued_at,
            exp: s
                .issued_at
                .saturating_add(self.settings.refresh_ttl)
                .min(s.session_expires_at),
            jti: format!("{}.{}", s.session_id, s.generation),
            token_use: TokenUse::Refresh,
        })
    }

    /// An `mfa_token` for `user_id`/`username` whose password (of hash
    /// fingerprint `pwf`) was right at `now`, for login attempt `attempt`.
    pub fn issue_mfa(&self, user_id: &str, username: &str, pwf: &str, attempt: &str, now: u64) -> String {
        self.sign(&MfaClaims {
            iss: self.settings.issuer.clone(),
            aud: audience_of(&self.settings.audience, TokenUse::Mfa),
            sub: user_id.to_owned(),
            username: username.to_owned(),
            pwf: pwf.to_owned(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(MFA_TOKEN_TTL),
            jti: attempt.to_owned(),
            token_use: TokenUse::Mfa,
        })
    }
}

/// The `aud` of a token of `kind`: the configured audience for an access
/// token; for a refresh or mfa token, that audience with `#refresh` or
/// `#mfa` after it, so that a verifier that checks only the audience (API
/// Gateway's JWT authorizer, any JWT library given the JWKS) takes nothing
/// but an access token.
pub fn audience_of(audience: &str, kind: TokenUse) -> String {
    match kind {
        TokenUse::Access => audience.to_owned(),
        TokenUse::Refresh => format!("{audience}#refresh"),
        TokenUse::Mfa => format!("{audience}#mfa"),
    }
}

/// The registered claims of a token that verification checks itself.
struct RegisteredClaims<'a> {
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
        RegisteredClaims {
            aud: &self.aud,
            iat: self.iat,
            nbf: self.nbf,
            exp: self.exp,
            token_use: self.token_use,
        }
    }
}

impl Registered for MfaClaims {
    const USE: TokenUse = TokenUse::Mfa;
    fn registered(&self) -> RegisteredClaims<'_> {
        RegisteredClaims {
            aud: &self.aud,
            iat: self.iat,
            nbf: self.nbf,
            exp: self.exp,
            token_use: self.token_use,
        }
    }
}

impl Registered for RefreshClaims {
    const USE: TokenUse = TokenUse::Refresh;
    fn registered(&self) -> RegisteredClaims<'_> {
        RegisteredClaims {
            aud: &self.aud,
            iat: self.iat,
            nbf: self.nbf,
            exp: self.exp,
            token_use: self.token_use,
        }
    }
}

/// The only form in which a refresh token is stored: the SHA-256, hex, of
/// its claims (the JWT's middle part), not of the whole token, so that the
/// same generation signed by another key (two instances on either side of
/// a key promotion) is still the same token to its session. The signature
/// is checked before this is compared.
pub fn refresh_token_hash(token: &str) -> String {
    hex_sha256(token.split('.').nth(1).unwrap_or(token))
}

/// Whether `token` is the one whose hash a session stored. Sessions stored
/// before `refresh_token_hash` took the claims only hold the hash of the
/// whole token: accepted too, so that no session ends on the upgrade (its
/// next refresh stores the new form).
pub fn is_stored_refresh_token(token: &str, stored_hash: &str) -> bool {
    refresh_token_hash(token) == stored_hash || hex_sha256(token) == stored_hash
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyset::{Alg, KeySet, RotationPolicy, RotationStep, Status};
    use crate::testing::{access_token, b64, forge};
    use serde_json::{Value, json};

    const SECRET: &[u8] = b"unit-test-secret-0123456789abcdefghijklmnop";
    /// The clock of these tests: verification takes it, nothing reads the system time.
    const NOW: u64 = 1_800_000_000;

    fn settings() -> TokenSettings {
        TokenSettings::from_lookup(|k| match k {
            "JWT_ISSUER" => Some("https://issuer.test".into()),
            "JWT_AUDIENCE" => Some("test-clients".into()),
            _ => None,
        })
        .unwrap()
    }

    fn authority() -> TokenAuthority {
        TokenAuthority::from_secret(settings(), std::str::from_utf8(SECRET).unwrap()).unwrap()
    }

    fn good_claims(now: u64) -> Value {
        json!({
            "iss": "https://issuer.test", "aud": "test-clients", "sub": "u1", "username": "alice",
            "sid": "s1", "amr": ["pwd"], "iat": now, "nbf": now, "exp": now + 600, "jti": "j1",
            "token_use": "access"
        })
    }

    fn header(a: &TokenAuthority) -> Value {
        json!({"alg": "HS256", "typ": "JWT", "kid": a.kid()})
    }

    /// A good token with `field` of its claims set to `value`, signed with the right key.
    fn with_claim(a: &TokenAuthority, field: &str, value: Value) -> String {
        let mut claims = good_claims(NOW);
        claims[field] = value;
        forge(header(a), claims, SECRET)
    }

    /// A good token with `field` of its header set to `value`, signed with the right key.
    fn with_header(a: &TokenAuthority, field: &str, value: Value) -> String {
        let mut h = header(a);
        h[field] = value;
        forge(h, good_claims(NOW), SECRET)
    }

    fn malformed(result: Result<AccessClaims, TokenError>) -> bool {
        matches!(result, Err(TokenError::Malformed(_)))
    }

    fn session(generation: u64, issued_at: u64, session_expires_at: u64) -> SessionGeneration<'static> {
        SessionGeneration {
            session_id: "s1",
            user_id: "u1",
            username: "alice",
            generation,
            issued_at,
            session_expires_at,
            amr: &[],
        }
    }

    #[test]
    fn an_issued_access_token_verifies_with_all_its_claims() {
        let a = authority();
        let token = access_token(&a, "u1", "Alice", NOW);
        let claims = a.verify_access(&token, NOW).unwrap();
        assert_eq!((claims.sub.as_str(), claims.username.as_str()), ("u1", "Alice"));
        assert_eq!((claims.iat, claims.nbf, claims.exp), (NOW, NOW, NOW + 900));
        assert_eq!(claims.iss, "https://issuer.test");
        assert_eq!(claims.aud, "test-clients");
        assert_eq!(claims.token_use, TokenUse::Access);
        assert_eq!(
            (claims.sid.as_str(), claims.amr.as_slice()),
            ("s-test", ["pwd".to_owned()].as_slice())
        );
        let header = decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(a.kid()));
    }

    #[test]
    fn a_refresh_token_carries_the_sessions_amr_and_one_from_before_amr_is_a_password_login() {
        let a = authority();
        let amr = ["pwd".to_owned(), "otp".to_owned()];
        let s = SessionGeneration {
            amr: &amr,
            ..session(0, NOW, NOW + 100)
        };
        assert_eq!(a.verify_refresh(&a.issue_refresh(&s), NOW).unwrap().amr, amr);
        let old = json!({
            "iss": "https://issuer.test", "aud": "test-clients", "sub": "u1", "username": "alice",
            "sid": "s1", "generation": 0, "iat": NOW, "nbf": NOW, "exp": NOW + 60, "jti": "s1.0",
            "token_use": "refresh"
        });
        let claims = a.verify_refresh(&forge(header(&a), old, SECRET), NOW).unwrap();
        assert_eq!(claims.amr, ["pwd"]);
    }

    #[test]
    fn the_hand_made_signer_agrees_with_the_library() {
        let a = authority();
        let token = forge(header(&a), good_claims(NOW), SECRET);
        assert_eq!(a.verify_access(&token, NOW).map(|c| c.jti), Ok("j1".to_owned()));
    }

    #[test]
    fn every_access_token_has_its_own_jti() {
        let a = authority();
        let first = a.verify_access(&access_token(&a, "u1", "a", NOW), NOW).unwrap();
        let second = a.verify_access(&access_token(&a, "u1", "a", NOW), NOW).unwrap();
        assert_ne!(first.jti, second.jti);
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token_and_the_reverse() {
        let a = authority();
        let refresh = a.issue_refresh(&session(0, NOW, NOW + 10_000_000));
        assert_eq!(a.verify_access(&refresh, NOW), Err(TokenError::WrongUse));
        assert_eq!(
            a.verify_access(&with_claim(&a, "token_use", "refresh".into()), NOW),
            Err(TokenError::WrongUse)
        );
        assert_eq!(
            a.verify_refresh(&access_token(&a, "u1", "a", NOW), NOW)
                .err()
                .map(|e| matches!(e, TokenError::Malformed(_))),
            Some(true),
            "an access token lacks the session claims"
        );
    }

    #[test]
    fn an_mfa_token_verifies_for_five_minutes_as_an_mfa_token_and_as_nothing_else() {
        let a = authority();
        let mfa = a.issue_mfa("u1", "alice", "fp", "attempt-1", NOW);
        let claims = a.verify_mfa(&mfa, NOW).unwrap();
        assert_eq!(
            (
                claims.sub.as_str(),
                claims.username.as_str(),
                claims.pwf.as_str(),
                claims.jti.as_str()
            ),
            ("u1", "alice", "fp", "attempt-1")
        );
        assert_eq!(claims.exp, NOW + MFA_TOKEN_TTL);
        assert!(a.verify_mfa(&mfa, NOW + MFA_TOKEN_TTL + LEEWAY).is_ok());
        assert_eq!(
            a.verify_mfa(&mfa, NOW + MFA_TOKEN_TTL + LEEWAY + 1),
            Err(TokenError::Expired)
        );
        assert!(a.verify_access(&mfa, NOW).is_err(), "not an access token");
        assert!(a.verify_refresh(&mfa, NOW).is_err(), "not a refresh token");
        assert!(a.verify_mfa(&access_token(&a, "u1", "alice", NOW), NOW).is_err());
        assert!(
            a.verify_mfa(&a.issue_refresh(&session(0, NOW, NOW + 100)), NOW)
                .is_err()
        );
        // Every claim of an access token and the mfa ones, marked access: still refused.
        let mut both = good_claims(NOW);
        both["pwf"] = "fp".into();
        assert_eq!(
            a.verify_mfa(&forge(header(&a), both.clone(), SECRET), NOW),
            Err(TokenError::WrongUse)
        );
        both["token_use"] = "mfa".into();
        assert_eq!(
            a.verify_access(&forge(header(&a), both, SECRET), NOW),
            Err(TokenError::WrongUse)
        );
    }

    #[test]
    fn an_mfa_token_claiming_a_longer_life_or_signed_by_another_key_is_refused() {
        let a = authority();
        let mut claims = good_claims(NOW);
        claims["pwf"] = "fp".into();
        claims["token_use"] = "mfa".into();
        claims["exp"] = (NOW + MFA_TOKEN_TTL + LEEWAY + 1).into();
        assert_eq!(
            a.verify_mfa(&forge(header(&a), claims.clone(), SECRET), NOW),
            Err(TokenError::TooLongLived)
        );
        claims["exp"] = (NOW + 60).into();
        assert!(a.verify_mfa(&forge(header(&a), claims.clone(), SECRET), NOW).is_ok());
        assert_eq!(
            a.verify_mfa(
                &forge(header(&a), claims, b"another-secret-0123456789abcdefghijkl"),
                NOW
            ),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn the_refresh_token_of_a_generation_is_always_the_same_string() {
        let a = authority();
        let s = session(3, NOW, NOW + 100);
        assert_eq!(a.issue_refresh(&s), a.issue_refresh(&s));
        let claims = a.verify_refresh(&a.issue_refresh(&s), NOW).unwrap();
        assert_eq!(claims.exp, s.session_expires_at, "never outlives the session");
        assert_eq!(
            (claims.sid.as_str(), claims.generation, claims.jti.as_str()),
            ("s1", 3, "s1.3")
        );
        let long = session(0, NOW, NOW + 10_000_000_000);
        assert_eq!(
            a.verify_refresh(&a.issue_refresh(&long), NOW).unwrap().exp,
            NOW + 30 * 24 * 3600
        );
    }

    #[test]
    fn a_refresh_token_of_the_largest_generation_verifies_without_overflow() {
        let a = authority();
        let claims = a
            .verify_refresh(&a.issue_refresh(&session(u64::MAX, NOW, NOW + 100)), NOW)
            .unwrap();
        assert_eq!(claims.generation, u64::MAX);
    }

    #[test]
    fn a_tampered_payload_or_signature_is_refused_as_a_bad_signature() {
        let a = authority();
        let token = access_token(&a, "u1", "alice", NOW);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let other = access_token(&a, "admin", "root", NOW);
        parts[1] = other.split('.').nth(1).unwrap().to_owned();
        assert_eq!(
            a.verify_access(&parts.join("."), NOW),
            Err(TokenError::BadSignature),
            "payload swapped"
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_or_naming_another_algorithm_is_refused() {
        let a = authority();
        let theirs = forge(header(&a), good_claims(NOW), b"another-secret-0123456789abcdefghijklmn");
        assert_eq!(a.verify_access(&theirs, NOW), Err(TokenError::BadSignature));
        assert_eq!(
            a.verify_access(&with_header(&a, "alg", "HS512".into()), NOW),
            Err(TokenError::WrongAlgorithm)
        );
    }

    #[test]
    fn the_exp_nbf_iat_and_lifetime_boundaries_are_exact() {
        let a = authority();
        let verify = |field: &str, value: u64| a.verify_access(&with_claim(&a, field, value.into()), NOW).map(drop);
        assert_eq!(verify("exp", NOW - LEEWAY), Ok(()), "the last second of the leeway");
        assert_eq!(verify("exp", NOW - LEEWAY - 1), Err(TokenError::Expired));
        assert_eq!(verify("nbf", NOW + LEEWAY), Ok(()));
        assert_eq!(verify("nbf", NOW + LEEWAY + 1), Err(TokenError::NotYetValid));
        assert_eq!(verify("iat", NOW + LEEWAY), Ok(()));
        assert_eq!(verify("iat", NOW + LEEWAY + 1), Err(TokenError::IssuedInFuture));
        assert_eq!(
            verify("exp", NOW + 900 + LEEWAY),
            Ok(()),
            "as long as an access token can live"
        );
        assert_eq!(verify("exp", NOW + 900 + LEEWAY + 1), Err(TokenError::TooLongLived));
    }

    #[test]
    fn a_refresh_token_may_live_as_long_as_a_refresh_token_and_no_longer() {
        let a = authority();
        let ttl = a.settings().refresh_ttl;
        let at = |exp: u64| {
            let claims = json!({
                "iss": "https://issuer.test", "aud": "test-clients", "sub": "u1", "username": "alice",
                "sid": "s1", "generation": 0, "iat": NOW, "nbf": NOW, "exp": exp, "jti": "s1.0",
                "token_use": "refresh"
            });
            a.verify_refresh(&forge(header(&a), claims, SECRET), NOW).map(drop)
        };
        assert_eq!(at(NOW + ttl + LEEWAY), Ok(()));
        assert_eq!(at(NOW + ttl + LEEWAY + 1), Err(TokenError::TooLongLived));
    }

    #[test]
    fn a_token_of_exactly_the_longest_length_is_read_and_one_byte_more_is_not() {
        let a = authority();
        let padded = |pad: usize, h: usize| {
            let mut claims = good_claims(NOW);
            claims["jti"] = "j".repeat(pad).into();
            let mut head = header(&a);
            head["x"] = "x".repeat(h).into();
            forge(head, claims, SECRET)
        };
        // Base64 makes 4 characters of 3 bytes: pad to about the right length, then try around it.
        let near = (MAX_TOKEN_LEN - padded(0, 0).len()) * 3 / 4;
        let exact = (near - 8..near + 8)
            .flat_map(|pad| (0..4).map(move |h| (pad, h)))
            .map(|(pad, h)| padded(pad, h))
            .find(|t| t.len() == MAX_TOKEN_LEN)
            .expect("some padding reaches the exact length");
        assert!(a.verify_access(&exact, NOW).is_ok());
        assert_eq!(a.verify_access(&format!("{exact}A"), NOW), Err(TokenError::TooLong));
    }

    #[test]
    fn wrong_missing_or_mistyped_registered_claims_are_refused() {
        let a = authority();
        assert_eq!(
            a.verify_access(&with_claim(&a, "iss", "https://evil.test".into()), NOW),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            a.verify_access(&with_claim(&a, "aud", "other-clients".into()), NOW),
            Err(TokenError::WrongAudience)
        );
        for (field, value) in [
            ("aud", json!(["test-clients", "other"])),
            ("exp", json!("9999999999")),
            ("exp", json!(1.5)),
            ("exp", Value::Null),
            ("nbf", json!("0")),
        ] {
            assert!(
                malformed(a.verify_access(&with_claim(&a, field, value.clone()), NOW)),
                "{field}={value}"
            );
        }
        for field in [
            "exp",
            "iss",
            "aud",
            "sub",
            "nbf",
            "iat",
            "jti",
            "token_use",
            "username",
            "sid",
            "amr",
        ] {
            let mut claims = good_claims(NOW);
            claims.as_object_mut().unwrap().remove(field);
            let result = a.verify_access(&forge(header(&a), claims, SECRET), NOW);
            assert!(
                matches!(&result, Err(TokenError::Malformed(m)) if m.contains(field)),
                "missing {field}: {result:?}"
            );
        }
    }

    #[test]
    fn garbage_of_any_shape_is_an_error_not_a_panic() {
        let a = authority();
        for token in ["", ".", "..", "a.b.c", "a.b", "a.b.c.d", "ÿÿÿ.ÿÿÿ.ÿÿÿ"] {
            assert!(malformed(a.verify_access(token, NOW)), "{token:?}");
        }
        assert_eq!(a.verify_access(&"A".repeat(10_000), NOW), Err(TokenError::TooLong));
    }

    #[test]
    fn the_kid_changes_with_the_secret() {
        let other = TokenAuthority::from_secret(settings(), "another-secret-0123456789abcdefghijklmn").unwrap();
        assert_ne!(other.kid(), authority().kid());
        assert!(!String::from_utf8_lossy(SECRET).contains(authority().kid()));
    }

    #[test]
    fn a_missing_or_weak_secret_is_a_startup_error_that_says_what_to_do() {
        let error = TokenAuthority::from_lookup(|_| None).err().unwrap().to_string();
        assert!(error.contains("JWT_SECRET is not set"), "{error}");
        let error = TokenAuthority::from_lookup(|k| (k == "JWT_SECRET").then(|| "short".to_owned()))
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with("JWT_SECRET is invalid: it is 5 bytes"), "{error}");
    }

    #[test]
    fn a_stored_refresh_hash_is_the_sha256_of_the_claims_in_hex_and_the_whole_tokens_hash_still_matches() {
        assert_eq!(
            refresh_token_hash("abc.def.ghi"),
            "cb8379ac2098aa165029e3938a51da0bcecfc008fd6795f401178647f96c5b34"
        );
        assert!(is_stored_refresh_token(
            "abc.def.ghi",
            &refresh_token_hash("abc.def.ghi")
        ));
        let legacy = "6559e90b5dd57405bdf180f29b509053a3d36c4abf3de535ab249b54d4327234";
        assert!(
            is_stored_refresh_token("abc.def.ghi", legacy),
            "a session stored before the change"
        );
        assert!(!is_stored_refresh_token(
            "abc.deg.ghi",
            &refresh_token_hash("abc.def.ghi")
        ));
        assert!(!is_stored_refresh_token("abc.def.ghi", ""));
    }

    #[test]
    fn the_same_generation_signed_by_either_key_of_a_promotion_is_the_stored_token() {
        let policy = RotationPolicy {
            propagation: 0,
            max_token_lifetime: 60,
        };
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.rotate(None, policy, 0).unwrap();
        let before = authority_of(&set);
        set.rotate(None, policy, 1).unwrap();
        let after = authority_of(&set);
        assert_ne!(before.kid(), after.kid());
        let s = session(3, NOW, NOW + 100_000);
        let (old, new) = (before.issue_refresh(&s), after.issue_refresh(&s));
        assert_ne!(old, new);
        assert!(is_stored_refresh_token(&new, &refresh_token_hash(&old)));
        assert!(!is_stored_refresh_token(
            &before.issue_refresh(&session(4, NOW, NOW + 100_000)),
            &refresh_token_hash(&old)
        ));
    }

    // ---- named attack classes -------------------------------------------------

    #[test]
    fn attack_stripped_zeroed_and_flipped_signatures_are_refused() {
        let a = authority();
        let token = access_token(&a, "u1", "alice", NOW);
        let (input, sig) = token.rsplit_once('.').unwrap();
        assert!(malformed(a.verify_access(input, NOW)), "no signature part");
        assert_eq!(
            a.verify_access(&format!("{input}."), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            a.verify_access(&format!("{input}.{}", b64(&[0u8; 32])), NOW),
            Err(TokenError::BadSignature)
        );
        for i in 0..sig.len() {
            let mut flipped = sig.as_bytes().to_vec();
            flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
            let token = format!("{input}.{}", String::from_utf8(flipped).unwrap());
            let result = a.verify_access(&token, NOW);
            // The last character carries 2 padding bits: some flips decode to the same bytes.
            assert!(
                matches!(result, Err(TokenError::BadSignature | TokenError::Malformed(_)))
                    || (i == sig.len() - 1 && result.is_ok()),
                "{i}: {result:?}"
            );
        }
    }

    #[test]
    fn attack_alg_none_in_every_spelling_with_or_without_a_signature_is_refused() {
        let a = authority();
        let claims = b64(good_claims(NOW).to_string().as_bytes());
        for alg in ["none", "None", "NONE", "nOnE", "", " none"] {
            let h = b64(json!({"alg": alg, "typ": "JWT", "kid": a.kid()}).to_string().as_bytes());
            for sig in ["", "AAAA"] {
                assert!(
                    malformed(a.verify_access(&format!("{h}.{claims}.{sig}"), NOW)),
                    "{alg:?} {sig:?}"
                );
            }
        }
    }

    #[test]
    fn attack_algorithm_switches_are_refused_even_with_the_right_secret() {
        let a = authority();
        for alg in ["HS384", "HS512", "RS256", "ES256", "PS256", "EdDSA"] {
            assert_eq!(
                a.verify_access(&with_header(&a, "alg", alg.into()), NOW),
                Err(TokenError::WrongAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn attack_tokens_signed_with_common_weak_secrets_or_an_empty_key_are_refused() {
        let a = authority();
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
            let token = forge(header(&a), good_claims(NOW), secret.as_bytes());
            assert_eq!(
                a.verify_access(&token, NOW),
                Err(TokenError::BadSignature),
                "{secret:?}"
            );
        }
    }

    #[test]
    fn attack_kid_traversal_injection_and_odd_values_are_refused() {
        let a = authority();
        for kid in [
            json!("../../../../../../dev/null"),
            json!("/etc/passwd"),
            json!("' OR '1'='1"),
            json!("x' UNION SELECT 'secret"),
            json!(""),
            json!(null),
        ] {
            assert_eq!(
                a.verify_access(&with_header(&a, "kid", kid.clone()), NOW),
                Err(TokenError::UnknownKey),
                "{kid}"
            );
        }
        for kid in [json!(0), json!([a.kid()])] {
            assert!(
                malformed(a.verify_access(&with_header(&a, "kid", kid.clone()), NOW)),
                "{kid}"
            );
        }
    }

    #[test]
    fn attack_embedded_keys_and_key_urls_are_refused_and_never_fetched() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let a = authority();
        let jwk = json!({"kty": "oct", "k": b64(b"attacker-key-0123456789abcdefghijkl")});
        for (name, value) in [
            ("jwk", jwk),
            ("jku", json!(format!("{url}/jwks.json"))),
            ("x5u", json!(format!("{url}/cert.pem"))),
            ("x5c", json!(["MIIB"])),
            ("crit", json!(["exp"])),
        ] {
            assert_eq!(
                a.verify_access(&with_header(&a, name, value), NOW),
                Err(TokenError::KeyReference),
                "{name}"
            );
        }
        assert_eq!(
            listener.accept().err().map(|e| e.kind()),
            Some(std::io::ErrorKind::WouldBlock),
            "nothing connected to the URLs the tokens named"
        );
    }

    #[test]
    fn attack_exp_string_float_null_huge_negative_or_far_ahead_is_refused() {
        let a = authority();
        for value in [
            json!("9999999999"),
            json!(9999999999.5),
            Value::Null,
            json!(1e300),
            json!(-1),
            json!(true),
        ] {
            assert!(
                malformed(a.verify_access(&with_claim(&a, "exp", value.clone()), NOW)),
                "exp={value}"
            );
        }
        for value in [json!(u64::MAX), json!(NOW + 10 * 365 * 24 * 3600)] {
            assert_eq!(
                a.verify_access(&with_claim(&a, "exp", value.clone()), NOW),
                Err(TokenError::TooLongLived),
                "exp={value}"
            );
        }
    }

    #[test]
    fn attack_nbf_in_the_future_or_not_a_number_and_iat_far_ahead_are_refused() {
        let a = authority();
        assert_eq!(
            a.verify_access(&with_claim(&a, "nbf", json!(NOW + 3600)), NOW),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            a.verify_access(&with_claim(&a, "iat", json!(NOW + 365 * 24 * 3600)), NOW),
            Err(TokenError::IssuedInFuture)
        );
        for (field, value) in [("nbf", json!("0")), ("nbf", json!(-5)), ("iat", json!("now"))] {
            assert!(
                malformed(a.verify_access(&with_claim(&a, field, value.clone()), NOW)),
                "{field}={value}"
            );
        }
    }

    #[test]
    fn attack_audience_wrong_missing_empty_or_an_array_and_issuer_wrong_are_refused() {
        let a = authority();
        for (field, value, expected) in [
            ("aud", json!("someone-else"), Some(TokenError::WrongAudience)),
            ("aud", json!(""), Some(TokenError::WrongAudience)),
            ("iss", json!("https://issuer.test.evil"), Some(TokenError::WrongIssuer)),
            ("aud", json!(["test-clients"]), None),
            ("aud", json!(null), None),
            ("iss", json!(["https://issuer.test"]), None),
        ] {
            let result = a.verify_access(&with_claim(&a, field, value.clone()), NOW);
            match expected {
                Some(error) => assert_eq!(result, Err(error), "{field}={value}"),
                None => assert!(malformed(result), "{field}={value}"),
            }
        }
    }

    #[test]
    fn refresh_and_mfa_tokens_carry_audiences_of_their_own_that_a_verifier_of_access_tokens_refuses() {
        let a = authority();
        let refresh = a.issue_refresh(&session(0, NOW, NOW + 100_000));
        let mfa = a.issue_mfa("u1", "alice", "fingerprint", "attempt", NOW);
        assert_eq!(a.verify_refresh(&refresh, NOW).unwrap().aud, "test-clients#refresh");
        assert_eq!(a.verify_mfa(&mfa, NOW).unwrap().aud, "test-clients#mfa");
        // What any JWT library does with the configured audience, and API Gateway's JWT authorizer too.
        let mut plain = Validation::new(jsonwebtoken::Algorithm::HS256);
        plain.set_audience(&["test-clients"]);
        plain.set_issuer(&["https://issuer.test"]);
        plain.validate_exp = false;
        let key = jsonwebtoken::DecodingKey::from_secret(SECRET);
        for token in [&refresh, &mfa] {
            let refused = decode::<Value>(token, &key, &plain).unwrap_err();
            assert_eq!(refused.kind(), &ErrorKind::InvalidAudience);
        }
        assert!(decode::<Value>(&access_token(&a, "u1", "alice", NOW), &key, &plain).is_ok());
    }

    #[test]
    fn a_token_with_the_audience_of_another_kind_is_refused_and_old_refresh_tokens_with_the_plain_one_pass() {
        let a = authority();
        let claims = |aud: &str, token_use: &str| {
            let mut c = good_claims(NOW);
            c["aud"] = aud.into();
            c["token_use"] = token_use.into();
            c["generation"] = 0.into();
            c
        };
        let access_as_refresh = forge(header(&a), claims("test-clients#refresh", "access"), SECRET);
        assert_eq!(a.verify_access(&access_as_refresh, NOW), Err(TokenError::WrongAudience));
        let refresh_as_mfa = forge(header(&a), claims("test-clients#mfa", "refresh"), SECRET);
        assert_eq!(
            a.verify_refresh(&refresh_as_mfa, NOW).err(),
            Some(TokenError::WrongAudience)
        );
        let before_the_change = forge(header(&a), claims("test-clients", "refresh"), SECRET);
        assert!(
            a.verify_refresh(&before_the_change, NOW).is_ok(),
            "issued before the audiences split"
        );
    }

    // ---- asymmetric keys and rotation -----------------------------------------

    fn authority_of(set: &KeySet) -> TokenAuthority {
        let settings = TokenSettings {
            refresh_ttl: 3600,
            ..settings()
        };
        TokenAuthority::new(settings, set.load().unwrap())
    }

    #[test]
    fn generated_keys_of_each_algorithm_sign_tokens_that_carry_their_kid_and_verify() {
        for alg in [Alg::EdDSA, Alg::RS256, Alg::HS256] {
            let a = authority_of(&KeySet::generate(alg, 0));
            let token = access_token(&a, "u1", "alice", NOW);
            let header = decode_header(&token).unwrap();
            assert_eq!((header.alg, header.kid.as_deref()), (alg.algorithm(), Some(a.kid())));
            assert_eq!(a.verify_access(&token, NOW).unwrap().username, "alice", "{alg:?}");
        }
    }

    #[test]
    fn a_token_is_verified_only_by_the_key_its_kid_names_and_only_with_that_keys_algorithm() {
        let set = KeySet::generate(Alg::EdDSA, 0);
        let a = authority_of(&set);
        // Key confusion: HMAC with the public key as the secret, under the EdDSA key's kid.
        let public = a.jwks()["keys"][0].clone();
        let claims = json!({
            "iss": "https://issuer.test", "aud": "test-clients", "sub": "u1", "username": "alice",
            "sid": "s1", "amr": ["pwd"], "iat": NOW, "nbf": NOW, "exp": NOW + 60, "jti": "j",
            "token_use": "access"
        });
        for secret in [public["x"].as_str().unwrap().as_bytes(), public.to_string().as_bytes()] {
            let token = forge(json!({"alg": "HS256", "kid": a.kid()}), claims.clone(), secret);
            assert_eq!(a.verify_access(&token, NOW), Err(TokenError::WrongAlgorithm));
        }
        // A valid signature by a key of another set, even under our kid.
        let theirs = access_token(&authority_of(&KeySet::generate(Alg::EdDSA, 0)), "u1", "alice", NOW);
        assert_eq!(a.verify_access(&theirs, NOW), Err(TokenError::UnknownKey));
        let mut parts: Vec<String> = theirs.split('.').map(str::to_owned).collect();
        parts[0] = b64(json!({"alg": "EdDSA", "kid": a.kid()}).to_string().as_bytes());
        assert_eq!(
            a.verify_access(&parts.join("."), NOW),
            Err(TokenError::BadSignature),
            "our kid, their signature"
        );
    }

    /// A function instance: the keys it read last, and when it reads again.
    struct Instance {
        authority: TokenAuthority,
        offset: u64,
    }

    /// The whole rotation on a simulated clock, run by an operator (a
    /// schedule) every minute: four signing instances that read the secret
    /// every 300 s at different moments, four verifying instances that read
    /// the published public keys likewise, and an outside verifier that
    /// caches the JWKS for 300 s. Every signer issues tokens at every step,
    /// and every token still within its lifetime must verify everywhere, at
    /// every step.
    #[test]
    fn a_whole_rotation_never_rejects_a_valid_token_anywhere() {
        const REFRESH: u64 = 300;
        const JWKS_MAX_AGE: u64 = 300;
        let policy = RotationPolicy {
            propagation: REFRESH + JWKS_MAX_AGE,
            max_token_lifetime: 3600,
        };
        let start = NOW;
        let mut secret = KeySet::generate(Alg::RS256, start);
        let first_kid = authority_of(&secret).kid().to_owned();
        let mut instances: Vec<Instance> = (0..4)
            .map(|i| Instance {
                authority: authority_of(&secret),
                offset: i * 97,
            })
            .collect();
        let public_of = |set: &KeySet| {
            TokenVerifier::from_public(settings(), &set.public_jwks().unwrap())
                .unwrap()
                .unwrap()
        };
        let mut verifiers: Vec<(TokenVerifier, u64)> = (0..4).map(|i| (public_of(&secret), i * 89)).collect();
        let mut jwks_cache = (secret.load().unwrap().jwks(), start);
        let mut tokens: Vec<(String, bool, u64)> = Vec::new();
        let mut steps = Vec::new();
        for step in 0..=300u64 {
            let now = start + step * 60;
            let alg = (step == 0).then_some(Alg::EdDSA);
            steps.extend(secret.rotate(alg, policy, now).unwrap());
            assert!(secret.keys.len() <= 3, "step {step}: {secret:?}");
            for instance in &mut instances {
                if (now - start + instance.offset) % REFRESH < 60 {
                    instance.authority = authority_of(&secret);
                }
            }
            for (verifier, offset) in &mut verifiers {
                if (now - start + *offset) % REFRESH < 60 {
                    *verifier = public_of(&secret);
                }
            }
            if now >= jwks_cache.1 + JWKS_MAX_AGE {
                jwks_cache = (secret.load().unwrap().jwks(), now);
            }
            for (i, instance) in instances.iter().enumerate() {
                tokens.push((access_token(&instance.authority, "u1", "alice", now), true, now + 900));
                let s = session(step * 4 + i as u64, now, now + 100_000);
                tokens.push((instance.authority.issue_refresh(&s), false, now + 3600));
            }
            tokens.retain(|(_, _, exp)| *exp + LEEWAY > now);
            for (token, access, _) in &tokens {
                for instance in &instances {
                    let verified = if *access {
                        instance.authority.verify_access(token, now).map(drop)
                    } else {
                        instance.authority.verify_refresh(token, now).map(drop)
                    };
                    assert_eq!(verified, Ok(()), "step {step}; so far: {steps:#?}");
                }
                for (verifier, _) in &verifiers {
                    let verified = if *access {
                        verifier.verify_access(token, now).map(drop)
                    } else {
                        verifier.verify_refresh(token, now).map(drop)
                    };
                    assert_eq!(verified, Ok(()), "public keys, step {step}; so far: {steps:#?}");
                }
                let header = decode_header(token).unwrap();
                if header.alg != jsonwebtoken::Algorithm::HS256 {
                    let published = jwks_cache.0["keys"].as_array().unwrap();
                    assert!(
                        published.iter().any(|k| k["kid"] == json!(header.kid)),
                        "step {step}: an outside verifier's cached JWKS lacks {:?}",
                        header.kid
                    );
                }
            }
        }
        assert!(
            steps.iter().any(|s| matches!(s, RotationStep::Added { .. })),
            "{steps:#?}"
        );
        assert!(
            steps.iter().any(|s| matches!(s, RotationStep::Promoted { .. })),
            "{steps:#?}"
        );
        assert!(
            steps.iter().any(|s| matches!(s, RotationStep::Retired { .. })),
            "{steps:#?}"
        );
        let loaded = secret.load().unwrap();
        assert!(loaded.iter().all(|k| k.kid != first_kid), "the first key is gone");
        assert_eq!(loaded.current().alg, Alg::EdDSA);
        assert_eq!(loaded.current().status, Status::Current);
    }
}
