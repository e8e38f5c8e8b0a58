//! A whole rotation of the signing keys, walked over HTTP against the running
//! stack of `make test`: the rotation function's four steps (the key-rotation
//! crate, through the SDK) against the Secrets Manager stand-in the functions
//! read their keys from, while tokens issued before, during and after it
//! (POST /login, POST /refresh) are each verified by GET /protected, by the
//! authorizer and by PyJWT from the published JWKS alone
//! (tests/test_jwks_interop.py --verify).
//!
//! The waits are the deployed ones made short: the functions read their keys
//! every `E2E_KEYS_REFRESH` seconds, and a published key signs once that and a
//! margin have passed (deployed: that plus two hours). An old key verifies for
//! the longest token lifetime, so the dev key set `make test` starts from is
//! never retired within the suite: the test binaries after this one still
//! forge with the dev key, and sign with the new one.
//!
//! It changes the stack's keys for good: it starts from the dev key set as
//! `make test` stores it, so it runs once per stack (scripts/test does so).

use aws_sdk_secretsmanager::Client;
use integration::{Api, Reply, authorize, required_env};
use key_rotation::{KeyRotation, RotationConfig};
use serde_json::{Value, json};
use shared::config::TokenSettings;
use shared::keyset::{KeySet, RotationPolicy, Status};
use shared::testing::{dev_authority, dev_env, dev_settings};
use shared::token::TokenAuthority;
use std::time::Duration;

/// What a function may still hold after its refresh interval: one more read, in flight.
const MARGIN: u64 = 2;

fn now() -> u64 {
    shared::now()
}

fn keys_refresh() -> u64 {
    required_env("E2E_KEYS_REFRESH").parse().expect("a number of seconds")
}

/// The stack's token settings: dev.env's, with the issuer `make test` gives the stack.
fn settings() -> TokenSettings {
    TokenSettings {
        issuer: required_env("E2E_ISSUER"),
        ..dev_settings()
    }
}

/// The rotation as the stack would run it, with the waits made short: a new
/// key signs `E2E_KEYS_REFRESH` + `MARGIN` seconds after it is published, and
/// an old one verifies as long as any token lives (the refresh lifetime).
fn rotation_config() -> RotationConfig {
    let settings = settings();
    let refresh = keys_refresh().to_string();
    let (access_ttl, refresh_ttl) = (settings.access_ttl.to_string(), settings.refresh_ttl.to_string());
    let public = required_env("E2E_PUBLIC_KEYS_ARN");
    let config = RotationConfig::from_lookup(|name| match name {
        "JWT_PUBLIC_KEYS_ARN" => Some(public.clone()),
        "SIGNING_ALGORITHM" => Some("RS256".into()),
        "KEYS_REFRESH_SECONDS" => Some(refresh.clone()),
        "ACCESS_TOKEN_TTL" => Some(access_ttl.clone()),
        "REFRESH_TOKEN_TTL" => Some(refresh_ttl.clone()),
        "JWT_ISSUER" => Some(settings.issuer.clone()),
        "JWT_AUDIENCE" => Some(settings.audience.clone()),
        _ => None,
    })
    .expect("a valid rotation configuration");
    RotationConfig {
        policy: RotationPolicy {
            propagation: keys_refresh() + MARGIN,
            max_token_lifetime: settings.refresh_ttl,
        },
        ..config
    }
}

/// The running stack: its API, and its two secrets in the stand-in.
struct Stack {
    api: Api,
    client: Client,
    rotation: KeyRotation,
    secret: String,
    public: String,
}

/// One token response, and the kid that signed it.
struct Issued {
    label: String,
    access: String,
    refresh: String,
}

impl Issued {
    fn of(label: &str, reply: &Reply) -> Self {
        assert_eq!(reply.status, 200, "{label}: {}", reply.text);
        Self {
            label: label.to_owned(),
            access: reply.field("access_token"),
            refresh: reply.field("refresh_token"),
        }
    }

    /// The kid of both tokens, which must be the same.
    fn kid(&self) -> String {
        let (access, refresh) = (kid_of(&self.access), kid_of(&self.refresh));
        assert_eq!(access, refresh, "{}: one response, one key", self.label);
        access
    }
}

fn kid_of(token: &str) -> String {
    let header: Value =
        serde_json::from_slice(&shared::testing::b64_decode(token.split('.').next().unwrap())).expect("a JWT header");
    header["kid"].as_str().expect("a kid").to_owned()
}

impl Stack {
    async fn new() -> Self {
        let sdk = shared::aws::local_config(&required_env("E2E_SECRETS_MANAGER_URL")).await;
        let client = Client::new(&sdk);
        Self {
            api: Api::from_env(),
            rotation: KeyRotation::new(client.clone(), rotation_config()),
            client,
            secret: required_env("E2E_SECRET_ARN"),
            public: required_env("E2E_PUBLIC_KEYS_ARN"),
        }
    }

    async fn current(&self, id: &str) -> String {
        integration::current_secret(&self.client, id).await
    }

