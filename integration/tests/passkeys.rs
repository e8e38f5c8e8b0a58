//! Passkeys: the store's rules on DynamoDB Local (a challenge taken once and
//! only for its ceremony and user, a credential id bound to one user, the
//! count on the user, logins conditioned on the passkey as read, deletion),
//! and end to end over HTTP with a software authenticator
//! (`integration::authenticator`) answering as a browser would, honestly
//! and not.

use aws_sdk_dynamodb::types::AttributeValue;
use integration::authenticator::{AT, BE, BS, SoftAuthenticator, Tamper, UP, UV, b64, b64_decode};
use integration::{Api, Reply, authorize, fresh_store, required_env};
use reqwest::Method;
use serde_json::{Value, json};
use shared::credentials::Username;
use shared::session::{Origin, Session};
use shared::store::dynamo::DynamoStore;
use shared::store::{
    AccountStore, Ceremony, Challenge, Change, NewPasskey, PasskeyStore, SessionStore, StoredPasskey, User, UserStore,
};
use shared::testing::{dev_authority, user};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The `amr` of a passkey login.
const AMR: [&str; 2] = ["hwk", "user"];

fn now() -> u64 {
    shared::now()
}

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

// ---- the store on DynamoDB Local -------------------------------------------

/// A stored user of a fresh id, as read back.
async fn stored_user(store: &DynamoStore, username: &str) -> User {
    store
        .create_user(&user(&uuid::Uuid::new_v4().to_string(), username))
        .await
        .unwrap();
    reread(store, username).await
}

/// The user `username` as stored now.
async fn reread(store: &DynamoStore, username: &str) -> User {
    store.user(&name(username)).await.unwrap().expect("the user is stored")
}

/// A passkey of `user` whose credential id digests to `id`.
fn passkey(user: &User, id: &str, created_at: u64) -> StoredPasskey {
    StoredPasskey {
        id: id.to_owned(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        name: format!("key {id}"),
        created_at,
        last_used_at: None,
        credential: format!("{{\"credential\":\"{id}\",\"counter\":0}}"),
    }
}

/// A fresh passkey id, shaped as the service makes them (43 characters).
fn new_id() -> String {
    b64(&[uuid::Uuid::new_v4().as_bytes().as_slice(), &[0; 16]].concat())[..43].to_owned()
}

/// `user` with a passkey added (the user re-read, its count up) and the passkey.
async fn with_passkey(store: &DynamoStore, user: &User) -> (User, StoredPasskey) {
    let added = passkey(user, &new_id(), now());
    assert_eq!(store.add_passkey(user, &added, 20).await.unwrap(), NewPasskey::Added);
    (reread(store, &user.username).await, added)
}

fn challenge(ceremony: Ceremony) -> Challenge {
    Challenge {
        id: uuid::Uuid::new_v4().simple().to_string(),
        ceremony,
        state: format!("{{\"state\":\"{}\"}}", uuid::Uuid::new_v4()),
        expires_at: now() + 300,
    }
}

/// A session of `user` as a passkey login starts it.
fn passkey_session(user: &User) -> Session {
    shared::service::sessions::start(&dev_authority(), user, &AMR, Origin::default(), now())
}

type Item = HashMap<String, AttributeValue>;

/// The raw item at `pk`/`sk`, read consistently.
async fn item(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str, sk: &str) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Who holds the claim of credential `id`, if anyone.
async fn claim_holder(client: &aws_sdk_dynamodb::Client, store: &DynamoStore, id: &str) -> Option<String> {
    item(client, store.table(), &format!("CREDENTIAL#{id}"), "CREDENTIAL")
        .await
        .map(|claim| claim["user_id"].as_s().unwrap().clone())
}

async fn everything(client: &aws_sdk_dynamodb::Client, store: &DynamoStore) -> Vec<Item> {
    client
        .scan()
        .table_name(store.table())
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items()
        .to_vec()
}

fn ids(passkeys: &[StoredPasskey]) -> Vec<&str> {
    passkeys.iter().map(|p| p.id.as_str()).collect()
}

#[tokio::test]
async fn of_eight_parallel_takes_of_a_challenge_exactly_one_gets_it() {
    let (store, client) = fresh_store().await;
    let store = Arc::new(store);
    for ceremony in [
        Ceremony::Login,
        Ceremony::Registration {
            user_id: "u-ada".into(),
        },
    ] {
        let put = challenge(ceremony.clone());
        store.put_challenge(&put).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, id, ceremony) = (store.clone(), put.id.clone(), ceremony.clone());
                tokio::spawn(async move { store.take_challenge(&id, &ceremony).await.unwrap() })
            })
            .collect();
        let mut taken = Vec::new();
        for task in tasks {
            taken.extend(task.await.unwrap());
        }
        assert_eq!(
            taken,
            vec![put.clone()],
            "{ceremony:?}: one take gets it, as it was put"
        );
        assert_eq!(store.take_challenge(&put.id, &ceremony).await.unwrap(), None);
        assert_eq!(
            item(&client, store.table(), &format!("CHALLENGE#{}", put.id), "CHALLENGE").await,
            None,
            "the item is gone"
        );
    }
}

#[tokio::test]
async fn a_challenge_is_not_taken_for_the_other_ceremony_or_another_user_and_stays_for_the_right_one() {
    let (store, _) = fresh_store().await;
    let ada = Ceremony::Registration {
        user_id: "u-ada".into(),
    };
    let bob = Ceremony::Registration {
        user_id: "u-bob".into(),
    };
    let registration = challenge(ada.clone());
    let login = challenge(Ceremony::Login);
    store.put_challenge(&registration).await.unwrap();
    store.put_challenge(&login).await.unwrap();
    for (id, wrong) in [
        (&registration.id, &Ceremony::Login),
        (&registration.id, &bob),
        (&login.id, &ada),
        (&login.id, &bob),
    ] {
        assert_eq!(store.take_challenge(id, wrong).await.unwrap(), None, "{wrong:?}");
    }
    assert_eq!(
        store
            .take_challenge("no-such-challenge", &Ceremony::Login)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.take_challenge(&registration.id, &ada).await.unwrap(),
        Some(registration)
    );
    assert_eq!(
        store.take_challenge(&login.id, &Ceremony::Login).await.unwrap(),
        Some(login)
    );
}

#[tokio::test]
async fn a_challenge_item_expires_by_ttl_at_its_expiry_and_is_taken_expired_or_not() {
    let (store, client) = fresh_store().await;
    let registration = challenge(Ceremony::Registration {
        user_id: "u-ada".into(),
    });
    let login = challenge(Ceremony::Login);
    store.put_challenge(&registration).await.unwrap();
    store.put_challenge(&login).await.unwrap();
    let key = |c: &Challenge| format!("CHALLENGE#{}", c.id);
    let raw = item(&client, store.table(), &key(&registration), "CHALLENGE")
        .await
        .unwrap();
    let expires = AttributeValue::N(registration.expires_at.to_string());
    assert_eq!(raw.get("ttl"), Some(&expires), "{raw:?}");
    assert_eq!(raw.get("expires_at"), Some(&expires));
    assert_eq!(raw["ceremony"], AttributeValue::S("registration".into()));
    assert_eq!(raw["user_id"], AttributeValue::S("u-ada".into()));
    let raw = item(&client, store.table(), &key(&login), "CHALLENGE").await.unwrap();
    assert_eq!(raw.get("ttl"), Some(&AttributeValue::N(login.expires_at.to_string())));
    assert_eq!(raw["ceremony"], AttributeValue::S("login".into()));
    assert!(!raw.contains_key("user_id"), "nobody's yet: {raw:?}");
    let again = Challenge {
        state: "other".into(),
        ..login.clone()
    };
    assert!(
        store.put_challenge(&again).await.is_err(),
        "an id is never stored twice"
    );
    // Past its expiry, before DynamoDB's TTL sweep (its `ttl` left in the
    // future here, as DynamoDB Local sweeps within seconds): still taken,
    // the caller checks `expires_at`.
    let past = now() - 10;
    client
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(key(&registration)))
        .key("sk", AttributeValue::S("CHALLENGE".into()))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N(past.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store
            .take_challenge(&registration.id, &registration.ceremony)
            .await
            .unwrap(),
        Some(Challenge {
            expires_at: past,
            ..registration
        }),
    );
    assert_eq!(
        store.take_challenge(&login.id, &Ceremony::Login).await.unwrap(),
        Some(login)
    );
}

