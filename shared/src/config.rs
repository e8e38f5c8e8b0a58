//! Configuration read once per cold start from the environment.

use crate::keyset::{KeySet, LoadedKey};
use std::fmt;

/// Why the function refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set: {1}")]
    Missing(&'static str, &'static str),
    #[error("{0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// Shortest HMAC secret accepted, in bytes (HS256 wants at least its output size).
pub const MIN_SECRET_BYTES: usize = 32;

const DAY: u64 = 24 * 3600;

/// Everything the token layer needs: the keys, the claims to set and require,
/// and the lifetimes.
#[derive(Clone)]
pub struct TokenConfig {
    /// The signing key and the keys that verify (see `keyset`); empty until `with_secret`.
    pub keys: Vec<LoadedKey>,
    pub issuer: String,
    pub audience: String,
    /// Access token lifetime, seconds.
    pub access_ttl: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_ttl: u64,
    /// How long the refresh token consumed last may be presented again, seconds (0 = strict).
    pub reuse_grace: u64,
    /// Absolute lifetime of a session from login, however often it is refreshed, seconds.
    pub session_lifetime: u64,
}

// Never print key material, not even in a debug log: key ids only.
impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("kids", &self.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("reuse_grace", &self.reuse_grace)
            .field("session_lifetime", &self.session_lifetime)
            .finish()
    }
}

impl TokenConfig {
    /// Reads the token configuration, keys included (`JWT_SECRET`), through
    /// `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let secret = lookup("JWT_SECRET")
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing(
                "JWT_SECRET",
                "set it to a random string of at least 32 bytes (e.g. `openssl rand -base64 48`) or a key set \
             (`cargo run -p keytool -- new EdDSA`), or set JWT_SECRET_ARN to a Secrets Manager secret that holds one",
            ))?;
        Self::settings_from_lookup(lookup)?.with_secret(secret)
    }

    /// Sets the keys from a key set or a plain HS256 secret, once every key is
    /// known to be well formed and strong enough.
    pub fn with_secret(self, secret: String) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: KeySet::parse(&secret)?.load()?,
            ..self
        })
    }

    /// Reads everything but the keys, which stay empty until `with_secret`:
    /// for a secret that comes from Secrets Manager.
    pub fn settings_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let seconds = |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(raw) => match raw.trim().parse::<u64>() {
                    Ok(v) if (min..=max).contains(&v) => Ok(v),
                    _ => Err(ConfigError::Invalid(
                        name,
                        format!("expected a whole number of seconds from {min} to {max}, got {raw:?}"),
                    )),
                },
            }
        };
        let text = |name: &'static str, default: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(Self {
            keys: Vec::new(),
            issuer: text("JWT_ISSUER", "lambda-jwt-auth"),
            audience: text("JWT_AUDIENCE", "lambda-jwt-auth"),
            access_ttl: seconds("ACCESS_TOKEN_TTL", 15 * 60, 1, DAY)?,
            refresh_ttl: seconds("REFRESH_TOKEN_TTL", 30 * DAY, 1, 400 * DAY)?,
            // Longer would leave a stolen, spent token usable for long: reuse detection needs a short window.
            reuse_grace: seconds("REFRESH_REUSE_GRACE", 10, 0, 60)?,
            session_lifetime: seconds("SESSION_MAX_LIFETIME", 90 * DAY, 1, 400 * DAY)?,
        })
    }
}

/// The DynamoDB table name, required by every function that stores anything.
pub fn table_name_from_env() -> Result<String, ConfigError> {
    std::env::var("TABLE_NAME")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or(ConfigError::Missing(
            "TABLE_NAME",
            "set it to the DynamoDB table of this stack",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lookup;

    const GOOD: &str = "0123456789abcdef0123456789abcdef-good-secret";

    #[test]
    fn a_missing_secret_is_a_startup_error_that_says_what_to_do() {
        let err = TokenConfig::from_lookup(lookup(&[])).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET is not set"), "{err}");
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_rejected() {
        let err = TokenConfig::from_lookup(lookup(&[("JWT_SECRET", "0123456789abcdef0123456789abcde")])).unwrap_err();
        assert!(err.to_string().contains("31 bytes"), "{err}");
    }

    #[test]
    fn a_long_secret_of_one_repeated_character_is_rejected() {
        let secret = "a".repeat(64);
        assert!(TokenConfig::from_lookup(lookup(&[("JWT_SECRET", &secret)])).is_err());
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = TokenConfig::from_lookup(lookup(&[("JWT_SECRET", GOOD)])).unwrap();
        assert_eq!((c.access_ttl, c.refresh_ttl, c.reuse_grace), (900, 2_592_000, 10));
    }

    #[test]
    fn a_non_numeric_lifetime_is_a_startup_error() {
        let err = TokenConfig::from_lookup(lookup(&[("JWT_SECRET", GOOD), ("ACCESS_TOKEN_TTL", "15m")])).unwrap_err();
        assert!(err.to_string().contains("ACCESS_TOKEN_TTL"), "{err}");
    }

    #[test]
    fn lifetimes_out_of_range_are_startup_errors() {
        for (name, value) in [
            ("ACCESS_TOKEN_TTL", "0"),
            ("ACCESS_TOKEN_TTL", "18446744073709551615"),
            ("REFRESH_REUSE_GRACE", "61"),
            ("SESSION_MAX_LIFETIME", "99999999999"),
            ("REFRESH_TOKEN_TTL", "-5"),
        ] {
            let err = TokenConfig::from_lookup(lookup(&[("JWT_SECRET", GOOD), (name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn a_zero_grace_means_strict_rotation() {
        let c = TokenConfig::from_lookup(lookup(&[("JWT_SECRET", GOOD), ("REFRESH_REUSE_GRACE", "0")])).unwrap();
        assert_eq!(c.reuse_grace, 0);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let c = TokenConfig::from_lookup(lookup(&[("JWT_SECRET", GOOD)])).unwrap();
        assert!(!format!("{c:?}").contains(GOOD));
    }
}
