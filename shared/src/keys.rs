//! The keys: `JWT_SECRET` locally; deployed, the Secrets Manager secret that
//! `JWT_SECRET_ARN` names, read at cold start and again every
//! `KEYS_REFRESH_SECONDS` (default 300), so a rotation reaches warm functions
//! without a redeploy (see `keyset` for the rotation itself).

use crate::config::{ConfigError, TokenConfig};
use crate::http::ApiError;
use crate::token::TokenKeys;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often a warm function reads the secret again, unless `KEYS_REFRESH_SECONDS` says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Secrets Manager could not give the secret: unreachable, throttling, denied, or no string in it.
#[derive(Debug, thiserror::Error)]
#[error("reading the signing keys from Secrets Manager failed: {0}")]
pub struct SecretError(String);

impl From<SecretError> for ApiError {
    fn from(error: SecretError) -> Self {
        tracing::error!(%error, "secret store unavailable");
        Self::Unavailable
    }
}

/// The token keys, ready or read (and read again) from Secrets Manager.
pub struct Keys {
    loaded: RwLock<Option<Loaded>>,
    source: Option<SecretSource>,
    /// One read of the secret at a time.
    reading: tokio::sync::Mutex<()>,
}

struct Loaded {
    keys: Arc<TokenKeys>,
    read_at: Instant,
}

struct SecretSource {
    client: Client,
    arn: String,
    settings: TokenConfig,
    refresh: Duration,
}

impl SecretSource {
    async fn read(&self) -> Result<String, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|e| SecretError(DisplayErrorContext(&e).to_string()))?;
        out.secret_string()
            .map(str::to_owned)
            .ok_or_else(|| SecretError("the secret holds no string".into()))
    }
}

impl Keys {
    /// Keys that are already known, and never change.
    pub fn ready(keys: TokenKeys) -> Self {
        Self {
            loaded: RwLock::new(Some(Loaded {
                keys: Arc::new(keys),
                read_at: Instant::now(),
            })),
            source: None,
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The keys of this environment: from the secret `JWT_SECRET_ARN` names
    /// when it is set (deployed), else from `JWT_SECRET` (local). A missing or
    /// weak key, or a bad setting, stops the function with the reason.
    pub async fn from_env() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match env("JWT_SECRET_ARN") {
            Some(arn) => {
                let settings = crate::or_exit(TokenConfig::settings_from_lookup(env));
                let refresh = crate::or_exit(refresh_from_lookup(env));
                let client = Client::new(&crate::aws::config_from_env().await);
                crate::or_exit(Self::from_secrets_manager(client, arn, settings, refresh).await)
            }
            None => Self::ready(TokenKeys::new(crate::or_exit(TokenConfig::from_lookup(env)))),
        }
    }

    /// Reads the secret now. If Secrets Manager cannot be reached, the
    /// function still starts: requests read it again and answer 503 until it
    /// can be read. A key set that is unusable at start is an error.
    pub async fn from_secrets_manager(
        client: Client,
        arn: String,
        settings: TokenConfig,
        refresh: Duration,
    ) -> Result<Self, ConfigError> {
        let source = SecretSource {
            client,
            arn,
            settings,
            refresh,
        };
        let loaded = match source.read().await {
            Ok(secret) => Some(Loaded {
                keys: Arc::new(TokenKeys::new(source.settings.clone().with_secret(secret)?)),
                read_at: Instant::now(),
            }),
            Err(error) => {
                tracing::warn!(%error, "signing keys not read at start; requests will retry");
                None
            }
        };
        Ok(Self {
            loaded: RwLock::new(loaded),
            source: Some(source),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    /// The keys if they have been read (tests use it to look inside).
    pub fn loaded(&self) -> Option<Arc<TokenKeys>> {
        self.loaded
            .read()
            .expect("never poisoned")
            .as_ref()
            .map(|l| l.keys.clone())
    }

    /// The keys read within the refresh interval, if any.
    fn fresh(&self) -> Option<Arc<TokenKeys>> {
        let loaded = self.loaded.read().expect("never poisoned");
        let loaded = loaded.as_ref()?;
        match &self.source {
            Some(source) if loaded.read_at.elapsed() >= source.refresh => None,
            _ => Some(loaded.keys.clone()),
        }
    }

    /// The keys, reading the secret first if it has not been read yet or
    /// was read longer ago than the refresh interval. If it cannot be read
    /// again, or holds an unusable key set, the keys read before stay in use
    /// (and the next try is one interval later); with none, 503.
    pub async fn get(&self) -> Result<Arc<TokenKeys>, ApiError> {
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let _one_reader = self.reading.lock().await;
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let source = self.source.as_ref().expect("keys without a source are always fresh");
        let read = match source.read().await {
            Ok(secret) => source.settings.clone().with_secret(secret).map_err(|error| {
                tracing::error!(%error, "the signing keys in Secrets Manager are unusable");
                ApiError::Unavailable
            }),
            Err(error) => Err(ApiError::from(error)),
        };
        let mut loaded = self.loaded.write().expect("never poisoned");
        match (read, loaded.as_mut()) {
            (Ok(config), _) => {
                let keys = Arc::new(TokenKeys::new(config));
                *loaded = Some(Loaded {
                    keys: keys.clone(),
                    read_at: Instant::now(),
                });
                Ok(keys)
            }
            (Err(_), Some(stale)) => {
                tracing::warn!("keeping the signing keys read before");
                stale.read_at = Instant::now();
                Ok(stale.keys.clone())
            }
            (Err(error), None) => Err(error),
        }
    }
}

/// `KEYS_REFRESH_SECONDS`: how often a warm function reads the secret again (0 = only at cold start).
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