#[tokio::test]
async fn a_credential_claimed_by_one_user_is_refused_to_another_and_to_the_same_user() {
    let (store, client) = fresh_store().await;
    let ada = stored_user(&store, "Ada").await;
    let bob = stored_user(&store, "bob").await;
    let id = new_id();
    assert_eq!(
        store.add_passkey(&ada, &passkey(&ada, &id, 1), 20).await.unwrap(),
        NewPasskey::Added
    );
    let ada = reread(&store, "ada").await;
    assert_eq!(ada.passkeys, 1);
    assert_eq!(
        store.add_passkey(&bob, &passkey(&bob, &id, 2), 20).await.unwrap(),
        NewPasskey::Taken,
        "another user"
    );
    assert_eq!(
        store.add_passkey(&ada, &passkey(&ada, &id, 3), 20).await.unwrap(),
        NewPasskey::Taken,
        "the same user again"
    );
    assert_eq!(reread(&store, "bob").await.passkeys, 0);
    assert!(store.passkeys(&name("bob")).await.unwrap().is_empty());
    assert_eq!(reread(&store, "ada").await.passkeys, 1);
    let held = store.passkeys(&name("ADA")).await.unwrap();
    assert_eq!(held, vec![passkey(&ada, &id, 1)], "the first one, unchanged");
    assert_eq!(claim_holder(&client, &store, &id).await, Some(ada.id.clone()));
    let (found_user, found) = store.passkey(&id).await.unwrap().unwrap();
    assert_eq!((found_user.id, found), (ada.id.clone(), passkey(&ada, &id, 1)));
    assert_eq!(store.passkey(&new_id()).await.unwrap(), None, "an unknown id");
    let (bob, _) = with_passkey(&store, &bob).await;
    assert_eq!(bob.passkeys, 1, "bob adds a credential of his own");
}

#[tokio::test]
async fn of_eight_users_adding_one_credential_in_parallel_exactly_one_gets_it() {
    let (store, client) = fresh_store().await;
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(stored_user(&store, &format!("user{i}")).await);
    }
    let id = new_id();
    let store = Arc::new(store);
    let tasks: Vec<_> = users
        .iter()
        .map(|u| {
            let (store, u, id) = (store.clone(), u.clone(), id.clone());
            tokio::spawn(async move { store.add_passkey(&u, &passkey(&u, &id, 1), 20).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == NewPasskey::Added).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, NewPasskey::Added | NewPasskey::Taken)),
        "{outcomes:?}"
    );
    let winner = &users[outcomes.iter().position(|o| *o == NewPasskey::Added).unwrap()];
    assert_eq!(claim_holder(&client, &store, &id).await, Some(winner.id.clone()));
    for u in &users {
        let expected = usize::from(u.id == winner.id);
        assert_eq!(store.passkeys(&name(&u.username)).await.unwrap().len(), expected);
        assert_eq!(reread(&store, &u.username).await.passkeys as usize, expected);
    }
}

#[tokio::test]
async fn the_count_on_the_user_follows_adds_and_removes_and_the_list_is_oldest_first() {
    let (store, client) = fresh_store().await;
    let mut cleo = stored_user(&store, "Cleo").await;
    assert_eq!(cleo.passkeys, 0);
    let keys: Vec<StoredPasskey> = [30, 10, 20].iter().map(|at| passkey(&cleo, &new_id(), *at)).collect();
    for (n, key) in keys.iter().enumerate() {
        assert_eq!(store.add_passkey(&cleo, key, 20).await.unwrap(), NewPasskey::Added);
        cleo = reread(&store, "cleo").await;
        assert_eq!(cleo.passkeys as usize, n + 1);
    }
    let listed = store.passkeys(&name("cleo")).await.unwrap();
    assert_eq!(ids(&listed), [&keys[1].id, &keys[2].id, &keys[0].id], "by created_at");
    assert_eq!(store.remove_passkey(&cleo, &keys[2].id).await.unwrap(), Change::Done);
    let cleo = reread(&store, "cleo").await;
    assert_eq!(cleo.passkeys, 2);
    assert_eq!(
        ids(&store.passkeys(&name("cleo")).await.unwrap()),
        [&keys[1].id, &keys[0].id]
    );
    assert_eq!(store.passkey(&keys[2].id).await.unwrap(), None);
    assert_eq!(
        claim_holder(&client, &store, &keys[2].id).await,
        None,
        "the claim is freed"
    );
    assert_eq!(
        store.remove_passkey(&cleo, &keys[2].id).await.unwrap(),
        Change::Conflict,
        "removed already"
    );
    assert_eq!(reread(&store, "cleo").await.passkeys, 2);
    for key in [&keys[0], &keys[1]] {
        assert_eq!(store.remove_passkey(&cleo, &key.id).await.unwrap(), Change::Done);
    }
    let cleo = reread(&store, "cleo").await;
    assert_eq!(cleo.passkeys, 0);
    assert_eq!(
        store.remove_passkey(&cleo, &keys[0].id).await.unwrap(),
        Change::Conflict
    );
    assert_eq!(reread(&store, "cleo").await.passkeys, 0, "never below zero");
    let left: Vec<Item> = everything(&client, &store).await;
    assert_eq!(left.len(), 1, "only the profile: {left:?}");
}

#[tokio::test]
async fn at_the_most_passkeys_an_add_is_a_conflict_and_writes_nothing() {
    let (store, client) = fresh_store().await;
    let mut dan = stored_user(&store, "dan").await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let key;
        (dan, key) = with_passkey(&store, &dan).await;
        keys.push(key);
    }
    let over = passkey(&dan, &new_id(), now());
    assert_eq!(store.add_passkey(&dan, &over, 3).await.unwrap(), NewPasskey::Conflict);
    assert_eq!(reread(&store, "dan").await.passkeys, 3);
    assert_eq!(store.passkeys(&name("dan")).await.unwrap().len(), 3);
    assert_eq!(
        claim_holder(&client, &store, &over.id).await,
        None,
        "no claim left behind"
    );
    assert_eq!(store.remove_passkey(&dan, &keys[0].id).await.unwrap(), Change::Done);
    let dan = reread(&store, "dan").await;
    assert_eq!(store.add_passkey(&dan, &over, 3).await.unwrap(), NewPasskey::Added);
    assert_eq!(reread(&store, "dan").await.passkeys, 3);
}

