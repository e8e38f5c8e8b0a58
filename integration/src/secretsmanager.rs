//! A stand-in for Secrets Manager on loopback: GetSecretValue and
//! PutSecretValue of its JSON protocol, secrets in memory. The functions
//! under `make test` read their keys from it through the real SDK, and the
//! rotation tests rotate them in it with `keytool`.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The secrets, the count of reads, and how many requests still fail with a 500.
#[derive(Clone, Default)]
pub struct SecretsManager {
    secrets: Arc<Mutex<HashMap<String, String>>>,
    pub reads: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
}

impl SecretsManager {
    /// A stand-in holding `secrets` (id -> value) whose first `failures` requests fail.
    pub fn new(secrets: &[(&str, &str)], failures: usize) -> Self {
        let map = secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self {
            secrets: Arc::new(Mutex::new(map)),
            reads: Arc::default(),
            failures: Arc::new(AtomicUsize::new(failures)),
        }
    }

    /// Makes the next `n` requests fail with a 500.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Sets a secret's value, as a console edit would.
    pub fn put(&self, id: &str, value: &str) {
        self.secrets.lock().unwrap().insert(id.to_owned(), value.to_owned());
    }

    /// The value of a secret now.
    pub fn value(&self, id: &str) -> Option<String> {
        self.secrets.lock().unwrap().get(id).cloned()
    }

    /// Serves on an ephemeral loopback port in the background; returns its URL.
    pub async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(self.clone().serve(listener));
        url
    }

    /// Answers connections until the process ends.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(self.clone().connection(socket));
        }
    }

    async fn connection(self, mut socket: TcpStream) {
        while let Some((target, body)) = read_request(&mut socket).await {
            let (status, body) = self.answer(&target, &body);
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if socket.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn answer(&self, target: &str, body: &Value) -> (&'static str, String) {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return ("500 Internal Server Error", error("InternalServiceError", "down"));
        }
        let id = body["SecretId"].as_str().unwrap_or_default().to_owned();
        let mut secrets = self.secrets.lock().unwrap();
        match target {
            "secretsmanager.GetSecretValue" => {
                self.reads.fetch_add(1, Ordering::SeqCst);
                match secrets.get(&id) {
                    Some(value) => (
                        "200 OK",
                        json!({"ARN": id, "Name": id, "SecretString": value}).to_string(),
                    ),
                    None => ("400 Bad Request", error("ResourceNotFoundException", "no such secret")),
                }
            }
            "secretsmanager.PutSecretValue" => match (secrets.get_mut(&id), body["SecretString"].as_str()) {
                (Some(value), Some(new)) => {
                    *value = new.to_owned();
                    ("200 OK", json!({"ARN": id, "Name": id}).to_string())
                }
                _ => ("400 Bad Request", error("ResourceNotFoundException", "no such secret")),
            },
            _ => ("400 Bad Request", error("UnknownOperationException", target)),
        }
    }
}

fn error(kind: &str, message: &str) -> String {
    json!({"__type": kind, "message": message}).to_string()
}

/// One HTTP/1.1 request: its `x-amz-target` and JSON body; `None` at the end of the connection.
async fn read_request(socket: &mut TcpStream) -> Option<(String, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let target = header("x-amz-target").unwrap_or_default();
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    Some((target, body))
}
