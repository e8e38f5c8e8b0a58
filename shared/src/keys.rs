//! The signing key: `JWT_SECRET` locally; deployed, the Secrets Manager secret
//! that `JWT_SECRET_ARN` names, read once per cold start.

use crate::config::{ConfigError, TokenConfig};
use crate::http::ApiError;
use crate::token::TokenKeys;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use tokio::sync::OnceCell;

/// Secrets Manager could not give the secret: unreachable, throttling, denied, or no string in it.
#[derive(Debug, thiserror::Error)]
#[error("reading the signing key from Secrets Manager failed: {0}")]
pub struct SecretError(String);

impl From<SecretError> for ApiError {
    fn from(error: SecretError) -> Self {
        tracing::error!(%error, "secret store unavailable");
        Self::Unavailable
    }
}

/// The token keys, ready or still to be read from Secrets Manager.
pub struct Keys {
    keys: OnceCell<TokenKeys>,
    source: Option<SecretSource>,
}

struct SecretSource {
    client: Client,
    arn: String,
    settings: TokenConfig,
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
    /// Keys that are already known.
    pub fn ready(keys: TokenKeys) -> Self {
        Self {
            keys: OnceCell::new_with(Some(keys)),
            source: None,
        }
    }

    /// The keys of this environment: from `JWT_SECRET` if set, else from the
    /// secret `JWT_SECRET_ARN` names. A missing or weak key, or a bad setting,
    /// stops the function with the reason.
    pub async fn from_env() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match (env("JWT_SECRET"), env("JWT_SECRET_ARN")) {
            (None, Some(arn)) => {
                let settings = crate::or_exit(TokenConfig::settings_from_lookup(env));
                let client = Client::new(&crate::aws::config_from_env().await);
                crate::or_exit(Self::from_secrets_manager(client, arn, settings).await)
            }
            _ => Self::ready(TokenKeys::new(crate::or_exit(TokenConfig::from_lookup(env)))),
        }
    }

    /// Reads the secret now. If Secrets Manager cannot be reached, the
    /// function still starts: requests read it again and answer 503 until it
    /// can be read. A secret too weak to sign with is an error.
    pub async fn from_secrets_manager(client: Client, arn: String, settings: TokenConfig) -> Result<Self, ConfigError> {
        let source = SecretSource { client, arn, settings };
        let keys = match source.read().await {
            Ok(secret) => OnceCell::new_with(Some(TokenKeys::new(source.settings.clone().with_secret(secret)?))),
            Err(error) => {
                tracing::warn!(%error, "signing key not read at start; requests will retry");
                OnceCell::new()
            }
        };
        Ok(Self {
            keys,
            source: Some(source),
        })
    }

    /// The keys if they have been read (tests use it to look inside).
    pub fn loaded(&self) -> Option<&TokenKeys> {
        self.keys.get()
    }

    /// The keys, reading the secret first if that has not succeeded yet.
    pub async fn get(&self) -> Result<&TokenKeys, ApiError> {
        self.keys
            .get_or_try_init(|| async {
                let source = self.source.as_ref().expect("keys without a source are ready");
                let secret = source.read().await?;
                source
                    .settings
                    .clone()
                    .with_secret(secret)
                    .map(TokenKeys::new)
                    .map_err(|error| {
                        tracing::error!(%error, "the signing key in Secrets Manager is unusable");
                        ApiError::Unavailable
                    })
            })
            .await
    }
}
