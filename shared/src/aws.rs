//! The AWS SDK configuration every client is built from, once per cold start.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use std::time::Duration;

/// Deliberate timeouts, well under the function timeout, so that a slow or
/// dead dependency becomes a quick 503.
fn loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
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
/// `AWS_ENDPOINT_URL_<SERVICE>`): no network I/O.
pub async fn config_from_env() -> SdkConfig {
    loader().load().await
}

/// The configuration for a local stand-in at `endpoint` (DynamoDB Local, a
/// test server), with the dummy region and credentials it accepts and the
/// same timeouts as in production.
pub async fn local_config(endpoint: &str) -> SdkConfig {
    loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        // DynamoDB Local accepts any key made of letters and digits only.
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "dynamodblocal",
            "dynamodblocal",
            None,
            None,
            "local",
        ))
        .load()
        .await
}
