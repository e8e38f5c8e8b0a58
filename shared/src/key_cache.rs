//! The keys a function signs or verifies with, kept between requests: built
//! once from `JWT_SECRET` (local), or read from a Secrets Manager secret
//! (deployed) at the first request and again every `KEYS_REFRESH_SECONDS`
//! (default 300), so a rotation reaches warm functions without a redeploy
//! (see `keyset` for the rotation itself).
//!
//! The functions that sign (`TokenAuthority`) read the private key set,
//! `JWT_SECRET_ARN`. Those that only verify (`TokenVerifier`) read the
//! public keys, `JWT_PUBLIC_KEYS_ARN`, which the rotation function publishes,
//! and the private set only where there is no public one (an HS256 stack).

use crate::config::{ConfigError, TokenSettings};
use crate::secret::{SecretError, SecretSource};
use crate::token::{TokenAuthority, TokenVerifier};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often a warm function reads the secret again, unless `KEYS_REFRESH_SECONDS` says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// What a function makes of the text of its key secret.
pub trait Keys: Sized {
    /// The keys in `text`, a private key set or (`public`) a published
    /// JWKS; `None` while a public set holds no key yet.
    fn from_text(settings: TokenSettings, text: &str, public: bool) -> Result<Option<Self>, ConfigError>;
}

impl Keys for TokenAuthority {
    fn from_text(settings: TokenSettings, text: &str, public: bool) -> Result<Option<Self>, ConfigError> {
        if public {
            return Err(ConfigError::Invalid(
                "JWT_PUBLIC_KEYS_ARN",
                "public keys cannot sign: a function that signs reads JWT_SECRET_ARN".into(),
            ));
        }
        TokenAuthority::from_secret(settings, text).map(Some)
    }
}

impl Keys for TokenVerifier {
    fn from_text(settings: TokenSettings, text: &str, public: bool) -> Result<Option<Self>, ConfigError> {
        if public {
            TokenVerifier::from_public(settings, text)
        } else {
            TokenAuthority::from_secret(settings, text).map(|a| Some(a.into_verifier()))
        }
    }
}

/// The keys, ready or read (and read again) from the secret.
pub struct KeyCache<K = TokenAuthority> {
    loaded: RwLock<Option<Loaded<K>>>,
    source: Option<Source>,
    /// One read of the secret at a time.
    reading: tokio::sync::Mutex<()>,
}

struct Loaded<K> {
    keys: Arc<K>,
    read_at: Instant,
}

