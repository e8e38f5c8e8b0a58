//! Reading the keys from Secrets Manager (`JWT_SECRET_ARN`) through the
//! Parameters and Secrets extension, and rotating them there with `keytool`
//! through the real SDK, against a stand-in on loopback that speaks both.

use aws_sdk_secretsmanager::Client;
use integration::secretsmanager::{SESSION_TOKEN, SecretsManager};
use shared::config::TokenSettings;
use shared::http::ApiError;
use shared::key_cache::KeyCache;
use shared::keyset::{Alg, KeySet, Status};
use shared::secret::SecretSource;
use shared::token::{TokenAuthority, TokenVerifier};
use std::sync::atomic::Ordering;
use std::time::Duration;

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf";
const SECRET: &str = "k3yFromSecretsManager0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";
const ONCE: Duration = Duration::MAX;

fn settings() -> TokenSettings {
    TokenSettings::from_lookup(|_| None).unwrap()
}

/// A stand-in holding `value` under `ARN`, its URL, and an SDK client for it (keytool's).
async fn stand_in(value: &str, failures: usize) -> (SecretsManager, String, Client) {
    let sm = SecretsManager::new(&[(ARN, value)], failures);
    let url = sm.start().await;
    let client = Client::new(&shared::aws::local_config(&url).await);
    (sm, url, client)
}

fn source(url: &str, token: &str) -> SecretSource {
    SecretSource::new(url, "JWT_SECRET_ARN", ARN, token.into()).unwrap()
}

fn keys(url: &str, refresh: Duration) -> KeyCache {
    KeyCache::from_secret(source(url, SESSION_TOKEN), false, settings(), refresh)
}

/// What a request gets from these keys when they cannot be read.
async fn answer(keys: &KeyCache) -> Result<(), ApiError> {
    keys.get().await.map(drop).map_err(ApiError::from)
}

/// The public keys' secret, as the template creates it.
const PUBLIC: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-public-GhIjKl";
const EMPTY_JWKS: &str = r#"{"keys":[]}"#;
/// `make rotate-keys` on the stand-in's two secrets.
const ROTATE: &str = "rotate --secret-id arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf \
                      --public-keys-id arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-public-GhIjKl";

/// A verifying function's keys: the published ones, read again after `refresh`.
fn public_keys(url: &str, refresh: Duration) -> KeyCache<TokenVerifier> {
    let source = SecretSource::new(url, "JWT_PUBLIC_KEYS_ARN", PUBLIC, SESSION_TOKEN.into()).unwrap();
    KeyCache::from_secret(source, true, settings(), refresh)
}

async fn keytool(client: &Client, args: &str, now: u64) -> String {
    let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    keytool::run(&args, now, client)
        .await
        .unwrap_or_else(|e| panic!("keytool {args:?}: {e}"))
}

#[tokio::test]
async fn the_key_is_read_at_the_first_request_and_signs_like_the_same_secret_given_directly() {
    let (sm, url, _) = stand_in(SECRET, 0).await;
    let keys = keys(&url, ONCE);
    assert_eq!(
        sm.reads.load(Ordering::SeqCst),
        0,
        "the extension does not answer during init"
    );
    let direct = TokenAuthority::from_secret(settings(), SECRET).unwrap();
    let token = shared::testing::access_token(&keys.get().await.unwrap(), "u-1", "alice", shared::now());
    assert!(direct.verify_access(&token, shared::now()).is_ok());
    keys.get().await.unwrap();
    assert_eq!(sm.reads.load(Ordering::SeqCst), 1, "read once while fresh");
}