    /// The private key set the signers read now.
    async fn private(&self) -> KeySet {
        KeySet::parse(&self.current(&self.secret).await).expect("a key set")
    }

    /// The kids of the public keys the verifiers read now, in order.
    async fn published(&self) -> Vec<String> {
        let jwks: Value = serde_json::from_str(&self.current(&self.public).await).expect("a JWKS");
        kids(&jwks)
    }

    /// The kids `/.well-known/jwks.json` serves now.
    async fn served(&self) -> Vec<String> {
        let r = self.api.get("/.well-known/jwks.json", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        kids(&r.json)
    }

    /// createSecret, setSecret and testSecret of a rotation `token` at `now`: the new set
    /// pending and its public keys published, the signers still on the current set.
    async fn publish(&self, token: &str, now: u64) -> Vec<String> {
        let mut said = Vec::new();
        said.extend(
            self.rotation
                .create_secret(&self.secret, token, now)
                .await
                .expect("createSecret"),
        );
        said.extend(self.rotation.set_secret(&self.secret, token).await.expect("setSecret"));
        said.extend(
            self.rotation
                .test_secret(&self.secret, token, now)
                .await
                .expect("testSecret"),
        );
        said
    }

    /// finishSecret: the pending set becomes the one the signers read.
    async fn finish(&self, token: &str) -> Vec<String> {
        self.rotation
            .finish_secret(&self.secret, token)
            .await
            .expect("finishSecret")
    }

    /// A new user's first login.
    async fn login(&self, label: &str) -> Issued {
        let (username, password) = self.api.new_user().await;
        let reply = self
            .api
            .post("/login", json!({"username": username, "password": password}))
            .await;
        Issued::of(label, &reply)
    }

    async fn refresh(&self, label: &str, of: &Issued) -> Issued {
        Issued::of(label, &self.api.refresh(&of.refresh).await)
    }

    /// Every access token accepted by /protected and by the authorizer, and
    /// every token verified by PyJWT from the JWKS published now.
    async fn accepted_everywhere(&self, phase: &str, issued: &[&Issued], extra_access: &[(&str, &str)]) {
        let mut access: Vec<(String, String)> = issued
            .iter()
            .map(|i| (format!("{}: access", i.label), i.access.clone()))
            .collect();
        access.extend(extra_access.iter().map(|(l, t)| (l.to_string(), t.to_string())));
        for (label, token) in &access {
            let me = self.api.get("/protected", Some(token)).await;
            assert_eq!(me.status, 200, "{phase}: /protected refuses {label}: {}", me.text);
            let decision = authorize(token, "GET /example").await;
            assert_eq!(
                decision["isAuthorized"], true,
                "{phase}: the authorizer denies {label}: {decision}"
            );
        }
        let audience = settings().audience;
        let mut checks: Vec<Value> = access
            .iter()
            .map(|(label, token)| json!({"label": label, "token": token, "audience": audience}))
            .collect();
        checks.extend(issued.iter().map(|i| {
            json!({"label": format!("{}: refresh", i.label), "token": i.refresh, "audience": format!("{audience}#refresh")})
        }));
        pyjwt_verifies(phase, &checks);
    }
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("a key list")
        .iter()
        .map(|k| k["kid"].as_str().expect("a kid").to_owned())
        .collect()
}

/// PyJWT verifies each token with the JWKS the stack's discovery document points to, fetched now.
fn pyjwt_verifies(phase: &str, checks: &[Value]) {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/test_jwks_interop.py");
    let mut child = std::process::Command::new(required_env("E2E_PYTHON"))
        .args([script, "--verify", &required_env("E2E_BASE_URL")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::from(checks.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("python ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{phase}: PyJWT refuses tokens of the stack:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        checks.len(),
        "{phase}: {text}"
    );
}

/// Waits until every function has read its keys again since a change.
async fn until_every_function_has_read_the_keys() {
    tokio::time::sleep(Duration::from_secs(keys_refresh() + MARGIN)).await;
}

async fn until(at: u64) {
    while now() < at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_whole_rotation_logs_nobody_out_and_every_token_before_during_and_after_verifies_everywhere() {
    let stack = Stack::new().await;
    let dev_kid = dev_authority().kid().to_owned();

    // GIVEN the stack as make test started it: the dev key set, its public keys published.
    let start = stack.private().await;
    assert_eq!(
        start,
        KeySet::parse(&dev_env("JWT_SECRET").unwrap()).unwrap(),
        "the walk starts from the dev key set make test stores: run it once per stack, through scripts/test"
    );
    assert_eq!(
        stack.current(&stack.public).await,
        start.public_jwks().unwrap(),
        "make test publishes exactly the public keys of the dev key set"
    );
    assert_eq!(stack.served().await, [dev_kid.as_str()]);
    let before = stack.login("before").await;
    assert_eq!(before.kid(), dev_kid, "the dev key signs");
    stack.accepted_everywhere("before the rotation", &[&before], &[]).await;

    // WHEN a rotation adds the next key: published at once, signing nothing yet.
    let added_at = now();
    let first = uuid::Uuid::new_v4().to_string();
    let said = stack.publish(&first, added_at).await;
    assert!(said.iter().any(|l| l.starts_with("added ")), "{said:?}");
    let next = stack.private().await;
    assert_eq!(next, start, "the signers hold the current set until finishSecret");
    let mid_rotation = stack
        .login("in the middle of the rotation (published, not finished)")
        .await;
    stack.finish(&first).await;
    let pending = stack.private().await;
    let next_key = pending
        .keys
        .iter()
        .zip(pending.load().unwrap().iter())
        .find(|(stored, _)| stored.status == Status::Next)
        .map(|(stored, loaded)| (stored.clone(), loaded.kid.clone()))
        .expect("a next key");
    let next_kid = next_key.1.clone();
    assert_eq!(stack.published().await, [dev_kid.as_str(), next_kid.as_str()]);
    until_every_function_has_read_the_keys().await;

    // THEN, during the rotation, the dev key still signs, both keys are
    // served, and a token of the next key (a signer that promoted early) is
    // accepted already.
    assert_eq!(stack.served().await, [dev_kid.as_str(), next_kid.as_str()]);
    let during = stack.login("during the rotation").await;
    let during_refreshed = stack.refresh("refreshed during the rotation", &before).await;
    for issued in [&mid_rotation, &during, &during_refreshed] {
        assert_eq!(
            issued.kid(),
            dev_kid,
            "{}: the next key signs nothing yet",
            issued.label
        );
    }
    let early = {
        let only_next = KeySet {
            keys: vec![shared::keyset::StoredKey {
                status: Status::Current,
                ..next_key.0.clone()
            }],
        };
        let signer = TokenAuthority::from_secret(settings(), &only_next.to_json()).expect("the next key signs");
        shared::testing::access_token(&signer, "u-early", "early", now())
    };
    assert_eq!(kid_of(&early), next_kid);
    stack
        .accepted_everywhere(
            "during the rotation",
            &[&before, &mid_rotation, &during, &during_refreshed],
            &[("signed by the next key", &early)],
        )
        .await;

    // WHEN the next rotation runs once the next key has had time to reach every
    // verifier: it becomes current, the dev key previous, both still published.
    until(added_at + stack_propagation()).await;
    let second = uuid::Uuid::new_v4().to_string();
    let said = stack.publish(&second, now()).await;
    assert!(
        said.iter().any(|l| l.starts_with(&format!("made {next_kid} current"))),
        "{said:?}"
    );
    let promoting = stack
        .login("in the middle of the promotion (published, not finished)")
        .await;
    assert_eq!(
        promoting.kid(),
        dev_kid,
        "the signers switch at finishSecret, not before"
    );
    stack.finish(&second).await;
    let promoted = stack.private().await.load().unwrap();
    assert_eq!(promoted.current().kid, next_kid);
    assert!(
        promoted
            .iter()
            .any(|k| k.kid == dev_kid && k.status == Status::Previous),
        "the dev key verifies on as the previous key"
    );
    until_every_function_has_read_the_keys().await;

    // THEN the new key signs logins and refreshes (of tokens the dev key
    // signed, too), and every token issued before still works.
    assert_eq!(stack.served().await, [dev_kid.as_str(), next_kid.as_str()]);
    let after = stack.login("after the rotation").await;
    let after_refreshed = stack.refresh("refreshed after the rotation", &during).await;
    let after_refreshed_twice = stack
        .refresh("refreshed twice across the rotation", &during_refreshed)
        .await;
    let after_mid = stack
        .refresh("refreshed after, issued mid-rotation", &mid_rotation)
        .await;
    for issued in [&after, &after_refreshed, &after_refreshed_twice, &after_mid] {
        assert_eq!(issued.kid(), next_kid, "{}: the promoted key signs", issued.label);
    }
    stack
        .accepted_everywhere(
            "after the rotation",
            &[
                &before,
                &mid_rotation,
                &during,
                &during_refreshed,
                &promoting,
                &after,
                &after_refreshed,
                &after_refreshed_twice,
                &after_mid,
            ],
            &[("signed by the next key before it was current", &early)],
        )
        .await;
    // The refresh tokens still unused, whichever key signed them, refresh.
    for issued in [&promoting, &after] {
        let r = stack.api.refresh(&issued.refresh).await;
        assert_eq!(
            r.status, 200,
            "{}: logged out by the rotation: {}",
            issued.label, r.text
        );
    }

    // AND the new key's material never reached the functions' log.
    let logs = std::fs::read_to_string(required_env("E2E_LOG_FILE")).expect("the functions' log");
    let material = &next_key.0.key[next_key.0.key.len() / 2..][..32];
    assert!(!logs.contains(material), "the new signing key appears in the logs");
}

fn stack_propagation() -> u64 {
    rotation_config().policy.propagation
}
