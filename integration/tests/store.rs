//! The DynamoDB store against DynamoDB Local, each test on a table of its own.

use integration::fresh_store;
use shared::credentials::{Password, Username};
use shared::lockout::FailedLogins;
use shared::session::{Origin, Session, SessionKey};
use shared::store::{CreateUserError, Rotation, SessionStore, User, UserStore};
use std::sync::Arc;

fn user(name: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        username: name.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
            .into(),
        created_at: 1_700_000_000,
        deleting: false,
        disabled: false,
        email: None,
        email_verified: false,
        totp: false,
        passkeys: 0,
    }
}

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn session(now: u64) -> Session {
    Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: "u-1".into(),
        username: "alice".into(),
        generation: 0,
        token_hash: "h0".into(),
        created_at: now,
        issued_at: now,
        expires_at: now + 3600,
        revoked: false,
        amr: vec!["pwd".into()],
        origin: Origin {
            ip: "203.0.113.10".into(),
            user_agent: "curl/8.5.0".into(),
        },
    }
}

#[tokio::test]
async fn a_created_user_is_found_by_its_name_in_any_case() {
    let (store, _) = fresh_store().await;
    let alice = user("Alice");
    store.create_user(&alice).await.unwrap();
    let record = store.login_record(&name("aLiCe")).await.unwrap();
    assert_eq!(record.user, Some(alice));
    assert_eq!(record.failures, FailedLogins::default());
}

#[tokio::test]
async fn an_unknown_name_has_no_user() {
    let (store, _) = fresh_store().await;
    assert_eq!(store.login_record(&name("nobody")).await.unwrap().user, None);
}

#[tokio::test]
async fn a_name_taken_in_another_case_is_refused_and_the_first_user_stays() {
    let (store, _) = fresh_store().await;
    let first = user("bob");
    store.create_user(&first).await.unwrap();
    assert!(matches!(
        store.create_user(&user("BOB")).await,
        Err(CreateUserError::Taken)
    ));
    assert_eq!(store.login_record(&name("bob")).await.unwrap().user, Some(first));
}

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_name_have_exactly_one_winner() {
    let (store, _) = fresh_store().await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let spelled = if i % 2 == 0 { "carol" } else { "CAROL" };
            tokio::spawn(async move { store.create_user(&user(spelled)).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(CreateUserError::Taken) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn a_password_hash_is_replaced_only_if_it_is_still_the_old_one() {
    let (store, _) = fresh_store().await;
    let dave = user("dave");
    store.create_user(&dave).await.unwrap();
    store
        .replace_password_hash(&name("dave"), "not-the-current", "x")
        .await
        .unwrap();
    assert_eq!(
        store
            .login_record(&name("dave"))
            .await
            .unwrap()
            .user
            .unwrap()
            .password_hash,
        dave.password_hash
    );
    store
        .replace_password_hash(&name("dave"), &dave.password_hash, "new-hash")
        .await
        .unwrap();
    assert_eq!(
        store
            .login_record(&name("dave"))
            .await
            .unwrap()
            .user
            .unwrap()
            .password_hash,
        "new-hash"
    );
}

/// Counts `times` attempts one after the other, each from the record the previous one left.
async fn attempts(store: &impl UserStore, who: &str, times: u64, from: u64) -> FailedLogins {
    let mut seen = store.login_record(&name(who)).await.unwrap().failures;
    for t in 0..times {
        seen = store
            .count_attempt(&name(who), seen, from + t)
            .await
            .unwrap()
            .expect("no one else is counting");
    }
    seen
}

#[tokio::test]
async fn attempts_count_up_come_back_with_the_user_and_clear() {
    let (store, _) = fresh_store().await;
    store.create_user(&user("erin")).await.unwrap();
    assert_eq!(
        attempts(&store, "Erin", 3, 1001).await,
        FailedLogins {
            count: 3,
            last_at: 1003
        }
    );
    let record = store.login_record(&name("erin")).await.unwrap();
    assert!(record.user.is_some());
    assert_eq!(
        record.failures,
        FailedLogins {
            count: 3,
            last_at: 1003
        }
    );
    let counted = FailedLogins {
        count: 3,
        last_at: 1003,
    };
    store
        .uncount_attempt(&name("erin"), counted, FailedLogins::default())
        .await
        .unwrap();
    assert_eq!(
        store.login_record(&name("erin")).await.unwrap().failures,
        FailedLogins::default()
    );
}

#[tokio::test]
async fn an_attempt_counted_from_an_outdated_record_is_refused() {
    let (store, _) = fresh_store().await;
    attempts(&store, "judy", 2, 1000).await;
    let outdated = FailedLogins {
        count: 1,
        last_at: 1000,
    };
    assert_eq!(store.count_attempt(&name("judy"), outdated, 1005).await.unwrap(), None);
    assert_eq!(
        store
            .count_attempt(&name("judy"), FailedLogins::default(), 1005)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.login_record(&name("judy")).await.unwrap().failures.count, 2);
}

#[tokio::test]
async fn of_twenty_concurrent_attempts_from_one_record_exactly_one_is_counted() {
    let (store, _) = fresh_store().await;
    let seen = attempts(&store, "frank", 1, 5000).await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.count_attempt(&name("frank"), seen, 5001).await.unwrap() })
        })
        .collect();
    let mut counted = 0;
    for task in tasks {
        counted += task.await.unwrap().is_some() as u32;
    }
    assert_eq!(counted, 1);
    assert_eq!(store.login_record(&name("frank")).await.unwrap().failures.count, 2);
}