#[tokio::test]
async fn a_verifying_function_reads_the_public_keys_and_waits_with_503_until_the_first_are_published() {
    const PUBLIC: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-public-AbCdEf";
    let set = KeySet::generate(Alg::RS256, 0);
    let sm = SecretsManager::new(&[(ARN, &set.to_json()), (PUBLIC, r#"{"keys":[]}"#)], 0);
    let url = sm.start().await;
    let public = SecretSource::new(&url, "JWT_PUBLIC_KEYS_ARN", PUBLIC, SESSION_TOKEN.into()).unwrap();
    let verifier: KeyCache<TokenVerifier> = KeyCache::from_secret(public, true, settings(), Duration::ZERO);
    assert_eq!(
        verifier.get().await.map(drop).map_err(ApiError::from),
        Err(ApiError::Unavailable),
        "nothing published yet"
    );
    sm.put(PUBLIC, &set.public_jwks().unwrap());
    let signer = TokenAuthority::from_secret(settings(), &set.to_json()).unwrap();
    let token = shared::testing::access_token(&signer, "u-1", "alice", shared::now());
    let verifying = verifier.get().await.unwrap();
    assert!(verifying.verify_access(&token, shared::now()).is_ok());
    assert_eq!(verifying.jwks(), signer.jwks());
}

#[tokio::test]
async fn an_extension_not_ready_yet_is_asked_again_within_the_request() {
    let (sm, url, _) = stand_in(SECRET, 0).await;
    sm.not_ready_next(3);
    let keys = keys(&url, ONCE);
    assert!(keys.get().await.is_ok());
    assert_eq!(sm.reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn while_secrets_manager_is_down_requests_get_503_and_it_is_read_once_it_is_back() {
    let (_sm, url, _) = stand_in(SECRET, 1).await;
    let keys = keys(&url, ONCE);
    assert_eq!(answer(&keys).await, Err(ApiError::Unavailable));
    assert!(keys.loaded().is_none());
    assert!(keys.get().await.is_ok(), "read once Secrets Manager answers");
}

#[tokio::test]
async fn an_unreachable_extension_is_503_not_a_crash() {
    let keys = keys("http://127.0.0.1:9", ONCE);
    assert_eq!(answer(&keys).await, Err(ApiError::Unavailable));
}

#[tokio::test]
async fn the_extension_refuses_a_read_without_the_session_token_and_that_is_503() {
    let (sm, url, _) = stand_in(SECRET, 0).await;
    let keys = KeyCache::from_secret(source(&url, "another-environment"), false, settings(), ONCE);
    assert_eq!(answer(&keys).await, Err(ApiError::Unavailable));
    assert_eq!(sm.reads.load(Ordering::SeqCst), 0, "nothing was served");
}

#[tokio::test]
async fn an_extension_that_never_gets_ready_is_503_after_a_second_of_asking() {
    let (sm, url, _) = stand_in(SECRET, 0).await;
    sm.not_ready_next(usize::MAX);
    let keys = keys(&url, ONCE);
    let started = std::time::Instant::now();
    assert_eq!(answer(&keys).await, Err(ApiError::Unavailable));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn an_extension_that_takes_the_request_and_never_answers_is_503_within_the_read_budget() {
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", hung.local_addr().unwrap());
    // Accepts, holds the connection open, never writes.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let keys = keys(&url, ONCE);
    let started = std::time::Instant::now();
    assert_eq!(answer(&keys).await, Err(ApiError::Unavailable));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

/// Read at the first request, a weak key set stops the function as a weak
/// `JWT_SECRET` does at start (`KeyCache::get` exits on it when it has no keys
/// yet: not testable in process); read later, it leaves the keys in use as
/// they are (below). Here: the read succeeds and the key set is refused.
#[tokio::test]
async fn a_weak_secret_in_secrets_manager_is_read_and_refused_as_unusable() {
    let (_sm, url, _) = stand_in("too-short", 0).await;
    let secret = source(&url, SESSION_TOKEN).read().await.unwrap();
    let error = TokenAuthority::from_secret(settings(), &secret)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("at least 32"), "{error}");
}

#[tokio::test]
async fn a_warm_function_reads_the_secret_again_after_the_refresh_interval_and_learns_a_rotation() {
    let (sm, url, client) = stand_in(SECRET, 0).await;
    sm.put(PUBLIC, EMPTY_JWKS);
    let signer = keys(&url, Duration::from_millis(300));
    let verifier = public_keys(&url, Duration::from_millis(300));
    let first = signer.get().await.unwrap().kid().to_owned();
    assert!(verifier.get().await.is_err(), "nothing published yet");
    keytool(&client, &format!("{ROTATE} --alg EdDSA"), shared::now()).await;
    assert_eq!(signer.get().await.unwrap().kid(), first, "still fresh");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let read = signer.get().await.unwrap();
    assert_ne!(
        read.kid(),
        first,
        "an EdDSA key signs at once in place of the HS256 secret"
    );
    let token = shared::testing::access_token(&read, "u-1", "alice", shared::now());
    let verifying = verifier.get().await.unwrap();
    assert!(
        verifying.verify_access(&token, shared::now()).is_ok(),
        "and is published"
    );
    assert_eq!(verifying.jwks(), read.jwks());
    assert_eq!(
        sm.reads.load(Ordering::SeqCst),
        4,
        "each function's first request and its read after the refresh interval"
    );
}

#[tokio::test]
async fn a_warm_function_keeps_the_keys_it_has_while_secrets_manager_is_down_or_holds_an_unusable_value() {
    let (sm, url, _) = stand_in(SECRET, 0).await;
    let keys = keys(&url, Duration::from_millis(300));
    let first = keys.get().await.unwrap().kid().to_owned();
    sm.fail_next(usize::MAX);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(keys.get().await.unwrap().kid(), first, "down");
    sm.fail_next(0);
    sm.put(ARN, r#"{"keys": []}"#);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(keys.get().await.unwrap().kid(), first, "unusable");
    assert!(sm.reads.load(Ordering::SeqCst) >= 2, "it did read again");
}

/// The rotation as the make target runs it, against the secrets the
/// functions read: two warm signing instances that read the private set
/// every 300 ms and a verifying one that reads the published keys as often,
/// tokens issued by each signer at every step, all verified by all three.
/// The tool gets a clock that runs ahead, so the hour-long waits of a real
/// rotation pass at once; the instances' reads are real.
#[tokio::test]
async fn keytool_walks_a_whole_rotation_in_secrets_manager_without_rejecting_a_valid_token() {
    let (sm, url, client) = stand_in(SECRET, 0).await;
    sm.put(PUBLIC, EMPTY_JWKS);
    let refresh = Duration::from_millis(300);
    let signers = [keys(&url, refresh), keys(&url, refresh)];
    let verifier = public_keys(&url, refresh);
    let mut tokens = Vec::new();
    let mut clock = shared::now();
    // The stack's wait before a new key signs (1 s of refresh + API Gateway's
    // 7200 s), and before an old one goes (that + the longest token + leeway).
    let rotate = format!("{ROTATE} --keys-refresh 1 --access-ttl 900 --refresh-ttl 3600");
    let (propagation, retire_after) = (7201, 7201 + 3600 + 30);
    let mut said = Vec::new();
    for (step, wait) in [(0, retire_after), (1, propagation), (2, 0)] {
        let args = if step == 0 {
            format!("{rotate} --alg RS256")
        } else {
            rotate.clone()
        };
        said.push(keytool(&client, &args, clock).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
        for signer in &signers {
            tokens.push(shared::testing::access_token(
                &signer.get().await.unwrap(),
                "u-1",
                "alice",
                shared::now(),
            ));
        }
        let verifying = verifier.get().await.unwrap();
        for signer in &signers {
            let signing = signer.get().await.unwrap();
            for token in &tokens[tokens.len().saturating_sub(4)..] {
                assert!(
                    signing.verify_access(token, shared::now()).is_ok()
                        && verifying.verify_access(token, shared::now()).is_ok(),
                    "step {step}: {said:#?}"
                );
            }
        }
        clock += wait;
    }
    let set = KeySet::parse(&sm.value(ARN).unwrap()).unwrap();
    let loaded = set.load().unwrap();
    assert_eq!(
        loaded.iter().map(|k| (k.alg, k.status)).collect::<Vec<_>>(),
        [(Alg::RS256, Status::Previous), (Alg::RS256, Status::Current)],
        "{said:#?}"
    );
    assert_eq!(sm.value(PUBLIC).unwrap(), set.public_jwks().unwrap());
    let text = said.join("\n");
    for step in ["made", "retired", "added", "made"] {
        assert!(text.contains(step), "{text}");
    }
    assert!(
        !text.contains(SECRET) && set.keys.iter().all(|k| !text.contains(&k.key)),
        "keytool never prints key material"
    );
    assert_eq!(
        signers[0].get().await.unwrap().kid(),
        loaded.current().kid,
        "the new key signs"
    );
}
