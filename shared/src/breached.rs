//! Whether a new password is in a known breach, by the Have I Been Pwned
//! range API with k-anonymity: only the first 5 hex characters of the
//! password's SHA-1 leave the function, with `Add-Padding: true` so that the
//! answer's size does not tell the prefix either; the ~800 to 1,000
//! `SUFFIX:COUNT` lines that come back are compared here (padding lines have
//! a count of 0 and never match).
//!
//! A short deadline, and a check that cannot be made (timeout, refusal, an
//! answer that is not a range) lets the password through, logged: setting a
//! password must not depend on a third party's availability.
//!
//! `BREACHED_PASSWORD_CHECK` is `off`, `warn` (log and accept) or `block`
//! (the default: `400 breached_password`); `BREACHED_PASSWORD_ENDPOINT` the
//! API (`make dev` and the tests point it at the project's own range server,
//! `integration/src/bin/pwned.rs`); `BREACHED_PASSWORD_TIMEOUT_MS` the deadline.
//!
//! HTTPS needs the `breached` feature (hyper-rustls over the rustls and
//! aws-lc-rs the AWS SDK already links, with the system's root CAs, read at
//! the first check of an instance); without it only an `http://` endpoint works.

use crate::config::{ConfigError, whole_number};
use crate::credentials::Password;
use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha1::{Digest, Sha1};
use std::sync::OnceLock;
use std::time::Duration;

/// Have I Been Pwned's Pwned Passwords API.
pub const DEFAULT_ENDPOINT: &str = "https://api.pwnedpasswords.com";

/// The whole check's deadline unless `BREACHED_PASSWORD_TIMEOUT_MS` says
/// otherwise: a range is served from Cloudflare's cache, typically in tens of
/// milliseconds from an AWS region, and a first request's TCP and TLS
/// handshakes add two or three round trips; 800 ms leaves room for a slow
/// answer while a stalled API costs a register under a second.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(800);

/// The largest answer read: a padded range is ~40 KB.
const MAX_ANSWER: usize = 1 << 20;

/// How long an idle connection to the API is kept for the next check: a
/// warm function skips the handshakes, and a connection a frozen instance
/// left behind is not trusted for long.
const IDLE: Duration = Duration::from_secs(30);

/// What is done with a breached password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No check, no request.
    Off,
    /// Checked, logged, accepted.
    Warn,
    /// Checked and refused: `400 breached_password`.
    Block,
}

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not in the range (or not checked: `Mode::Off`).
    Clean,
    /// In the range, seen `count` times in breaches.
    Breached { count: u64 },
    /// The check could not be made (timeout, error): the caller goes on as if clean.
    Unknown,
}

/// A password refused because it is in a known breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("This password has appeared in a data breach ({count} times), so attackers try it first: choose another.")]
pub struct Breached {
    pub count: u64,
}

#[cfg(feature = "breached")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "breached"))]
type Connector = HttpConnector;

/// The breached-password check of this function, built once per cold start.
pub struct BreachedCheck {
    pub mode: Mode,
    /// Where `/range/<prefix>` is asked, without a trailing `/`.
    pub endpoint: String,
    /// The whole check's deadline, handshakes included.
    pub timeout: Duration,
    /// Built at the first check, so an instance that never checks (or whose
    /// mode is `off`) never reads the system's root CAs.
    client: OnceLock<Result<Client<Connector, Empty<Bytes>>, String>>,
}

