//! A stand-in for Secrets Manager on loopback, secrets in memory, with two
//! faces: the AWS Parameters and Secrets Lambda Extension's
//! `GET /secretsmanager/get?secretId=` (and its session-token check), which the
//! functions under `make test` read their keys from, and GetSecretValue and
//! PutSecretValue of Secrets Manager's JSON protocol, which `keytool` rotates
//! them with through the real SDK.

use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The `AWS_SESSION_TOKEN` the extension face requires, as Lambda's own does.
pub const SESSION_TOKEN: &str = "stand-in-session-token";

/// The secrets, the count of reads, and how many requests still fail with a 500.
#[derive(Clone, Default)]
pub struct SecretsManager {
    secrets: Arc<Mutex<HashMap<String, String>>>,
    pub reads: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    not_ready: Arc<AtomicUsize>,
}

impl SecretsManager {
    /// A stand-in holding `secrets` (id -> value) whose first `failures` requests fail.
    pub fn new(secrets: &[(&str, &str)], failures: usize) -> Self {
        let map = secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self {
            secrets: Arc::new(Mutex::new(map)),
            reads: Arc::default(),
            failures: Arc::new(AtomicUsize::new(failures)),
            not_ready: Arc::default(),
        }
    }

    /// Makes the next `n` requests fail with a 500.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Makes the extension face answer the next `n` requests as Lambda's
    /// does while it is still starting.
    pub fn not_ready_next(&self, n: usize) {
        self.not_ready.store(n, Ordering::SeqCst);
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
        while let Some(request) = read_request(&mut socket).await {
            let (status, body) = match request.line.strip_prefix("GET /secretsmanager/get?") {
                Some(query) => self.extension(query, request.token.as_deref()),
                None => self.answer(&request.target, &request.body),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if socket.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// The extension's face: the secret as GetSecretValue returns it, to a
    /// caller with the session token.
    fn extension(&self, query: &str, token: Option<&str>) -> (&'static str, String) {
        if token != Some(SESSION_TOKEN) {
            return (
                "401 Unauthorized",
                error("Unauthorized", "missing or wrong X-Aws-Parameters-Secrets-Token"),
            );
        }
        if countdown(&self.not_ready) {
            return ("400 Bad Request", "not ready to serve traffic, please wait".into());
        }
        if countdown(&self.failures) {
            return ("500 Internal Server Error", error("InternalServiceError", "down"));
        }
        let id = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("secretId="))
            .map(|id| percent_decode_str(id).decode_utf8_lossy().into_owned())
            .unwrap_or_default();
        self.get_secret_value(&id)
    }

    /// GetSecretValue's answer, which both faces give.
    fn get_secret_value(&self, id: &str) -> (&'static str, String) {
        self.reads.fetch_add(1, Ordering::SeqCst);
        match self.value(id) {
            Some(value) => (
                "200 OK",
                json!({"ARN": id, "Name": id, "SecretString": value}).to_string(),
            ),
            None => ("400 Bad Request", error("ResourceNotFoundException", "no such secret")),
        }
    }

    /// Secrets Manager's JSON protocol, for `keytool`.
    fn answer(&self, target: &str, body: &Value) -> (&'static str, String) {
        if countdown(&self.failures) {
            return ("500 Internal Server Error", error("InternalServiceError", "down"));
        }
        let id = body["SecretId"].as_str().unwrap_or_default().to_owned();
        match target {
            "secretsmanager.GetSecretValue" => self.get_secret_value(&id),
            "secretsmanager.PutSecretValue" => {
                match (self.secrets.lock().unwrap().get_mut(&id), body["SecretString"].as_str()) {
                    (Some(value), Some(new)) => {
                        *value = new.to_owned();
                        ("200 OK", json!({"ARN": id, "Name": id}).to_string())
                    }
                    _ => ("400 Bad Request", error("ResourceNotFoundException", "no such secret")),
                }
            }
            _ => ("400 Bad Request", error("UnknownOperationException", target)),
        }
    }
}

fn error(kind: &str, message: &str) -> String {
    json!({"__type": kind, "message": message}).to_string()
}

/// Takes one from `left` if it is not zero: whether this request is one of those told to misbehave.
fn countdown(left: &AtomicUsize) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// What the stand-in reads of a request.
struct Received {
    /// The request line without the HTTP version: `GET /path?query`.
    line: String,
    /// `x-amz-target` (Secrets Manager's JSON protocol).
    target: String,
    /// `x-aws-parameters-secrets-token` (the extension).
    token: Option<String>,
    body: Value,
}

/// One HTTP/1.1 request; `None` at the end of the connection.
async fn read_request(socket: &mut TcpStream) -> Option<Received> {
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
    let line = head.lines().next().unwrap_or_default();
    Some(Received {
        line: line.rsplit_once(' ').map_or(line, |(start, _)| start).to_owned(),
        target: header("x-amz-target").unwrap_or_default(),
        token: header("x-aws-parameters-secrets-token"),
        body: serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null),
    })
}
