//! The TOTP second factor: the store's single-use rules on DynamoDB Local (a
//! code's step, a recovery code, the attempt counter), end to end over HTTP
//! with codes computed from the secret as an authenticator app computes them,
//! and the authorizer's `REQUIRE_MFA` with and without `otp`.

use aws_sdk_dynamodb::types::AttributeValue;
use integration::{Api, Reply, TotpApp, as_word, authorize, authorizer_event, fresh_store, required_env};
use reqwest::Method;
use serde_json::{Value, json};
use shared::credentials::Username;
use shared::service::mfa::OTP;
use shared::session::{Origin, PASSWORD, Session};
use shared::store::dynamo::DynamoStore;
use shared::store::{AccountStore, Change, MfaStore, Proof, SessionStore, TotpFactor, User, UserStore};
use shared::testing::{dev_authority, dev_env, enable_totp, forge_with, forge_with_dev_key, user};
use shared::totp::{self, STEP, TotpIssuer, TotpSecret};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD_TEXT: &str = "correct horse battery staple";

fn now() -> u64 {
    shared::now()
}

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

// ---- the store on DynamoDB Local -------------------------------------------

/// A stored user (its name in mixed case) with an active factor, as
/// enrollment and confirmation leave it; the user and factor as read, and
/// the recovery codes.
async fn with_totp(store: &DynamoStore, username: &str) -> (User, TotpFactor, Vec<String>) {
    let stored = user(&uuid::Uuid::new_v4().to_string(), username);
    store.create_user(&stored).await.unwrap();
    let (_, codes) = enable_totp(store, &stored, now()).await;
    let record = store.login_record(&name(username)).await.unwrap();
    (record.user.unwrap(), record.totp.unwrap(), codes)
}

/// A new session of `user` after a second factor, as `POST /login/mfa` starts it.
fn otp_session(user: &User) -> Session {
    shared::service::sessions::start(&dev_authority(), user, &[PASSWORD, OTP], Origin::default(), now())
}

fn recovery(user: &User, code: &str) -> Proof {
    Proof::Recovery(totp::recovery_code_hash(&user.id, code).expect("a well-formed recovery code"))
}

fn digests(user: &User, codes: &[String]) -> Vec<String> {
    codes
        .iter()
        .map(|c| totp::recovery_code_hash(&user.id, c).unwrap())
        .collect()
}

async fn factor_of(store: &DynamoStore, username: &str) -> Option<TotpFactor> {
    store.login_record(&name(username)).await.unwrap().totp
}

/// A new live attempt for `username`, with one try counted, as `POST /login`
/// then `POST /login/mfa` leave it just before the code is consumed.
async fn attempt(store: &DynamoStore, username: &str) -> String {
    let jti = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        store.start_mfa_attempt(&name(username), &jti).await.unwrap(),
        Change::Done
    );
    assert!(store.count_mfa_try(&name(username), &jti).await.unwrap());
    jti
}