#[tokio::test]
async fn of_eight_parallel_adds_with_room_for_one_exactly_one_is_added() {
    let (store, client) = fresh_store().await;
    let (eve, _) = with_passkey(&store, &stored_user(&store, "eve").await).await;
    let store = Arc::new(store);
    let candidates: Vec<StoredPasskey> = (0..8).map(|_| passkey(&eve, &new_id(), now())).collect();
    let tasks: Vec<_> = candidates
        .iter()
        .map(|key| {
            let (store, eve, key) = (store.clone(), eve.clone(), key.clone());
            tokio::spawn(async move { store.add_passkey(&eve, &key, 2).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == NewPasskey::Added).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(reread(&store, "eve").await.passkeys, 2);
    assert_eq!(store.passkeys(&name("eve")).await.unwrap().len(), 2);
    let mut claims = 0;
    for key in &candidates {
        claims += usize::from(claim_holder(&client, &store, &key.id).await.is_some());
    }
    assert_eq!(claims, 1, "only the added one's credential is claimed");
}

#[tokio::test]
async fn removing_another_users_passkey_is_a_conflict_and_changes_nothing() {
    let (store, client) = fresh_store().await;
    let (fay, hers) = with_passkey(&store, &stored_user(&store, "fay").await).await;
    let (gus, his) = with_passkey(&store, &stored_user(&store, "gus").await).await;
    assert_eq!(store.remove_passkey(&gus, &hers.id).await.unwrap(), Change::Conflict);
    assert_eq!(store.remove_passkey(&gus, &new_id()).await.unwrap(), Change::Conflict);
    assert_eq!(store.remove_passkey(&fay, &his.id).await.unwrap(), Change::Conflict);
    assert_eq!(reread(&store, "fay").await.passkeys, 1);
    assert_eq!(reread(&store, "gus").await.passkeys, 1);
    assert_eq!(store.passkeys(&name("fay")).await.unwrap(), vec![hers.clone()]);
    assert_eq!(store.passkeys(&name("gus")).await.unwrap(), vec![his.clone()]);
    assert_eq!(claim_holder(&client, &store, &hers.id).await, Some(fay.id.clone()));
    assert_eq!(claim_holder(&client, &store, &his.id).await, Some(gus.id.clone()));
    assert!(store.passkey(&hers.id).await.unwrap().is_some());
    // A new user of a deleted user's name does not remove what was theirs.
    assert_eq!(store.remove_passkey(&fay, &hers.id).await.unwrap(), Change::Done);
}

#[tokio::test]
async fn a_passkey_login_updates_the_credential_and_last_use_and_stores_the_session() {
    let (store, _) = fresh_store().await;
    let (hal, key) = with_passkey(&store, &stored_user(&store, "Hal").await).await;
    let (read_user, read) = store.passkey(&key.id).await.unwrap().unwrap();
    assert_eq!(read_user, hal);
    let session = passkey_session(&hal);
    assert_eq!(
        store
            .finish_passkey_login(&read_user, &read, "counter 1", &session)
            .await
            .unwrap(),
        Change::Done
    );
    let (_, after) = store.passkey(&key.id).await.unwrap().unwrap();
    assert_eq!(after.credential, "counter 1");
    assert_eq!(after.last_used_at, Some(session.issued_at));
    assert_eq!((after.name, after.created_at), (key.name, key.created_at));
    let stored = store.session(&session.key()).await.unwrap().unwrap();
    assert_eq!(stored.amr, AMR);
    assert_eq!(reread(&store, "hal").await.passkeys, 1, "a login changes no count");
}

#[tokio::test]
async fn of_eight_parallel_logins_with_one_passkey_as_read_exactly_one_wins() {
    let (store, _) = fresh_store().await;
    let (ivy, key) = with_passkey(&store, &stored_user(&store, "ivy").await).await;
    let store = Arc::new(store);
    let sessions: Vec<Session> = (0..8).map(|_| passkey_session(&ivy)).collect();
    let tasks: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(i, session)| {
            let (store, ivy, key, session) = (store.clone(), ivy.clone(), key.clone(), session.clone());
            tokio::spawn(async move {
                store
                    .finish_passkey_login(&ivy, &key, &format!("counter {i}"), &session)
                    .await
                    .unwrap()
            })
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
    let winner = outcomes.iter().position(|o| *o == Change::Done).unwrap();
    let stored: Vec<String> = store.sessions("ivy").await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(stored, vec![sessions[winner].id.clone()], "only the winner's session");
    let (_, after) = store.passkey(&key.id).await.unwrap().unwrap();
    assert_eq!(after.credential, format!("counter {winner}"), "the winner's counter");
}

#[tokio::test]
async fn a_login_with_a_passkey_used_or_removed_since_read_or_a_user_changed_is_a_conflict() {
    let (store, _) = fresh_store().await;
    let (jay, key) = with_passkey(&store, &stored_user(&store, "jay").await).await;
    // Used by another login since read.
    assert_eq!(
        store
            .finish_passkey_login(&jay, &key, "counter 1", &passkey_session(&jay))
            .await
            .unwrap(),
        Change::Done
    );
    let late = passkey_session(&jay);
    assert_eq!(
        store
            .finish_passkey_login(&jay, &key, "counter 1", &late)
            .await
            .unwrap(),
        Change::Conflict,
        "the same read again"
    );
    assert_eq!(store.session(&late.key()).await.unwrap(), None);
    // The user's password changed since read.
    let (_, read) = store.passkey(&key.id).await.unwrap().unwrap();
    assert_eq!(
        store.change_password(&jay, "$argon2id$new", &[]).await.unwrap(),
        Change::Done
    );
    let late = passkey_session(&jay);
    assert_eq!(
        store
            .finish_passkey_login(&jay, &read, "counter 2", &late)
            .await
            .unwrap(),
        Change::Conflict,
        "the user as read is gone"
    );
    assert_eq!(store.session(&late.key()).await.unwrap(), None);
    // Removed since read.
    let jay = reread(&store, "jay").await;
    assert_eq!(store.remove_passkey(&jay, &key.id).await.unwrap(), Change::Done);
    let late = passkey_session(&jay);
    assert_eq!(
        store
            .finish_passkey_login(&jay, &read, "counter 2", &late)
            .await
            .unwrap(),
        Change::Conflict,
        "removed"
    );
    assert_eq!(store.session(&late.key()).await.unwrap(), None);
    assert_eq!(store.passkey(&key.id).await.unwrap(), None);
    assert!(
        store.passkeys(&name("jay")).await.unwrap().is_empty(),
        "the login did not bring the passkey back"
    );
}

#[tokio::test]
async fn a_login_of_a_deleted_user_is_a_conflict_and_brings_nothing_back() {
    let (store, client) = fresh_store().await;
    let (kim, key) = with_passkey(&store, &stored_user(&store, "kim").await).await;
    assert_eq!(store.delete_user(&kim).await.unwrap(), Change::Done);
    assert_eq!(
        store
            .finish_passkey_login(&kim, &key, "counter 1", &passkey_session(&kim))
            .await
            .unwrap(),
        Change::Conflict
    );
    let left = everything(&client, &store).await;
    assert!(left.is_empty(), "nothing written: {left:?}");
}

#[tokio::test]
async fn deleting_the_user_removes_its_passkeys_and_claims_and_frees_the_credential() {
    let (store, client) = fresh_store().await;
    let lea = stored_user(&store, "Lea").await;
    let (lea, first) = with_passkey(&store, &lea).await;
    let (lea, second) = with_passkey(&store, &lea).await;
    store.create_session(&passkey_session(&lea), None).await.unwrap();
    assert_eq!(lea.passkeys, 2);
    assert_eq!(store.delete_user(&lea).await.unwrap(), Change::Done);
    let left = everything(&client, &store).await;
    assert!(left.is_empty(), "nothing left: {left:?}");
    for key in [&first, &second] {
        assert_eq!(store.passkey(&key.id).await.unwrap(), None);
        assert_eq!(claim_holder(&client, &store, &key.id).await, None);
    }
    let max = stored_user(&store, "max").await;
    assert_eq!(
        store
            .add_passkey(&max, &passkey(&max, &first.id, now()), 20)
            .await
            .unwrap(),
        NewPasskey::Added,
        "the credential is free again"
    );
    let again = stored_user(&store, "lea").await;
    assert_eq!(again.passkeys, 0, "a new user of the name has none");
    assert!(store.passkeys(&name("lea")).await.unwrap().is_empty());
}

#[tokio::test]
async fn deleting_a_user_with_more_items_than_one_transaction_takes_removes_every_passkey_and_claim() {
    let (store, client) = fresh_store().await;
    let mut ned = stored_user(&store, "ned").await;
    for _ in 0..20 {
        (ned, _) = with_passkey(&store, &ned).await;
    }
    for _ in 0..70 {
        store.create_session(&passkey_session(&ned), None).await.unwrap();
    }
    assert_eq!(store.delete_user(&ned).await.unwrap(), Change::Done);
    let left = everything(&client, &store).await;
    assert!(left.is_empty(), "{} items left: {left:?}", left.len());
}

#[tokio::test]
async fn a_deletion_that_read_the_user_before_a_passkey_was_added_leaves_nothing_behind() {
    let (store, client) = fresh_store().await;
    let ona = stored_user(&store, "ona").await;
    let (_, key) = with_passkey(&store, &ona).await;
    assert_eq!(
        store.delete_user(&ona).await.unwrap(),
        Change::Conflict,
        "the user changed since read"
    );
    assert!(store.passkey(&key.id).await.unwrap().is_some(), "nothing deleted");
    assert_eq!(
        store.delete_user(&reread(&store, "ona").await).await.unwrap(),
        Change::Done
    );
    let left = everything(&client, &store).await;
    assert!(left.is_empty(), "nothing left: {left:?}");
}

#[tokio::test]
async fn no_passkey_is_added_to_a_deleted_user_or_one_being_deleted() {
    let (store, client) = fresh_store().await;
    let pia = stored_user(&store, "pia").await;
    assert_eq!(store.delete_user(&pia).await.unwrap(), Change::Done);
    let key = passkey(&pia, &new_id(), now());
    assert_eq!(store.add_passkey(&pia, &key, 20).await.unwrap(), NewPasskey::Conflict);
    assert!(everything(&client, &store).await.is_empty());
    let raf = stored_user(&store, "raf").await;
    client
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("USER#raf".into()))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .update_expression("SET deleting = :t")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    let key = passkey(&raf, &new_id(), now());
    assert_eq!(store.add_passkey(&raf, &key, 20).await.unwrap(), NewPasskey::Conflict);
    assert_eq!(claim_holder(&client, &store, &key.id).await, None);
}

// ---- end to end over HTTP -------------------------------------------------

fn api() -> Api {
    Api::from_env()
}

/// The origin the stack's relying party accepts (`WEBAUTHN_ORIGIN`):
/// `scripts/test` exports it as `E2E_WEBAUTHN_ORIGIN`.
fn origin() -> String {
    std::env::var("E2E_WEBAUTHN_ORIGIN").unwrap_or_else(|_| "http://localhost:8190".into())
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

/// A registered user, logged in with the password.
struct Account {
    username: String,
    password: String,
    /// The user id (a UUID): `sub`.
    id: String,
    access: String,
}

impl Account {
    /// The user handle WebAuthn knows the account by: its id's 16 bytes.
    fn handle(&self) -> Vec<u8> {
        uuid::Uuid::parse_str(&self.id).unwrap().as_bytes().to_vec()
    }
}

async fn account(api: &Api) -> Account {
    let (username, password) = api.new_user().await;
    let r = api
        .post("/login", json!({"username": username, "password": password}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.field("access_token");
    Account {
        id: claims(&access)["sub"].as_str().unwrap().to_owned(),
        username,
        password,
        access,
    }
}

/// `POST /passkeys/register/start`: the challenge id and the creation options.
async fn registration(api: &Api, access: &str) -> (String, Value) {
    let r = api
        .with_bearer(Method::POST, "/passkeys/register/start", Some(access), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store");
    (r.field("challenge_id"), r.json["publicKey"].clone())
}

async fn finish_registration(api: &Api, access: &str, body: Value) -> Reply {
    api.with_bearer(Method::POST, "/passkeys/register/finish", Some(access), Some(body))
        .await
}

/// Registers `authenticator`'s credential for the account: the 201 answer.
async fn register(api: &Api, who: &Account, authenticator: &mut SoftAuthenticator) -> Reply {
    let (challenge_id, options) = registration(api, &who.access).await;
    let credential = authenticator.register(&options, &origin());
    let r = finish_registration(
        api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r
}

/// A fresh account with a fresh passkey registered.
async fn account_with_passkey(api: &Api) -> (Account, SoftAuthenticator) {
    let who = account(api).await;
    let mut authenticator = SoftAuthenticator::new();
    register(api, &who, &mut authenticator).await;
    (who, authenticator)
}

/// `POST /login/passkey/start`: the challenge id and the request options.
async fn login_options(api: &Api) -> (String, Value) {
    let r = api.post("/login/passkey/start", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store");
    (r.field("challenge_id"), r.json["publicKey"].clone())
}

async fn finish_login(api: &Api, body: Value) -> Reply {
    api.post("/login/passkey/finish", body).await
}

/// A whole passkey login with `authenticator`, tampered with as `tamper` says.
async fn passkey_login(api: &Api, authenticator: &mut SoftAuthenticator, tamper: &Tamper) -> Reply {
    let (challenge_id, options) = login_options(api).await;
    let credential = authenticator.login_with(&options, &origin(), tamper);
    finish_login(api, json!({"challenge_id": challenge_id, "credential": credential})).await
}

/// A token response of a passkey login of `who`.
fn assert_passkey_tokens(r: &Reply, who: &Account) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store");
    assert_eq!(r.json["token_type"], "Bearer");
    assert!(r.json["expires_in"].as_u64().is_some_and(|s| s > 0), "{}", r.text);
    let access = claims(&r.field("access_token"));
    assert_eq!(access["amr"], json!(AMR), "{access}");
    assert_eq!(access["sub"], who.id.as_str());
    assert_eq!(access["username"], who.username.as_str());
    assert_eq!(access["token_use"], "access");
    assert!(r.json["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
}

async fn listed(api: &Api, access: &str) -> Vec<Value> {
    let r = api.get("/passkeys", Some(access)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["passkeys"].as_array().expect("a list").clone()
}

async fn passkey_count(api: &Api, access: &str) -> Value {
    let r = api.get("/account", Some(access)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["mfa"]["passkeys"].clone()
}

fn tamper() -> Tamper {
    Tamper::default()
}

#[tokio::test]
async fn a_user_registers_a_passkey_and_logs_in_with_it_without_a_username() {
    let api = api();
    let who = account(&api).await;
    assert_eq!(passkey_count(&api, &who.access).await, 0);
    assert!(listed(&api, &who.access).await.is_empty());

    let (challenge_id, options) = registration(&api, &who.access).await;
    assert!(challenge_id.len() >= 22, "{challenge_id}");
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{options}");
    assert_eq!(selection["requireResidentKey"], true, "{options}");
    assert_eq!(selection["userVerification"], "required", "{options}");
    assert_eq!(options["attestation"], "none", "{options}");
    assert_eq!(options["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["user"]["name"], who.username.as_str());
    assert_eq!(b64_decode(options["user"]["id"].as_str().unwrap()), who.handle());
    assert!(b64_decode(options["challenge"].as_str().unwrap()).len() >= 16);
    assert!(
        options["pubKeyCredParams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["alg"] == -7),
        "ES256 offered: {options}"
    );
    assert!(
        options["excludeCredentials"]
            .as_array()
            .is_none_or(|list| list.is_empty()),
        "{options}"
    );

    let mut authenticator = SoftAuthenticator::new();
    let credential = authenticator.register(&options, &origin());
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["id"], authenticator.passkey_id(), "{}", r.text);
    assert_eq!(r.json["name"], "Passkey");
    assert_eq!(r.json["last_used_at"], Value::Null);
    let created = r.json["created_at"].as_u64().expect("created_at");
    assert!(created.abs_diff(now()) < 60);
    let list = listed(&api, &who.access).await;
    assert_eq!(list, vec![r.json.clone()], "listed as answered");
    assert_eq!(passkey_count(&api, &who.access).await, 1);

    let (_, options) = login_options(&api).await;
    assert_eq!(options["rpId"], "localhost", "{options}");
    assert_eq!(options["userVerification"], "required", "{options}");
    assert!(
        options["allowCredentials"]
            .as_array()
            .is_none_or(|list| list.is_empty()),
        "a discoverable credential, no username: {options}"
    );

    let r = passkey_login(&api, &mut authenticator, &tamper()).await;
    assert_passkey_tokens(&r, &who);
    let access = r.field("access_token");
    let me = api.get("/protected", Some(&access)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let refreshed = api.refresh(&r.field("refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(
        claims(&refreshed.field("access_token"))["amr"],
        json!(AMR),
        "refresh keeps the amr"
    );
    let me = api.get("/protected", Some(&refreshed.field("access_token"))).await;
    assert_eq!(me.status, 200, "{}", me.text);

    // A second login: the counter goes up.
    let r = passkey_login(&api, &mut authenticator, &tamper()).await;
    assert_passkey_tokens(&r, &who);
    assert_eq!(authenticator.counter(), 2);
    let list = listed(&api, &r.field("access_token")).await;
    let used = list[0]["last_used_at"].as_u64().expect("last_used_at after a login");
    assert!(used >= created, "{list:?}");

    // The next registration excludes the credential the account has.
    let (_, options) = registration(&api, &access).await;
    let excluded: Vec<&str> = options["excludeCredentials"]
        .as_array()
        .expect("excludeCredentials")
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(excluded, [b64(authenticator.credential_id())], "{options}");
}

#[tokio::test]
async fn the_authorizer_counts_a_passkey_login_as_a_second_factor() {
    let api = api();
    let (who, mut authenticator) = account_with_passkey(&api).await;
    let r = passkey_login(&api, &mut authenticator, &tamper()).await;
    assert_passkey_tokens(&r, &who);
    let access = r.field("access_token");
    let context =
        json!({"isAuthorized": true, "context": {"sub": who.id, "username": who.username, "amr": "hwk user"}});
    assert_eq!(authorize(&access, "GET /example").await, context);
    assert_eq!(
        authorize(&access, "GET /example/mfa").await,
        context,
        "needs the stack's authorizer with REQUIRE_MFA=GET /example/mfa (scripts/test)"
    );
    assert_eq!(
        authorize(&who.access, "GET /example/mfa").await,
        json!({"isAuthorized": false}),
        "a password login is not"
    );
}

#[tokio::test]
async fn a_passkey_gets_the_name_given_trimmed_and_a_bad_name_is_refused() {
    let api = api();
    let who = account(&api).await;
    for bad in [
        json!(""),
        json!("   "),
        json!("é".repeat(65)),
        json!("a\u{7}b"),
        json!(5),
        json!(["x"]),
    ] {
        let (challenge_id, options) = registration(&api, &who.access).await;
        let credential = SoftAuthenticator::new().register(&options, &origin());
        let r = finish_registration(
            &api,
            &who.access,
            json!({"challenge_id": challenge_id, "credential": credential, "name": bad}),
        )
        .await;
        assert_error(&r, 400, "invalid_request");
    }
    assert!(listed(&api, &who.access).await.is_empty());
    let (challenge_id, options) = registration(&api, &who.access).await;
    let credential = SoftAuthenticator::new().register(&options, &origin());
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": credential, "name": "  Laptop  "}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["name"], "Laptop");
    let (challenge_id, options) = registration(&api, &who.access).await;
    let credential = SoftAuthenticator::new().register(&options, &origin());
    let long = "é".repeat(64);
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": credential, "name": long}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["name"], long.as_str());
    let list = listed(&api, &who.access).await;
    let mut names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["Laptop", long.as_str()]);
    let created: Vec<u64> = list.iter().map(|p| p["created_at"].as_u64().unwrap()).collect();
    assert!(created.is_sorted(), "oldest first: {list:?}");
}

#[tokio::test]
async fn replaying_a_finish_body_is_refused_because_its_challenge_is_used() {
    let api = api();
    let who = account(&api).await;
    let (challenge_id, options) = registration(&api, &who.access).await;
    let mut authenticator = SoftAuthenticator::new();
    let body = json!({"challenge_id": challenge_id, "credential": authenticator.register(&options, &origin())});
    assert_eq!(finish_registration(&api, &who.access, body.clone()).await.status, 201);
    assert_error(
        &finish_registration(&api, &who.access, body).await,
        400,
        "invalid_challenge",
    );
    let (challenge_id, options) = login_options(&api).await;
    let body = json!({"challenge_id": challenge_id, "credential": authenticator.login(&options, &origin())});
    assert_passkey_tokens(&finish_login(&api, body.clone()).await, &who);
    assert_error(&finish_login(&api, body).await, 400, "invalid_challenge");
    assert_eq!(listed(&api, &who.access).await.len(), 1);
}

#[tokio::test]
async fn an_unknown_or_expired_challenge_is_invalid_challenge() {
    let api = api();
    let (who, mut authenticator) = account_with_passkey(&api).await;
    let unknown = uuid::Uuid::new_v4().simple().to_string();
    // Registration: an answer to real options, sent with another id.
    let (_, options) = registration(&api, &who.access).await;
    let credential = SoftAuthenticator::new().register(&options, &origin());
    for id in [unknown.as_str(), "", "CHALLENGE#x", &"x".repeat(2000)] {
        let r = finish_registration(&api, &who.access, json!({"challenge_id": id, "credential": credential})).await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (400, Some("invalid_challenge")),
            "{id:?}: {}",
            r.text
        );
    }
    let (_, options) = login_options(&api).await;
    let credential = authenticator.login(&options, &origin());
    let r = finish_login(&api, json!({"challenge_id": unknown, "credential": credential})).await;
    assert_error(&r, 400, "invalid_challenge");

    // Expired: the stored challenge's expiry moved into the past.
    let (challenge_id, options) = login_options(&api).await;
    expire(&challenge_id).await;
    let credential = authenticator.login(&options, &origin());
    let r = finish_login(&api, json!({"challenge_id": challenge_id, "credential": credential})).await;
    assert_error(&r, 400, "invalid_challenge");
    let (challenge_id, options) = registration(&api, &who.access).await;
    expire(&challenge_id).await;
    let credential = SoftAuthenticator::new().register(&options, &origin());
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await;
    assert_error(&r, 400, "invalid_challenge");
    assert_eq!(listed(&api, &who.access).await.len(), 1);
}

/// Moves the expiry of the stack's challenge `id` one second into the past.
async fn expire(id: &str) {
    let client = integration::dynamodb().await;
    let past = (now() - 1).to_string();
    client
        .update_item()
        .table_name(required_env("E2E_TABLE"))
        .key("pk", AttributeValue::S(format!("CHALLENGE#{id}")))
        .key("sk", AttributeValue::S("CHALLENGE".into()))
        .update_expression("SET expires_at = :past")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":past", AttributeValue::N(past))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the challenge {id} is stored in E2E_TABLE: {e:?}"));
}

#[tokio::test]
async fn a_challenge_of_the_other_ceremony_or_another_user_is_invalid_challenge() {
    let api = api();
    let (ada, mut authenticator) = account_with_passkey(&api).await;
    let bob = account(&api).await;
    // A login challenge at registration.
    let (login_id, login_options_) = login_options(&api).await;
    let mut fresh = SoftAuthenticator::new();
    let (_, options) = registration(&api, &ada.access).await;
    let credential = fresh.register(&options, &origin());
    let r = finish_registration(
        &api,
        &ada.access,
        json!({"challenge_id": login_id, "credential": credential}),
    )
    .await;
    assert_error(&r, 400, "invalid_challenge");
    // ... is still good for a login.
    let credential = authenticator.login(&login_options_, &origin());
    assert_passkey_tokens(
        &finish_login(&api, json!({"challenge_id": login_id, "credential": credential})).await,
        &ada,
    );
    // A registration challenge at login.
    let (registration_id, registration_options) = registration(&api, &ada.access).await;
    let (_, options) = login_options(&api).await;
    let credential = authenticator.login(&options, &origin());
    let r = finish_login(&api, json!({"challenge_id": registration_id, "credential": credential})).await;
    assert_error(&r, 400, "invalid_challenge");
    // ada's registration challenge with bob's token (and an answer to ada's options).
    let credential = fresh.register(&registration_options, &origin());
    let body = json!({"challenge_id": registration_id, "credential": credential});
    assert_error(
        &finish_registration(&api, &bob.access, body.clone()).await,
        400,
        "invalid_challenge",
    );
    assert!(listed(&api, &bob.access).await.is_empty());
    // ... stays ada's.
    let r = finish_registration(&api, &ada.access, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(listed(&api, &ada.access).await.len(), 2);
}

#[tokio::test]
async fn a_refused_answer_uses_up_its_challenge() {
    let api = api();
    let who = account(&api).await;
    let (challenge_id, options) = registration(&api, &who.access).await;
    let mut authenticator = SoftAuthenticator::new();
    let wrong = authenticator.register_with(
        &options,
        &origin(),
        &Tamper {
            origin: Some("https://evil.example".into()),
            ..tamper()
        },
    );
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": wrong}),
    )
    .await;
    assert_error(&r, 400, "invalid_credential");
    let right = authenticator.register(&options, &origin());
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": right}),
    )
    .await;
    assert_error(&r, 400, "invalid_challenge");
    register(&api, &who, &mut authenticator).await;

    let (challenge_id, options) = login_options(&api).await;
    let wrong = authenticator.login_with(
        &options,
        &origin(),
        &Tamper {
            sign_with_another_key: true,
            ..tamper()
        },
    );
    let r = finish_login(&api, json!({"challenge_id": challenge_id, "credential": wrong})).await;
    assert_error(&r, 401, "invalid_credentials");
    let right = authenticator.login(&options, &origin());
    let r = finish_login(&api, json!({"challenge_id": challenge_id, "credential": right})).await;
    assert_error(&r, 400, "invalid_challenge");
}

#[tokio::test]
async fn a_registration_with_a_wrong_origin_rp_id_challenge_or_type_or_without_user_verification_is_refused() {
    let api = api();
    let who = account(&api).await;
    for (what, tamper) in [
        (
            "another origin",
            Tamper {
                origin: Some("https://evil.example".into()),
                ..tamper()
            },
        ),
        (
            "another port",
            Tamper {
                origin: Some("http://localhost:1".into()),
                ..tamper()
            },
        ),
        (
            "http on 127.0.0.1",
            Tamper {
                origin: Some("http://127.0.0.1:8190".into()),
                ..tamper()
            },
        ),
        (
            "another rp id",
            Tamper {
                rp_id: Some("evil.example".into()),
                ..tamper()
            },
        ),
        (
            "another challenge",
            Tamper {
                challenge: Some(vec![7; 32]),
                ..tamper()
            },
        ),
        (
            "a login's client data",
            Tamper {
                client_data_type: Some("webauthn.get".into()),
                ..tamper()
            },
        ),
        (
            "no user verification",
            Tamper {
                flags: Some(UP | AT),
                ..tamper()
            },
        ),
        (
            "no user presence",
            Tamper {
                flags: Some(UV | AT),
                ..tamper()
            },
        ),
    ] {
        let (challenge_id, options) = registration(&api, &who.access).await;
        let credential = SoftAuthenticator::new().register_with(&options, &origin(), &tamper);
        let r = finish_registration(
            &api,
            &who.access,
            json!({"challenge_id": challenge_id, "credential": credential}),
        )
        .await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (400, Some("invalid_credential")),
            "{what}: {}",
            r.text
        );
    }
    assert!(listed(&api, &who.access).await.is_empty());
    assert_eq!(passkey_count(&api, &who.access).await, 0);
}

#[tokio::test]
async fn a_login_with_a_wrong_origin_rp_id_challenge_key_user_handle_flags_or_counter_is_refused() {
    let api = api();
    let (who, mut authenticator) = account_with_passkey(&api).await;
    let other = account(&api).await;
    assert_passkey_tokens(&passkey_login(&api, &mut authenticator, &tamper()).await, &who);
    assert_eq!(authenticator.counter(), 1);
    let mut wrong_length = who.handle();
    wrong_length.push(0);
    for (what, tamper) in [
        (
            "another origin",
            Tamper {
                origin: Some("https://evil.example".into()),
                ..tamper()
            },
        ),
        (
            "another rp id",
            Tamper {
                rp_id: Some("evil.example".into()),
                ..tamper()
            },
        ),
        (
            "another challenge",
            Tamper {
                challenge: Some(vec![7; 32]),
                ..tamper()
            },
        ),
        (
            "a registration's client data",
            Tamper {
                client_data_type: Some("webauthn.create".into()),
                ..tamper()
            },
        ),
        (
            "signed by another key",
            Tamper {
                sign_with_another_key: true,
                ..tamper()
            },
        ),
        (
            "the user handle of another user",
            Tamper {
                user_handle: Some(other.handle()),
                ..tamper()
            },
        ),
        (
            "a user handle of no user",
            Tamper {
                user_handle: Some(uuid::Uuid::new_v4().as_bytes().to_vec()),
                ..tamper()
            },
        ),
        (
            "a user handle of 17 bytes",
            Tamper {
                user_handle: Some(wrong_length),
                ..tamper()
            },
        ),
        (
            "no user handle",
            Tamper {
                no_user_handle: true,
                ..tamper()
            },
        ),
        (
            "no user verification",
            Tamper {
                flags: Some(UP),
                ..tamper()
            },
        ),
        (
            "no user presence",
            Tamper {
                flags: Some(UV),
                ..tamper()
            },
        ),
        (
            "the counter not increased",
            Tamper {
                counter: Some(1),
                ..tamper()
            },
        ),
        (
            "the counter gone back",
            Tamper {
                counter: Some(0),
                ..tamper()
            },
        ),
    ] {
        let r = passkey_login(&api, &mut authenticator, &tamper).await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (401, Some("invalid_credentials")),
            "{what}: {}",
            r.text
        );
    }
    // None of these moved the stored counter (1): an honest answer with 2 is good.
    let counter = |n| Tamper {
        counter: Some(n),
        ..tamper()
    };
    for (n, accepted) in [
        (2, true),
        (2, false),
        (1000, true),
        (999, false),
        (1000, false),
        (1001, true),
    ] {
        let r = passkey_login(&api, &mut authenticator, &counter(n)).await;
        if accepted {
            assert_passkey_tokens(&r, &who);
        } else {
            assert_error(&r, 401, "invalid_credentials");
        }
    }
}

#[tokio::test]
async fn a_credential_id_of_1023_bytes_is_registered_under_a_43_character_id_and_one_of_1024_is_refused() {
    let api = api();
    let who = account(&api).await;
    let mut longest = SoftAuthenticator::with_credential_id(vec![0xab; 1023]);
    let r = register(&api, &who, &mut longest).await;
    assert_eq!(r.json["id"], longest.passkey_id());
    assert_eq!(longest.passkey_id().len(), 43);
    assert_passkey_tokens(&passkey_login(&api, &mut longest, &tamper()).await, &who);
    let path = format!("/passkeys/{}", longest.passkey_id());
    let r = api.with_bearer(Method::DELETE, &path, Some(&who.access), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // One byte past WebAuthn's bound (webauthn-rs alone would take up to 4096): refused.
    let (challenge_id, options) = registration(&api, &who.access).await;
    let mut credential = SoftAuthenticator::with_credential_id(vec![0xcd; 1024]).register(&options, &origin());
    for optional in ["authenticatorData", "publicKey"] {
        credential["response"].as_object_mut().unwrap().remove(optional);
    }
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await;
    assert_error(&r, 400, "invalid_credential");
    assert!(listed(&api, &who.access).await.is_empty());
}

#[tokio::test]
async fn a_synced_passkey_logs_in_with_a_counter_that_stays_zero_and_a_change_of_its_backup_eligibility_is_refused() {
    let api = api();
    let who = account(&api).await;
    let mut synced = SoftAuthenticator::new();
    let (challenge_id, options) = registration(&api, &who.access).await;
    let credential = synced.register_with(
        &options,
        &origin(),
        &Tamper {
            flags: Some(UP | UV | AT | BE | BS),
            ..tamper()
        },
    );
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // As synced passkeys do, a counter that stays 0: each login is good.
    let backed_up = Tamper {
        flags: Some(UP | UV | BE | BS),
        counter: Some(0),
        ..tamper()
    };
    for _ in 0..2 {
        assert_passkey_tokens(&passkey_login(&api, &mut synced, &backed_up).await, &who);
    }
    let not_eligible = Tamper {
        flags: Some(UP | UV),
        counter: Some(0),
        ..tamper()
    };
    let r = passkey_login(&api, &mut synced, &not_eligible).await;
    assert_error(&r, 401, "invalid_credentials");
    assert_passkey_tokens(&passkey_login(&api, &mut synced, &backed_up).await, &who);
}

#[tokio::test]
async fn an_unknown_credential_logs_nobody_in() {
    let api = api();
    let who = account(&api).await;
    // A key never registered, claiming to be who's.
    let mut stranger = SoftAuthenticator::new();
    let r = passkey_login(
        &api,
        &mut stranger,
        &Tamper {
            user_handle: Some(who.handle()),
            ..tamper()
        },
    )
    .await;
    assert_error(&r, 401, "invalid_credentials");
}

/// `credential` with the JSON value at `path` (object keys) replaced by `to`, or removed if `None`.
fn edited(credential: &Value, path: &[&str], to: Option<Value>) -> Value {
    let mut edited = credential.clone();
    let (last, parents) = path.split_last().unwrap();
    let parent = parents.iter().fold(&mut edited, |v, k| &mut v[*k]);
    match to {
        Some(to) => parent[*last] = to,
        None => {
            parent.as_object_mut().unwrap().remove(*last);
        }
    }
    edited
}

/// The base64url string at `path` of `credential`, its bytes cut to `keep`.
fn bytes_cut(credential: &Value, path: &[&str], keep: fn(usize) -> usize) -> Value {
    let text = path.iter().fold(credential, |v, k| &v[*k]).as_str().unwrap();
    let bytes = b64_decode(text);
    edited(credential, path, Some(b64(&bytes[..keep(bytes.len())]).into()))
}

/// Edits of an honest credential that leave it no WebAuthn credential at all
/// (for serde): `field` is a response member whose base64 the edits cut.
fn malformed(credential: &Value, fields: &[&str]) -> Vec<(String, Value)> {
    let mut cases = vec![
        ("a string".to_owned(), json!("credential")),
        ("an array".to_owned(), json!([credential])),
        ("empty".to_owned(), json!({})),
        ("no id".to_owned(), edited(credential, &["id"], None)),
        ("no rawId".to_owned(), edited(credential, &["rawId"], None)),
        ("no type".to_owned(), edited(credential, &["type"], None)),
        ("no response".to_owned(), edited(credential, &["response"], None)),
        (
            "rawId a number".to_owned(),
            edited(credential, &["rawId"], Some(json!(5))),
        ),
        (
            "rawId not base64".to_owned(),
            edited(credential, &["rawId"], Some(json!("***"))),
        ),
        (
            "type a number".to_owned(),
            edited(credential, &["type"], Some(json!(1))),
        ),
        (
            "response a string".to_owned(),
            edited(credential, &["response"], Some(json!("x"))),
        ),
        (
            "response an array".to_owned(),
            edited(credential, &["response"], Some(json!([]))),
        ),
    ];
    for field in fields {
        let text = credential["response"][*field].as_str().unwrap();
        // Length 4n+1 is no base64 of any bytes.
        let cut = &text[..text.len() - (text.len() % 4 + 3) % 4];
        assert_eq!(cut.len() % 4, 1);
        cases.extend([
            (format!("no {field}"), edited(credential, &["response", field], None)),
            (
                format!("{field} null"),
                edited(credential, &["response", field], Some(Value::Null)),
            ),
            (
                format!("{field} a number"),
                edited(credential, &["response", field], Some(json!(42))),
            ),
            (
                format!("{field} an object"),
                edited(credential, &["response", field], Some(json!({}))),
            ),
            (
                format!("{field} cut mid-character"),
                edited(credential, &["response", field], Some(cut.into())),
            ),
            (
                format!("{field} with a character outside base64url"),
                edited(credential, &["response", field], Some(format!("{text}+/=!").into())),
            ),
        ]);
    }
    cases
}

/// A cut of the bytes inside an honest credential that keeps its JSON shape:
/// the path of a base64url member, how it is cut, and how many bytes are kept of how many.
type Cut = (Vec<&'static str>, &'static str, fn(usize) -> usize);

fn truncations(fields: &[&'static str]) -> Vec<Cut> {
    let mut cases = Vec::new();
    for field in fields {
        for (how, keep) in [
            ("empty", (|_| 0) as fn(usize) -> usize),
            ("one byte", |_| 1),
            ("halved", |n| n / 2),
            ("one byte short", |n| n - 1),
        ] {
            cases.push((vec!["response", *field], how, keep));
        }
    }
    cases
}

#[tokio::test]
async fn malformed_or_truncated_registrations_are_400_and_never_500() {
    let api = api();
    let who = account(&api).await;
    let (_, options) = registration(&api, &who.access).await;
    let honest = SoftAuthenticator::new().register(&options, &origin());
    for (what, credential) in malformed(&honest, &["clientDataJSON", "attestationObject"]) {
        let (challenge_id, _) = registration(&api, &who.access).await;
        let r = finish_registration(
            &api,
            &who.access,
            json!({"challenge_id": challenge_id, "credential": credential}),
        )
        .await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (400, Some("invalid_request")),
            "{what}: {}",
            r.text
        );
    }
    // Well-formed JSON around cut bytes: an answer the relying party refuses.
    for (path, how, keep) in truncations(&["clientDataJSON", "attestationObject"]) {
        let (challenge_id, options) = registration(&api, &who.access).await;
        let fresh = SoftAuthenticator::new().register(&options, &origin());
        let credential = bytes_cut(&fresh, &path, keep);
        let r = finish_registration(
            &api,
            &who.access,
            json!({"challenge_id": challenge_id, "credential": credential}),
        )
        .await;
        assert_eq!(r.status, 400, "{path:?} {how}: {}", r.text);
        assert!(
            r.json["error"] == "invalid_request" || r.json["error"] == "invalid_credential",
            "{path:?} {how}: {}",
            r.text
        );
    }
    assert!(listed(&api, &who.access).await.is_empty());
    assert_eq!(passkey_count(&api, &who.access).await, 0);
}

#[tokio::test]
async fn malformed_or_truncated_logins_are_refused_and_never_500() {
    let api = api();
    let (who, mut authenticator) = account_with_passkey(&api).await;
    let (_, options) = login_options(&api).await;
    let honest = authenticator.login(&options, &origin());
    let fields = ["clientDataJSON", "authenticatorData", "signature"];
    let mut cases = malformed(&honest, &fields);
    cases.extend([
        (
            "userHandle a number".to_owned(),
            edited(&honest, &["response", "userHandle"], Some(json!(7))),
        ),
        (
            "userHandle not base64".to_owned(),
            edited(&honest, &["response", "userHandle"], Some(json!("***"))),
        ),
    ]);
    for (what, credential) in cases {
        let (challenge_id, _) = login_options(&api).await;
        let r = finish_login(&api, json!({"challenge_id": challenge_id, "credential": credential})).await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (400, Some("invalid_request")),
            "{what}: {}",
            r.text
        );
    }
    // Well-formed JSON around cut bytes: refused, as a bad request or as a failed login.
    let mut cuts = truncations(&fields);
    cuts.push((vec!["rawId"], "empty", |_| 0));
    cuts.push((vec!["rawId"], "halved", |n| n / 2));
    cuts.push((vec!["response", "userHandle"], "halved", |n| n / 2));
    for (path, how, keep) in cuts {
        let (challenge_id, options) = login_options(&api).await;
        let fresh = authenticator.login(&options, &origin());
        let credential = bytes_cut(&fresh, &path, keep);
        let r = finish_login(&api, json!({"challenge_id": challenge_id, "credential": credential})).await;
        assert!(
            (r.status == 400 && r.json["error"] == "invalid_request")
                || (r.status == 401 && r.json["error"] == "invalid_credentials"),
            "{path:?} {how}: {}",
            r.text
        );
    }
    // The passkey still works.
    assert_passkey_tokens(&passkey_login(&api, &mut authenticator, &tamper()).await, &who);
}

#[tokio::test]
async fn finish_bodies_without_a_challenge_id_or_credential_are_400() {
    let api = api();
    let who = account(&api).await;
    let (challenge_id, options) = registration(&api, &who.access).await;
    let credential = SoftAuthenticator::new().register(&options, &origin());
    for body in [
        json!({}),
        json!({"challenge_id": challenge_id}),
        json!({"credential": credential}),
        json!({"challenge_id": 5, "credential": credential}),
        json!({"challenge_id": challenge_id, "credential": "x"}),
        json!({"challenge_id": challenge_id, "credential": null}),
        json!([challenge_id, credential]),
        json!("x"),
        json!(null),
    ] {
        for path in ["/passkeys/register/finish", "/login/passkey/finish"] {
            let r = api
                .with_bearer(Method::POST, path, Some(&who.access), Some(body.clone()))
                .await;
            assert_eq!(
                (r.status, r.json["error"].as_str()),
                (400, Some("invalid_request")),
                "{path} {body}: {}",
                r.text
            );
        }
    }
    for path in ["/passkeys/register/finish", "/login/passkey/finish"] {
        let r = api
            .send(
                Method::POST,
                path,
                &[
                    ("content-type", b"application/json"),
                    ("authorization", format!("Bearer {}", who.access).as_bytes()),
                ],
                Some(b"{\"challenge_id\": \"x\", \"credential\": {".to_vec()),
            )
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    // None of that used the challenge.
    let r = finish_registration(
        &api,
        &who.access,
        json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_credential_registered_already_is_passkey_taken_for_anyone() {
    let api = api();
    let (ada, mut authenticator) = account_with_passkey(&api).await;
    let bob = account(&api).await;
    // The same credential (id and key) offered by bob, then by ada again.
    let mut copy = authenticator.clone();
    let (challenge_id, options) = registration(&api, &bob.access).await;
    let r = finish_registration(
        &api,
        &bob.access,
        json!({"challenge_id": challenge_id, "credential": copy.register(&options, &origin())}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (409, Some("passkey_taken")),
        "bob offers ada's credential: {}",
        r.text
    );
    assert!(listed(&api, &bob.access).await.is_empty());
    assert_eq!(passkey_count(&api, &bob.access).await, 0);
    // The same credential id with another key.
    let mut same_id = SoftAuthenticator::with_credential_id(authenticator.credential_id().to_vec());
    let (challenge_id, options) = registration(&api, &bob.access).await;
    let r = finish_registration(
        &api,
        &bob.access,
        json!({"challenge_id": challenge_id, "credential": same_id.register(&options, &origin())}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (409, Some("passkey_taken")),
        "bob offers ada's credential id with another key: {}",
        r.text
    );
    let mut again = authenticator.clone();
    let (challenge_id, options) = registration(&api, &ada.access).await;
    let r = finish_registration(
        &api,
        &ada.access,
        json!({"challenge_id": challenge_id, "credential": again.register(&options, &origin())}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (409, Some("passkey_taken")),
        "ada offers her credential again: {}",
        r.text
    );
    assert_eq!(listed(&api, &ada.access).await.len(), 1);
    assert_eq!(passkey_count(&api, &ada.access).await, 1);
    // It still logs ada in.
    assert_passkey_tokens(&passkey_login(&api, &mut authenticator, &tamper()).await, &ada);
}

#[tokio::test]
async fn a_passkey_is_removed_only_by_its_owner_and_then_logs_nobody_in() {
    let api = api();
    let (ada, mut authenticator) = account_with_passkey(&api).await;
    let bob = account(&api).await;
    let path = format!("/passkeys/{}", authenticator.passkey_id());
    let r = api.with_bearer(Method::DELETE, &path, Some(&bob.access), None).await;
    assert_error(&r, 404, "not_found");
    assert_eq!(listed(&api, &ada.access).await.len(), 1);
    assert_passkey_tokens(&passkey_login(&api, &mut authenticator, &tamper()).await, &ada);
    for junk in ["/passkeys/unknown", "/passkeys/%00", "/passkeys/CREDENTIAL%23x"] {
        let r = api.with_bearer(Method::DELETE, junk, Some(&ada.access), None).await;
        assert_error(&r, 404, "not_found");
    }
    let r = api.with_bearer(Method::DELETE, &path, Some(&ada.access), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert!(listed(&api, &ada.access).await.is_empty());
    assert_eq!(passkey_count(&api, &ada.access).await, 0);
    let r = passkey_login(&api, &mut authenticator, &tamper()).await;
    assert_error(&r, 401, "invalid_credentials");
    let r = api.with_bearer(Method::DELETE, &path, Some(&ada.access), None).await;
    assert_error(&r, 404, "not_found");
    // Removed, the credential can be registered again.
    register(&api, &bob, &mut authenticator).await;
    assert_passkey_tokens(&passkey_login(&api, &mut authenticator, &tamper()).await, &bob);
}

#[tokio::test]
async fn deleting_the_account_removes_its_passkeys_and_frees_their_credentials() {
    let api = api();
    let (ada, mut authenticator) = account_with_passkey(&api).await;
    let mut second = SoftAuthenticator::new();
    register(&api, &ada, &mut second).await;
    let r = api
        .with_bearer(
            Method::DELETE,
            "/account",
            Some(&ada.access),
            Some(json!({"password": ada.password})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    for key in [&mut authenticator, &mut second] {
        let r = passkey_login(&api, key, &tamper()).await;
        assert_error(&r, 401, "invalid_credentials");
    }
    let bob = account(&api).await;
    register(&api, &bob, &mut authenticator).await;
    assert_passkey_tokens(&passkey_login(&api, &mut authenticator, &tamper()).await, &bob);
    // A new account of the deleted name has no passkey.
    let r = api
        .post("/register", json!({"username": ada.username, "password": ada.password}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api
        .post("/login", json!({"username": ada.username, "password": ada.password}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(listed(&api, &r.field("access_token")).await.is_empty());
    assert_eq!(passkey_count(&api, &r.field("access_token")).await, 0);
}

#[tokio::test]
async fn the_passkey_routes_of_an_account_need_a_live_access_token() {
    let api = api();
    let (ada, _) = account_with_passkey(&api).await;
    let login = api
        .post("/login", json!({"username": ada.username, "password": ada.password}))
        .await;
    let refresh = login.field("refresh_token");
    let routes = [
        (Method::POST, "/passkeys/register/start".to_owned()),
        (Method::POST, "/passkeys/register/finish".to_owned()),
        (Method::GET, "/passkeys".to_owned()),
        (Method::DELETE, format!("/passkeys/{}", new_id())),
    ];
    for (method, path) in &routes {
        for token in [None, Some("a.b.c"), Some(refresh.as_str())] {
            let r = api.with_bearer(method.clone(), path, token, Some(json!({}))).await;
            assert_error(&r, 401, "invalid_token");
            assert!(
                r.header("www-authenticate").starts_with("Bearer"),
                "{path}: {:?}",
                r.headers
            );
        }
    }
    // A session ended by logout: its access token no longer works here,
    // not even with a challenge started while it was live.
    let access = login.field("access_token");
    let (challenge_id, options) = registration(&api, &access).await;
    let credential = SoftAuthenticator::new().register(&options, &origin());
    let r = api.post("/logout", json!({"refresh_token": refresh})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let finish = json!({"challenge_id": challenge_id, "credential": credential});
    let theirs = listed(&api, &ada.access).await[0]["id"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        (Method::POST, "/passkeys/register/start".to_owned(), None),
        (Method::POST, "/passkeys/register/finish".to_owned(), Some(finish)),
        (Method::GET, "/passkeys".to_owned(), None),
        (Method::DELETE, format!("/passkeys/{theirs}"), None),
    ] {
        let r = api.with_bearer(method, &path, Some(&access), body).await;
        assert_error(&r, 401, "invalid_token");
    }
    let list = listed(&api, &ada.access).await;
    assert_eq!(list.len(), 1, "nothing added, nothing removed: {list:?}");
}

#[tokio::test]
async fn no_token_or_authenticator_answer_reaches_the_functions_log() {
    let api = api();
    let (who, mut authenticator) = account_with_passkey(&api).await;
    let (challenge_id, options) = login_options(&api).await;
    let credential = authenticator.login(&options, &origin());
    let r = finish_login(&api, json!({"challenge_id": challenge_id, "credential": credential})).await;
    assert_passkey_tokens(&r, &who);
    let refreshed = api.refresh(&r.field("refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let refused = passkey_login(
        &api,
        &mut authenticator,
        &Tamper {
            sign_with_another_key: true,
            ..tamper()
        },
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = std::fs::read_to_string(required_env("E2E_LOG_FILE")).expect("the functions' log");
    assert!(logs.contains("login succeeded with a passkey"), "the functions' log");
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    for (what, value) in [
        ("access token", signature(&r.field("access_token"))),
        ("refresh token", signature(&r.field("refresh_token"))),
        ("refreshed token", signature(&refreshed.field("refresh_token"))),
        (
            "assertion signature",
            credential["response"]["signature"].as_str().unwrap().to_owned(),
        ),
        (
            "client data",
            credential["response"]["clientDataJSON"].as_str().unwrap().to_owned(),
        ),
        ("challenge", options["challenge"].as_str().unwrap().to_owned()),
    ] {
        assert!(!logs.contains(&value), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let api = api();
    for (method, path, allow) in [
        (Method::GET, "/passkeys/register/start", "POST"),
        (Method::GET, "/passkeys/register/finish", "POST"),
        (Method::POST, "/passkeys", "GET"),
        (Method::PUT, "/passkeys/abc", "DELETE"),
        (Method::GET, "/login/passkey/start", "POST"),
        (Method::GET, "/login/passkey/finish", "POST"),
    ] {
        let r = api.with_bearer(method.clone(), path, None, None).await;
        assert_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), allow, "{method} {path}");
    }
}

#[tokio::test]
async fn of_eight_parallel_sends_of_one_login_finish_body_exactly_one_succeeds() {
    let api = api();
    let (who, mut authenticator) = account_with_passkey(&api).await;
    let (challenge_id, options) = login_options(&api).await;
    let body = json!({"challenge_id": challenge_id, "credential": authenticator.login(&options, &origin())});
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (api, body) = (api.clone(), body.clone());
            tokio::spawn(async move { finish_login(&api, body).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            200 => winners.push(r),
            400 => assert_eq!(r.json["error"], "invalid_challenge", "{}", r.text),
            _ => panic!("{}", r.text),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_passkey_tokens(&winners[0], &who);
    let r = api.get("/sessions", Some(&who.access)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["sessions"].as_array().unwrap().len(),
        2,
        "the password login's session and the winner's: {}",
        r.text
    );
}

#[tokio::test]
async fn of_parallel_logins_with_one_passkey_each_with_its_own_challenge_none_is_a_500() {
    let api = api();
    let (who, authenticator) = account_with_passkey(&api).await;
    // Eight answers with counters 1..=8, sent at once: the stored counter
    // is read by each before any write, so some lose the race (401) and
    // none may be a 500; at least one wins.
    let mut bodies = Vec::new();
    let mut key = authenticator.clone();
    for _ in 0..8 {
        let (challenge_id, options) = login_options(&api).await;
        bodies.push(json!({"challenge_id": challenge_id, "credential": key.login(&options, &origin())}));
    }
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let api = api.clone();
            tokio::spawn(async move { finish_login(&api, body).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            200 => {
                assert_passkey_tokens(&r, &who);
                winners += 1;
            }
            401 => assert_eq!(r.json["error"], "invalid_credentials", "{}", r.text),
            _ => panic!("{}", r.text),
        }
    }
    assert!(winners >= 1);
    // Whatever won, the next answer (counter 9) is above it.
    assert_passkey_tokens(&passkey_login(&api, &mut key, &tamper()).await, &who);
}

#[tokio::test]
async fn an_account_holds_at_most_twenty_passkeys_even_when_two_registrations_race_for_the_last_place() {
    let api = api();
    let who = account(&api).await;
    for _ in 0..19 {
        register(&api, &who, &mut SoftAuthenticator::new()).await;
    }
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let (challenge_id, options) = registration(&api, &who.access).await;
        let credential = SoftAuthenticator::new().register(&options, &origin());
        bodies.push(json!({"challenge_id": challenge_id, "credential": credential}));
    }
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (api, access) = (api.clone(), who.access.clone());
            tokio::spawn(async move { finish_registration(&api, &access, body).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        if r.status != 201 {
            assert_error(&r, 409, "too_many_passkeys");
        }
        statuses.push(r.status);
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409]);
    assert_eq!(listed(&api, &who.access).await.len(), 20);
    assert_eq!(passkey_count(&api, &who.access).await, 20);
    let r = api
        .with_bearer(Method::POST, "/passkeys/register/start", Some(&who.access), None)
        .await;
    assert_error(&r, 409, "too_many_passkeys");
}
