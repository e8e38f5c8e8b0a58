//! What the store and end-to-end tests share: where the local stack is, a
//! fresh table per test, and a small HTTP client for the API.

/// The software authenticator of the passkey tests.
pub use passkeys::testing as authenticator;
pub mod secretsmanager;

use aws_sdk_dynamodb::Client;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use shared::service::register::PasswordRules;
use shared::store::dynamo::{DynamoStore, create_table, local_client};

/// A variable `make test` sets; a test run without it fails loudly instead of skipping.
pub fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: these tests need the local stack, run them with `make test`"))
}

/// A client for the DynamoDB Local that `make test` started.
pub async fn dynamodb() -> Client {
    local_client(&required_env("DYNAMODB_ENDPOINT")).await
}

/// A store on a table of its own, so tests never see each other's items.
pub async fn fresh_store() -> (DynamoStore, Client) {
    let client = dynamodb().await;
    let table = format!("test-{}", uuid::Uuid::new_v4());
    create_table(&client, &table).await.unwrap_or_else(|e| {
        panic!(
            "DynamoDB Local at {} is unreachable: {e}",
            required_env("DYNAMODB_ENDPOINT")
        )
    });
    (DynamoStore::new(client.clone(), table), client)
}

/// The mail aws-ses-v2-local (at `SES_ENDPOINT`) received for `address`
/// (compared without case), oldest first: each `{"subject", "body": {"text"}, ...}`.
pub async fn mails_to(address: &str) -> Vec<Value> {
    let url = format!("{}/store", required_env("SES_ENDPOINT"));
    let store: Value = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("the SES stand-in at {url} is unreachable: {e}"))
        .json()
        .await
        .expect("the store is JSON");
    let wanted = address.to_lowercase();
    store["emails"]
        .as_array()
        .expect("a list of emails")
        .iter()
        .filter(|m| {
            m["destination"]["to"].as_array().is_some_and(|to| {
                to.iter()
                    .any(|t| t.as_str().is_some_and(|t| t.to_lowercase().contains(&wanted)))
            })
        })
        .cloned()
        .collect()
}