#[tokio::test]
async fn attempts_start_again_after_the_quiet_period() {
    let (store, _) = fresh_store().await;
    let seen = attempts(&store, "grace", 6, 1000).await;
    let later = 1005 + FailedLogins::QUIET_PERIOD + 1;
    let next = store.count_attempt(&name("grace"), seen, later).await.unwrap();
    assert_eq!(
        next,
        Some(FailedLogins {
            count: 1,
            last_at: later
        })
    );
}

#[tokio::test]
async fn lockout_and_session_items_carry_the_ttl_attribute_and_the_table_has_ttl_on() {
    let (store, client) = fresh_store().await;
    attempts(&store, "heidi", 1, 1000).await;
    let s = session(2000);
    store.create_session(&s, None).await.unwrap();
    let items = client.scan().table_name(store.table()).send().await.unwrap();
    let ttls: Vec<_> = items
        .items()
        .iter()
        .map(|i| i.get("ttl").and_then(|v| v.as_n().ok()).cloned())
        .collect();
    assert_eq!(ttls.len(), 2);
    assert!(ttls.contains(&Some((1000 + FailedLogins::QUIET_PERIOD).to_string())));
    assert!(ttls.contains(&Some(s.expires_at.to_string())));
    let ttl = client
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let spec = ttl.time_to_live_description().unwrap();
    assert_eq!(spec.attribute_name(), Some("ttl"));
    assert_eq!(spec.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));
}

