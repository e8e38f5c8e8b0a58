//! The keys: `JWT_SECRET` locally; deployed, the Secrets Manager secret that
//! `JWT_SECRET_ARN` names, read at the first request and again every
//! `KEYS_REFRESH_SECONDS` (default 300), so a rotation reaches warm functions
//! without a redeploy (see `keyset` for the rotation itself).
//!
//! The secret is read through the AWS Parameters and Secrets Lambda Extension
//! (a layer in the template): plain HTTP on loopback, so no function carries
//! an SDK or a TLS stack for it, and those that only verify carry neither.
//! The extension answers only in the invoke phase, never during init, hence
//! the read at the first request rather than at cold start.

use crate::config::{ConfigError, TokenConfig};
use crate::http::ApiError;
use crate::token::TokenKeys;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lambda_http::Body;
use lambda_http::http::{HeaderValue, Request, Uri};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often a warm function reads the secret again, unless `KEYS_REFRESH_SECONDS` says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Where the extension listens unless `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` says otherwise.
const DEFAULT_EXTENSION_PORT: u16 = 2773;

/// One read, retries included; the extension itself asks Secrets Manager
/// (the template turns its cache off), so this is a network call's budget.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a read keeps asking an extension that is not serving yet (not
/// listening, or "not ready to serve traffic"), as at a busy cold start.
const READY_WAIT: Duration = Duration::from_secs(1);
const READY_POLL: Duration = Duration::from_millis(10);

/// Longest error answer from the extension quoted in a log line (it never holds the secret).
const QUOTED_ERROR: usize = 200;

/// The secret could not be read: the extension unreachable, not ready, or
/// answering with Secrets Manager's refusal, or no string in the secret.
#[derive(Debug, thiserror::Error)]
#[error("reading the signing keys from Secrets Manager failed: {reason}")]
pub struct SecretError {
    reason: String,
    /// The extension is not serving yet: worth asking again shortly.
    not_ready: bool,
}

impl SecretError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            not_ready: false,
        }
    }
}

/// Why the keys could not be (re)loaded from the secret.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Unavailable(#[from] SecretError),
    #[error("the signing keys in Secrets Manager are unusable: {0}")]
    Unusable(ConfigError),
}

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

/// Where the secret is read from: the extension's endpoint for it, and what to make of it.
pub struct SecretSource {
    http: Client<HttpConnector, Body>,
    url: Uri,
    /// `AWS_SESSION_TOKEN`: the extension serves only its own execution environment.
    token: HeaderValue,
    settings: TokenConfig,
    refresh: Duration,
}

/// The part of the extension's answer (Secrets Manager's `GetSecretValue`) that is used.
#[derive(serde::Deserialize)]
struct SecretValue {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

impl SecretSource {
    /// The secret `secret_id` through the extension at `endpoint` (`http://host:port`).
    pub fn new(
        endpoint: &str,
        secret_id: &str,
        token: String,
        settings: TokenConfig,
        refresh: Duration,
    ) -> Result<Self, ConfigError> {
        let url = format!("{endpoint}/secretsmanager/get?secretId={}", query_escape(secret_id))
            .parse()
            .map_err(|e| ConfigError::Invalid("JWT_SECRET_ARN", format!("not usable in a URL: {e}")))?;
        let mut token = HeaderValue::try_from(token)
            .map_err(|_| ConfigError::Invalid("AWS_SESSION_TOKEN", "not usable in an HTTP header".into()))?;
        token.set_sensitive(true);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        Ok(Self {
            // A fresh loopback connection per read (minutes apart), never an
            // idle one the extension may have closed meanwhile.
            http: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector),
            url,
            token,
            settings,
            refresh,
        })
    }