/// The text of the last mail to `address`, waiting a little for it.
pub async fn last_mail_to(address: &str) -> String {
    for _ in 0..50 {
        if let Some(mail) = mails_to(address).await.last() {
            return mail["body"]["text"].as_str().expect("a text body").to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no mail to {address}");
}

/// The verification code in the last mail to `address`: its only run of six digits.
pub async fn code_mailed_to(address: &str) -> String {
    let text = last_mail_to(address).await;
    let runs: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .collect();
    let codes: Vec<&&str> = runs.iter().filter(|r| r.len() == 6).collect();
    assert_eq!(codes.len(), 1, "one run of six digits in {text:?}");
    assert!(runs.iter().all(|r| r.len() < 6 || r.len() == 6), "{text:?}");
    codes[0].to_string()
}

/// The reset token in the last mail to `address`, from its `<APP_URL>/reset-password#token=` link.
pub async fn reset_token_mailed_to(address: &str) -> String {
    let text = last_mail_to(address).await;
    let (_, rest) = text
        .split_once("/reset-password#token=")
        .unwrap_or_else(|| panic!("no reset link in {text:?}"));
    rest.split_whitespace().next().expect("a token").to_owned()
}

/// A fresh address nobody has used.
pub fn new_address() -> String {
    format!("u{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Times `POST /password/forgot` through the handler in process on `store`:
/// `samples` verified accounts (one each, for the hourly mail limit) and as
/// many unknown addresses, interleaved after one warm-up, so drift hits both
/// alike. Returns the medians (verified, unknown) and the verified addresses.
pub async fn forgot_timing<M: shared::mail::Mailer>(
    store: &DynamoStore,
    outbox: &shared::Outbox<M>,
    samples: usize,
) -> (std::time::Duration, std::time::Duration, Vec<String>) {
    use shared::store::UserStore;
    let mut known = Vec::new();
    for i in 0..samples {
        let user = shared::testing::user(&format!("u-{i}"), &format!("known{i}"));
        store.create_user(&user).await.expect("the store answers");
        let address = new_address();
        shared::testing::verify_address(store, &user, &address).await;
        known.push(address);
    }
    let attempt = |address: String| async move {
        let started = std::time::Instant::now();
        let req = request("POST", "/password/forgot", serde_json::json!({ "email": address }));
        let answer = status_and_json(
            &password_reset::handle(store, outbox, &PasswordRules::default(), req)
                .await
                .expect("an answer"),
        );
        assert_eq!(answer.0, 202, "{}", answer.1);
        started.elapsed()
    };
    attempt(new_address()).await;
    let (mut verified, mut unknown) = (Vec::new(), Vec::new());
    for address in &known {
        verified.push(attempt(address.clone()).await);
        unknown.push(attempt(new_address()).await);
    }
    let median = |mut xs: Vec<std::time::Duration>| {
        xs.sort();
        xs[xs.len() / 2]
    };
    (median(verified), median(unknown), known)
}

/// The API served by `cargo lambda watch`.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    client_ip: String,
}

/// One HTTP answer, with its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// A header as text, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// A string field of the JSON body.
    pub fn field(&self, name: &str) -> String {
        self.json[name]
            .as_str()
            .unwrap_or_else(|| panic!("no string {name:?} in {}", self.text))
            .to_owned()
    }
}

impl Api {
    /// The API at `E2E_BASE_URL`, as a client bound to a loopback address of
    /// its own (never 127.0.0.1, which is not counted): the stack's front door
    /// (`src/bin/front.rs`) tells the functions that address, so each
    /// client's attempts count against its own address as they would deployed.
    pub fn from_env() -> Self {
        let id = uuid::Uuid::new_v4();
        let b = id.as_bytes();
        let ip = std::net::Ipv4Addr::new(127, b[0].max(1), b[1], b[2].max(2));
        let http = Self::builder().local_address(std::net::IpAddr::V4(ip));
        Self::with(http, ip.to_string())
    }

    /// The API at `E2E_BASE_URL`, as a client at any `ip` (IPv6 too): named
    /// in `X-Forwarded-For`, whose first address the functions take for a
    /// loopback source (`http::origin`), as the front door's own.
    pub fn from(ip: impl Into<String>) -> Self {
        let client_ip = ip.into();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            client_ip.parse().expect("an address is a header value"),
        );
        Self::with(Self::builder().default_headers(headers), client_ip)
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(30))
    }

    fn with(http: reqwest::ClientBuilder, client_ip: String) -> Self {
        Self {
            base: required_env("E2E_BASE_URL"),
            http: http.build().expect("client builds"),
            client_ip,
        }
    }

    /// The address the functions see this client at.
    pub fn client_ip(&self) -> &str {
        &self.client_ip
    }

    /// Sends any request: `body` as raw bytes, `headers` as raw name/value pairs.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &[u8])], body: Option<Vec<u8>>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(
                *name,
                reqwest::header::HeaderValue::from_bytes(value).expect("test header"),
            );
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body reads");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_ne!(status, 500, "no request may produce a 500: {path} -> {text}");
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// `POST` a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("content-type", b"application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// `GET` with an optional bearer token.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.with_bearer(Method::GET, path, bearer, None).await
    }

    /// `method` with an optional bearer token and an optional JSON body.
    pub async fn with_bearer(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> Reply {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &[u8])> = auth.iter().map(|a| ("authorization", a.as_bytes())).collect();
        if body.is_some() {
            headers.push(("content-type", b"application/json"));
        }
        self.send(method, path, &headers, body.map(|b| b.to_string().into_bytes()))
            .await
    }

    /// Registers a fresh user; returns its username and password.
    pub async fn new_user(&self) -> (String, String) {
        let username = format!("user-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let password = "correct horse battery staple".to_owned();
        let r = self
            .post(
                "/register",
                serde_json::json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        (username, password)
    }

    /// Registers and logs in a fresh user; returns the token response.
    pub async fn logged_in(&self) -> Reply {
        let (username, password) = self.new_user().await;
        let r = self
            .post(
                "/login",
                serde_json::json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r
    }

    /// `POST /refresh` with the token in the body.
    pub async fn refresh(&self, token: &str) -> Reply {
        self.post("/refresh", serde_json::json!({ "refresh_token": token }))
            .await
    }
}

/// What the fault proxy does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to DynamoDB Local and back.
    Pass,
    /// Close the connection at once, as a dead endpoint would.
    Refuse,
    /// Accept and never answer, as a hung endpoint would.
    Hang,
    /// Answer every call with DynamoDB's throttling error.
    Throttle,
    /// Forward the next `UpdateItem`, so it takes effect, then lose its answer;
    /// everything else passes.
    LoseUpdateAnswer,
    /// Forward this many more `TransactWriteItems`, then refuse the rest;
    /// everything else passes: a multi-step write cut off between its steps.
    RefuseTransactionsAfter(usize),
}

/// A TCP proxy in front of DynamoDB Local that injects faults, one HTTP request per connection.
pub struct FaultProxy {
    pub url: String,
    fault: std::sync::Arc<std::sync::Mutex<Fault>>,
}

impl FaultProxy {
    /// Starts the proxy in front of `DYNAMODB_ENDPOINT`, passing everything through.
    pub async fn start() -> Self {
        let upstream = required_env("DYNAMODB_ENDPOINT")
            .trim_start_matches("http://")
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fault = std::sync::Arc::new(std::sync::Mutex::new(Fault::Pass));
        let current = fault.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (fault, upstream) = (current.clone(), upstream.clone());
                tokio::spawn(async move { proxy_one(client, &upstream, fault).await });
            }
        });
        Self { url, fault }
    }

    /// Changes what the proxy does from the next request on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