impl BreachedCheck {
    /// A check in `mode` against `endpoint` (`https://host` or `http://host:port`, optionally a path).
    pub fn new(mode: Mode, endpoint: &str, timeout: Duration) -> Result<Self, ConfigError> {
        let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
        let invalid = |why: String| ConfigError::Invalid("BREACHED_PASSWORD_ENDPOINT", why);
        let uri: Uri = format!("{endpoint}/range/00000")
            .parse()
            .map_err(|e| invalid(format!("not a URL ({e}): {endpoint:?}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "breached") || mode == Mode::Off => {}
            Some("https") => {
                return Err(invalid(
                    "https needs shared's `breached` feature, which this function was built without".into(),
                ));
            }
            _ => {
                return Err(invalid(format!(
                    "expected an http:// or https:// URL, got {endpoint:?}"
                )));
            }
        }
        if uri.host().is_none() {
            return Err(invalid(format!("no host in {endpoint:?}")));
        }
        Ok(Self {
            mode,
            endpoint,
            timeout,
            client: OnceLock::new(),
        })
    }

    /// No check at all (`Mode::Off`): for tools and tests that set passwords without a range server.
    pub fn off() -> Self {
        Self::new(Mode::Off, DEFAULT_ENDPOINT, DEFAULT_TIMEOUT).expect("off accepts the default endpoint in any build")
    }

    /// The check from the environment: `BREACHED_PASSWORD_CHECK`,
    /// `BREACHED_PASSWORD_ENDPOINT`, `BREACHED_PASSWORD_TIMEOUT_MS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The check through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mode = match set("BREACHED_PASSWORD_CHECK").map(|v| v.trim().to_ascii_lowercase()) {
            None => Mode::Block,
            Some(v) if v == "off" => Mode::Off,
            Some(v) if v == "warn" => Mode::Warn,
            Some(v) if v == "block" => Mode::Block,
            Some(v) => {
                return Err(ConfigError::Invalid(
                    "BREACHED_PASSWORD_CHECK",
                    format!("expected off, warn or block, got {v:?}"),
                ));
            }
        };
        let timeout = whole_number(
            &lookup,
            "BREACHED_PASSWORD_TIMEOUT_MS",
            "milliseconds",
            DEFAULT_TIMEOUT.as_millis() as u64,
            10..=10_000,
        )?;
        let endpoint = set("BREACHED_PASSWORD_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        Self::new(mode, &endpoint, Duration::from_millis(timeout))
    }

    /// Asks the range API about `password` (its normalised form), unless the
    /// mode is `off`. Never fails: a check that cannot be made is `Unknown`, logged.
    pub async fn check(&self, password: &Password) -> Verdict {
        if self.mode == Mode::Off {
            return Verdict::Clean;
        }
        let digest = sha1_hex(password.expose());
        let (prefix, suffix) = digest.split_at(5);
        let answer = tokio::time::timeout(self.timeout, self.range_with_one_retry(prefix)).await;
        let found = match answer {
            Ok(Ok(body)) => count_in_range(&body, suffix),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        match found {
            Ok(Some(count)) => Verdict::Breached { count },
            Ok(None) => Verdict::Clean,
            Err(error) => {
                crate::metrics::count(crate::metrics::Metric::BreachedCheckFailed);
                tracing::warn!(
                    endpoint = %self.endpoint,
                    %error,
                    "breached-password check failed: the password is accepted unchecked (fail open)"
                );
                Verdict::Unknown
            }
        }
    }

    /// Applies the mode to the check: `Err` only when `block` finds the
    /// password; `warn` logs a breached password and lets it through.
    pub async fn enforce(&self, password: &Password) -> Result<(), Breached> {
        match self.check(password).await {
            Verdict::Breached { count } if self.mode == Mode::Block => Err(Breached { count }),
            Verdict::Breached { count } => {
                tracing::warn!(count, "a breached password was accepted (BREACHED_PASSWORD_CHECK=warn)");
                Ok(())
            }
            Verdict::Clean | Verdict::Unknown => Ok(()),
        }
    }

    /// One range, asked again once if the first request cannot be sent or
    /// answered (an idle connection the API closed while the instance was
    /// frozen); an answer the API did give is not asked again.
    async fn range_with_one_retry(&self, prefix: &str) -> Result<String, String> {
        match self.range(prefix).await {
            Err(Failure::Request(_)) => self.range(prefix).await,
            answer => answer,
        }
        .map_err(|(Failure::Request(why) | Failure::Answer(why))| why)
    }

    /// `GET <endpoint>/range/<prefix>` with padding, its body as text.
    async fn range(&self, prefix: &str) -> Result<String, Failure> {
        let client = self
            .client
            .get_or_init(|| client(self.endpoint.starts_with("https:"), self.timeout))
            .as_ref()
            .map_err(|why| Failure::Answer(why.clone()))?;
        let request = Request::get(format!("{}/range/{prefix}", self.endpoint))
            .header("add-padding", "true")
            .header(http::header::USER_AGENT, "lambda-jwt-auth")
            .body(Empty::new())
            .map_err(|e| Failure::Answer(format!("cannot build the request: {e}")))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| Failure::Request(format!("request failed: {e:?}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::Answer(format!("the API answered {status}")));
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| Failure::Answer(format!("the answer broke off or exceeded {MAX_ANSWER} bytes: {e}")))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| Failure::Answer("the answer is not text".to_owned()))
    }
}

/// Why a range could not be had.
enum Failure {
    /// No answer: worth one more try.
    Request(String),
    /// An answer that is no range, or no client at all.
    Answer(String),
}

/// The HTTP client; for `https` (feature `breached`) trusting the system's root CAs.
fn client(https: bool, timeout: Duration) -> Result<Client<Connector, Empty<Bytes>>, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(timeout));
    let connector = connector(http, https)?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .pool_max_idle_per_host(1)
        .build(connector))
}