    /// The source `JWT_SECRET_ARN` names (`None` when it is not set), with
    /// `AWS_SESSION_TOKEN` and the extension's port from the environment.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let Some(arn) = lookup("JWT_SECRET_ARN") else {
            return Ok(None);
        };
        let port = match lookup("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT") {
            None => DEFAULT_EXTENSION_PORT,
            Some(raw) => raw.trim().parse().map_err(|_| {
                ConfigError::Invalid(
                    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
                    format!("expected a port, got {raw:?}"),
                )
            })?,
        };
        let token = lookup("AWS_SESSION_TOKEN").ok_or(ConfigError::Missing(
            "AWS_SESSION_TOKEN",
            "Lambda sets it; the Parameters and Secrets extension answers only requests that carry it",
        ))?;
        let settings = TokenConfig::settings_from_lookup(&lookup)?;
        let refresh = refresh_from_lookup(&lookup)?;
        Self::new(&format!("http://localhost:{port}"), &arn, token, settings, refresh).map(Some)
    }

    /// Reads the secret and checks the key set in it.
    pub async fn load(&self) -> Result<TokenConfig, LoadError> {
        let secret = self.read().await?;
        self.settings.clone().with_secret(secret).map_err(LoadError::Unusable)
    }

    /// The secret's string, asking again while the extension is not serving yet.
    async fn read(&self) -> Result<String, SecretError> {
        let patient = async {
            let started = Instant::now();
            loop {
                match self.ask().await {
                    Err(error) if error.not_ready && started.elapsed() < READY_WAIT => {
                        tokio::time::sleep(READY_POLL).await
                    }
                    result => return result,
                }
            }
        };
        tokio::time::timeout(READ_TIMEOUT, patient)
            .await
            .map_err(|_| SecretError::new(format!("no answer from the extension within {READ_TIMEOUT:?}")))?
    }

    /// One request to the extension.
    async fn ask(&self) -> Result<String, SecretError> {
        let request = Request::get(self.url.clone())
            .header("X-Aws-Parameters-Secrets-Token", self.token.clone())
            .body(Body::Empty)
            .expect("a GET of a parsed URL is a valid request");
        let response = self.http.request(request).await.map_err(|e| SecretError {
            reason: format!("the extension is unreachable: {e}"),
            not_ready: e.is_connect(),
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| SecretError::new(format!("the extension's answer broke off: {e}")))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(SecretError {
                reason: format!(
                    "the extension answered {status}: {}",
                    text.chars().take(QUOTED_ERROR).collect::<String>()
                ),
                not_ready: text.contains("not ready"),
            });
        }
        // The body holds the secret: it is never quoted.
        let value: SecretValue = serde_json::from_slice(&body)
            .map_err(|_| SecretError::new("the extension's answer is not a GetSecretValue result"))?;
        value
            .secret_string
            .ok_or_else(|| SecretError::new("the secret holds no string"))
    }
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved characters.
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
    /// when it is set (deployed; read at the first request), else from
    /// `JWT_SECRET` (local). A missing or weak `JWT_SECRET`, or a bad setting,
    /// stops the function with the reason.
    pub fn from_env() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match crate::or_exit(SecretSource::from_lookup(env)) {
            Some(source) => Self::from_secret(source),
            None => Self::ready(TokenKeys::new(crate::or_exit(TokenConfig::from_lookup(env)))),
        }
    }

    /// Keys read from `source` when first needed. Until the secret can be
    /// read, requests answer 503 and the log says why; if the first key set
    /// read is weak or malformed, the function stops with the reason, as it
    /// does for a weak `JWT_SECRET` at start.
    pub fn from_secret(source: SecretSource) -> Self {
        Self {
            loaded: RwLock::new(None),
            source: Some(source),
            reading: tokio::sync::Mutex::new(()),
        }
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
    /// (and the next try is one interval later). With none: 503 while it
    /// cannot be read, and an exit with the reason if it is unusable.
    pub async fn get(&self) -> Result<Arc<TokenKeys>, ApiError> {
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let _one_reader = self.reading.lock().await;
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let source = self.source.as_ref().expect("keys without a source are always fresh");
        let read = source.load().await;
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
            (Err(error), Some(stale)) => {
                tracing::error!(%error, "keeping the signing keys read before");
                stale.read_at = Instant::now();
                Ok(stale.keys.clone())
            }
            // Like a weak `JWT_SECRET` at start: the function never serves with it.
            (Err(error @ LoadError::Unusable(_)), None) => crate::or_exit(Err(error)),
            (Err(LoadError::Unavailable(error)), None) => Err(ApiError::from(error)),
        }
    }
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

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/keys+v2=a-AbCdEf";

    #[test]
    fn the_secret_is_asked_of_the_extension_on_its_default_port_with_the_arn_escaped() {
        let source = SecretSource::from_lookup(lookup(&[("JWT_SECRET_ARN", ARN), ("AWS_SESSION_TOKEN", "t")]))
            .unwrap()
            .expect("a source when JWT_SECRET_ARN is set");
        assert_eq!(
            source.url.to_string(),
            "http://localhost:2773/secretsmanager/get?secretId=\
             arn%3Aaws%3Asecretsmanager%3Aeu-west-1%3A123456789012%3Asecret%3Aauth%2Fkeys%2Bv2%3Da-AbCdEf"
        );
        assert_eq!(source.token, "t");
        assert!(source.token.is_sensitive());
    }

    #[test]
    fn the_extension_port_can_be_moved_but_must_be_a_port() {
        let moved = lookup(&[
            ("JWT_SECRET_ARN", ARN),
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "8180"),
        ]);
        let source = SecretSource::from_lookup(moved).unwrap().unwrap();
        assert_eq!(source.url.authority().unwrap().as_str(), "localhost:8180");
        let bad = lookup(&[
            ("JWT_SECRET_ARN", ARN),
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "70000"),
        ]);
        let error = SecretSource::from_lookup(bad).err().unwrap().to_string();
        assert!(error.contains("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"), "{error}");
    }

    #[test]
    fn without_a_session_token_the_deployed_setup_is_a_startup_error() {
        let error = SecretSource::from_lookup(lookup(&[("JWT_SECRET_ARN", ARN)]))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("AWS_SESSION_TOKEN"), "{error}");
    }

    #[test]
    fn a_session_token_that_cannot_be_a_header_is_a_startup_error_not_a_panic_per_request() {
        let vars = [("JWT_SECRET_ARN", ARN), ("AWS_SESSION_TOKEN", "line\nbreak")];
        let error = SecretSource::from_lookup(lookup(&vars)).err().unwrap().to_string();
        assert!(error.contains("AWS_SESSION_TOKEN"), "{error}");
    }

    #[test]
    fn without_jwt_secret_arn_there_is_no_source() {
        assert!(
            SecretSource::from_lookup(lookup(&[("AWS_SESSION_TOKEN", "t")]))
                .unwrap()
                .is_none()
        );
    }
}