async fn proxy_one(mut client: tokio::net::TcpStream, upstream: &str, fault: std::sync::Arc<std::sync::Mutex<Fault>>) {
    use tokio::io::AsyncWriteExt;
    let Some(request) = read_http_message(&mut client).await else {
        return;
    };
    let is_transaction = String::from_utf8_lossy(&request).contains("DynamoDB_20120810.TransactWriteItems");
    let mode = {
        let mut fault = fault.lock().unwrap();
        match *fault {
            Fault::RefuseTransactionsAfter(0) if is_transaction => Fault::Refuse,
            Fault::RefuseTransactionsAfter(n) if is_transaction => {
                *fault = Fault::RefuseTransactionsAfter(n - 1);
                Fault::Pass
            }
            Fault::RefuseTransactionsAfter(_) => Fault::Pass,
            other => other,
        }
    };
    match mode {
        Fault::Refuse => {}
        Fault::Hang => tokio::time::sleep(std::time::Duration::from_secs(600)).await,
        Fault::Throttle => {
            let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
            let response = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(response.as_bytes()).await;
        }
        Fault::Pass | Fault::LoseUpdateAnswer | Fault::RefuseTransactionsAfter(_) => {
            let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            if server.write_all(&request).await.is_err() {
                return;
            }
            let Some(response) = read_http_message(&mut server).await else {
                return;
            };
            let is_update = String::from_utf8_lossy(&request).contains("DynamoDB_20120810.UpdateItem");
            if mode == Fault::LoseUpdateAnswer && is_update {
                *fault.lock().unwrap() = Fault::Pass;
                return; // the write happened; its answer is lost
            }
            // One request per connection: tell the client not to reuse it.
            let split = response.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
            let mut answer = response[..split].to_vec();
            answer.extend_from_slice(b"\r\nconnection: close");
            answer.extend_from_slice(&response[split..]);
            let _ = client.write_all(&answer).await;
        }
    }
}

/// Reads one HTTP/1.1 message with a `content-length` body.
async fn read_http_message(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

/// A request as a function receives it: `method path` with a JSON body.
pub fn request(method: &str, path: &str, body: Value) -> lambda_http::Request {
    use lambda_http::RequestExt;
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
    };
    // From a source address of its own, as API Gateway would say: each
    // request counts against no other's allowance, and a failed login pays
    // the address's count as it does deployed (timing.rs compares those).
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.source_ip = Some(format!("198.{}.{}.{}", 18 + b[0] % 2, b[1], b[2]));
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http = http;
    lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"))
        .header("content-type", "application/json")
        .body(lambda_http::Body::Text(body.to_string()))
        .expect("a valid request")
        .with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(context))
}

