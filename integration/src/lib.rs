//! What the store and end-to-end tests share: where the local stack is, a
//! fresh table per test, and a small HTTP client for the API.

use aws_sdk_dynamodb::Client;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
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

/// The API served by `cargo lambda watch`.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
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
    /// The API at `E2E_BASE_URL`.
    pub fn from_env() -> Self {
        Self {
            base: required_env("E2E_BASE_URL"),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("client builds"),
        }
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
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &[u8])> = auth.iter().map(|a| ("authorization", a.as_bytes())).collect();
        self.send(Method::GET, path, &headers, None).await
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