#[cfg(feature = "breached")]
fn connector(mut http: HttpConnector, https: bool) -> Result<Connector, String> {
    use std::sync::Arc;
    http.enforce_http(false);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if https {
        builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("no usable root CA in the system's store: {e}"))?
    } else {
        // An http:// endpoint never uses TLS: no root CAs to read.
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder.with_tls_config(tls)
    };
    Ok(builder.https_or_http().enable_http1().wrap_connector(http))
}

#[cfg(not(feature = "breached"))]
fn connector(http: HttpConnector, _https: bool) -> Result<Connector, String> {
    Ok(http)
}

/// The SHA-1 of `password` in upper-case hex, as the range API indexes it.
pub fn sha1_hex(password: &str) -> String {
    Sha1::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// How often `suffix` (the 35 hex characters after the prefix) was seen,
/// from a range answer: lines of `SUFFIX:COUNT` ending in CRLF or LF.
/// `None` when it is not there or only as padding (a count of 0); an error
/// when the answer is not a range at all (a proxy's page, say).
pub fn count_in_range(body: &str, suffix: &str) -> Result<Option<u64>, String> {
    let mut found = None;
    for (n, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let entry = line
            .split_once(':')
            .filter(|(s, _)| s.len() == 35 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|(s, count)| Some((s, count.trim().parse::<u64>().ok()?)));
        let Some((listed, count)) = entry else {
            return Err(format!(
                "line {} of the answer is not SUFFIX:COUNT: {:?}",
                n + 1,
                line.chars().take(60).collect::<String>()
            ));
        };
        if count > 0 && listed.eq_ignore_ascii_case(suffix) {
            found = Some(count);
        }
    }
    Ok(found)
}

/// A range server on loopback for this crate's tests (the services' too).
#[cfg(test)]
pub(crate) mod test_server {
    use super::sha1_hex;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A range server on loopback answering every request with `body` after
    /// `delay`; it keeps each request's head.
    pub(crate) async fn range_server(body: String, delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let (body, seen) = (body.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                    tokio::time::sleep(delay).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        (endpoint, heads)
    }

    /// A check in `mode` against `endpoint` with a deadline of `timeout_ms`.
    pub(crate) fn check_at(mode: super::Mode, endpoint: &str, timeout_ms: u64) -> super::BreachedCheck {
        super::BreachedCheck::new(mode, endpoint, Duration::from_millis(timeout_ms)).unwrap()
    }

    /// The range of `password`'s prefix: its own suffix seen `count` times, among others and padding.
    pub(crate) fn range_holding(password: &str, count: u64) -> String {
        let suffix = &sha1_hex(password)[5..];
        format!(
            "0018A45C4D1DEF81644B54AB7F969B88D65:4\r\n{suffix}:{count}\r\nFFFFA45C4D1DEF81644B54AB7F969B88D65:0\r\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lookup;
    use test_server::{range_holding, range_server};

    fn pw(raw: &str) -> Password {
        Password::parse(raw).unwrap()
    }

    #[test]
    fn the_digest_is_upper_case_sha1_hex() {
        // The range API's own example: "password" is 5BAA6...
        assert_eq!(sha1_hex("password"), "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8");
        assert_eq!(sha1_hex("P@ssw0rd").len(), 40);
    }

    const SUFFIX: &str = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";

    #[test]
    fn a_listed_suffix_gives_its_count_in_crlf_or_lf_answers() {
        let crlf = format!(
            "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n{SUFFIX}:9545824\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2"
        );
        assert_eq!(count_in_range(&crlf, SUFFIX), Ok(Some(9_545_824)));
        let lf = crlf.replace("\r\n", "\n") + "\n";
        assert_eq!(count_in_range(&lf, SUFFIX), Ok(Some(9_545_824)));
        assert_eq!(count_in_range(&lf, &SUFFIX.to_lowercase()), Ok(Some(9_545_824)));
    }

    #[test]
    fn padding_lines_with_a_count_of_0_are_ignored() {
        let padded = format!("0018A45C4D1DEF81644B54AB7F969B88D65:3\r\n{SUFFIX}:0\r\n");
        assert_eq!(count_in_range(&padded, SUFFIX), Ok(None));
    }

    #[test]
    fn a_suffix_not_listed_is_clean_and_an_empty_range_too() {
        let body = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n";
        assert_eq!(count_in_range(body, SUFFIX), Ok(None));
        assert_eq!(count_in_range("", SUFFIX), Ok(None));
    }

    #[test]
    fn an_answer_that_is_not_a_range_is_an_error_not_a_clean_verdict() {
        for body in [
            "<html><body>Sign in to the Wi-Fi</body></html>",
            "1E4C9B93F3F06:12",
            &format!("{SUFFIX}:many"),
            SUFFIX,
        ] {
            assert!(count_in_range(body, SUFFIX).is_err(), "{body}");
        }
    }

    #[test]
    fn the_defaults_block_against_have_i_been_pwned_within_800_ms() {
        let check = BreachedCheck::from_lookup(lookup(&[]));
        #[cfg(not(feature = "breached"))]
        assert!(check.is_err(), "https needs the feature");
        #[cfg(feature = "breached")]
        {
            let check = check.unwrap();
            assert_eq!(check.mode, Mode::Block);
            assert_eq!(check.endpoint, "https://api.pwnedpasswords.com");
            assert_eq!(check.timeout, Duration::from_millis(800));
        }
    }

    #[test]
    fn mode_endpoint_and_deadline_come_from_the_environment() {
        let check = BreachedCheck::from_lookup(lookup(&[
            ("BREACHED_PASSWORD_CHECK", "Warn"),
            ("BREACHED_PASSWORD_ENDPOINT", "http://127.0.0.1:4010/"),
            ("BREACHED_PASSWORD_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(
            (check.mode, check.endpoint.as_str(), check.timeout),
            (Mode::Warn, "http://127.0.0.1:4010", Duration::from_millis(250))
        );
        let off = BreachedCheck::from_lookup(lookup(&[("BREACHED_PASSWORD_CHECK", "off")])).unwrap();
        assert_eq!(off.mode, Mode::Off, "off needs no HTTPS, whatever the build");
    }

    #[test]
    fn bad_settings_are_startup_errors_naming_the_variable() {
        for (name, value) in [
            ("BREACHED_PASSWORD_CHECK", "yes"),
            ("BREACHED_PASSWORD_ENDPOINT", "ftp://example.com"),
            ("BREACHED_PASSWORD_ENDPOINT", "not a url"),
            ("BREACHED_PASSWORD_TIMEOUT_MS", "0"),
            ("BREACHED_PASSWORD_TIMEOUT_MS", "1s"),
        ] {
            let mut settings = vec![(name, value)];
            if name != "BREACHED_PASSWORD_ENDPOINT" {
                settings.push(("BREACHED_PASSWORD_ENDPOINT", "http://127.0.0.1:1"));
            }
            let err = BreachedCheck::from_lookup(lookup(&settings))
                .err()
                .unwrap_or_else(|| panic!("{name}={value} accepted"));
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    fn check(mode: Mode, endpoint: &str, timeout_ms: u64) -> BreachedCheck {
        BreachedCheck::new(mode, endpoint, Duration::from_millis(timeout_ms)).unwrap()
    }

    #[tokio::test]
    async fn only_the_five_character_prefix_is_sent_with_padding_asked_for() {
        let (endpoint, heads) = range_server(range_holding("password123", 7), Duration::ZERO).await;
        let verdict = check(Mode::Block, &endpoint, 2000).check(&pw("password123")).await;
        assert_eq!(verdict, Verdict::Breached { count: 7 });
        let heads = heads.lock().unwrap();
        let digest = sha1_hex("password123");
        assert!(
            heads[0].starts_with(&format!("GET /range/{} HTTP/1.1\r\n", &digest[..5])),
            "{}",
            heads[0]
        );
        assert!(
            heads[0].to_ascii_lowercase().contains("\r\nadd-padding: true\r\n"),
            "{}",
            heads[0]
        );
        assert!(!heads[0].contains(&digest[5..]), "the suffix never leaves");
    }

    #[tokio::test]
    async fn block_refuses_a_breached_password_and_warn_lets_it_through() {
        let (endpoint, _) = range_server(range_holding("letmein2024", 31), Duration::ZERO).await;
        assert_eq!(
            check(Mode::Block, &endpoint, 2000).enforce(&pw("letmein2024")).await,
            Err(Breached { count: 31 })
        );
        assert_eq!(
            check(Mode::Warn, &endpoint, 2000).enforce(&pw("letmein2024")).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_password_only_in_the_padding_or_absent_is_clean() {
        let (endpoint, _) = range_server(range_holding("only as padding", 0), Duration::ZERO).await;
        let check = check(Mode::Block, &endpoint, 2000);
        assert_eq!(check.check(&pw("only as padding")).await, Verdict::Clean);
        assert_eq!(check.check(&pw("correct horse battery staple")).await, Verdict::Clean);
        assert_eq!(check.enforce(&pw("only as padding")).await, Ok(()));
    }

    #[tokio::test]
    async fn a_slow_api_fails_open_at_the_deadline() {
        let (endpoint, _) = range_server(range_holding("password123", 7), Duration::from_secs(5)).await;
        let check = check(Mode::Block, &endpoint, 100);
        let started = std::time::Instant::now();
        assert_eq!(check.check(&pw("password123")).await, Verdict::Unknown);
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            check.enforce(&pw("password123")).await,
            Ok(()),
            "blocked only when known"
        );
    }

    #[tokio::test]
    async fn an_unreachable_or_garbled_api_fails_open() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        assert_eq!(
            check(Mode::Block, &closed, 2000).check(&pw("password123")).await,
            Verdict::Unknown
        );
        let (garbled, _) = range_server("<html>captive portal</html>".into(), Duration::ZERO).await;
        assert_eq!(
            check(Mode::Block, &garbled, 2000).check(&pw("password123")).await,
            Verdict::Unknown
        );
    }

    #[tokio::test]
    async fn off_asks_nothing() {
        let (endpoint, heads) = range_server(range_holding("password123", 7), Duration::ZERO).await;
        assert_eq!(
            check(Mode::Off, &endpoint, 2000).check(&pw("password123")).await,
            Verdict::Clean
        );
        assert!(heads.lock().unwrap().is_empty());
    }

    #[cfg(feature = "breached")]
    #[test]
    fn an_https_client_trusts_the_systems_root_cas() {
        let started = std::time::Instant::now();
        let built = client(true, DEFAULT_TIMEOUT);
        // Paid once per instance, at its first check (`--nocapture` shows it).
        println!("root CAs read and client built in {:?}", started.elapsed());
        assert!(built.is_ok(), "{:?}", built.err());
    }

    #[cfg(feature = "breached")]
    #[tokio::test]
    async fn an_https_endpoint_that_does_not_speak_tls_fails_open() {
        let (endpoint, heads) = range_server(range_holding("password123", 7), Duration::ZERO).await;
        let https = endpoint.replace("http://", "https://");
        assert_eq!(
            check(Mode::Block, &https, 300).check(&pw("password123")).await,
            Verdict::Unknown
        );
        assert!(heads.lock().unwrap().is_empty(), "no request in the clear");
    }

    #[tokio::test]
    async fn an_nfd_password_is_looked_up_by_its_normalised_form() {
        let nfc = "cr\u{e8}me br\u{fb}l\u{e9}e";
        let (endpoint, _) = range_server(range_holding(nfc, 2), Duration::ZERO).await;
        let typed = pw("cre\u{300}me bru\u{302}le\u{301}e");
        assert_eq!(
            check(Mode::Block, &endpoint, 2000).check(&typed).await,
            Verdict::Breached { count: 2 }
        );
    }
}