/// `method path` as a function receives it, with `Authorization: Bearer
/// <token>` and a JSON body if given.
pub fn bearer_request(method: &str, path: &str, token: &str, body: Option<Value>) -> lambda_http::Request {
    let mut req = match body {
        Some(body) => request(method, path, body),
        None => lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://api.example.com{path}"))
            .body(lambda_http::Body::Empty)
            .expect("a valid request"),
    };
    let value = format!("Bearer {token}").parse().expect("a token is a header value");
    req.headers_mut().insert("authorization", value);
    req
}

/// Status and JSON body of a function's response.
pub fn status_and_json(response: &lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    let json = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (response.status().as_u16(), json)
}

/// Whether `needle` appears in `text` as a word of its own (not inside an id).
pub fn as_word(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// `events/authorizer-ok.json` with `token` on `route_key`.
pub fn authorizer_event(token: &str, route_key: &str) -> String {
    shared::testing::event_json("authorizer-ok")
        .replace("${ACCESS_TOKEN}", token)
        .replace(
            "\"routeKey\": \"GET /example\"",
            &format!("\"routeKey\": \"{route_key}\""),
        )
}

/// The decision of the authorizer in `cargo lambda watch` for `token` on
/// `route_key`, invoked as API Gateway invokes it (through the Lambda Invoke API).
pub async fn authorize(token: &str, route_key: &str) -> Value {
    let url = format!(
        "{}/2015-03-31/functions/authorizer/invocations",
        required_env("E2E_BASE_URL")
    );
    let response = reqwest::Client::new()
        .post(url)
        .body(authorizer_event(token, route_key))
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .expect("the authorizer answers");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a JSON decision")
}

/// The current value of secret `id` of the Secrets Manager stand-in, read through the SDK.
pub async fn current_secret(client: &aws_sdk_secretsmanager::Client, id: &str) -> String {
    client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the stand-in reads {id}: {e:?}"))
        .secret_string()
        .expect("a string secret")
        .to_owned()
}

/// An authenticator app that remembers the last step whose code it gave
/// out. The service takes the codes of the step before now's, now's and the
/// next (one step of drift), each once, and after one of them none of an
/// earlier step: so a test has up to three fresh codes without waiting for
/// the clock, given out here in increasing order.
pub struct TotpApp {
    /// Its secret, as the enrollment gave it.
    pub secret: shared::totp::TotpSecret,
    last: u64,
}

impl TotpApp {
    pub fn new(secret: shared::totp::TotpSecret) -> Self {
        Self { secret, last: 0 }
    }

    /// The code of the earliest step later than the last one given out that
    /// the service takes now, waiting for the clock when none is left. The
    /// step before now's only in the first half of the current one, so that
    /// it is still in the window when the request lands, however slow.
    pub async fn code(&mut self) -> String {
        loop {
            let now = shared::now();
            let current = now / shared::totp::STEP;
            let earliest = if now % shared::totp::STEP < shared::totp::STEP / 2 {
                current - 1
            } else {
                current
            };
            let step = earliest.max(self.last + 1);
            if step <= current + 1 {
                self.last = step;
                return self.secret.code_at(step * shared::totp::STEP);
            }
            let wait = (step - 1) * shared::totp::STEP - now;
            tokio::time::sleep(std::time::Duration::from_secs(wait.max(1))).await;
        }
    }

    /// The last code given out again: a replay.
    pub fn last_code(&self) -> String {
        self.secret.code_at(self.last * shared::totp::STEP)
    }

    /// The code of the step before the last one given out.
    pub fn earlier_code(&self) -> String {
        self.secret.code_at((self.last - 1) * shared::totp::STEP)
    }

    /// Six digits that are the code of no step the service takes now.
    pub fn wrong_code(&self) -> String {
        let current = shared::now() / shared::totp::STEP;
        let near: Vec<String> = (current - 2..=current + 2)
            .map(|s| self.secret.code_at(s * shared::totp::STEP))
            .collect();
        (0..)
            .map(|i| format!("{:06}", (123_457 + i * 7919) % 1_000_000))
            .find(|c| !near.contains(c))
            .unwrap()
    }
}