#[tokio::test]
async fn a_session_reads_back_as_stored() {
    let (store, _) = fresh_store().await;
    let s = session(1000);
    store.create_session(&s, None).await.unwrap();
    assert_eq!(store.session(&s.key()).await.unwrap(), Some(s));
    assert_eq!(
        store
            .session(&SessionKey::new("alice", "no-such-session"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn rotation_moves_one_generation_and_only_from_the_live_one() {
    let (store, _) = fresh_store().await;
    let s = session(1000);
    store.create_session(&s, None).await.unwrap();
    assert_eq!(
        store.rotate_session(&s.key(), 0, "h1", 1010).await.unwrap(),
        Rotation::Rotated
    );
    assert_eq!(
        store.rotate_session(&s.key(), 0, "h1-bis", 1011).await.unwrap(),
        Rotation::Conflict
    );
    let now = store.session(&s.key()).await.unwrap().unwrap();
    assert_eq!(
        (now.generation, now.token_hash.as_str(), now.issued_at),
        (1, "h1", 1010)
    );
}

#[tokio::test]
async fn twenty_concurrent_rotations_from_one_generation_have_exactly_one_winner() {
    let (store, _) = fresh_store().await;
    let s = session(1000);
    store.create_session(&s, None).await.unwrap();
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, key) = (store.clone(), s.key());
            tokio::spawn(async move { store.rotate_session(&key, 0, &format!("h-{i}"), 1010).await.unwrap() })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        rotated += (task.await.unwrap() == Rotation::Rotated) as u32;
    }
    assert_eq!(rotated, 1);
    assert_eq!(store.session(&s.key()).await.unwrap().unwrap().generation, 1);
}

#[tokio::test]
async fn a_revoked_or_ended_session_cannot_rotate() {
    let (store, _) = fresh_store().await;
    let revoked = session(1000);
    store.create_session(&revoked, None).await.unwrap();
    assert!(
        store
            .revoke_session(&revoked.key(), "u-1", 1001)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.rotate_session(&revoked.key(), 0, "h1", 1002).await.unwrap(),
        Rotation::Conflict
    );
    let ended = session(1000);
    store.create_session(&ended, None).await.unwrap();
    assert_eq!(
        store
            .rotate_session(&ended.key(), 0, "h1", ended.expires_at)
            .await
            .unwrap(),
        Rotation::Conflict
    );
}

#[tokio::test]
async fn revoking_returns_the_live_session_once_and_nothing_for_unknown_or_ended_ones() {
    let (store, _) = fresh_store().await;
    let s = session(1000);
    store.create_session(&s, None).await.unwrap();
    assert_eq!(
        store.revoke_session(&s.key(), "u-1", 1001).await.unwrap(),
        Some(s.clone()),
        "as it was before"
    );
    assert_eq!(store.revoke_session(&s.key(), "u-1", 1002).await.unwrap(), None);
    assert!(store.session(&s.key()).await.unwrap().unwrap().revoked);
    assert_eq!(
        store
            .revoke_session(&SessionKey::new("alice", "no-such-session"), "u-1", 1000)
            .await
            .unwrap(),
        None
    );
    let ended = session(1000);
    store.create_session(&ended, None).await.unwrap();
    assert_eq!(
        store
            .revoke_session(&ended.key(), "u-1", ended.expires_at + 1)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_closed_port_is_a_store_error_within_seconds_not_a_hang() {
    let store = shared::testing::unreachable_store().await;
    let started = std::time::Instant::now();
    let error = store.login_record(&name("ivan")).await.unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.operation, "Query");
    assert!(
        error
            .detail
            .starts_with("DynamoDB is unreachable: locally, is DynamoDB Local running"),
        "{error}"
    );
}

#[tokio::test]
async fn a_missing_table_is_a_store_error_that_says_what_to_do() {
    let (store, client) = fresh_store().await;
    let missing = shared::store::dynamo::DynamoStore::new(client, format!("{}-missing", store.table()));
    let error = missing.login_record(&name("ivan")).await.unwrap_err();
    assert!(
        error.detail.starts_with("the table does not exist: check TABLE_NAME"),
        "{error}"
    );
}

#[tokio::test]
async fn revoking_all_sessions_of_a_user_spares_other_users_and_the_login_read() {
    let (store, _) = fresh_store().await;
    store.create_user(&user("Kim")).await.unwrap();
    let mine: Vec<Session> = (0..3)
        .map(|_| Session {
            username: "Kim".into(),
            ..session(1000)
        })
        .collect();
    for s in &mine {
        store.create_session(s, None).await.unwrap();
    }
    let theirs = Session {
        username: "lee".into(),
        ..session(1000)
    };
    store.create_session(&theirs, None).await.unwrap();
    store.revoke_session(&mine[0].key(), "u-1", 1001).await.unwrap();
    assert_eq!(
        store.revoke_all_sessions("KIM", "u-1", 1002, 1002).await.unwrap(),
        2,
        "the two still live"
    );
    for s in &mine {
        assert!(store.session(&s.key()).await.unwrap().unwrap().revoked);
    }
    assert!(!store.session(&theirs.key()).await.unwrap().unwrap().revoked);
    let record = store.login_record(&name("kim")).await.unwrap();
    assert!(
        record.user.is_some(),
        "sessions in the user's partition do not disturb the login read"
    );
}

#[tokio::test]
async fn a_log_out_everywhere_marks_its_session_once_and_a_retry_finds_the_first_attempts_time() {
    let (store, _) = fresh_store().await;
    let s = session(1000);
    store.create_session(&s, None).await.unwrap();
    let (first, since) = store.log_out_everywhere(&s.key(), "u-1", 1001).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), first.generation, since), (s.id.as_str(), 0, 1001));
    assert!(store.session(&s.key()).await.unwrap().unwrap().revoked);
    let (_, again) = store.log_out_everywhere(&s.key(), "u-1", 1500).await.unwrap().unwrap();
    assert_eq!(
        again, 1001,
        "a retry resumes the first attempt, it does not start another"
    );
    assert_eq!(store.log_out_everywhere(&s.key(), "u-other", 1500).await.unwrap(), None);
    let plain = session(1000);
    store.create_session(&plain, None).await.unwrap();
    store.revoke_session(&plain.key(), "u-1", 1001).await.unwrap();
    assert_eq!(
        store.log_out_everywhere(&plain.key(), "u-1", 1002).await.unwrap(),
        None,
        "a session ended by a plain logout cannot start one"
    );
    assert_eq!(
        store.log_out_everywhere(&s.key(), "u-1", 1000 + 3600).await.unwrap(),
        None,
        "nor an ended one"
    );
}

