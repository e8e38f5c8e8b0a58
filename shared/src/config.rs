//! Configuration read once per cold start from the environment.

/// Why the function refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set: {1}")]
    Missing(&'static str, &'static str),
    #[error("{0} is invalid: {1}")]
    Invalid(&'static str, String),
}

const DAY: u64 = 24 * 3600;

/// What tokens say and how long they and their sessions live: everything
/// about tokens but the keys, which come from elsewhere (`token::TokenAuthority`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
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

impl TokenSettings {
    /// Reads the settings through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let seconds = |name, default, min, max| seconds(&lookup, name, default, min, max);
        let text = |name: &'static str, default: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(Self {
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

/// A whole number of seconds from `min` to `max` read through `lookup`, `default` when unset.
pub fn seconds(
    lookup: impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    whole_number(lookup, name, "seconds", default, min..=max)
}

/// A whole number of `unit` in `range` read through `lookup`, `default` when unset.
pub fn whole_number(
    lookup: impl Fn(&str) -> Option<String>,
    name: &'static str,
    unit: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(v) if range.contains(&v) => Ok(v),
            _ => Err(ConfigError::Invalid(
                name,
                format!(
                    "expected a whole number of {unit} from {} to {}, got {raw:?}",
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

/// Unwraps a start-up result, or prints the error as one clear sentence and
/// exits, so Lambda reports an init failure instead of serving with a bad setup.
pub fn or_exit<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => {
            eprintln!("startup error: {error}");
            std::process::exit(1);
        }
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

    #[test]
    fn defaults_follow_the_spec() {
        let c = TokenSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(
            (c.access_ttl, c.refresh_ttl, c.reuse_grace, c.session_lifetime),
            (900, 2_592_000, 10, 90 * DAY)
        );
        assert_eq!(
            (c.issuer.as_str(), c.audience.as_str()),
            ("lambda-jwt-auth", "lambda-jwt-auth")
        );
    }

    #[test]
    fn a_non_numeric_lifetime_is_a_startup_error() {
        let err = TokenSettings::from_lookup(lookup(&[("ACCESS_TOKEN_TTL", "15m")])).unwrap_err();
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
            let err = TokenSettings::from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn a_zero_grace_means_strict_rotation() {
        let c = TokenSettings::from_lookup(lookup(&[("REFRESH_REUSE_GRACE", "0")])).unwrap();
        assert_eq!(c.reuse_grace, 0);
    }
}
