//! A stand-in for Secrets Manager on loopback, secrets in memory, with two
//! faces: the AWS Parameters and Secrets Lambda Extension's
//! `GET /secretsmanager/get?secretId=` (and its session-token check), which the
//! functions under `make test` read their keys from, and what a rotation uses
//! of Secrets Manager's JSON protocol (GetSecretValue, PutSecretValue,
//! DescribeSecret, UpdateSecretVersionStage), which `keytool` and the
//! rotation function call through the real SDK.
//!
//! Secrets have versions and staging labels as the real service keeps them:
//! each label on one version at most; moving `AWSCURRENT` moves `AWSPREVIOUS`
//! to the version it left; a version started by a rotation has no value until
//! PutSecretValue gives it one; a version, once it has a value, never changes.

use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The `AWS_SESSION_TOKEN` the extension face requires, as Lambda's own does.
pub const SESSION_TOKEN: &str = "stand-in-session-token";
/// The label of the version everyone reads.
pub const CURRENT: &str = "AWSCURRENT";
/// The label of the version a rotation is making.
pub const PENDING: &str = "AWSPENDING";
/// The label of the version that was current before the current one.
pub const PREVIOUS: &str = "AWSPREVIOUS";

/// The secrets, the count of reads, and the failures to inject.
#[derive(Clone, Default)]
pub struct SecretsManager {
    state: Arc<Mutex<State>>,
    /// Secrets served through the extension face: the functions' reads
    /// (the SDK's calls are counted by `calls`).
    pub reads: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    not_ready: Arc<AtomicUsize>,
}

#[derive(Default)]
struct State {
    secrets: HashMap<String, Secret>,
    /// Operation name (`PutSecretValue`) -> how its next calls fail.
    faults: HashMap<String, Fault>,
    /// Operation name -> calls received (failed ones included).
    calls: HashMap<String, usize>,
}

/// The next calls of one operation: `pass` go through, then `fail` get a 500.
#[derive(Clone, Copy)]
struct Fault {
    pass: usize,
    fail: usize,
}

#[derive(Default)]
struct Secret {
    /// Oldest first.
    versions: Vec<Version>,
    rotation_enabled: bool,
}

struct Version {
    id: String,
    /// None for a version a rotation started and no PutSecretValue filled yet.
    value: Option<String>,
    stages: Vec<String>,
}

/// An HTTP status line's tail and a JSON body.
type Answer = (&'static str, String);

impl Secret {
    fn holding(value: &str) -> Self {
        Self {
            versions: vec![Version {
                id: new_version_id(),
                value: Some(value.to_owned()),
                stages: vec![CURRENT.to_owned()],
            }],
            rotation_enabled: false,
        }
    }

    fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    fn with_stage(&self, stage: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.stages.iter().any(|s| s == stage))
    }

    /// Puts `stage` on version `to` and takes it off any other; moving
    /// `AWSCURRENT` puts `AWSPREVIOUS` on the version it left.
    fn attach(&mut self, stage: &str, to: &str) {
        let from = self.with_stage(stage).map(|v| v.id.clone());
        if from.as_deref() == Some(to) {
            return;
        }
        for version in &mut self.versions {
            version.stages.retain(|s| s != stage);
            if version.id == to {
                version.stages.push(stage.to_owned());
            }
        }
        if stage == CURRENT {
            match from {
                Some(from) => self.attach(PREVIOUS, &from),
                None => self.detach(PREVIOUS, to),
            }
        }
    }

    fn detach(&mut self, stage: &str, from: &str) {
        for version in self.versions.iter_mut().filter(|v| v.id == from) {
            version.stages.retain(|s| s != stage);
        }
    }

    /// A new version holding `value` with only `AWSCURRENT`, as a console edit makes.
    fn put_current(&mut self, value: &str) {
        let id = new_version_id();
        self.versions.push(Version {
            id: id.clone(),
            value: Some(value.to_owned()),
            stages: Vec::new(),
        });
        self.attach(CURRENT, &id);
    }
}

impl SecretsManager {
    /// A stand-in holding `secrets` (id -> value, each one current version)
    /// whose first `failures` requests fail.
    pub fn new(secrets: &[(&str, &str)], failures: usize) -> Self {
        let state = State {
            secrets: secrets
                .iter()
                .map(|(id, value)| (id.to_string(), Secret::holding(value)))
                .collect(),
            ..State::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            reads: Arc::default(),
            failures: Arc::new(AtomicUsize::new(failures)),
            not_ready: Arc::default(),
        }
    }

    /// Makes the next `n` requests fail with a 500, whatever they ask.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Lets the next `pass` calls of `operation` (`"PutSecretValue"`) through,
    /// then fails the `fail` after them with a 500 (as Secrets Manager's
    /// `InternalServiceError`), each SDK attempt counting as one call.
    /// `fail_operation(op, 0, 0)` clears it.
    pub fn fail_operation(&self, operation: &str, pass: usize, fail: usize) {
        self.lock().faults.insert(operation.to_owned(), Fault { pass, fail });
    }