#[tokio::test]
async fn revoking_all_sessions_spares_those_begun_after_the_given_time() {
    let (store, _) = fresh_store().await;
    let (old, new) = (session(1000), session(2000));
    store.create_session(&old, None).await.unwrap();
    store.create_session(&new, None).await.unwrap();
    assert_eq!(store.revoke_all_sessions("alice", "u-1", 1500, 2001).await.unwrap(), 1);
    assert!(store.session(&old.key()).await.unwrap().unwrap().revoked);
    assert!(!store.session(&new.key()).await.unwrap().unwrap().revoked);
}

// ---- the account: sessions listed, password changed, user deleted ----------

use shared::service::account;
use shared::service::register::PasswordRules;
use shared::store::{AccountStore, Change};

/// alice (`Alice` as registered, password RIGHT) and `n` live sessions of hers, created at `now`.
async fn alice_with_sessions(store: &shared::store::dynamo::DynamoStore, n: usize, now: u64) -> (User, Vec<Session>) {
    let alice = shared::testing::user_with_password("u-1", "Alice", RIGHT).await;
    store.create_user(&alice).await.unwrap();
    let tokens = shared::testing::dev_authority();
    let mut sessions = Vec::new();
    for _ in 0..n {
        let s = shared::testing::password_session(&tokens, &alice, now);
        store.create_session(&s, None).await.unwrap();
        sessions.push(s);
    }
    (alice, sessions)
}

const RIGHT: &str = "correct horse battery staple";

/// Every item under alice's name, raw.
async fn partition(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S("USER#alice".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items().iter().map(|i| i["sk"].as_s().unwrap().clone()).collect()
}

#[tokio::test]
async fn sessions_are_listed_with_their_metadata_and_nothing_else_of_the_partition() {
    let (store, _) = fresh_store().await;
    let (_, mine) = alice_with_sessions(&store, 2, 1000).await;
    let theirs = Session {
        username: "bob".into(),
        ..session(1000)
    };
    store.create_session(&theirs, None).await.unwrap();
    store
        .count_attempt(&name("alice"), FailedLogins::default(), 1000)
        .await
        .unwrap();
    let mut listed = store.sessions("ALICE").await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = mine.clone();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        listed, expected,
        "every field read back as written; no profile, no lockout, no bob"
    );
    let full = session(1000);
    store.create_session(&full, None).await.unwrap();
    assert!(
        store.sessions("alice").await.unwrap().contains(&full),
        "origin and amr round-trip"
    );
}

