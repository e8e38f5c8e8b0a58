//! DynamoDB operations per request, counted by an SDK interceptor on the
//! functions' own client: the budget of each route, asserted (the messages
//! say which run beside each other, in one round trip).

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;
use integration::{bearer_request, fresh_store, request, required_env, status_and_json};
use serde_json::json;
use shared::key_cache::KeyCache;
use shared::service::register::PasswordRules;
use shared::store::dynamo::DynamoStore;
use shared::testing::dev_authority;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts operations (round trips), not retry attempts.
#[derive(Debug, Clone, Default)]
struct RoundTrips(Arc<AtomicUsize>);

impl Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "round-trips"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl RoundTrips {
    /// Round trips since the last call.
    fn take(&self) -> usize {
        self.0.swap(0, Ordering::SeqCst)
    }
}

async fn counted_store() -> (DynamoStore, RoundTrips) {
    let (direct, _) = fresh_store().await;
    let counter = RoundTrips::default();
    let sdk = shared::aws::local_config(&required_env("DYNAMODB_ENDPOINT")).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(counter.clone())
        .build();
    (
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), direct.table()),
        counter,
    )
}

fn creds(name: &str, password: &str) -> serde_json::Value {
    json!({"username": name, "password": password})
}

#[tokio::test]
async fn each_route_stays_within_its_dynamodb_round_trip_budget() {
    let (store, trips) = counted_store().await;
    let good = creds("rowan", "correct horse battery staple");

    let answer = status_and_json(
        &register::handle(
            &store,
            &shared::testing::outbox(),
            &PasswordRules::default(),
            request("POST", "/register", good.clone()),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        (answer.0, trips.take()),
        (201, 2),
        "register: the address's count (UpdateItem), then one conditional PutItem"
    );

    let login = login::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let (status, tokens) = status_and_json(
        &login::handle(&login, request("POST", "/login", good.clone()))
            .await
            .unwrap(),
    );
    assert_eq!(
        (status, trips.take()),
        (200, 6),
        "login, two round trips: Query beside the name's count and the address's GetItem; then the session's transaction beside its event and the count forgotten"
    );

    let wrong = creds("rowan", "not the password");
    let answer = status_and_json(
        &login::handle(&login, request("POST", "/login", wrong.clone()))
            .await
            .unwrap(),
    );
    assert_eq!(
        (answer.0, trips.take()),
        (401, 5),
        "first failure: Query beside the name's count and the address's GetItem; then the event beside the address's count"
    );
    let answer = status_and_json(&login::handle(&login, request("POST", "/login", wrong)).await.unwrap());
    assert_eq!(
        (answer.0, trips.take()),
        (401, 5),
        "failure on a suspect name: the same five"
    );
    let unknown = creds("nobody-here", "not the password");
    let answer = status_and_json(&login::handle(&login, request("POST", "/login", unknown)).await.unwrap());
    assert_eq!(
        (answer.0, trips.take()),
        (401, 4),
        "unknown user: the same but the event, so one write after the hash as for a user"
    );

    let refresh = refresh::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let first = tokens["refresh_token"].clone();
    let rotate = || request("POST", "/refresh", json!({ "refresh_token": first }));
    let (status, rotated) = status_and_json(&refresh::handle(&refresh, rotate()).await.unwrap());
    assert_eq!(
        (status, trips.take()),
        (200, 2),
        "refresh: GetItem + conditional UpdateItem"
    );
    let answer = status_and_json(&refresh::handle(&refresh, rotate()).await.unwrap());
    assert_eq!(
        (answer.0, trips.take()),
        (200, 1),
        "a retry in the grace window: GetItem only"
    );

    let logout = logout::State {
        keys: KeyCache::ready(dev_authority().into_verifier()),
        store,
    };
    let req = request("POST", "/logout", json!({ "refresh_token": rotated["refresh_token"] }));
    let answer = status_and_json(&logout::handle(&logout, req).await.unwrap());
    assert_eq!(
        (answer.0, trips.take()),
        (204, 2),
        "logout: one conditional UpdateItem, then its event"
    );
}

#[tokio::test]
async fn the_account_and_sessions_routes_stay_within_their_round_trip_budgets() {
    let (store, trips) = counted_store().await;
    let password = "correct horse battery staple";
    let good = creds("sasha", password);
    register::handle(
        &store,
        &shared::testing::outbox(),
        &PasswordRules::default(),
        request("POST", "/register", good.clone()),
    )
    .await
    .unwrap();
    let state = login::State {
        keys: KeyCache::ready(dev_authority()),
        store: store.clone(),
    };
    let mut logins = Vec::new();
    for _ in 0..3 {
        let (_, tokens) = status_and_json(
            &login::handle(&state, request("POST", "/login", good.clone()))
                .await
                .unwrap(),
        );
        logins.push(tokens);
    }
    let access = logins[0]["access_token"].as_str().unwrap().to_owned();
    let sid = |tokens: &serde_json::Value| {
        dev_authority()
            .verify_refresh(tokens["refresh_token"].as_str().unwrap(), shared::now())
            .unwrap()
            .sid
    };
    let state = account::State {
        keys: KeyCache::ready(dev_authority().into_verifier()),
        store: store.clone(),
    };
    trips.take();

    let answer = status_and_json(
        &account::handle(
            &state,
            &PasswordRules::default(),
            bearer_request("GET", "/account", &access, None),
        )
        .await
        .unwrap(),
    );
    assert_eq!((answer.0, trips.take()), (200, 1), "GET /account: GetItem");

    let answer = status_and_json(
        &sessions::handle(&state, bearer_request("GET", "/sessions", &access, None))
            .await
            .unwrap(),
    );
    assert_eq!((answer.0, trips.take()), (200, 1), "GET /sessions: one Query");

    let path = format!("/sessions/{}", sid(&logins[1]));
    let answer = status_and_json(
        &sessions::handle(&state, bearer_request("DELETE", &path, &access, None))
            .await
            .unwrap(),
    );
    assert_eq!(
        (answer.0, trips.take()),
        (204, 2),
        "DELETE /sessions/{{id}}: one conditional UpdateItem, then its event"
    );

    let change = json!({"current_password": password, "new_password": "a new horse battery staple"});
    let req = bearer_request("POST", "/account/password", &access, Some(change));
    let answer = status_and_json(&account::handle(&state, &PasswordRules::default(), req).await.unwrap());
    assert_eq!(
        (answer.0, trips.take()),
        (204, 6),
        "password change: Query (user) beside the name's count and the address's GetItem, Query (sessions), one transaction beside its event"
    );

    let req = bearer_request(
        "DELETE",
        "/account",
        &access,
        Some(json!({"password": "a new horse battery staple"})),
    );
    let answer = status_and_json(&account::handle(&state, &PasswordRules::default(), req).await.unwrap());
    assert_eq!(
        (answer.0, trips.take()),
        (204, 5),
        "deletion: Query (user) beside the name's count and the address's GetItem, Query (partition), one transaction"
    );
}
