//! Reading the signing key from Secrets Manager (`JWT_SECRET_ARN`), against a
//! stand-in that speaks its JSON protocol on loopback.

use aws_sdk_secretsmanager::Client;
use shared::config::TokenConfig;
use shared::http::ApiError;
use shared::keys::Keys;
use shared::token::TokenKeys;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf";
const SECRET: &str = "k3yFromSecretsManager0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";

/// Serves GetSecretValue: the first `failures` requests get a 500, the rest `secret`.
async fn secrets_manager(secret: &'static str, failures: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut read = 0;
            // Read headers and the (small) JSON body.
            while read < buf.len() {
                let n = socket.read(&mut buf[read..]).await.unwrap_or(0);
                read += n;
                let text = String::from_utf8_lossy(&buf[..read]);
                if n == 0 || text.contains("\r\n\r\n{") && text.trim_end().ends_with('}') {
                    break;
                }
            }
            let request = String::from_utf8_lossy(&buf[..read]).to_string();
            assert!(request.contains("secretsmanager.GetSecretValue"), "{request}");
            assert!(request.contains(ARN), "{request}");
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let (status, body) = if n < failures {
                (
                    "500 Internal Server Error",
                    r#"{"__type":"InternalServiceError","message":"down"}"#.to_owned(),
                )
            } else {
                (
                    "200 OK",
                    serde_json::json!({"ARN": ARN, "Name": "jwt", "SecretString": secret}).to_string(),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (url, seen)
}

fn settings() -> TokenConfig {
    TokenConfig::settings_from_lookup(|_| None).unwrap()
}

async fn client(endpoint: &str) -> Client {
    Client::new(&shared::aws::local_config(endpoint).await)
}

#[tokio::test]
async fn the_key_is_read_once_at_start_and_signs_like_the_same_secret_given_directly() {
    let (url, seen) = secrets_manager(SECRET, 0).await;
    let keys = Keys::from_secrets_manager(client(&url).await, ARN.into(), settings())
        .await
        .unwrap();
    let direct = TokenKeys::new(settings().with_secret(SECRET.into()).unwrap());
    let token = keys.get().await.unwrap().issue_access("u-1", "alice", shared::now());
    assert!(direct.verify_access(&token).is_ok());
    keys.get().await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1, "read once per cold start");
}

#[tokio::test]
async fn while_secrets_manager_is_down_requests_get_503_and_it_is_read_once_it_is_back() {
    // Three attempts at start (the SDK retries), three for the first request: all fail.
    let (url, _) = secrets_manager(SECRET, 6).await;
    let keys = Keys::from_secrets_manager(client(&url).await, ARN.into(), settings())
        .await
        .unwrap();
    assert!(keys.loaded().is_none());
    assert_eq!(keys.get().await.err(), Some(ApiError::Unavailable));
    assert!(keys.get().await.is_ok(), "read once Secrets Manager answers");
}

#[tokio::test]
async fn an_unreachable_secrets_manager_is_503_not_a_crash() {
    let keys = Keys::from_secrets_manager(client("http://127.0.0.1:9").await, ARN.into(), settings())
        .await
        .unwrap();
    assert_eq!(keys.get().await.err(), Some(ApiError::Unavailable));
}

#[tokio::test]
async fn a_weak_secret_in_secrets_manager_stops_the_function_at_start() {
    let (url, _) = secrets_manager("too-short", 0).await;
    let result = Keys::from_secrets_manager(client(&url).await, ARN.into(), settings()).await;
    let error = result.err().expect("a weak key is a startup error").to_string();
    assert!(error.contains("JWT_SECRET") && error.contains("at least 32"), "{error}");
}