#[tokio::test]
async fn a_session_stored_before_the_metadata_reads_as_a_password_login_begun_at_its_last_use() {
    let (store, client) = fresh_store().await;
    use aws_sdk_dynamodb::types::AttributeValue::{Bool, N, S};
    client
        .put_item()
        .table_name(store.table())
        .item("pk", S("USER#alice".into()))
        .item("sk", S("SESSION#old-1".into()))
        .item("user_id", S("u-1".into()))
        .item("username", S("alice".into()))
        .item("generation", N("3".into()))
        .item("token_hash", S("h".into()))
        .item("issued_at", N("1500".into()))
        .item("expires_at", N("9000".into()))
        .item("revoked", Bool(false))
        .send()
        .await
        .unwrap();
    let old = store
        .session(&SessionKey::new("alice", "old-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.created_at, old.amr.clone(), old.origin.clone()),
        (1500, vec!["pwd".to_owned()], Origin::default())
    );
}

#[tokio::test]
async fn a_session_of_another_user_under_the_same_name_is_not_revoked() {
    let (store, _) = fresh_store().await;
    let s = session(1000);
    store.create_session(&s, None).await.unwrap();
    assert_eq!(store.revoke_session(&s.key(), "u-other", 1001).await.unwrap(), None);
    assert!(!store.session(&s.key()).await.unwrap().unwrap().revoked);
    assert_eq!(
        store.revoke_all_sessions("alice", "u-other", 1001, 1001).await.unwrap(),
        0
    );
    assert!(!store.session(&s.key()).await.unwrap().unwrap().revoked);
}

#[tokio::test]
async fn the_user_is_read_by_name_in_one_call() {
    let (store, _) = fresh_store().await;
    assert_eq!(store.user(&name("alice")).await.unwrap(), None);
    let (alice, _) = alice_with_sessions(&store, 0, 1000).await;
    assert_eq!(store.user(&name("ALICE")).await.unwrap(), Some(alice));
}

#[tokio::test]
async fn a_password_change_replaces_the_hash_and_revokes_the_listed_sessions_in_one_write() {
    let (store, _) = fresh_store().await;
    let (alice, sessions) = alice_with_sessions(&store, 3, 1000).await;
    store
        .count_attempt(&name("alice"), FailedLogins::default(), 1000)
        .await
        .unwrap();
    let revoke: Vec<SessionKey> = sessions[1..].iter().map(Session::key).collect();
    assert_eq!(
        store.change_password(&alice, "new-hash", &revoke).await.unwrap(),
        Change::Done
    );
    let record = store.login_record(&name("alice")).await.unwrap();
    assert_eq!(record.user.unwrap().password_hash, "new-hash");
    assert_eq!(record.failures, FailedLogins::default(), "the failures cleared with it");
    assert!(!store.session(&sessions[0].key()).await.unwrap().unwrap().revoked);
    for s in &sessions[1..] {
        assert!(store.session(&s.key()).await.unwrap().unwrap().revoked);
    }
    // The hash as read is gone: a second change from the old read writes nothing.
    assert_eq!(
        store
            .change_password(&alice, "other", &[sessions[0].key()])
            .await
            .unwrap(),
        Change::Conflict
    );
    assert!(!store.session(&sessions[0].key()).await.unwrap().unwrap().revoked);
    assert_eq!(
        store.user(&name("alice")).await.unwrap().unwrap().password_hash,
        "new-hash"
    );
}

#[tokio::test]
async fn a_password_change_with_more_sessions_than_one_transaction_holds_revokes_them_all() {
    let (store, _) = fresh_store().await;
    let (alice, sessions) = alice_with_sessions(&store, 130, 1000).await;
    let revoke: Vec<SessionKey> = sessions.iter().map(Session::key).collect();
    assert_eq!(
        store.change_password(&alice, "new-hash", &revoke).await.unwrap(),
        Change::Done
    );
    let listed = store.sessions("alice").await.unwrap();
    assert_eq!(listed.len(), 130);
    assert!(listed.iter().all(|s| s.revoked));
}

/// A refresh of session B and a password change from session A, at once,
/// again and again: whichever lands first, B never survives the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_password_change_racing_a_refresh_of_another_session_never_leaves_that_session_alive() {
    let tokens = Arc::new(shared::testing::dev_authority());
    for round in 0..8 {
        let (store, _) = fresh_store().await;
        let store = Arc::new(store);
        let now = shared::now();
        let (_, sessions) = alice_with_sessions(&store, 2, now).await;
        let claims = tokens
            .verify_access(
                &shared::service::sessions::token_pair(&tokens, &sessions[0], now).access_token,
                now,
            )
            .unwrap();
        let b_token = tokens.issue_refresh(&sessions[1].generation());
        let refresh = {
            let (store, tokens) = (store.clone(), tokens.clone());
            tokio::spawn(async move { shared::service::refresh(&*store, &tokens, &b_token, now).await })
        };
        let change = {
            let store = store.clone();
            tokio::spawn(async move {
                let (current, new) = (
                    Password::parse(RIGHT).unwrap(),
                    Password::parse("a new horse battery staple").unwrap(),
                );
                account::change_password(&*store, &PasswordRules::default(), &claims, &current, &new, now).await
            })
        };
        let refreshed = refresh.await.unwrap();
        change.await.unwrap().unwrap();
        let b = store.session(&sessions[1].key()).await.unwrap().unwrap();
        assert!(
            b.revoked,
            "round {round}: session B is alive (its refresh: {refreshed:?})"
        );
        if let Ok(pair) = refreshed {
            let again = shared::service::refresh(&*store, &tokens, &pair.refresh_token, now).await;
            assert!(again.is_err(), "round {round}: the token B got is dead too");
        }
        assert!(!store.session(&sessions[0].key()).await.unwrap().unwrap().revoked);
    }
}