    /// How many calls of `operation` the JSON protocol received, failed ones included.
    pub fn calls(&self, operation: &str) -> usize {
        self.lock().calls.get(operation).copied().unwrap_or(0)
    }

    /// Makes the extension face answer the next `n` requests as Lambda's
    /// does while it is still starting.
    pub fn not_ready_next(&self, n: usize) {
        self.not_ready.store(n, Ordering::SeqCst);
    }

    /// Sets a secret's value as a new current version, as a console edit
    /// would; a secret it does not hold yet is created.
    pub fn put(&self, id: &str, value: &str) {
        self.lock().secrets.entry(id.to_owned()).or_default().put_current(value);
    }

    /// The current value of a secret.
    pub fn value(&self, id: &str) -> Option<String> {
        self.lock().secrets.get(id)?.with_stage(CURRENT)?.value.clone()
    }

    /// The value of the version of a secret that carries `stage`.
    pub fn value_at(&self, id: &str, stage: &str) -> Option<String> {
        self.lock().secrets.get(id)?.with_stage(stage)?.value.clone()
    }

    /// Every version of a secret, oldest first: its id and its labels.
    pub fn versions(&self, id: &str) -> Vec<(String, Vec<String>)> {
        self.lock()
            .secrets
            .get(id)
            .map(|s| s.versions.iter().map(|v| (v.id.clone(), v.stages.clone())).collect())
            .unwrap_or_default()
    }

    /// Starts a rotation as RotateSecret does before it invokes the rotation
    /// function: turns rotation on and adds an empty version labelled
    /// `AWSPENDING`; returns its id, the event's `ClientRequestToken`.
    /// Refused, as the real service refuses, while another version that is
    /// not current holds `AWSPENDING` (a rotation still in progress).
    pub fn begin_rotation(&self, id: &str) -> Result<String, String> {
        let mut state = self.lock();
        let secret = state.secrets.get_mut(id).ok_or("no such secret")?;
        if secret
            .with_stage(PENDING)
            .is_some_and(|v| !v.stages.iter().any(|s| s == CURRENT))
        {
            return Err("A previous rotation isn't complete. That rotation will be reattempted.".into());
        }
        let token = new_version_id();
        secret.versions.push(Version {
            id: token.clone(),
            value: None,
            stages: Vec::new(),
        });
        secret.attach(PENDING, &token);
        secret.rotation_enabled = true;
        Ok(token)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("never poisoned")
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

    /// The extension's face: the secret as GetSecretValue returns it
    /// (`secretId`, and `versionId` or `versionStage` if given; the current
    /// version otherwise), to a caller with the session token.
    fn extension(&self, query: &str, token: Option<&str>) -> Answer {
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
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
        };
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.get_secret_value(
            &param("secretId").unwrap_or_default(),
            param("versionId").as_deref(),
            param("versionStage").as_deref(),
        )
    }

    /// Secrets Manager's JSON protocol (`X-Amz-Target: secretsmanager.<Operation>`).
    fn answer(&self, target: &str, body: &Value) -> Answer {
        if countdown(&self.failures) {
            return ("500 Internal Server Error", error("InternalServiceError", "down"));
        }
        let operation = target.strip_prefix("secretsmanager.").unwrap_or(target);
        if self.injected_failure(operation) {
            return (
                "500 Internal Server Error",
                error("InternalServiceError", "injected failure"),
            );
        }
        let field = |name: &str| body[name].as_str();
        let id = field("SecretId").unwrap_or_default();
        match operation {
            "GetSecretValue" => self.get_secret_value(id, field("VersionId"), field("VersionStage")),
            "PutSecretValue" => self.put_secret_value(id, body),
            "DescribeSecret" => self.describe_secret(id),
            "UpdateSecretVersionStage" => self.update_secret_version_stage(
                id,
                field("VersionStage").unwrap_or_default(),
                field("MoveToVersionId"),
                field("RemoveFromVersionId"),
            ),
            _ => ("400 Bad Request", error("UnknownOperationException", target)),
        }
    }

    /// Counts a call of `operation`; whether it is one told to fail.
    fn injected_failure(&self, operation: &str) -> bool {
        let mut state = self.lock();
        *state.calls.entry(operation.to_owned()).or_default() += 1;
        match state.faults.get_mut(operation) {
            Some(fault) if fault.pass > 0 => {
                fault.pass -= 1;
                false
            }
            Some(fault) if fault.fail > 0 => {
                fault.fail -= 1;
                true
            }
            _ => false,
        }
    }

    /// GetSecretValue: the version `version_id` (which must carry `stage` if
    /// both are given), else the one labelled `stage`, else the current one.
    fn get_secret_value(&self, id: &str, version_id: Option<&str>, stage: Option<&str>) -> Answer {
        let state = self.lock();
        let Some(secret) = state.secrets.get(id) else {
            return no_secret();
        };
        let version = match version_id {
            Some(version_id) => secret
                .version(version_id)
                .filter(|v| stage.is_none_or(|stage| v.stages.iter().any(|s| s == stage))),
            None => secret.with_stage(stage.unwrap_or(CURRENT)),
        };
        match version.and_then(|v| Some((v, v.value.as_ref()?))) {
            Some((version, value)) => (
                "200 OK",
                json!({
                    "ARN": id,
                    "Name": id,
                    "VersionId": version.id,
                    "SecretString": value,
                    "VersionStages": version.stages,
                })
                .to_string(),
            ),
            None => {
                let which = match (version_id, stage) {
                    (Some(version_id), _) => format!("VersionId: {version_id}"),
                    (None, stage) => format!("staging label: {}", stage.unwrap_or(CURRENT)),
                };
                (
                    "400 Bad Request",
                    error(
                        "ResourceNotFoundException",
                        &format!("Secrets Manager can't find the specified secret value for {which}"),
                    ),
                )
            }
        }
    }