/// The secret, and what to make of it.
struct Source {
    secret: SecretSource,
    /// It holds a published JWKS, not a private key set.
    public: bool,
    settings: TokenSettings,
    refresh: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl KeyCache<TokenAuthority> {
    /// The signing keys of this environment: the private key set in the
    /// secret `JWT_SECRET_ARN` names when it is set (deployed; read at the
    /// first request), else `JWT_SECRET` (local). A missing or weak
    /// `JWT_SECRET`, or a bad setting, stops the function with the reason.
    pub fn signing_from_env() -> Self {
        match crate::config::or_exit(SecretSource::from_lookup(env, "JWT_SECRET_ARN")) {
            Some(secret) => Self::from_secret(secret, false, settings_from_env(), refresh_from_env()),
            None => Self::ready(crate::config::or_exit(TokenAuthority::from_lookup(env))),
        }
    }
}

impl KeyCache<TokenVerifier> {
    /// The verifying keys of this environment: the public keys in the secret
    /// `JWT_PUBLIC_KEYS_ARN` names, else the private set of `JWT_SECRET_ARN`
    /// (a deployed HS256 stack), else `JWT_SECRET` (local).
    pub fn verifying_from_env() -> Self {
        if let Some(public) = crate::config::or_exit(SecretSource::from_lookup(env, "JWT_PUBLIC_KEYS_ARN")) {
            return Self::from_secret(public, true, settings_from_env(), refresh_from_env());
        }
        match crate::config::or_exit(SecretSource::from_lookup(env, "JWT_SECRET_ARN")) {
            Some(secret) => Self::from_secret(secret, false, settings_from_env(), refresh_from_env()),
            None => Self::ready(crate::config::or_exit(TokenAuthority::from_lookup(env)).into_verifier()),
        }
    }
}

fn settings_from_env() -> TokenSettings {
    crate::config::or_exit(TokenSettings::from_lookup(env))
}

fn refresh_from_env() -> Duration {
    crate::config::or_exit(refresh_from_lookup(env))
}

impl<K: Keys> KeyCache<K> {
    /// Keys that are already known, and never change.
    pub fn ready(keys: K) -> Self {
        Self {
            loaded: RwLock::new(Some(Loaded {
                keys: Arc::new(keys),
                read_at: Instant::now(),
            })),
            source: None,
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// Keys read from `secret` (a published JWKS if `public`) when first
    /// needed, and again once `refresh` has passed. Until the secret can be
    /// read, or while a public set holds no key yet, `get` fails and the log
    /// says why; if the first keys read are weak or malformed, the function
    /// stops with the reason, as it does for a weak `JWT_SECRET` at start.
    pub fn from_secret(secret: SecretSource, public: bool, settings: TokenSettings, refresh: Duration) -> Self {
        Self {
            loaded: RwLock::new(None),
            source: Some(Source {
                secret,
                public,
                settings,
                refresh,
            }),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The keys if they have been read (tests use it to look inside).
    pub fn loaded(&self) -> Option<Arc<K>> {
        self.loaded
            .read()
            .expect("never poisoned")
            .as_ref()
            .map(|l| l.keys.clone())
    }

    /// The keys read within the refresh interval, if any.
    fn fresh(&self) -> Option<Arc<K>> {
        let loaded = self.loaded.read().expect("never poisoned");
        let loaded = loaded.as_ref()?;
        match &self.source {
            Some(source) if loaded.read_at.elapsed() >= source.refresh => None,
            _ => Some(loaded.keys.clone()),
        }
    }

    /// The keys, reading the secret first if it has not been read yet or
    /// was read longer ago than the refresh interval. If it cannot be read
    /// again, or holds unusable keys, the keys read before stay in use (and
    /// the next try is one interval later). With none: an error while it
    /// cannot be read or holds no key yet, and an exit with the reason if it
    /// is unusable.
    pub async fn get(&self) -> Result<Arc<K>, SecretError> {
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let _one_reader = self.reading.lock().await;
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let source = self.source.as_ref().expect("keys without a source are always fresh");
        let read = match source.secret.read().await {
            Ok(text) => match K::from_text(source.settings.clone(), &text, source.public) {
                Ok(Some(keys)) => Ok(keys),
                Ok(None) => Err(LoadError::Unavailable(SecretError::new(
                    "the public key set holds no key yet: the first rotation has not run",
                ))),
                Err(error) => Err(LoadError::Unusable(error)),
            },
            Err(error) => Err(LoadError::Unavailable(error)),
        };
        let mut loaded = self.loaded.write().expect("never poisoned");
        match (read, loaded.as_mut()) {
            (Ok(keys), _) => {
                let keys = Arc::new(keys);
                *loaded = Some(Loaded {
                    keys: keys.clone(),
                    read_at: Instant::now(),
                });
                Ok(keys)
            }
            (Err(error), Some(stale)) => {
                tracing::error!(%error, "keeping the signing keys read before");
                stale.read_at = Instant::now();
                Ok(stale.keys.clone())
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
    fn signers_read_a_private_set_only_and_verifiers_either_kind_until_a_public_one_has_keys() {
        use crate::keyset::{Alg, KeySet};
        let set = KeySet::generate(Alg::EdDSA, 0);
        let (private, public) = (set.to_json(), set.public_jwks().unwrap());
        let settings = || crate::testing::dev_settings();
        let signer = TokenAuthority::from_text(settings(), &private, false).unwrap().unwrap();
        let kid = signer.kid().to_owned();
        let token = crate::testing::access_token(&signer, "u-1", "alice", crate::now());
        let error = TokenAuthority::from_text(settings(), &public, true).err().unwrap();
        assert!(error.to_string().contains("cannot sign"), "{error}");
        for (text, is_public) in [(&private, false), (&public, true)] {
            let verifier = TokenVerifier::from_text(settings(), text, is_public).unwrap().unwrap();
            assert!(verifier.verify_access(&token, crate::now()).is_ok());
            assert_eq!(verifier.jwks()["keys"][0]["kid"], kid.as_str());
        }
        assert!(
            TokenVerifier::from_text(settings(), r#"{"keys":[]}"#, true)
                .unwrap()
                .is_none()
        );
    }

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
