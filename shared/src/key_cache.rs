//! The token authority a function signs and verifies with, kept between
//! requests: built once from `JWT_SECRET` (local), or read from the secret
//! `JWT_SECRET_ARN` names (deployed) at the first request and again every
//! `KEYS_REFRESH_SECONDS` (default 300), so a rotation reaches warm functions
//! without a redeploy (see `keyset` for the rotation itself).

use crate::config::{ConfigError, TokenSettings};
use crate::secret::{SecretError, SecretSource};
use crate::token::TokenAuthority;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often a warm function reads the secret again, unless `KEYS_REFRESH_SECONDS` says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// The token authority, ready or read (and read again) from the secret.
pub struct KeyCache {
    loaded: RwLock<Option<Loaded>>,
    source: Option<Source>,
    /// One read of the secret at a time.
    reading: tokio::sync::Mutex<()>,
}

struct Loaded {
    authority: Arc<TokenAuthority>,
    read_at: Instant,
}

/// The secret, and what to make of it.
struct Source {
    secret: SecretSource,
    settings: TokenSettings,
    refresh: Duration,
}

impl KeyCache {
    /// An authority that is already known, and never changes.
    pub fn ready(authority: TokenAuthority) -> Self {
        Self {
            loaded: RwLock::new(Some(Loaded {
                authority: Arc::new(authority),
                read_at: Instant::now(),
            })),
            source: None,
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The keys of this environment: from the secret `JWT_SECRET_ARN` names
    /// when it is set (deployed; read at the first request), else from
    /// `JWT_SECRET` (local). A missing or weak `JWT_SECRET`, or a bad setting,
    /// stops the function with the reason.
    pub fn from_env() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match crate::config::or_exit(SecretSource::from_lookup(env)) {
            Some(secret) => Self::from_secret(
                secret,
                crate::config::or_exit(TokenSettings::from_lookup(env)),
                crate::config::or_exit(refresh_from_lookup(env)),
            ),
            None => Self::ready(crate::config::or_exit(TokenAuthority::from_lookup(env))),
        }
    }

    /// An authority read from `secret` when first needed, and again once
    /// `refresh` has passed. Until the secret can be read, `get` fails and
    /// the log says why; if the first key set read is weak or malformed, the
    /// function stops with the reason, as it does for a weak `JWT_SECRET` at start.
    pub fn from_secret(secret: SecretSource, settings: TokenSettings, refresh: Duration) -> Self {
        Self {
            loaded: RwLock::new(None),
            source: Some(Source {
                secret,
                settings,
                refresh,
            }),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The authority if it has been read (tests use it to look inside).
    pub fn loaded(&self) -> Option<Arc<TokenAuthority>> {
        self.loaded
            .read()
            .expect("never poisoned")
            .as_ref()
            .map(|l| l.authority.clone())
    }

    /// The authority read within the refresh interval, if any.
    fn fresh(&self) -> Option<Arc<TokenAuthority>> {
        let loaded = self.loaded.read().expect("never poisoned");
        let loaded = loaded.as_ref()?;
        match &self.source {
            Some(source) if loaded.read_at.elapsed() >= source.refresh => None,
            _ => Some(loaded.authority.clone()),
        }
    }

    /// The authority, reading the secret first if it has not been read yet or
    /// was read longer ago than the refresh interval. If it cannot be read
    /// again, or holds an unusable key set, the keys read before stay in use
    /// (and the next try is one interval later). With none: an error while it
    /// cannot be read, and an exit with the reason if it is unusable.
    pub async fn get(&self) -> Result<Arc<TokenAuthority>, SecretError> {
        if let Some(authority) = self.fresh() {
            return Ok(authority);
        }
        let _one_reader = self.reading.lock().await;
        if let Some(authority) = self.fresh() {
            return Ok(authority);
        }
        let source = self.source.as_ref().expect("keys without a source are always fresh");
        let read = match source.secret.read().await {
            Ok(secret) => TokenAuthority::from_secret(source.settings.clone(), &secret).map_err(LoadError::Unusable),
            Err(error) => Err(LoadError::Unavailable(error)),
        };
        let mut loaded = self.loaded.write().expect("never poisoned");
        match (read, loaded.as_mut()) {
            (Ok(authority), _) => {
                let authority = Arc::new(authority);
                *loaded = Some(Loaded {
                    authority: authority.clone(),
                    read_at: Instant::now(),
                });
                Ok(authority)
            }
            (Err(error), Some(stale)) => {
                tracing::error!(%error, "keeping the signing keys read before");
                stale.read_at = Instant::now();
                Ok(stale.authority.clone())
            }
            // Like a weak `JWT_SECRET` at start: the function never serves with it.
            (Err(error @ LoadError::Unusable(_)), None) => crate::config::or_exit(Err(error)),
            (Err(LoadError::Unavailable(error)), None) => Err(error),
        }
    }
}

/// Why the keys could not be (re)loaded from the secret.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Unavailable(SecretError),
    #[error("the signing keys in Secrets Manager are unusable: {0}")]
    Unusable(ConfigError),
}

/// `KEYS_REFRESH_SECONDS`: how often a warm function reads the secret again (0 = only at its first request).
pub fn refresh_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    match lookup("KEYS_REFRESH_SECONDS") {
        None => Ok(DEFAULT_REFRESH),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(0) => Ok(Duration::MAX),
            Ok(seconds) if seconds <= 3600 => Ok(Duration::from_secs(seconds)),
            _ => Err(ConfigError::Invalid(
                "KEYS_REFRESH_SECONDS",
                format!("expected a whole number of seconds from 0 to 3600, got {raw:?}"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lookup;

    #[test]
    fn the_refresh_interval_defaults_to_five_minutes_and_zero_means_never() {
        assert_eq!(refresh_from_lookup(lookup(&[])).unwrap(), DEFAULT_REFRESH);
        assert_eq!(
            refresh_from_lookup(lookup(&[("KEYS_REFRESH_SECONDS", "0")])).unwrap(),
            Duration::MAX
        );
        assert_eq!(
            refresh_from_lookup(lookup(&[("KEYS_REFRESH_SECONDS", "3600")])).unwrap(),
            Duration::from_secs(3600)
        );
        for bad in ["3601", "-1", "5m"] {
            let error = refresh_from_lookup(lookup(&[("KEYS_REFRESH_SECONDS", bad)])).unwrap_err();
            assert!(error.to_string().contains("KEYS_REFRESH_SECONDS"), "{error}");
        }
    }
}
