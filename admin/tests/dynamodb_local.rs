//! The `admin` binary, as an operator runs it, against DynamoDB Local
//! (`DYNAMODB_ENDPOINT`, which `make test` sets): each test on a table of its own.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use shared::credentials::{Password, Username};
use shared::service::LoginError;
use shared::service::register::PasswordRules;
use shared::session::Origin;
use shared::store::dynamo::{DynamoStore, create_table, local_client};
use shared::store::{AccountStore, SessionStore, User};
use std::process::Command;

const PASSWORD: &str = "correct horse battery staple";

/// DynamoDB Local's address; a run without it fails loudly instead of skipping.
fn endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DYNAMODB_ENDPOINT is not set: these tests need DynamoDB Local, run them with `make test`")
    })
}

/// A fresh table on DynamoDB Local, and its store.
async fn fresh_table() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    let client = local_client(&endpoint()).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    let table = format!("admin-test-{}-{nanos}", std::process::id());
    create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("DynamoDB Local at {} is unreachable: {e}", endpoint()));
    (DynamoStore::new(client.clone(), table), client)
}

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", self.stdout))
    }
}

/// Runs `admin <line>` on `store`'s table, as an operator would, with
/// DynamoDB Local's dummy credentials in the standard AWS variables.
fn admin(store: &DynamoStore, line: &str) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_admin"))
        .args(line.split_whitespace())
        .env("TABLE_NAME", store.table())
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "dynamodblocal")
        .env("AWS_SECRET_ACCESS_KEY", "dynamodblocal")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the admin binary runs");
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 errors"),
    }
}

/// alice, registered as `POST /register` does, with two live sessions.
async fn alice_with_two_sessions(store: &DynamoStore) -> User {
    let username = Username::parse("Alice").unwrap();
    let password = Password::parse(PASSWORD).unwrap();
    let alice = shared::service::register(
        store,
        &PasswordRules::default(),
        &username,
        &password,
        None,
        shared::now(),
    )
    .await
    .expect("registered");
    let tokens = shared::testing::dev_authority();
    for _ in 0..2 {
        let session = shared::testing::password_session(&tokens, &alice, shared::now());
        store.create_session(&session, Some(&alice)).await.expect("a session");
    }
    alice
}

/// Neither the password, its hash nor a session's token hash in `text`.
async fn no_secret_in(store: &DynamoStore, alice: &User, text: &str) {
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(
        !text.contains(&alice.password_hash) && !text.contains("argon2"),
        "{text}"
    );
    for session in store.sessions("alice").await.unwrap() {
        assert!(!text.contains(&session.token_hash), "{text}");
    }
}

#[tokio::test]
async fn find_shows_a_user_by_username_or_verified_address_and_an_unknown_one_exits_1() {
    let (store, _) = fresh_table().await;
    let alice = alice_with_two_sessions(&store).await;
    shared::testing::verify_address(&store, &alice, "alice@example.com").await;

    let found = admin(&store, "find alice");
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert!(
        found.stdout.starts_with("Alice\n") && found.stdout.contains(&alice.id),
        "{}",
        found.stdout
    );
    assert!(
        found.stdout.contains("alice@example.com (verified)"),
        "{}",
        found.stdout
    );
    no_secret_in(&store, &alice, &found.stdout).await;

    let by_address = admin(&store, "find ALICE@example.com --json");
    assert_eq!(by_address.code, 0, "{}", by_address.stderr);
    let json = by_address.json();
    assert_eq!(
        (json["user"]["id"].as_str(), json["user"]["username"].as_str()),
        (Some(alice.id.as_str()), Some("Alice"))
    );
    no_secret_in(&store, &alice, &by_address.stdout).await;

    for line in ["find nobody", "find nobody@example.com"] {
        let missing = admin(&store, line);
        assert_eq!((missing.code, missing.stdout.as_str()), (1, ""), "{line}");
        assert!(missing.stderr.starts_with("admin: no "), "{line}: {}", missing.stderr);
    }
}

#[tokio::test]
async fn a_wrong_command_line_exits_2_and_help_exits_0_without_a_table() {
    let (store, _) = fresh_table().await;
    for line in [
        "",
        "frobnicate alice",
        "find",
        "find alice --verbose",
        "events alice --limit 0",
    ] {
        let wrong = admin(&store, line);
        assert_eq!(wrong.code, 2, "{line}: {}", wrong.stderr);
        assert!(wrong.stderr.contains("usage: admin"), "{line}: {}", wrong.stderr);
    }
    let help = Command::new(env!("CARGO_BIN_EXE_admin"))
        .arg("help")
        .env_remove("TABLE_NAME")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: admin"));
}