#[tokio::test]
async fn deleting_a_user_removes_every_item_of_the_name_in_one_transaction_and_frees_it() {
    let (store, client) = fresh_store().await;
    let (alice, _) = alice_with_sessions(&store, 3, 1000).await;
    store
        .count_attempt(&name("alice"), FailedLogins::default(), 1000)
        .await
        .unwrap();
    assert_eq!(partition(&client, store.table()).await.len(), 5);
    let other = User {
        id: "u-other".into(),
        ..alice.clone()
    };
    assert_eq!(
        store.delete_user(&other).await.unwrap(),
        Change::Conflict,
        "not that user"
    );
    assert_eq!(partition(&client, store.table()).await.len(), 5, "nothing deleted");
    assert_eq!(store.delete_user(&alice).await.unwrap(), Change::Done);
    assert_eq!(partition(&client, store.table()).await, Vec::<String>::new());
    store.create_user(&user("alice")).await.unwrap();
}

/// More items than one transaction holds, and the connection cut after the
/// first transaction: the user is marked, cannot log in, and a retry (or a
/// login with the right password) finishes the deletion.
#[tokio::test]
async fn a_deletion_interrupted_between_transactions_leaves_no_login_and_is_finished_by_a_retry() {
    use integration::{Fault, FaultProxy};
    let (direct, client) = fresh_store().await;
    let now = shared::now();
    let (alice, _) = alice_with_sessions(&direct, 150, now).await;
    let proxy = FaultProxy::start().await;
    let store =
        shared::store::dynamo::DynamoStore::new(shared::store::dynamo::local_client(&proxy.url).await, direct.table());
    proxy.set(Fault::RefuseTransactionsAfter(1));
    assert!(
        store.delete_user(&alice).await.is_err(),
        "cut off after the first transaction"
    );
    proxy.set(Fault::Pass);
    let left = direct
        .user(&name("alice"))
        .await
        .unwrap()
        .expect("the user is still there");
    assert!(left.deleting, "marked as being deleted");
    assert_eq!(direct.sessions("alice").await.unwrap().len(), 150 - 99);
    let login = shared::service::login(
        &direct,
        &shared::testing::dev_authority(),
        &name("alice"),
        &Password::parse(RIGHT).unwrap(),
        Origin::default(),
        now,
    )
    .await;
    assert!(
        matches!(login, Err(shared::service::LoginError::InvalidCredentials)),
        "{login:?}"
    );
    assert_eq!(
        partition(&client, direct.table()).await,
        Vec::<String>::new(),
        "the login finished it"
    );
    assert!(direct.user(&name("alice")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_deletion_retried_by_its_owner_after_an_interruption_finishes() {
    use integration::{Fault, FaultProxy};
    let (direct, client) = fresh_store().await;
    let (alice, _) = alice_with_sessions(&direct, 120, 1000).await;
    let proxy = FaultProxy::start().await;
    let store =
        shared::store::dynamo::DynamoStore::new(shared::store::dynamo::local_client(&proxy.url).await, direct.table());
    proxy.set(Fault::RefuseTransactionsAfter(1));
    assert!(store.delete_user(&alice).await.is_err());
    proxy.set(Fault::Pass);
    let marked = direct.user(&name("alice")).await.unwrap().unwrap();
    assert_eq!(store.delete_user(&marked).await.unwrap(), Change::Done);
    assert_eq!(partition(&client, direct.table()).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_deletion_refused_at_its_only_transaction_changes_nothing() {
    use integration::{Fault, FaultProxy};
    let (direct, client) = fresh_store().await;
    let (alice, _) = alice_with_sessions(&direct, 3, 1000).await;
    let proxy = FaultProxy::start().await;
    let store =
        shared::store::dynamo::DynamoStore::new(shared::store::dynamo::local_client(&proxy.url).await, direct.table());
    proxy.set(Fault::RefuseTransactionsAfter(0));
    assert!(store.delete_user(&alice).await.is_err());
    assert_eq!(
        partition(&client, direct.table()).await.len(),
        4,
        "all there, none marked"
    );
    assert!(!direct.user(&name("alice")).await.unwrap().unwrap().deleting);
}

mod audit {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::audit::{Event, Kind, from_client};
    use shared::store::{AccountStore, AdminStore, AuditStore, Change};

    async fn event(kind: Kind, at: u64) -> Event {
        let client = Origin {
            ip: "198.51.100.7".into(),
            user_agent: "Firefox/140".into(),
        };
        from_client(client, async { Event::new(kind, at).in_session("s-1") }).await
    }

    #[tokio::test]
    async fn an_event_is_stored_under_its_user_with_its_ttl_and_read_back_whole() {
        let (store, client) = fresh_store().await;
        let store = store.with_retention(7 * 86_400);
        let stored = event(Kind::LoginSucceeded, 1_700_000_000).await;
        store.record_event("Alice", "u-1", &stored).await.unwrap();
        let page = store.events("ALICE", None, 10).await.unwrap();
        assert_eq!((page.events, page.next), (vec![stored], None));
        // The item as DynamoDB holds it: its TTL, its user, and nothing secret to hold.
        let items = client
            .scan()
            .table_name(store.table())
            .send()
            .await
            .unwrap()
            .items()
            .to_vec();
        let item = items
            .iter()
            .find(|i| i["sk"].as_s().is_ok_and(|sk| sk.starts_with("EVENT#")))
            .unwrap();
        assert_eq!(item["pk"], AttributeValue::S("USER#alice".into()));
        assert_eq!(
            item["ttl"],
            AttributeValue::N((1_700_000_000u64 + 7 * 86_400).to_string())
        );
        assert_eq!(item["user_id"], AttributeValue::S("u-1".into()));
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "at",
                "ip",
                "pk",
                "session_id",
                "sk",
                "ttl",
                "type",
                "user_agent",
                "user_id"
            ]
        );
    }

    #[tokio::test]
    async fn events_come_newest_first_in_pages_that_end_with_no_cursor() {
        let (store, _) = fresh_store().await;
        let mut recorded = Vec::new();
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            // Two events in each second: their order comes from their ids.
            let e = event(kind, 1_700_000_000 + i as u64 / 2).await;
            store.record_event("alice", "u-1", &e).await.unwrap();
            recorded.push(e);
        }
        store
            .record_event("bob", "u-2", &event(Kind::Logout, 1_800_000_000).await)
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = store.events("alice", cursor.as_ref(), 5).await.unwrap();
            assert!(page.events.len() <= 5);
            seen.extend(page.events);
            pages += 1;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        recorded.reverse();
        assert_eq!(seen, recorded, "every event of alice once, newest first, none of bob's");
        assert_eq!(pages, 4, "17 events in pages of 5");
        // A page that ends exactly at the last event says there is no next one.
        let exact = store.events("alice", None, 17).await.unwrap();
        assert_eq!((exact.events.len(), exact.next), (17, None));
    }

    #[tokio::test]
    async fn deleting_the_account_deletes_its_events() {
        let (store, _) = fresh_store().await;
        let alice = user("alice");
        store.create_user(&alice).await.unwrap();
        for at in 0..30 {
            let e = event(Kind::LoginFailed, 1_700_000_000 + at).await;
            store.record_event("alice", &alice.id, &e).await.unwrap();
        }
        assert_eq!(store.delete_user(&alice).await.unwrap(), Change::Done);
        assert!(store.events("alice", None, 100).await.unwrap().events.is_empty());
        store.create_user(&user("alice")).await.unwrap();
        assert!(
            store.events("alice", None, 100).await.unwrap().events.is_empty(),
            "a new alice sees none of the old one's"
        );
    }

    #[tokio::test]
    async fn a_disabled_user_cannot_start_a_session_until_enabled_and_login_reads_the_mark() {
        let (store, _) = fresh_store().await;
        let alice = user("alice");
        store.create_user(&alice).await.unwrap();
        assert_eq!(store.set_disabled(&alice, true).await.unwrap(), Change::Done);
        let read = store.login_record(&name("alice")).await.unwrap().user.unwrap();
        assert!(read.disabled);
        let mut s = session(1_700_000_000);
        s.user_id = alice.id.clone();
        assert_eq!(
            store.create_session(&s, Some(&alice)).await.unwrap(),
            Change::Conflict,
            "even by a login that read the user before the mark"
        );
        assert_eq!(store.set_disabled(&alice, false).await.unwrap(), Change::Done);
        assert!(!store.user(&name("alice")).await.unwrap().unwrap().disabled);
        assert_eq!(store.create_session(&s, Some(&alice)).await.unwrap(), Change::Done);
        let stranger = User {
            id: "someone-else".into(),
            ..alice
        };
        assert_eq!(store.set_disabled(&stranger, true).await.unwrap(), Change::Conflict);
    }
}

mod attempts {
    use super::*;
    use shared::service::login;
    use shared::testing::dev_authority;

    #[tokio::test]
    async fn attempts_are_added_up_to_the_limit_and_no_further_while_recent() {
        let (store, _) = fresh_store().await;
        let who = name("ivan");
        let mut seen = Vec::new();
        for t in 0..FailedLogins::LIMIT {
            seen.push(store.add_attempt(&who, 1000 + u64::from(t)).await.unwrap());
        }
        let expected: Vec<_> = (0..FailedLogins::LIMIT)
            .map(|c| {
                Some(match c {
                    0 => FailedLogins::default(),
                    c => FailedLogins {
                        count: c,
                        last_at: 1000 + u64::from(c) - 1,
                    },
                })
            })
            .collect();
        assert_eq!(seen, expected, "each returns the record as it was");
        assert_eq!(
            store.add_attempt(&who, 1010).await.unwrap(),
            None,
            "at the limit: nothing added"
        );
        assert_eq!(
            store.login_record(&who).await.unwrap().failures.count,
            FailedLogins::LIMIT
        );
        // An hour later the failures are stale: counting starts again at one.
        let later = 1004 + FailedLogins::QUIET_PERIOD;
        assert!(store.add_attempt(&who, later).await.unwrap().is_some());
        assert_eq!(
            store.login_record(&who).await.unwrap().failures,
            FailedLogins {
                count: 1,
                last_at: later
            }
        );
    }

    #[tokio::test]
    async fn an_attempt_taken_back_to_no_failures_leaves_no_record_and_the_next_failure_counts_from_one() {
        let (store, _) = fresh_store().await;
        let who = name("kim");
        let seen = store.add_attempt(&who, 2000).await.unwrap().unwrap();
        let counted = seen.after_failure(2000);
        store.uncount_attempt(&who, counted, seen).await.unwrap();
        assert_eq!(
            store.login_record(&who).await.unwrap().failures,
            FailedLogins::default()
        );
        // The compare-and-swap from "no record" goes through, as for a name never tried.
        let next = store.count_attempt(&who, FailedLogins::default(), 2001).await.unwrap();
        assert_eq!(
            next,
            Some(FailedLogins {
                count: 1,
                last_at: 2001
            })
        );
    }

    #[tokio::test]
    async fn a_burst_of_24_parallel_guesses_gets_at_most_the_limit_checked_and_the_rest_429() {
        let (store, _) = fresh_store().await;
        let password = Password::parse("correct horse battery staple").unwrap();
        let mut alice = user("alice");
        alice.password_hash = shared::password::hash(&password).await.unwrap();
        store.create_user(&alice).await.unwrap();
        let tokens = std::sync::Arc::new(dev_authority());
        let store = Arc::new(store);
        let now = shared::now();
        let guesses = (0..24).map(|i| {
            let (store, tokens) = (store.clone(), tokens.clone());
            // The right password is the 13th guess sent.
            let raw = if i == 12 {
                "correct horse battery staple".to_owned()
            } else {
                format!("wrong guess {i}")
            };
            tokio::spawn(async move {
                let password = Password::parse(&raw).unwrap();
                login::login(&*store, &tokens, &name("alice"), &password, Origin::default(), now).await
            })
        });
        let mut checked = 0;
        let mut locked = 0;
        for guess in guesses.collect::<Vec<_>>() {
            match guess.await.unwrap() {
                Ok(_) | Err(login::LoginError::InvalidCredentials) => checked += 1,
                Err(login::LoginError::Locked { .. }) => locked += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(checked <= FailedLogins::LIMIT, "{checked} guesses checked");
        assert_eq!(checked + locked, 24);
    }
}
