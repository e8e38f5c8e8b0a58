//! The Secrets Manager secret that holds the signing keys, read through the
//! AWS Parameters and Secrets Lambda Extension (a layer in the template):
//! plain HTTP on loopback, so no function carries an SDK or a TLS stack for
//! it, and those that only verify carry neither. The extension answers only
//! in the invoke phase, never during init: `key_cache` reads at the first
//! request.

use crate::config::ConfigError;
use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

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
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            not_ready: false,
        }
    }
}

/// Where the secret is read from: the extension's endpoint for it.
pub struct SecretSource {
    http: Client<HttpConnector, Empty<Bytes>>,
    url: Uri,
    /// `AWS_SESSION_TOKEN`: the extension serves only its own execution environment.
    token: HeaderValue,
}

/// The part of the extension's answer (Secrets Manager's `GetSecretValue`) that is used.
#[derive(serde::Deserialize)]
struct SecretValue {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

impl SecretSource {
    /// The secret `secret_id` through the extension at `endpoint` (`http://host:port`).
    /// `var` names the variable it came from, for errors.
    pub fn new(endpoint: &str, var: &'static str, secret_id: &str, token: String) -> Result<Self, ConfigError> {
        let url = format!("{endpoint}/secretsmanager/get?secretId={}", query_escape(secret_id))
            .parse()
            .map_err(|e| ConfigError::Invalid(var, format!("not usable in a URL: {e}")))?;
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
        })
    }

    /// The secret the variable `var` names (`None` when it is not set), with
    /// `AWS_SESSION_TOKEN` and the extension's port from the environment.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        var: &'static str,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(arn) = lookup(var) else {
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
        Self::new(&format!("http://localhost:{port}"), var, &arn, token).map(Some)
    }

    /// The secret's string, asking again while the extension is not serving yet.
    pub async fn read(&self) -> Result<String, SecretError> {
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
            .body(Empty::new())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lookup;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/keys+v2=a-AbCdEf";

    #[test]
    fn the_secret_is_asked_of_the_extension_on_its_default_port_with_the_arn_escaped() {
        let source = SecretSource::from_lookup(
            lookup(&[("JWT_SECRET_ARN", ARN), ("AWS_SESSION_TOKEN", "t")]),
            "JWT_SECRET_ARN",
        )
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
        let source = SecretSource::from_lookup(moved, "JWT_SECRET_ARN").unwrap().unwrap();
        assert_eq!(source.url.authority().unwrap().as_str(), "localhost:8180");
        let bad = lookup(&[
            ("JWT_SECRET_ARN", ARN),
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "70000"),
        ]);
        let error = SecretSource::from_lookup(bad, "JWT_SECRET_ARN")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"), "{error}");
    }

    #[test]
    fn without_a_session_token_the_deployed_setup_is_a_startup_error() {
        let error = SecretSource::from_lookup(lookup(&[("JWT_SECRET_ARN", ARN)]), "JWT_SECRET_ARN")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("AWS_SESSION_TOKEN"), "{error}");
    }

    #[test]
    fn a_session_token_that_cannot_be_a_header_is_a_startup_error_not_a_panic_per_request() {
        let vars = [("JWT_SECRET_ARN", ARN), ("AWS_SESSION_TOKEN", "line\nbreak")];
        let error = SecretSource::from_lookup(lookup(&vars), "JWT_SECRET_ARN")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("AWS_SESSION_TOKEN"), "{error}");
    }

    #[test]
    fn without_jwt_secret_arn_there_is_no_source() {
        assert!(
            SecretSource::from_lookup(lookup(&[("AWS_SESSION_TOKEN", "t")]), "JWT_PUBLIC_KEYS_ARN")
                .unwrap()
                .is_none()
        );
    }
}