#[tokio::test]
async fn sessions_lists_the_live_ones_and_delete_needs_yes_then_removes_everything() {
    let (store, client) = fresh_table().await;
    let alice = alice_with_two_sessions(&store).await;

    let sessions = admin(&store, "sessions alice --json");
    assert_eq!(sessions.code, 0, "{}", sessions.stderr);
    let json = sessions.json();
    assert_eq!(json["sessions"].as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(json["ended"], 0);
    no_secret_in(&store, &alice, &sessions.stdout).await;
    let text = admin(&store, "sessions alice");
    assert!(
        text.stdout
            .starts_with("2 live sessions of Alice, newest first (0 ended)"),
        "{}",
        text.stdout
    );

    let refused = admin(&store, "delete alice");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(admin(&store, "find alice").code, 0, "still there");

    assert_eq!(admin(&store, "revoke-sessions alice").code, 0, "an event to delete too");
    let deleted = admin(&store, "delete alice --yes");
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert_eq!(deleted.stdout.trim(), format!("deleted Alice (id {})", alice.id));
    let left = client
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("USER#alice".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(left.count(), 0, "{:?}", left.items());
    assert_eq!(admin(&store, "find alice").code, 1);
    assert_eq!(admin(&store, "delete alice --yes").code, 1);
}

/// A password login as alice, as `POST /login` does it.
async fn log_in(store: &DynamoStore, password: &str) -> Result<shared::service::TokenPair, LoginError> {
    let username = Username::parse("alice").unwrap();
    let password = Password::parse(password).unwrap();
    let tokens = shared::testing::dev_authority();
    shared::service::login(store, &tokens, &username, &password, Origin::default(), shared::now()).await
}

/// The `disabled` attribute of alice's user item, as stored.
async fn disabled_attribute(store: &DynamoStore, client: &aws_sdk_dynamodb::Client) -> Option<AttributeValue> {
    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("USER#alice".into()))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("alice's user item");
    item.get("disabled").cloned()
}

#[tokio::test]
async fn disable_marks_the_user_item_and_revokes_every_session_and_enable_clears_the_mark() {
    let (store, client) = fresh_table().await;
    let alice = alice_with_two_sessions(&store).await;

    let disabled = admin(&store, "disable alice");
    assert_eq!(disabled.code, 0, "{}", disabled.stderr);
    assert_eq!(
        disabled.stdout.trim(),
        format!(
            "disabled Alice (id {}): 2 sessions revoked; the right password now gets 403 account_disabled",
            alice.id
        )
    );
    assert_eq!(
        disabled_attribute(&store, &client).await,
        Some(AttributeValue::Bool(true))
    );
    let sessions = store.sessions("alice").await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s.revoked), "{sessions:?}");
    let username = Username::parse("alice").unwrap();
    assert!(store.user(&username).await.unwrap().unwrap().disabled);
    let session = shared::testing::password_session(&shared::testing::dev_authority(), &alice, shared::now());
    assert_eq!(
        store.create_session(&session, Some(&alice)).await.unwrap(),
        shared::store::Change::Conflict,
        "no session for a disabled user"
    );
    let found = admin(&store, "find alice --json");
    assert_eq!(found.json()["user"]["disabled"], true);
    assert!(matches!(
        log_in(&store, PASSWORD).await,
        Err(LoginError::AccountDisabled)
    ));
    assert!(
        matches!(
            log_in(&store, "not the password").await,
            Err(LoginError::InvalidCredentials)
        ),
        "a wrong password tells a guesser nothing"
    );

    let enabled = admin(&store, "enable alice --json");
    assert_eq!(enabled.code, 0, "{}", enabled.stderr);
    assert_eq!(enabled.json()["changed"], true);
    assert_eq!(disabled_attribute(&store, &client).await, None);
    assert!(!store.user(&username).await.unwrap().unwrap().disabled);
    assert!(
        log_in(&store, PASSWORD).await.is_ok(),
        "enabled: the right password logs in"
    );
    let again = admin(&store, "enable alice");
    assert_eq!(
        (again.code, again.stdout.trim()),
        (
            0,
            format!("Alice (id {}) is not disabled: nothing changed", alice.id).as_str()
        )
    );
}

#[tokio::test]
async fn revoke_sessions_and_events_show_what_the_operator_did_a_page_at_a_time() {
    let (store, _) = fresh_table().await;
    let alice = alice_with_two_sessions(&store).await;

    let revoked = admin(&store, "revoke-sessions alice --json");
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert_eq!(revoked.json()["sessions_revoked"], 2);
    assert!(store.sessions("alice").await.unwrap().iter().all(|s| s.revoked));
    assert!(
        !store
            .user(&Username::parse("alice").unwrap())
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let none_left = admin(&store, "sessions alice");
    assert_eq!(none_left.stdout.trim(), "no live session of Alice (2 ended)");
    assert_eq!(admin(&store, "disable alice").code, 0);
    assert_eq!(admin(&store, "enable alice").code, 0);

    let all = admin(&store, "events alice --json");
    assert_eq!(all.code, 0, "{}", all.stderr);
    let json = all.json();
    let types: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["account_enabled", "account_disabled", "session_revoked"]);
    for event in json["events"].as_array().unwrap() {
        assert_eq!(
            (&event["ip"], &event["user_agent"]),
            (&Value::Null, &Value::from("admin")),
            "{event}"
        );
    }
    assert_eq!(json["next_cursor"], Value::Null);
    no_secret_in(&store, &alice, &all.stdout).await;

    let first = admin(&store, "events alice --limit 2");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(lines[0], "2 events of Alice, newest first");
    assert!(
        lines[1].contains("account_enabled") && lines[2].contains("account_disabled"),
        "{}",
        first.stdout
    );
    let more = lines[3].strip_prefix("more: admin ").expect("the next page's command");
    let rest = admin(&store, more);
    assert_eq!(rest.code, 0, "{more}: {}", rest.stderr);
    assert!(
        rest.stdout.starts_with("1 event of Alice, newest first\n") && rest.stdout.contains("session_revoked"),
        "{}",
        rest.stdout
    );
    assert!(!rest.stdout.contains("more:"), "{}", rest.stdout);

    let bad = admin(&store, "events alice --cursor bm90LWEtY3Vyc29y");
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--cursor"), "{}", bad.stderr);
}
