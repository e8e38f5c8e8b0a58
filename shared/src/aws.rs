//! The AWS SDK configuration every client is built from, once per cold start.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The root CAs AWS service endpoints chain to (Amazon Trust Services).
const AMAZON_ROOTS: &[u8] = include_bytes!("amazon-roots.pem");

/// HTTPS that trusts Amazon's root CAs only. Cheaper at cold start than the
/// system store (reading and decoding ~150 system certificates took ~3.4 ms
/// of a DynamoDB function's ~5.5 ms init here), and no other CA can vouch for
/// an AWS endpoint. An HTTPS stand-in with its own certificate is refused.
fn https_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS);
    let tls = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store of PEM certificates is a valid TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https()
}

/// Deliberate timeouts, well under the function timeout, so that a slow or
/// dead dependency becomes a quick 503.
fn loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
}

/// The configuration from the standard AWS environment (region, credentials,
/// `AWS_ENDPOINT_URL_<SERVICE>`): no network I/O. Loaded once per process and
/// shared, so the key reader and the store of one function do not load it twice.
pub async fn config_from_env() -> SdkConfig {
    static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();
    CONFIG.get_or_init(|| loader().load()).await.clone()
}

/// The configuration for a local stand-in at `endpoint` (DynamoDB Local,
/// aws-ses-v2-local, a test server), with the dummy region and credentials it accepts and the
/// same timeouts as in production.
pub async fn local_config(endpoint: &str) -> SdkConfig {
    loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        // DynamoDB Local accepts any key made of letters and digits only.
        .credentials_provider(aws_credential_types::Credentials::new(
            "dynamodblocal",
            "dynamodblocal",
            None,
            None,
            "local",
        ))
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};

    /// SHA-256 fingerprints as Amazon Trust Services publishes them.
    const PUBLISHED: [&str; 5] = [
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services Root CA - G2
    ];

    #[test]
    fn the_sdk_trusts_exactly_amazons_five_root_cas() {
        let fingerprints: Vec<String> = CertificateDer::pem_slice_iter(AMAZON_ROOTS)
            .map(|der| {
                let der = der.expect("the bundled roots are valid PEM");
                Sha256::digest(&der).iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect();
        assert_eq!(fingerprints, PUBLISHED);
    }
}