#[tokio::test]
async fn a_codes_step_is_accepted_once_and_no_earlier_step_after_it() {
    let (store, _) = fresh_store().await;
    let (alice, factor, _) = with_totp(&store, "Alice").await;
    let step = factor.last_step + 2;
    let first = otp_session(&alice);
    let jti = attempt(&store, "alice").await;
    assert_eq!(
        store
            .finish_mfa_login(&alice, &jti, &Proof::Step(step), &first)
            .await
            .unwrap(),
        Change::Done
    );
    let after = factor_of(&store, "alice").await.unwrap();
    assert_eq!(
        (after.last_step, after.attempt.as_str(), after.attempt_tries),
        (step, "", 0),
        "the step remembered, the attempt ended"
    );
    let jti = attempt(&store, "alice").await;
    for replay in [step, step - 1] {
        let late = otp_session(&alice);
        assert_eq!(
            store
                .finish_mfa_login(&alice, &jti, &Proof::Step(replay), &late)
                .await
                .unwrap(),
            Change::Conflict,
            "step {replay} after {step}"
        );
        assert_eq!(store.session(&late.key()).await.unwrap(), None, "no session written");
    }
    let next = otp_session(&alice);
    assert_eq!(
        store
            .finish_mfa_login(&alice, &jti, &Proof::Step(step + 1), &next)
            .await
            .unwrap(),
        Change::Done
    );
    let sessions = store.sessions("alice").await.unwrap();
    let mut ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
    ids.sort();
    let mut want = [first.id.as_str(), next.id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert!(sessions.iter().all(|s| s.amr == ["pwd", "otp"]), "{sessions:?}");
}

#[tokio::test]
async fn the_step_that_activated_the_factor_is_used_and_refused_at_login() {
    let (store, client) = fresh_store().await;
    let bob = user("u-bob", "Bob");
    store.create_user(&bob).await.unwrap();
    let pending = TotpFactor {
        secret: TotpSecret::generate(),
        active: false,
        created_at: now(),
        last_step: 0,
        recovery: Vec::new(),
        attempt: String::new(),
        attempt_tries: 0,
    };
    assert_eq!(store.put_pending_totp(&bob, &pending).await.unwrap(), Change::Done);
    let step = now() / STEP;
    let codes = totp::new_recovery_codes();
    assert_eq!(
        store
            .activate_totp(&bob, &pending, step, &digests(&bob, &codes))
            .await
            .unwrap(),
        Change::Done
    );
    let record = store.login_record(&name("bob")).await.unwrap();
    let (bob, active) = (record.user.unwrap(), record.totp.unwrap());
    assert!(bob.totp, "the user is marked");
    assert!(active.active);
    assert_eq!((active.last_step, active.recovery.len()), (step, 10));
    let item = totp_item(&client, &store, "bob").await.unwrap();
    assert!(!item.contains_key("ttl"), "an active factor does not expire");
    let jti = attempt(&store, "bob").await;
    assert_eq!(
        store
            .finish_mfa_login(&bob, &jti, &Proof::Step(step), &otp_session(&bob))
            .await
            .unwrap(),
        Change::Conflict,
        "the confirming code is not good again at login"
    );
    assert_eq!(
        store
            .finish_mfa_login(&bob, &jti, &Proof::Step(step + 1), &otp_session(&bob))
            .await
            .unwrap(),
        Change::Done
    );
}

/// The raw `MFA#TOTP` item of `username` (lower case), read consistently.
async fn totp_item(
    client: &aws_sdk_dynamodb::Client,
    store: &DynamoStore,
    username: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("USER#{username}")))
        .key("sk", AttributeValue::S("MFA#TOTP".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn an_enrollment_replaces_a_pending_one_and_is_refused_once_a_factor_is_active() {
    let (store, client) = fresh_store().await;
    let carol = user("u-carol", "carol");
    store.create_user(&carol).await.unwrap();
    let pending = |secret: TotpSecret| TotpFactor {
        secret,
        active: false,
        created_at: now(),
        last_step: 0,
        recovery: Vec::new(),
        attempt: String::new(),
        attempt_tries: 0,
    };
    let (first, second) = (pending(TotpSecret::generate()), pending(TotpSecret::generate()));
    assert_eq!(store.put_pending_totp(&carol, &first).await.unwrap(), Change::Done);
    let item = totp_item(&client, &store, "carol").await.unwrap();
    let ttl = item["ttl"].as_n().unwrap().parse::<u64>().unwrap();
    assert_eq!(ttl, first.created_at + totp::PENDING_TTL, "a pending factor expires");
    assert_eq!(store.put_pending_totp(&carol, &second).await.unwrap(), Change::Done);
    assert_eq!(factor_of(&store, "carol").await.unwrap().secret, second.secret);
    let codes = digests(&carol, &totp::new_recovery_codes());
    assert_eq!(
        store.activate_totp(&carol, &first, 5, &codes).await.unwrap(),
        Change::Conflict,
        "the replaced enrollment cannot be confirmed"
    );
    assert!(!store.login_record(&name("carol")).await.unwrap().user.unwrap().totp);
    assert_eq!(
        store.activate_totp(&carol, &second, 5, &codes).await.unwrap(),
        Change::Done
    );
    assert_eq!(
        store.activate_totp(&carol, &second, 6, &codes).await.unwrap(),
        Change::Conflict,
        "confirmed once"
    );
    let third = pending(TotpSecret::generate());
    assert_eq!(
        store.put_pending_totp(&carol, &third).await.unwrap(),
        Change::Conflict,
        "an active factor is not replaced"
    );
    let after = factor_of(&store, "carol").await.unwrap();
    assert!(after.active && after.secret == second.secret);
    let stranger = user("u-other", "nobody");
    assert_eq!(
        store.put_pending_totp(&stranger, &third).await.unwrap(),
        Change::Conflict,
        "no factor for a user who is not there"
    );
    assert_eq!(factor_of(&store, "nobody").await, None);
}

#[tokio::test]
async fn of_eight_parallel_logins_with_one_recovery_code_exactly_one_wins() {
    let (store, _) = fresh_store().await;
    let (dave, _, codes) = with_totp(&store, "dave").await;
    let jti = attempt(&store, "dave").await;
    let store = Arc::new(store);
    let sessions: Vec<Session> = (0..8).map(|_| otp_session(&dave)).collect();
    let tasks: Vec<_> = sessions
        .iter()
        .map(|session| {
            let (store, dave, jti, session) = (store.clone(), dave.clone(), jti.clone(), session.clone());
            let proof = recovery(&dave, &codes[0]);
            tokio::spawn(async move { store.finish_mfa_login(&dave, &jti, &proof, &session).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Change::Done).count(),
        1,
        "{outcomes:?}"
    );
    let winner = &sessions[outcomes.iter().position(|o| *o == Change::Done).unwrap()];
    let stored: Vec<String> = store
        .sessions("dave")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(stored, vec![winner.id.clone()], "only the winner's session");
    let left = factor_of(&store, "dave").await.unwrap().recovery;
    assert_eq!(left.len(), 9);
    let Proof::Recovery(used) = recovery(&dave, &codes[0]) else {
        unreachable!()
    };
    assert!(!left.contains(&used));
    // The code is gone, not only the attempt: a new attempt cannot use it either.
    let jti = attempt(&store, "dave").await;
    assert_eq!(
        store
            .finish_mfa_login(&dave, &jti, &recovery(&dave, &codes[0]), &otp_session(&dave))
            .await
            .unwrap(),
        Change::Conflict
    );
    let typed = codes[1].to_uppercase().replace('-', " ");
    assert_eq!(
        store
            .finish_mfa_login(&dave, &jti, &recovery(&dave, &typed), &otp_session(&dave))
            .await
            .unwrap(),
        Change::Done,
        "another code, typed in another case and spacing"
    );
    assert_eq!(factor_of(&store, "dave").await.unwrap().recovery.len(), 8);
}

#[tokio::test]
async fn of_eight_parallel_logins_with_one_code_exactly_one_wins() {
    let (store, _) = fresh_store().await;
    let (erin, factor, _) = with_totp(&store, "erin").await;
    let jti = attempt(&store, "erin").await;
    let store = Arc::new(store);
    let step = factor.last_step + 1;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, erin, jti) = (store.clone(), erin.clone(), jti.clone());
            tokio::spawn(async move {
                let session = otp_session(&erin);
                store
                    .finish_mfa_login(&erin, &jti, &Proof::Step(step), &session)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += usize::from(task.await.unwrap() == Change::Done);
    }
    assert_eq!(done, 1);
    assert_eq!(store.sessions("erin").await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_attempt_takes_max_tries_codes_and_a_new_attempt_voids_the_old_one_and_starts_again() {
    let (store, _) = fresh_store().await;
    let (frank, factor, _) = with_totp(&store, "Frank").await;
    let frank_name = name("frank");
    assert_eq!(
        store.start_mfa_attempt(&frank_name, "first").await.unwrap(),
        Change::Done
    );
    for i in 0..totp::MAX_TRIES {
        assert!(store.count_mfa_try(&frank_name, "first").await.unwrap(), "try {i}");
    }
    assert!(
        !store.count_mfa_try(&frank_name, "first").await.unwrap(),
        "one too many"
    );
    assert!(!store.count_mfa_try(&frank_name, "first").await.unwrap());
    assert_eq!(
        factor_of(&store, "frank").await.unwrap().attempt_tries,
        totp::MAX_TRIES,
        "refused tries are not counted"
    );
    assert!(
        !store.count_mfa_try(&frank_name, "another").await.unwrap(),
        "not the live attempt"
    );
    assert_eq!(
        store.start_mfa_attempt(&frank_name, "second").await.unwrap(),
        Change::Done
    );
    let after = factor_of(&store, "frank").await.unwrap();
    assert_eq!((after.attempt.as_str(), after.attempt_tries), ("second", 0));
    assert!(
        !store.count_mfa_try(&frank_name, "first").await.unwrap(),
        "the older attempt is void"
    );
    for _ in 0..totp::MAX_TRIES {
        assert!(store.count_mfa_try(&frank_name, "second").await.unwrap());
    }
    assert!(!store.count_mfa_try(&frank_name, "second").await.unwrap());
    let step = Proof::Step(factor.last_step + 1);
    assert_eq!(
        store
            .finish_mfa_login(&frank, "first", &step, &otp_session(&frank))
            .await
            .unwrap(),
        Change::Conflict,
        "the void attempt logs nobody in"
    );
    assert_eq!(
        store
            .finish_mfa_login(&frank, "second", &step, &otp_session(&frank))
            .await
            .unwrap(),
        Change::Done,
        "the fifth counted try may still log in"
    );
    assert!(
        !store.count_mfa_try(&frank_name, "second").await.unwrap(),
        "a finished attempt takes no more tries"
    );
}

#[tokio::test]
async fn of_twenty_parallel_tries_with_one_attempt_exactly_max_tries_are_counted() {
    let (store, _) = fresh_store().await;
    with_totp(&store, "grace").await;
    assert_eq!(
        store.start_mfa_attempt(&name("grace"), "a").await.unwrap(),
        Change::Done
    );
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.count_mfa_try(&name("grace"), "a").await.unwrap() })
        })
        .collect();
    let mut counted = 0;
    for task in tasks {
        counted += u32::from(task.await.unwrap());
    }
    assert_eq!(counted, totp::MAX_TRIES);
    assert_eq!(factor_of(&store, "grace").await.unwrap().attempt_tries, totp::MAX_TRIES);
}

#[tokio::test]
async fn there_is_no_attempt_without_an_active_factor() {
    let (store, _) = fresh_store().await;
    assert_eq!(
        store.start_mfa_attempt(&name("nobody"), "a").await.unwrap(),
        Change::Conflict
    );
    assert!(!store.count_mfa_try(&name("nobody"), "a").await.unwrap());
    assert_eq!(factor_of(&store, "nobody").await, None, "nothing created");
    let heidi = user("u-heidi", "heidi");
    store.create_user(&heidi).await.unwrap();
    let pending = TotpFactor {
        secret: TotpSecret::generate(),
        active: false,
        created_at: now(),
        last_step: 0,
        recovery: Vec::new(),
        attempt: String::new(),
        attempt_tries: 0,
    };
    store.put_pending_totp(&heidi, &pending).await.unwrap();
    assert_eq!(
        store.start_mfa_attempt(&name("heidi"), "a").await.unwrap(),
        Change::Conflict,
        "a pending factor asks for no code at login"
    );
    assert!(!store.count_mfa_try(&name("heidi"), "a").await.unwrap());
}

#[tokio::test]
async fn renewing_the_recovery_codes_voids_the_old_set_and_consumes_the_code_given() {
    let (store, _) = fresh_store().await;
    let (ivan, factor, old) = with_totp(&store, "ivan").await;
    let new = totp::new_recovery_codes();
    let step = factor.last_step + 1;
    assert_eq!(
        store
            .replace_recovery_codes(&ivan, &factor, Some(&Proof::Step(step)), &digests(&ivan, &new))
            .await
            .unwrap(),
        Change::Done
    );
    let mut stored = factor_of(&store, "ivan").await.unwrap().recovery;
    let mut want = digests(&ivan, &new);
    stored.sort();
    want.sort();
    assert_eq!(stored, want, "exactly the new set");
    assert_eq!(
        store
            .replace_recovery_codes(&ivan, &factor, Some(&Proof::Step(step)), &digests(&ivan, &old))
            .await
            .unwrap(),
        Change::Conflict,
        "the code's step was used by the renewal"
    );
    let other = TotpFactor {
        secret: TotpSecret::generate(),
        ..factor.clone()
    };
    assert_eq!(
        store
            .replace_recovery_codes(&ivan, &other, None, &digests(&ivan, &old))
            .await
            .unwrap(),
        Change::Conflict,
        "not the factor as read"
    );
    let jti = attempt(&store, "ivan").await;
    for used in [Proof::Step(step), recovery(&ivan, &old[0])] {
        assert_eq!(
            store
                .finish_mfa_login(&ivan, &jti, &used, &otp_session(&ivan))
                .await
                .unwrap(),
            Change::Conflict,
            "{used:?}"
        );
    }
    assert_eq!(
        store
            .finish_mfa_login(&ivan, &jti, &recovery(&ivan, &new[0]), &otp_session(&ivan))
            .await
            .unwrap(),
        Change::Done
    );
    // With the password (no proof to consume), again.
    let newer = totp::new_recovery_codes();
    assert_eq!(
        store
            .replace_recovery_codes(&ivan, &factor, None, &digests(&ivan, &newer))
            .await
            .unwrap(),
        Change::Done
    );
    assert_eq!(factor_of(&store, "ivan").await.unwrap().recovery.len(), 10);
}

#[tokio::test]
async fn removing_the_factor_deletes_it_and_unmarks_the_user() {
    let (store, _) = fresh_store().await;
    let (judy, factor, _) = with_totp(&store, "Judy").await;
    assert!(judy.totp);
    assert_eq!(
        store
            .remove_totp(&judy, &factor, Some(&Proof::Step(factor.last_step)))
            .await
            .unwrap(),
        Change::Conflict,
        "a used step proves nothing"
    );
    assert!(factor_of(&store, "judy").await.is_some());
    assert_eq!(
        store
            .remove_totp(&judy, &factor, Some(&Proof::Step(factor.last_step + 1)))
            .await
            .unwrap(),
        Change::Done
    );
    let record = store.login_record(&name("judy")).await.unwrap();
    assert_eq!(record.totp, None);
    assert!(!record.user.unwrap().totp, "the user is unmarked");
    assert_eq!(
        store.remove_totp(&judy, &factor, None).await.unwrap(),
        Change::Conflict,
        "removed once"
    );
    assert_eq!(
        store.start_mfa_attempt(&name("judy"), "a").await.unwrap(),
        Change::Conflict
    );
    // With the password (no proof): another user's factor.
    let (ken, factor, _) = with_totp(&store, "ken").await;
    assert_eq!(store.remove_totp(&ken, &factor, None).await.unwrap(), Change::Done);
    assert_eq!(factor_of(&store, "ken").await, None);
}

#[tokio::test]
async fn deleting_the_user_deletes_its_factor_and_a_new_user_of_the_name_has_none() {
    let (store, client) = fresh_store().await;
    let (leo, _, _) = with_totp(&store, "Leo").await;
    store.create_session(&otp_session(&leo), None).await.unwrap();
    assert_eq!(store.delete_user(&leo).await.unwrap(), Change::Done);
    let record = store.login_record(&name("leo")).await.unwrap();
    assert_eq!((record.user, record.totp), (None, None));
    let items = client.scan().table_name(store.table()).send().await.unwrap();
    assert_eq!(items.count(), 0, "nothing left: {:?}", items.items());
    let again = user("u-new-leo", "leo");
    store.create_user(&again).await.unwrap();
    let record = store.login_record(&name("LEO")).await.unwrap();
    assert_eq!(record.totp, None);
    assert!(!record.user.unwrap().totp);
    assert_eq!(
        store.start_mfa_attempt(&name("leo"), "a").await.unwrap(),
        Change::Conflict,
        "the new owner of the name logs in with a password"
    );
}

#[tokio::test]
async fn a_password_session_read_before_a_factor_was_confirmed_is_not_written_after_it() {
    let (store, _) = fresh_store().await;
    let mia = user(&uuid::Uuid::new_v4().to_string(), "Mia");
    store.create_user(&mia).await.unwrap();
    // The password login read mia without a factor; the factor is confirmed before its session write.
    enable_totp(&store, &mia, now()).await;
    let session = shared::testing::password_session(&dev_authority(), &mia, now());
    assert_eq!(
        store.create_session(&session, Some(&mia)).await.unwrap(),
        Change::Conflict
    );
    assert!(store.sessions("mia").await.unwrap().is_empty());
    let marked = store.login_record(&name("mia")).await.unwrap().user.unwrap();
    assert_eq!(
        store
            .create_session(&otp_session(&marked), Some(&marked))
            .await
            .unwrap(),
        Change::Done
    );
}

#[tokio::test]
async fn a_deletion_that_read_the_user_before_a_factor_was_confirmed_leaves_nothing_behind() {
    let (store, client) = fresh_store().await;
    let noa = user(&uuid::Uuid::new_v4().to_string(), "Noa");
    store.create_user(&noa).await.unwrap();
    enable_totp(&store, &noa, now()).await;
    assert_eq!(
        store.delete_user(&noa).await.unwrap(),
        Change::Conflict,
        "the user changed since read"
    );
    let read = store.login_record(&name("noa")).await.unwrap().user.unwrap();
    assert_eq!(store.delete_user(&read).await.unwrap(), Change::Done);
    let items = client.scan().table_name(store.table()).send().await.unwrap();
    assert_eq!(items.count(), 0, "nothing left: {:?}", items.items());
}

// ---- end to end over HTTP -------------------------------------------------

fn api() -> Api {
    Api::from_env()
}

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"], code, "{}", r.text);
    assert!(r.json["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
    assert_eq!(r.header("content-type"), "application/json");
}

/// The claims of a JWT, read without verifying it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&shared::testing::b64_decode(payload)).expect("JSON claims")
}

/// A registered user with an active TOTP factor.
struct Enrolled {
    username: String,
    creds: Value,
    /// The user's id.
    id: String,
    /// Of the password login before the factor was set up: its session is live.
    access: String,
    refresh: String,
    app: TotpApp,
    recovery: Vec<String>,
}

async fn enroll(api: &Api, access: &str) -> Reply {
    api.with_bearer(Method::POST, "/mfa/totp", Some(access), None).await
}

async fn confirm(api: &Api, access: &str, code: &str) -> Reply {
    api.with_bearer(
        Method::POST,
        "/mfa/totp/confirm",
        Some(access),
        Some(json!({ "code": code })),
    )
    .await
}

/// Registers a user, logs in, enrolls and confirms a factor with a code from the secret.
async fn enrolled(api: &Api) -> Enrolled {
    let (username, password) = api.new_user().await;
    let creds = json!({"username": username, "password": password});
    let login = api.post("/login", creds.clone()).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let access = login.field("access_token");
    let r = enroll(api, &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut app = TotpApp::new(TotpSecret::from_base32(&r.field("secret")).expect("a base32 secret"));
    let r = confirm(api, &access, &app.code().await).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let recovery = r.json["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        username,
        creds,
        id: claims(&access)["sub"].as_str().unwrap().to_owned(),
        access,
        refresh: login.field("refresh_token"),
        app,
        recovery,
    }
}

/// `POST /login` with the right password for a user with a factor: the `mfa_token`.
async fn password_step(api: &Api, creds: &Value) -> String {
    let r = api.post("/login", creds.clone()).await;
    assert_error(&r, 403, "mfa_required");
    r.field("mfa_token")
}

/// `POST /login/mfa` with `field` (`code` or `recovery_code`) set to `value`.
async fn second_step(api: &Api, mfa_token: &str, field: &str, value: &str) -> Reply {
    let mut body = json!({ "mfa_token": mfa_token });
    body[field] = value.into();
    api.post("/login/mfa", body).await
}

/// A token response of a login with a second factor: its access token's `amr` says so.
fn assert_otp_tokens(r: &Reply) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store");
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(claims(&r.field("access_token"))["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims(&r.field("access_token"))["token_use"], "access");
}

async fn mfa_of(api: &Api, access: &str) -> Value {
    let r = api.get("/account", Some(access)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["mfa"].clone()
}

async fn session_count(api: &Api, access: &str) -> usize {
    let r = api.get("/sessions", Some(access)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["sessions"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_user_sets_up_totp_logs_in_with_codes_and_a_recovery_code_and_turns_it_off() {
    let api = api();
    let (username, password) = api.new_user().await;
    let creds = json!({"username": username, "password": password});
    let login = api.post("/login", creds.clone()).await;
    let access = login.field("access_token");
    assert_eq!(mfa_of(&api, &access).await, json!({"totp": false, "passkeys": 0}));

    let r = enroll(&api, &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store");
    let secret = r.field("secret");
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    assert!(
        secret
            .bytes()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
    );
    let issuer = dev_env("TOTP_ISSUER").unwrap_or_else(|| TotpIssuer::DEFAULT.to_owned());
    let uri = r.field("otpauth_uri");
    assert!(
        uri.starts_with(&format!("otpauth://totp/{issuer}:{username}?")),
        "{uri}"
    );
    for part in [format!("secret={secret}"), format!("issuer={issuer}")] {
        assert!(uri.contains(&part), "{uri} lacks {part}");
    }
    let mut app = TotpApp::new(TotpSecret::from_base32(&secret).unwrap());
    assert_eq!(
        api.post("/login", creds.clone()).await.status,
        200,
        "a pending factor changes nothing at login"
    );
    assert_eq!(mfa_of(&api, &access).await["totp"], false, "nor on the account");

    let r = confirm(&api, &access, &app.code().await).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store");
    let recovery: Vec<String> = r.json["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{}", r.text);
    let distinct: std::collections::HashSet<&String> = recovery.iter().collect();
    assert_eq!(distinct.len(), 10);
    for code in &recovery {
        let groups: Vec<&str> = code.split('-').collect();
        assert!(groups.len() == 4 && groups.iter().all(|g| g.len() == 4), "{code}");
    }
    assert_eq!(mfa_of(&api, &access).await, json!({"totp": true, "passkeys": 0}));
    let sessions_before = session_count(&api, &access).await;

    // The password alone gets a 403 with an mfa_token, and no session.
    let r = api.post("/login", creds.clone()).await;
    assert_error(&r, 403, "mfa_required");
    assert_eq!(r.header("cache-control"), "no-store");
    assert_eq!(r.json["methods"], json!(["totp", "recovery_code"]));
    assert!(
        r.json.get("access_token").is_none() && r.json.get("refresh_token").is_none(),
        "{}",
        r.text
    );
    let mfa_token = r.field("mfa_token");
    let c = claims(&mfa_token);
    assert_eq!(c["token_use"], "mfa");
    assert_eq!(c["username"], username.as_str());
    assert_eq!(c["sub"], claims(&access)["sub"]);
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);
    assert_eq!(session_count(&api, &access).await, sessions_before, "no session yet");

    // A code: the tokens, with amr pwd and otp.
    let r = second_step(&api, &mfa_token, "code", &app.code().await).await;
    assert_otp_tokens(&r);
    assert_eq!(session_count(&api, &access).await, sessions_before + 1);
    let me = api.get("/protected", Some(&r.field("access_token"))).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let refreshed = api.refresh(&r.field("refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(
        claims(&refreshed.field("access_token"))["amr"],
        json!(["pwd", "otp"]),
        "a refresh keeps the amr"
    );
    assert_error(
        &second_step(&api, &mfa_token, "code", &app.last_code()).await,
        401,
        "invalid_token",
    );

    // The same code again, or one of an earlier step, with a new mfa_token: refused.
    let mfa_token = password_step(&api, &creds).await;
    for (what, code) in [("replay", app.last_code()), ("earlier step", app.earlier_code())] {
        let r = second_step(&api, &mfa_token, "code", &code).await;
        assert_error(&r, 401, "invalid_code");
        assert!(r.json.get("access_token").is_none(), "{what}");
    }

    // A recovery code works once, in any case and spacing.
    let r = second_step(&api, &mfa_token, "recovery_code", &recovery[0]).await;
    assert_otp_tokens(&r);
    let mfa_token = password_step(&api, &creds).await;
    let r = second_step(&api, &mfa_token, "recovery_code", &recovery[0]).await;
    assert_error(&r, 401, "invalid_code");
    let typed = format!(" {} ", recovery[1].to_uppercase().replace('-', " "));
    let r = second_step(&api, &mfa_token, "recovery_code", &typed).await;
    assert_otp_tokens(&r);
    let access = r.field("access_token");

    // Off: the password is needed, then a password logs in alone.
    let off = |password: &str| {
        let (api, access, body) = (api.clone(), access.clone(), json!({ "password": password }));
        async move {
            api.with_bearer(Method::DELETE, "/mfa/totp", Some(&access), Some(body))
                .await
        }
    };
    assert_error(&off("wrong password").await, 401, "invalid_credentials");
    assert_eq!(mfa_of(&api, &access).await["totp"], true);
    let r = off(&password).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(mfa_of(&api, &access).await, json!({"totp": false, "passkeys": 0}));
    let r = api.post("/login", creds.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims(&r.field("access_token"))["amr"], json!(["pwd"]));
    assert_error(&off(&password).await, 404, "not_found");

    // A new factor can be set up; the old one's recovery codes are gone with it.
    let r = enroll(&api, &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.field("secret"), secret);
    let mut app = TotpApp::new(TotpSecret::from_base32(&r.field("secret")).unwrap());
    assert_eq!(confirm(&api, &access, &app.code().await).await.status, 200);
    let mfa_token = password_step(&api, &creds).await;
    let r = second_step(&api, &mfa_token, "recovery_code", &recovery[2]).await;
    assert_error(&r, 401, "invalid_code");
    assert_otp_tokens(&second_step(&api, &mfa_token, "code", &app.code().await).await);
}

#[tokio::test]
async fn a_login_by_verified_email_asks_for_the_code_too() {
    let api = api();
    let address = integration::new_address();
    let username = format!("user-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let r = api
        .post(
            "/register",
            json!({"username": username, "password": PASSWORD_TEXT, "email": address}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let by_name = json!({"username": username, "password": PASSWORD_TEXT});
    let access = api.post("/login", by_name).await.field("access_token");
    let code = integration::code_mailed_to(&address).await;
    let r = api
        .with_bearer(
            Method::POST,
            "/account/email/verify",
            Some(&access),
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = enroll(&api, &access).await;
    let mut app = TotpApp::new(TotpSecret::from_base32(&r.field("secret")).unwrap());
    assert_eq!(confirm(&api, &access, &app.code().await).await.status, 200);
    let by_email = json!({"email": address, "password": PASSWORD_TEXT});
    let mfa_token = password_step(&api, &by_email).await;
    assert_eq!(claims(&mfa_token)["username"], username.as_str());
    assert_otp_tokens(&second_step(&api, &mfa_token, "code", &app.code().await).await);
}

#[tokio::test]
async fn of_four_parallel_confirmations_with_one_code_exactly_one_activates_the_factor() {
    let api = api();
    let access = api.logged_in().await.field("access_token");
    let r = enroll(&api, &access).await;
    let mut app = TotpApp::new(TotpSecret::from_base32(&r.field("secret")).unwrap());
    let code = app.code().await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (api, access, code) = (api.clone(), access.clone(), code.clone());
            tokio::spawn(async move { confirm(&api, &access, &code).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            200 => winners.push(r.json["recovery_codes"].clone()),
            400 => assert_eq!(r.json["error"], "invalid_code", "{}", r.text),
            409 => assert_eq!(r.json["error"], "totp_enabled", "{}", r.text),
            _ => panic!("{}", r.text),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(mfa_of(&api, &access).await["totp"], true);
}

#[tokio::test]
async fn an_enrollment_is_pending_until_its_first_code_and_a_new_one_replaces_it() {
    let api = api();
    let access = api.logged_in().await.field("access_token");
    assert_error(&confirm(&api, &access, "123456").await, 404, "not_found");
    let first = enroll(&api, &access).await;
    let second = enroll(&api, &access).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_ne!(first.field("secret"), second.field("secret"));
    let mut old = TotpApp::new(TotpSecret::from_base32(&first.field("secret")).unwrap());
    let mut app = TotpApp::new(TotpSecret::from_base32(&second.field("secret")).unwrap());
    assert_error(&confirm(&api, &access, &old.code().await).await, 400, "invalid_code");
    assert_error(&confirm(&api, &access, &app.wrong_code()).await, 400, "invalid_code");
    for bad in [json!({}), json!({"code": 123456}), json!([])] {
        let r = api
            .with_bearer(Method::POST, "/mfa/totp/confirm", Some(&access), Some(bad))
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = confirm(&api, &access, &app.code().await).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = enroll(&api, &access).await;
    assert_error(&r, 409, "totp_enabled");
    assert!(r.json.get("secret").is_none(), "{}", r.text);
    assert_error(&confirm(&api, &access, &app.code().await).await, 409, "totp_enabled");
    let account = api.get("/account", Some(&access)).await;
    assert!(
        !account.text.contains(&second.field("secret")),
        "the secret is never shown again"
    );
}

#[tokio::test]
async fn the_mfa_token_is_refused_on_every_other_route_and_by_the_authorizer() {
    let api = api();
    let mut e = enrolled(&api).await;
    let mfa_token = password_step(&api, &e.creds).await;
    let challenge = "Bearer realm=\"lambda-jwt-auth\", error=\"invalid_token\"";
    let bearer_routes: [(Method, &str, Option<Value>); 11] = [
        (Method::GET, "/protected", None),
        (Method::GET, "/account", None),
        (Method::DELETE, "/account", Some(json!({"password": PASSWORD_TEXT}))),
        (
            Method::POST,
            "/account/password",
            Some(json!({"current_password": PASSWORD_TEXT, "new_password": "another horse battery staple"})),
        ),
        (Method::GET, "/sessions", None),
        (Method::DELETE, "/sessions/00000000-0000-4000-8000-000000000000", None),
        (Method::POST, "/mfa/totp", None),
        (Method::DELETE, "/mfa/totp", Some(json!({"password": PASSWORD_TEXT}))),
        (Method::POST, "/mfa/totp/confirm", Some(json!({"code": "123456"}))),
        (
            Method::POST,
            "/mfa/recovery-codes",
            Some(json!({"password": PASSWORD_TEXT})),
        ),
        (Method::POST, "/refresh", None),
    ];
    for (method, path, body) in bearer_routes {
        let r = api.with_bearer(method.clone(), path, Some(&mfa_token), body).await;
        assert_error(&r, 401, "invalid_token");
        if path != "/refresh" {
            assert_eq!(r.header("www-authenticate"), challenge, "{method} {path}");
        }
    }
    for path in ["/refresh", "/logout"] {
        let r = api.post(path, json!({ "refresh_token": mfa_token })).await;
        assert_error(&r, 401, "invalid_token");
    }
    assert_eq!(
        authorize(&mfa_token, "GET /example").await,
        json!({"isAuthorized": false})
    );
    assert_eq!(mfa_of(&api, &e.access).await["totp"], true, "nothing was changed");
    // Still good where it belongs: those refusals used none of its tries.
    assert_otp_tokens(&second_step(&api, &mfa_token, "code", &e.app.code().await).await);
}

fn dev_header() -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": dev_authority().kid()})
}

/// A key of the same kind as the dev key that the stack has never seen.
fn another_key() -> shared::token::TokenAuthority {
    let set = shared::keyset::KeySet::generate(shared::keyset::Alg::RS256, 0);
    shared::token::TokenAuthority::from_secret(shared::testing::dev_settings(), &set.to_json()).unwrap()
}

#[tokio::test]
async fn forged_tampered_and_expired_mfa_tokens_are_refused_and_one_made_like_ours_is_accepted() {
    let api = api();
    let mut e = enrolled(&api).await;
    let real = password_step(&api, &e.creds).await;
    let live = claims(&real);
    let mut cases: Vec<(&str, String)> = vec![
        (
            "signed with another key",
            forge_with(&another_key(), dev_header(), live.clone()),
        ),
        ("alg none", {
            let mut h = dev_header();
            h["alg"] = "none".into();
            format!("{}.", forge_with_dev_key(h, live.clone()).rsplit_once('.').unwrap().0)
        }),
        ("garbage", "not.a.token".into()),
        ("an access token of the user", e.access.clone()),
    ];
    let mut changed = |label: &'static str, change: &dyn Fn(&mut Value)| {
        let mut c = live.clone();
        change(&mut c);
        cases.push((label, forge_with_dev_key(dev_header(), c)));
    };
    changed("expired", &|c| {
        c["iat"] = (now() - 3900).into();
        c["nbf"] = (now() - 3900).into();
        c["exp"] = (now() - 3600).into();
    });
    changed("marked access", &|c| c["token_use"] = "access".into());
    changed("marked refresh", &|c| c["token_use"] = "refresh".into());
    changed("living longer than 5 minutes", &|c| {
        c["exp"] = (c["iat"].as_u64().unwrap() + 3600).into()
    });
    changed("another user", &|c| c["sub"] = "someone-else".into());
    changed("another attempt", &|c| {
        c["jti"] = uuid::Uuid::new_v4().to_string().into()
    });
    changed("another password", &|c| c["pwf"] = "0000000000000000".into());
    let mut tampered = real.clone().into_bytes();
    let middle = real.find('.').unwrap() + 5;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    cases.push(("tampered payload", String::from_utf8(tampered).unwrap()));
    // A wrong code: were a token taken, the answer would be invalid_code, not invalid_token.
    let wrong = e.app.wrong_code();
    for (label, token) in cases {
        let r = second_step(&api, &token, "code", &wrong).await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (401, Some("invalid_token")),
            "{label}: {}",
            r.text
        );
    }
    // The same claims signed with the dev key (a key the stack still verifies
    // with) log in: the refusals above are each for the one thing changed.
    let made = forge_with_dev_key(dev_header(), live);
    assert_otp_tokens(&second_step(&api, &made, "code", &e.app.code().await).await);
}

#[tokio::test]
async fn five_wrong_codes_void_the_mfa_token_and_lock_the_name() {
    let api = api();
    let mut e = enrolled(&api).await;
    let mfa_token = password_step(&api, &e.creds).await;
    for i in 0..5 {
        let r = second_step(&api, &mfa_token, "code", &e.app.wrong_code()).await;
        assert_error(&r, 401, "invalid_code");
        assert!(r.json.get("access_token").is_none(), "try {i}");
    }
    let r = second_step(&api, &mfa_token, "code", &e.app.code().await).await;
    assert_error(&r, 401, "invalid_token");
    // The five failures count like wrong passwords: the name is locked.
    let r = api.post("/login", e.creds.clone()).await;
    assert_error(&r, 429, "too_many_attempts");
    assert!(
        r.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1),
        "{:?}",
        r.headers
    );
}

#[tokio::test]
async fn wrong_codes_count_toward_the_lockout_and_a_locked_name_gets_429_even_with_the_right_code() {
    let api = api();
    let mut e = enrolled(&api).await;
    let first = password_step(&api, &e.creds).await;
    for _ in 0..4 {
        assert_error(
            &second_step(&api, &first, "code", &e.app.wrong_code()).await,
            401,
            "invalid_code",
        );
    }
    // The right password neither clears nor adds to the count; a wrong recovery code counts (the fifth).
    let second = password_step(&api, &e.creds).await;
    assert_error(
        &second_step(&api, &second, "recovery_code", "0000-0000-0000-0000").await,
        401,
        "invalid_code",
    );
    let r = second_step(&api, &second, "code", &e.app.code().await).await;
    assert_error(&r, 429, "too_many_attempts");
    assert!(
        r.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1),
        "{:?}",
        r.headers
    );
    let r = second_step(&api, &second, "recovery_code", &e.recovery[0]).await;
    assert_error(&r, 429, "too_many_attempts");
    assert_error(&api.post("/login", e.creds.clone()).await, 429, "too_many_attempts");
}

#[tokio::test]
async fn wrong_enrollment_codes_count_toward_the_lockout() {
    let api = api();
    let (username, password) = api.new_user().await;
    let creds = json!({"username": username, "password": password});
    let access = api.post("/login", creds.clone()).await.field("access_token");
    let r = enroll(&api, &access).await;
    let mut app = TotpApp::new(TotpSecret::from_base32(&r.field("secret")).unwrap());
    for _ in 0..5 {
        assert_error(&confirm(&api, &access, &app.wrong_code()).await, 400, "invalid_code");
    }
    let r = confirm(&api, &access, &app.code().await).await;
    assert_error(&r, 429, "too_many_attempts");
    assert!(
        r.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1),
        "{:?}",
        r.headers
    );
    assert_error(&api.post("/login", creds).await, 429, "too_many_attempts");
    assert_eq!(mfa_of(&api, &access).await["totp"], false, "still pending");
}

/// Without a factor, four wrong passwords and then the right one log in (the
/// fifth attempt is counted, then cleared by the success). With a factor, the
/// right password and then the right code must log in alike: the right
/// password counted as a fifth attempt must not lock the name against the code.
#[tokio::test]
async fn four_wrong_passwords_then_the_right_password_and_code_log_in_as_without_a_factor() {
    let api = api();
    let wrong = |username: &str| json!({"username": username, "password": "wrong password"});
    let (username, password) = api.new_user().await;
    for _ in 0..4 {
        assert_error(&api.post("/login", wrong(&username)).await, 401, "invalid_credentials");
    }
    let r = api
        .post("/login", json!({"username": username, "password": password}))
        .await;
    assert_eq!(r.status, 200, "without a factor: {}", r.text);

    let mut e = enrolled(&api).await;
    for _ in 0..4 {
        assert_error(
            &api.post("/login", wrong(&e.username)).await,
            401,
            "invalid_credentials",
        );
    }
    let mfa_token = password_step(&api, &e.creds).await;
    let r = second_step(&api, &mfa_token, "code", &e.app.code().await).await;
    assert_otp_tokens(&r);
}

#[tokio::test]
async fn a_newer_password_login_supersedes_the_earlier_mfa_token_and_a_used_one_is_void() {
    let api = api();
    let mut e = enrolled(&api).await;
    let older = password_step(&api, &e.creds).await;
    let newer = password_step(&api, &e.creds).await;
    let code = e.app.code().await;
    assert_error(&second_step(&api, &older, "code", &code).await, 401, "invalid_token");
    assert_otp_tokens(&second_step(&api, &newer, "code", &code).await);
    assert_error(
        &second_step(&api, &newer, "recovery_code", &e.recovery[0]).await,
        401,
        "invalid_token",
    );
}

#[tokio::test]
async fn a_password_change_voids_an_mfa_token_issued_before_it() {
    let api = api();
    let mut e = enrolled(&api).await;
    let mfa_token = password_step(&api, &e.creds).await;
    let new = "a whole new horse battery staple";
    let r = api
        .with_bearer(
            Method::POST,
            "/account/password",
            Some(&e.access),
            Some(json!({"current_password": PASSWORD_TEXT, "new_password": new})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let code = e.app.code().await;
    assert_error(
        &second_step(&api, &mfa_token, "code", &code).await,
        401,
        "invalid_token",
    );
    let creds = json!({"username": e.username, "password": new});
    let mfa_token = password_step(&api, &creds).await;
    assert_otp_tokens(&second_step(&api, &mfa_token, "code", &code).await);
}

#[tokio::test]
async fn renewing_the_recovery_codes_needs_a_code_or_the_password_and_voids_the_old_set() {
    let api = api();
    let mut e = enrolled(&api).await;
    let renew = |body: Value| {
        let (api, access) = (api.clone(), e.access.clone());
        async move {
            api.with_bearer(Method::POST, "/mfa/recovery-codes", Some(&access), Some(body))
                .await
        }
    };
    let codes = |r: &Reply| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("cache-control"), "no-store");
        let codes: Vec<String> = r.json["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), 10);
        codes
    };
    let second = codes(&renew(json!({ "code": e.app.code().await })).await);
    assert!(second.iter().all(|c| !e.recovery.contains(c)));
    let mfa_token = password_step(&api, &e.creds).await;
    assert_error(
        &second_step(&api, &mfa_token, "recovery_code", &e.recovery[1]).await,
        401,
        "invalid_code",
    );
    assert_otp_tokens(&second_step(&api, &mfa_token, "recovery_code", &second[0]).await);

    let third = codes(&renew(json!({ "password": PASSWORD_TEXT })).await);
    let mfa_token = password_step(&api, &e.creds).await;
    assert_error(
        &second_step(&api, &mfa_token, "recovery_code", &second[1]).await,
        401,
        "invalid_code",
    );
    assert_otp_tokens(&second_step(&api, &mfa_token, "recovery_code", &third[0]).await);

    assert_error(
        &renew(json!({ "password": "wrong password" })).await,
        401,
        "invalid_credentials",
    );
    assert_error(&renew(json!({ "code": e.app.wrong_code() })).await, 401, "invalid_code");
    assert_error(&renew(json!({ "code": e.app.last_code() })).await, 401, "invalid_code");
    for bad in [
        json!({}),
        json!({"code": "123456", "password": PASSWORD_TEXT}),
        json!({"code": 123456}),
    ] {
        assert_error(&renew(bad).await, 400, "invalid_request");
    }
    let mfa_token = password_step(&api, &e.creds).await;
    assert_otp_tokens(&second_step(&api, &mfa_token, "recovery_code", &third[1]).await);
}

#[tokio::test]
async fn turning_the_factor_off_with_a_code_takes_a_current_one_once() {
    let api = api();
    let mut e = enrolled(&api).await;
    let off = |body: Value| {
        let (api, access) = (api.clone(), e.access.clone());
        async move {
            api.with_bearer(Method::DELETE, "/mfa/totp", Some(&access), Some(body))
                .await
        }
    };
    assert_error(&off(json!({ "code": e.app.last_code() })).await, 401, "invalid_code");
    assert_error(&off(json!({ "code": e.app.wrong_code() })).await, 401, "invalid_code");
    assert_error(
        &off(json!({"code": "123456", "password": PASSWORD_TEXT})).await,
        400,
        "invalid_request",
    );
    let r = off(json!({ "code": e.app.code().await })).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = api.post("/login", e.creds.clone()).await;
    assert_eq!(r.status, 200, "the password alone logs in again: {}", r.text);
    assert_error(&off(json!({ "password": PASSWORD_TEXT })).await, 404, "not_found");
    let r = api
        .with_bearer(
            Method::POST,
            "/mfa/recovery-codes",
            Some(&e.access),
            Some(json!({ "password": PASSWORD_TEXT })),
        )
        .await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn the_mfa_routes_refuse_an_access_token_whose_session_ended() {
    let api = api();
    let mut e = enrolled(&api).await;
    let out = api.post("/logout", json!({ "refresh_token": e.refresh })).await;
    assert_eq!(out.status, 204, "{}", out.text);
    let wrong = e.app.wrong_code();
    let routes: [(Method, &str, Option<Value>); 4] = [
        (Method::POST, "/mfa/totp", None),
        (Method::POST, "/mfa/totp/confirm", Some(json!({ "code": wrong }))),
        (Method::DELETE, "/mfa/totp", Some(json!({ "password": PASSWORD_TEXT }))),
        (
            Method::POST,
            "/mfa/recovery-codes",
            Some(json!({ "password": PASSWORD_TEXT })),
        ),
    ];
    for (method, path, body) in routes {
        let r = api.with_bearer(method.clone(), path, Some(&e.access), body).await;
        assert_error(&r, 401, "invalid_token");
        assert_eq!(
            r.header("www-authenticate"),
            "Bearer realm=\"lambda-jwt-auth\", error=\"invalid_token\"",
            "{method} {path}"
        );
    }
    assert_eq!(
        session_count(&api, &password_and_code_login(&api, &mut e).await).await,
        1,
        "the factor is as it was: the ended session is gone, the new one listed"
    );
}

/// Logs `e` in with the password and a code; the access token.
async fn password_and_code_login(api: &Api, e: &mut Enrolled) -> String {
    let mfa_token = password_step(api, &e.creds).await;
    let r = second_step(api, &mfa_token, "code", &e.app.code().await).await;
    assert_otp_tokens(&r);
    r.field("access_token")
}

#[tokio::test]
async fn of_eight_parallel_logins_with_one_recovery_code_over_http_exactly_one_succeeds() {
    let api = api();
    let e = enrolled(&api).await;
    let mfa_token = password_step(&api, &e.creds).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (api, token, code) = (api.clone(), mfa_token.clone(), e.recovery[0].clone());
            tokio::spawn(async move { second_step(&api, &token, "recovery_code", &code).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            200 => winners += 1,
            401 => assert!(
                r.json["error"] == "invalid_code" || r.json["error"] == "invalid_token",
                "{}",
                r.text
            ),
            _ => panic!("{}", r.text),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(
        session_count(&api, &e.access).await,
        2,
        "the first password login's session and the winner's"
    );
    let mfa_token = password_step(&api, &e.creds).await;
    assert_error(
        &second_step(&api, &mfa_token, "recovery_code", &e.recovery[0]).await,
        401,
        "invalid_code",
    );
}

#[tokio::test]
async fn login_mfa_refuses_bad_bodies_and_other_methods() {
    let api = api();
    for body in [
        json!({}),
        json!({"mfa_token": "x"}),
        json!({"mfa_token": "x", "code": "123456", "recovery_code": "abcd-efgh-jkmn-pqrs"}),
        json!({"mfa_token": 5, "code": "123456"}),
        json!({"mfa_token": "x", "code": 123456}),
        json!({"code": "123456"}),
        json!([]),
    ] {
        let r = api.post("/login/mfa", body.clone()).await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}: {}",
            r.text
        );
    }
    let r = api
        .post("/login/mfa", json!({"mfa_token": "x", "code": "123456"}))
        .await;
    assert_error(&r, 401, "invalid_token");
    let r = api.get("/login/mfa", None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), "POST");
}

#[tokio::test]
async fn no_secret_code_recovery_code_or_mfa_token_reaches_the_functions_log() {
    let api = api();
    let (username, password) = api.new_user().await;
    let creds = json!({"username": username, "password": password});
    let access = api.post("/login", creds.clone()).await.field("access_token");
    let r = enroll(&api, &access).await;
    let secret = r.field("secret");
    let mut app = TotpApp::new(TotpSecret::from_base32(&secret).unwrap());
    let confirming = app.code().await;
    let r = confirm(&api, &access, &confirming).await;
    let recovery: Vec<String> = r.json["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let mfa_token = password_step(&api, &creds).await;
    let wrong = app.wrong_code();
    second_step(&api, &mfa_token, "code", &wrong).await;
    let code = app.code().await;
    assert_otp_tokens(&second_step(&api, &mfa_token, "code", &code).await);
    let mfa_token2 = password_step(&api, &creds).await;
    assert_otp_tokens(&second_step(&api, &mfa_token2, "recovery_code", &recovery[0]).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = std::fs::read_to_string(required_env("E2E_LOG_FILE")).expect("the functions' log");
    assert!(
        logs.contains("TOTP factor active") && logs.contains("login succeeded with a second factor"),
        "the functions' log"
    );
    for code in [&confirming, &wrong, &code] {
        assert!(!as_word(&logs, code), "a code appears in the logs");
    }
    let user_id = claims(&access)["sub"].as_str().unwrap().to_owned();
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    let mut secrets = vec![
        ("secret", secret.clone()),
        ("secret in lower case", secret.to_lowercase()),
        ("mfa_token", signature(&mfa_token)),
        ("mfa_token", signature(&mfa_token2)),
    ];
    for c in &recovery {
        secrets.push(("recovery code", c.clone()));
        secrets.push(("recovery code", c.replace('-', "")));
        secrets.push(("recovery code hash", totp::recovery_code_hash(&user_id, c).unwrap()));
    }
    for (what, value) in secrets {
        assert!(!logs.contains(&value), "the {what} appears in the logs");
    }
}

// ---- the authorizer ---------------------------------------------------------

/// The route API Gateway asks about for the template's example route that requires a second factor.
const MFA_ROUTE: &str = "GET /example/mfa";

/// An access token of a password login and one of a login with a code, of one user.
async fn password_and_otp_tokens(api: &Api) -> (Enrolled, String) {
    let mut e = enrolled(api).await;
    let otp = password_and_code_login(api, &mut e).await;
    (e, otp)
}

#[tokio::test]
async fn the_authorizer_passes_the_amr_on_and_allows_both_logins_where_no_second_factor_is_required() {
    let api = api();
    let (e, otp) = password_and_otp_tokens(&api).await;
    let context =
        |amr: &str| json!({"isAuthorized": true, "context": {"sub": e.id, "username": e.username, "amr": amr}});
    assert_eq!(authorize(&e.access, "GET /example").await, context("pwd"));
    assert_eq!(authorize(&otp, "GET /example").await, context("pwd otp"));
    assert_eq!(authorize(&otp, MFA_ROUTE).await, context("pwd otp"));
}

/// Needs the test stack's authorizer to run with `REQUIRE_MFA=GET /example/mfa`
/// (the template's default `RequireMfaRoutes`), as `scripts/test` sets it.
#[tokio::test]
async fn on_a_route_that_requires_a_second_factor_the_authorizer_denies_a_password_login_and_allows_a_code_login() {
    let api = api();
    let (e, otp) = password_and_otp_tokens(&api).await;
    assert_eq!(
        authorize(&e.access, MFA_ROUTE).await,
        json!({"isAuthorized": false}),
        "a password login on {MFA_ROUTE}: is the test stack's authorizer running with REQUIRE_MFA={MFA_ROUTE} (scripts/test)?"
    );
    assert_eq!(authorize(&otp, MFA_ROUTE).await["isAuthorized"], true);
    assert_eq!(
        authorize(&e.access, "GET /example").await["isAuthorized"],
        true,
        "other routes take a password login"
    );
}

/// The authorizer's handler in process, with the stack's key set, deciding on
/// tokens the stack issued, under several `REQUIRE_MFA` settings.
#[tokio::test]
async fn the_authorizer_requires_otp_exactly_on_the_routes_require_mfa_names_for_tokens_the_stack_issued() {
    let api = api();
    let (e, otp) = password_and_otp_tokens(&api).await;
    let mfa_token = password_step(&api, &e.creds).await;
    // The keys the stack publishes now (key_rotation_e2e.rs rotates them), with its issuer.
    let jwks = api.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200, "{}", jwks.text);
    let settings = shared::config::TokenSettings {
        issuer: required_env("E2E_ISSUER"),
        ..shared::testing::dev_settings()
    };
    let verifier = shared::token::TokenVerifier::from_public(settings, &jwks.text)
        .expect("the stack's keys")
        .expect("a published key");
    let cache = shared::key_cache::KeyCache::ready(verifier);
    let decide = |require: &'static str, token: String, route_key: &'static str| {
        let cache = &cache;
        async move {
            let require = authorizer::RequireMfa::parse(require).unwrap();
            let event = serde_json::from_str(&authorizer_event(&token, route_key)).unwrap();
            let decision = authorizer::handle(cache, &require, event).await.unwrap();
            decision.is_authorized
        }
    };
    let pwd = e.access.clone();
    for (require, route, password_allowed) in [
        ("", MFA_ROUTE, true),
        (MFA_ROUTE, MFA_ROUTE, false),
        (MFA_ROUTE, "GET /example", true),
        ("GET /example, DELETE /admin/{id}", "DELETE /admin/{id}", false),
        ("*", "GET /example", false),
    ] {
        assert_eq!(
            decide(require, pwd.clone(), route).await,
            password_allowed,
            "password login, REQUIRE_MFA={require:?}, {route}"
        );
        assert!(
            decide(require, otp.clone(), route).await,
            "code login, REQUIRE_MFA={require:?}, {route}"
        );
        assert!(
            !decide(require, mfa_token.clone(), route).await,
            "mfa_token, REQUIRE_MFA={require:?}, {route}"
        );
    }
}