    /// PutSecretValue: a new version `ClientRequestToken` (the same token and
    /// value again changes nothing; another value is refused) labelled
    /// `VersionStages` (default `AWSCURRENT`), each label taken off any other version.
    fn put_secret_value(&self, id: &str, body: &Value) -> Answer {
        let Some(value) = body["SecretString"].as_str() else {
            return invalid("You must provide either SecretString or SecretBinary.");
        };
        let token = body["ClientRequestToken"]
            .as_str()
            .map_or_else(new_version_id, str::to_owned);
        let stages: Vec<String> = match body["VersionStages"].as_array() {
            Some(stages) => stages.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
            None => vec![CURRENT.to_owned()],
        };
        let mut state = self.lock();
        let Some(secret) = state.secrets.get_mut(id) else {
            return no_secret();
        };
        match secret.versions.iter_mut().find(|v| v.id == token) {
            Some(version) => match &version.value {
                Some(existing) if existing == value => return put_answer(id, version),
                Some(_) => {
                    return (
                        "400 Bad Request",
                        error(
                            "ResourceExistsException",
                            "You can't modify an existing version, you can only create a new version.",
                        ),
                    );
                }
                None => version.value = Some(value.to_owned()),
            },
            None => secret.versions.push(Version {
                id: token.clone(),
                value: Some(value.to_owned()),
                stages: Vec::new(),
            }),
        }
        for stage in &stages {
            secret.attach(stage, &token);
        }
        put_answer(id, secret.version(&token).expect("just written"))
    }

    /// DescribeSecret: whether rotation is on, and the labels of every version that has one.
    fn describe_secret(&self, id: &str) -> Answer {
        let state = self.lock();
        let Some(secret) = state.secrets.get(id) else {
            return no_secret();
        };
        let stages: serde_json::Map<String, Value> = secret
            .versions
            .iter()
            .filter(|v| !v.stages.is_empty())
            .map(|v| (v.id.clone(), json!(v.stages)))
            .collect();
        (
            "200 OK",
            json!({
                "ARN": id,
                "Name": id,
                "RotationEnabled": secret.rotation_enabled,
                "VersionIdsToStages": stages,
            })
            .to_string(),
        )
    }

    /// UpdateSecretVersionStage: moves `stage` to `move_to`, or takes it off
    /// `remove_from`. A label attached elsewhere moves only when
    /// `remove_from` names the version that has it; `AWSCURRENT` can be
    /// moved, never just removed.
    fn update_secret_version_stage(
        &self,
        id: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Answer {
        let mut state = self.lock();
        let Some(secret) = state.secrets.get_mut(id) else {
            return no_secret();
        };
        if stage.is_empty() {
            return invalid("VersionStage is required.");
        }
        if let Some(unknown) = [move_to, remove_from]
            .into_iter()
            .flatten()
            .find(|v| secret.version(v).is_none())
        {
            return invalid(&format!("Not a valid version: {unknown}"));
        }
        let holder = secret.with_stage(stage).map(|v| v.id.clone());
        match (move_to, remove_from) {
            (None, None) => return invalid("Specify MoveToVersionId, RemoveFromVersionId or both."),
            (_, Some(from)) if holder.as_deref() != Some(from) => {
                return invalid(&format!("The staging label {stage} is not attached to version {from}."));
            }
            (Some(to), None) if holder.as_deref().is_some_and(|h| h != to) => {
                return invalid(&format!(
                    "The parameter RemoveFromVersionId can't be empty. Staging label {stage} is currently \
                     attached to version {}, so you must explicitly reference that version in RemoveFromVersionId.",
                    holder.unwrap_or_default()
                ));
            }
            (None, Some(_)) if stage == CURRENT => {
                return invalid("You can't remove the staging label AWSCURRENT: move it to another version instead.");
            }
            (Some(to), _) => secret.attach(stage, to),
            (None, Some(from)) => secret.detach(stage, from),
        }
        ("200 OK", json!({"ARN": id, "Name": id}).to_string())
    }
}

fn put_answer(id: &str, version: &Version) -> Answer {
    (
        "200 OK",
        json!({"ARN": id, "Name": id, "VersionId": version.id, "VersionStages": version.stages}).to_string(),
    )
}

fn no_secret() -> Answer {
    (
        "400 Bad Request",
        error(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
    )
}

fn invalid(message: &str) -> Answer {
    ("400 Bad Request", error("InvalidParameterException", message))
}

fn new_version_id() -> String {
    uuid::Uuid::new_v4().to_string()
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
