//! The rotation function's four steps (`key_rotation`) against the Secrets
//! Manager stand-in, through the real SDK: each step, each step retried, a
//! failure in the middle of a rotation, a fresh stack's first rotation, and
//! whole rotations walked on a simulated clock with tokens issued before,
//! during and after every step. `keytool rotate --secret-id` runs the same
//! steps: it writes only when a step is due. Needs no DynamoDB.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use integration::secretsmanager::{CURRENT, PENDING, PREVIOUS, SecretsManager};
use key_rotation::{Event, KeyRotation, RotationConfig, RotationError, Step};
use shared::config::TokenSettings;
use shared::keyset::{Alg, KeySet, Status};
use shared::session::SessionGeneration;
use shared::token::{TokenAuthority, TokenVerifier};

const PRIVATE: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:JwtSecret-AbCdEf";
const PUBLIC: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:JwtPublicKeys-GhIjKl";
/// What the template's GenerateSecretString gives a new stack (64 letters
/// and digits): one HS256 key until the first rotation.
const FRESH: &str = "Zm9yIGEgbmV3IHN0YWNrIG9ubHk0123456789abcdefghijklmnopqrstuvwxyzAB";
/// The public secret as the template creates it.
const EMPTY_JWKS: &str = r#"{"keys":[]}"#;
const KEYS_REFRESH: u64 = 300;
const ACCESS_TTL: u64 = 900;
const REFRESH_TTL: u64 = 30 * DAY;
const DAY: u64 = 24 * 3600;
/// The deployed policy's waits: a new key signs this long after it is published
/// (the functions' refresh plus API Gateway's JWT authorizer cache) ...
const PROPAGATION: u64 = KEYS_REFRESH + 7200;
/// ... and an old key goes this long after it stopped signing (plus the clock leeway).
const RETIRE_AFTER: u64 = PROPAGATION + REFRESH_TTL + 30;
const T0: u64 = 1_800_000_000;

/// The rotation function's configuration, as the template sets it.
fn config(alg: &str) -> RotationConfig {
    RotationConfig::from_lookup(|name| match name {
        "JWT_PUBLIC_KEYS_ARN" => Some(PUBLIC.into()),
        "SIGNING_ALGORITHM" => Some(alg.into()),
        "KEYS_REFRESH_SECONDS" => Some(KEYS_REFRESH.to_string()),
        "ACCESS_TOKEN_TTL" => Some(ACCESS_TTL.to_string()),
        "REFRESH_TOKEN_TTL" => Some(REFRESH_TTL.to_string()),
        _ => None,
    })
    .expect("a valid configuration")
}

fn settings() -> TokenSettings {
    config("RS256").settings
}

/// Both secrets in a stand-in, and the rotation function against it.
struct Stack {
    sm: SecretsManager,
    /// Does not retry: each injected failure fails one call of a step.
    client: Client,
    rotation: KeyRotation,
}

async fn stack(private: &str, public: &str, alg: &str) -> Stack {
    let sm = SecretsManager::new(&[(PRIVATE, private), (PUBLIC, public)], 0);
    let url = sm.start().await;
    let sdk = shared::aws::local_config(&url).await;
    let client = Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let rotation = KeyRotation::new(client.clone(), config(alg));
    Stack { sm, client, rotation }
}

/// A stack whose first rotation made one RS256 key current at `since` and published it.
async fn rs256_stack(since: u64) -> Stack {
    let set = KeySet::generate(Alg::RS256, since);
    stack(&set.to_json(), &set.public_jwks().unwrap(), "RS256").await
}

impl Stack {
    /// Secrets Manager invoking the function for `step` of the rotation `token`.
    async fn step(&self, token: &str, step: Step, now: u64) -> Result<(), RotationError> {
        let event = Event {
            secret_id: PRIVATE.into(),
            token: token.into(),
            step,
        };
        self.rotation.handle(event, now).await
    }

    /// A whole rotation at `now`, as Secrets Manager runs it; returns its token.
    async fn rotate(&self, now: u64) -> String {
        let token = self.sm.begin_rotation(PRIVATE).unwrap();
        for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            self.step(&token, step, now).await.unwrap_or_else(|e| panic!("{e}"));
        }
        token
    }

    /// The private set the signers read now.
    fn private(&self) -> KeySet {
        KeySet::parse(&self.sm.value(PRIVATE).unwrap()).unwrap()
    }

    /// The public keys the verifiers read now.
    fn public(&self) -> String {
        self.sm.value(PUBLIC).unwrap()
    }

    /// The labels of version `id` of the private secret.
    fn labels(&self, id: &str) -> Vec<String> {
        let mut labels = self
            .sm
            .versions(PRIVATE)
            .into_iter()
            .find(|(v, _)| v == id)
            .map(|(_, labels)| labels)
            .unwrap_or_default();
        labels.sort();
        labels
    }

    /// The id of the private secret's version labelled `stage`.
    fn version_with(&self, stage: &str) -> Option<String> {
        self.sm
            .versions(PRIVATE)
            .into_iter()
            .find(|(_, labels)| labels.iter().any(|l| l == stage))
            .map(|(id, _)| id)
    }
}

fn statuses(set: &KeySet) -> Vec<(Alg, Status)> {
    set.keys.iter().map(|k| (k.alg, k.status)).collect()
}

/// The key ids a published JWKS holds.
fn kids(jwks: &str) -> Vec<String> {
    let jwks: serde_json::Value = serde_json::from_str(jwks).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn verifier_of(published: &str) -> TokenVerifier {
    TokenVerifier::from_public(settings(), published)
        .unwrap()
        .expect("the published set holds a key")
}

fn signer_of(private: &str) -> TokenAuthority {
    TokenAuthority::from_secret(settings(), private).unwrap()
}

#[tokio::test]
async fn create_secret_stores_the_rotated_set_as_the_pending_version_and_a_retry_stores_nothing_more() {
    let s = rs256_stack(T0).await;
    let current = s.sm.value(PRIVATE).unwrap();
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    s.step(&token, Step::Create, T0 + 10).await.unwrap();
    let pending = s.sm.value_at(PRIVATE, PENDING).unwrap();
    assert_eq!(
        statuses(&KeySet::parse(&pending).unwrap()),
        [(Alg::RS256, Status::Current), (Alg::RS256, Status::Next)],
        "a next key is added"
    );
    assert_eq!(s.labels(&token), [PENDING], "in the rotation's own version");
    assert_eq!(s.sm.value(PRIVATE).unwrap(), current, "the signers' set is untouched");
    let versions = s.sm.versions(PRIVATE);

    // Later, when a run from scratch would make another key.
    s.step(&token, Step::Create, T0 + 20).await.unwrap();
    assert_eq!(
        s.sm.value_at(PRIVATE, PENDING).unwrap(),
        pending,
        "the same pending set"
    );
    assert_eq!(s.sm.versions(PRIVATE), versions, "no other version");
    assert_eq!(s.sm.calls("PutSecretValue"), 1);
    assert_eq!(
        s.public(),
        KeySet::parse(&current).unwrap().public_jwks().unwrap(),
        "nothing published yet"
    );
}

#[tokio::test]
async fn set_secret_publishes_the_pending_sets_public_keys_and_a_retry_writes_nothing() {
    let s = rs256_stack(T0).await;
    let current = s.sm.value(PRIVATE).unwrap();
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    s.step(&token, Step::Create, T0).await.unwrap();
    s.step(&token, Step::Set, T0).await.unwrap();
    let pending = KeySet::parse(&s.sm.value_at(PRIVATE, PENDING).unwrap()).unwrap();
    assert_eq!(s.public(), pending.public_jwks().unwrap());
    assert_eq!(kids(&s.public()).len(), 2, "the current key and the next one");
    assert_eq!(s.sm.value(PRIVATE).unwrap(), current, "the signers' set is untouched");
    let published = s.sm.versions(PUBLIC);
    assert_eq!(published.len(), 2, "one new version of the public secret");
    assert_eq!(published[1].1, [CURRENT], "the new public keys are current");

    s.step(&token, Step::Set, T0 + 5).await.unwrap();
    assert_eq!(s.sm.versions(PUBLIC), published, "no other version");
    assert_eq!(s.sm.calls("PutSecretValue"), 2, "createSecret's and setSecret's first");
}

#[tokio::test]
async fn test_secret_fails_until_the_public_keys_are_published_and_writes_nothing() {
    let s = rs256_stack(T0).await;
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    s.step(&token, Step::Create, T0).await.unwrap();
    let refused = s.step(&token, Step::Test, T0).await.unwrap_err();
    assert_eq!(refused.step, "testSecret");
    assert!(refused.message.contains("setSecret has not published"), "{refused}");
    s.step(&token, Step::Set, T0).await.unwrap();
    let writes = s.sm.calls("PutSecretValue");
    s.step(&token, Step::Test, T0).await.unwrap();
    s.step(&token, Step::Test, T0 + 5).await.unwrap();
    assert_eq!(s.sm.calls("PutSecretValue"), writes);
    assert_eq!(s.sm.calls("UpdateSecretVersionStage"), 0);
}

#[tokio::test]
async fn test_secret_refuses_a_published_set_that_lacks_a_key_the_signers_use() {
    let s = rs256_stack(T0).await;
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    s.step(&token, Step::Create, T0).await.unwrap();
    s.step(&token, Step::Set, T0).await.unwrap();
    // Someone publishes another set by hand between the steps.
    let other = KeySet::generate(Alg::RS256, T0);
    s.sm.put(PUBLIC, &other.public_jwks().unwrap());
    let refused = s.step(&token, Step::Test, T0).await.unwrap_err();
    assert!(refused.message.contains("does not hold the public keys"), "{refused}");
}

#[tokio::test]
async fn finish_secret_makes_the_pending_version_current_and_a_retry_changes_nothing() {
    let s = rs256_stack(T0).await;
    let old = s.version_with(CURRENT).unwrap();
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        s.step(&token, step, T0).await.unwrap();
    }
    assert_eq!(s.labels(&token), [CURRENT], "current, and no longer pending");
    assert_eq!(s.labels(&old), [PREVIOUS]);
    assert_eq!(
        s.sm.value(PRIVATE),
        s.sm.value_at(PRIVATE, CURRENT),
        "the signers read the new set"
    );
    assert_eq!(
        s.private().public_jwks().unwrap(),
        s.public(),
        "and the verifiers its public keys"
    );
    let (versions, moves) = (s.sm.versions(PRIVATE), s.sm.calls("UpdateSecretVersionStage"));
    assert_eq!(moves, 2, "AWSCURRENT moved, AWSPENDING removed");

    s.step(&token, Step::Finish, T0 + 5).await.unwrap();
    assert_eq!(s.sm.versions(PRIVATE), versions);
    assert_eq!(s.sm.calls("UpdateSecretVersionStage"), moves, "nothing moved again");
}

#[tokio::test]
async fn a_create_secret_that_fails_stores_nothing_and_its_retry_stores_one_version() {
    let s = rs256_stack(T0).await;
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    s.sm.fail_operation("PutSecretValue", 0, 1);
    let failed = s.step(&token, Step::Create, T0).await.unwrap_err();
    assert_eq!(failed.step, "createSecret");
    assert_eq!(
        s.sm.value_at(PRIVATE, PENDING),
        None,
        "the pending version is still empty"
    );
    s.step(&token, Step::Create, T0).await.unwrap();
    assert!(s.sm.value_at(PRIVATE, PENDING).is_some());
    assert_eq!(s.sm.versions(PRIVATE).len(), 2, "the first and the rotation's");
}

#[tokio::test]
async fn a_set_secret_that_fails_leaves_the_published_keys_alone_and_its_retry_completes_the_rotation() {
    let s = rs256_stack(T0).await;
    let published = s.public();
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    s.step(&token, Step::Create, T0).await.unwrap();
    s.sm.fail_operation("PutSecretValue", 0, usize::MAX);
    assert_eq!(s.step(&token, Step::Set, T0).await.unwrap_err().step, "setSecret");
    assert_eq!(s.public(), published);
    assert!(
        s.step(&token, Step::Test, T0).await.is_err(),
        "nothing is tested that is not published"
    );
    s.sm.fail_operation("PutSecretValue", 0, 0);
    for step in [Step::Set, Step::Test, Step::Finish] {
        s.step(&token, step, T0 + 60).await.unwrap();
    }
    assert_eq!(
        statuses(&s.private()),
        [(Alg::RS256, Status::Current), (Alg::RS256, Status::Next)]
    );
    assert_eq!(s.private().public_jwks().unwrap(), s.public());
    assert_eq!(s.labels(&token), [CURRENT]);
}

#[tokio::test]
async fn a_finish_secret_that_fails_after_the_move_is_completed_by_its_retry() {
    let s = rs256_stack(T0).await;
    let old = s.version_with(CURRENT).unwrap();
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    for step in [Step::Create, Step::Set, Step::Test] {
        s.step(&token, step, T0).await.unwrap();
    }
    // The move of AWSCURRENT goes through; taking AWSPENDING off fails.
    s.sm.fail_operation("UpdateSecretVersionStage", 1, usize::MAX);
    assert_eq!(s.step(&token, Step::Finish, T0).await.unwrap_err().step, "finishSecret");
    assert_eq!(s.labels(&token), [CURRENT, PENDING]);
    assert_eq!(s.labels(&old), [PREVIOUS]);
    s.sm.fail_operation("UpdateSecretVersionStage", 0, 0);
    s.step(&token, Step::Finish, T0).await.unwrap();
    assert_eq!(s.labels(&token), [CURRENT]);
    assert_eq!(s.labels(&old), [PREVIOUS]);
    assert_eq!(
        s.sm.begin_rotation(PRIVATE).map(drop),
        Ok(()),
        "the next rotation can start"
    );
}

#[tokio::test]
async fn a_finish_secret_that_fails_before_the_move_leaves_the_signers_on_the_old_set_until_its_retry() {
    let s = rs256_stack(T0).await;
    let current = s.sm.value(PRIVATE).unwrap();
    let token = s.sm.begin_rotation(PRIVATE).unwrap();
    for step in [Step::Create, Step::Set, Step::Test] {
        s.step(&token, step, T0).await.unwrap();
    }
    s.sm.fail_operation("UpdateSecretVersionStage", 0, 1);
    assert!(s.step(&token, Step::Finish, T0).await.is_err());
    assert_eq!(s.sm.value(PRIVATE).unwrap(), current);
    // The old set's key is published, so the signers' tokens still verify.
    let token_now = shared::testing::access_token(&signer_of(&current), "u-1", "alice", T0);
    assert!(verifier_of(&s.public()).verify_access(&token_now, T0).is_ok());
    s.step(&token, Step::Finish, T0).await.unwrap();
    assert_eq!(s.labels(&token), [CURRENT]);
}

#[tokio::test]
async fn an_event_of_a_secret_not_rotating_or_of_a_version_that_is_not_pending_is_refused_without_a_write() {
    let s = rs256_stack(T0).await;
    let first = s.version_with(CURRENT).unwrap();
    let refused = s.step("a-version", Step::Create, T0).await.unwrap_err();
    assert!(refused.message.contains("not enabled for rotation"), "{refused}");

    let token = s.rotate(T0).await;
    let refused = s.step("a-version", Step::Create, T0).await.unwrap_err();
    assert!(refused.message.contains("no stage for rotation"), "{refused}");
    let refused = s.step(&first, Step::Create, T0).await.unwrap_err();
    assert!(refused.message.contains("not pending"), "{refused}");

    // A finished rotation asked again: nothing to do.
    let (writes, versions) = (s.sm.calls("PutSecretValue"), s.sm.versions(PRIVATE));
    for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        s.step(&token, step, T0 + 5).await.unwrap();
    }
    assert_eq!(s.sm.calls("PutSecretValue"), writes);
    assert_eq!(s.sm.versions(PRIVATE), versions);
}

#[tokio::test]
async fn a_fresh_stack_signs_with_an_rs256_key_after_its_first_rotation_and_publishes_it() {
    let s = stack(FRESH, EMPTY_JWKS, "RS256").await;
    let hs256 = signer_of(FRESH);
    let old_refresh = hs256.issue_refresh(&session(T0 - 60));
    s.rotate(T0).await;

    let set = s.private();
    assert_eq!(
        statuses(&set),
        [(Alg::HS256, Status::Previous), (Alg::RS256, Status::Current)],
        "the RS256 key signs at once; the HS256 key verifies what it signed"
    );
    let signing = set.load().unwrap().current().kid.clone();
    assert_eq!(
        kids(&s.public()),
        [signing],
        "the public secret holds the new key, and no HMAC secret"
    );
    let signer = signer_of(&s.sm.value(PRIVATE).unwrap());
    let access = shared::testing::access_token(&signer, "u-1", "alice", T0);
    assert!(verifier_of(&s.public()).verify_access(&access, T0).is_ok());
    assert!(
        signer.verify_refresh(&old_refresh, T0).is_ok(),
        "a refresh token of the HS256 key still refreshes"
    );
    assert!(!s.public().contains(FRESH));
}

#[tokio::test]
async fn an_hs256_stack_rotates_its_secret_and_publishes_no_key() {
    let s = stack(FRESH, EMPTY_JWKS, "HS256").await;
    s.rotate(T0).await;
    assert_eq!(
        statuses(&s.private()),
        [(Alg::HS256, Status::Current), (Alg::HS256, Status::Next)]
    );
    assert_eq!(
        kids(&s.public()),
        Vec::<String>::new(),
        "an HMAC key has no public half"
    );
}

fn session(now: u64) -> SessionGeneration<'static> {
    SessionGeneration {
        session_id: "s-1",
        user_id: "u-1",
        username: "alice",
        generation: now,
        issued_at: now,
        session_expires_at: now + 90 * DAY,
        amr: &[],
    }
}

/// Both secrets from `at` until the next snapshot.
struct Snapshot {
    at: u64,
    private: String,
    public: String,
}

/// A token issued during the walk.
struct Issued {
    token: String,
    refresh: bool,
    expires: u64,
    what: String,
}

/// Rotations on a simulated clock, with every token issued along the way
/// checked against every key set a verifier or a signer may hold.
struct Walk {
    stack: Stack,
    history: Vec<Snapshot>,
    tokens: Vec<Issued>,
    checks: usize,
}

impl Walk {
    /// Notes the secrets' values at `at` if they changed.
    fn record(&mut self, at: u64) {
        let (private, public) = (self.stack.sm.value(PRIVATE).unwrap(), self.stack.public());
        if self
            .history
            .last()
            .is_none_or(|s| s.private != private || s.public != public)
        {
            self.history.push(Snapshot { at, private, public });
        }
    }

    /// An access and a refresh token signed at `now` with the private set `private`.
    fn issue(&mut self, private: &str, now: u64, what: &str) {
        let signer = signer_of(private);
        let what = format!("{what}, at {now}, by {}", signer.kid());
        self.tokens.push(Issued {
            token: shared::testing::access_token(&signer, "u-1", "alice", now),
            refresh: false,
            expires: now + ACCESS_TTL,
            what: format!("the access token {what}"),
        });
        self.tokens.push(Issued {
            token: signer.issue_refresh(&session(now)),
            refresh: true,
            expires: now + REFRESH_TTL,
            what: format!("the refresh token {what}"),
        });
    }

    /// At `now`, every live token verifies with every key set in use: the
    /// published keys any verifier may have read within the propagation
    /// time (API Gateway's cache included), and the private sets any signer
    /// may have read within its refresh interval.
    fn check(&mut self, now: u64) {
        for (i, snapshot) in self.history.iter().enumerate() {
            let until = self.history.get(i + 1).map_or(u64::MAX, |next| next.at);
            if snapshot.at > now {
                continue;
            }
            let mut holders = Vec::new();
            if until > now.saturating_sub(PROPAGATION) {
                holders.push((
                    format!("the keys published at {}", snapshot.at),
                    verifier_of(&snapshot.public),
                ));
            }
            if until > now.saturating_sub(KEYS_REFRESH) {
                holders.push((
                    format!("the private set of {}", snapshot.at),
                    signer_of(&snapshot.private).into_verifier(),
                ));
            }
            for (holder, verifier) in &holders {
                for issued in self.tokens.iter().filter(|t| now < t.expires) {
                    let verified = if issued.refresh {
                        verifier.verify_refresh(&issued.token, now).map(drop)
                    } else {
                        verifier.verify_access(&issued.token, now).map(drop)
                    };
                    assert!(
                        verified.is_ok(),
                        "at {now}, {} is refused by {holder}: {verified:?}",
                        issued.what
                    );
                    self.checks += 1;
                }
            }
        }
    }

    /// One rotation at `at` as Secrets Manager runs it, tokens issued and
    /// checked before and after each step, then by a signer that has not
    /// read the new set yet, up to its refresh interval later.
    async fn rotate(&mut self, at: u64, what: &str) {
        let before = self.stack.sm.value(PRIVATE).unwrap();
        self.check(at);
        self.issue(&before, at, &format!("before the rotation that {what}"));
        let token = self.stack.sm.begin_rotation(PRIVATE).unwrap();
        for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            self.stack
                .step(&token, step, at)
                .await
                .unwrap_or_else(|e| panic!("the rotation that {what}: {e}"));
            self.record(at);
            let held = self.stack.sm.value(PRIVATE).unwrap();
            self.issue(&held, at, &format!("after {} of the rotation that {what}", step.name()));
            self.check(at);
        }
        let late = at + KEYS_REFRESH - 1;
        self.issue(
            &before,
            late,
            &format!("by a signer that missed the rotation that {what}"),
        );
        self.check(late);
    }
}

/// Walks `schedule` (when a rotation runs, what it does, the statuses of
/// the keys after it) from one RS256 key made current a day before `T0`;
/// returns how many keys signed in turn.
async fn walk(schedule: &[(u64, &str, &[Status])]) -> usize {
    let start = T0 - DAY;
    let mut walk = Walk {
        stack: rs256_stack(start).await,
        history: Vec::new(),
        tokens: Vec::new(),
        checks: 0,
    };
    walk.record(start);
    let first = walk.stack.sm.value(PRIVATE).unwrap();
    walk.issue(&first, start, "before any rotation");
    let mut signing = Vec::new();
    for (i, (at, what, expected)) in schedule.iter().enumerate() {
        walk.rotate(*at, what).await;
        let set = walk.stack.private();
        let found: Vec<Status> = set.keys.iter().map(|k| k.status).collect();
        assert_eq!(&found, expected, "after the rotation that {what}");
        assert_eq!(
            walk.stack.public(),
            set.public_jwks().unwrap(),
            "{what}: published as it is"
        );
        let kid = set.load().unwrap().current().kid.clone();
        if signing.last() != Some(&kid) {
            signing.push(kid);
        }
        // Just before the next rotation: the longest waits have passed.
        let next = schedule.get(i + 1).map_or(at + RETIRE_AFTER, |next| next.0);
        walk.check(next - 1);
    }
    assert_eq!(walk.stack.sm.versions(PRIVATE).len(), 1 + schedule.len());
    assert!(walk.stack.version_with(PENDING).is_none());
    assert!(walk.checks > 1000, "{} checks", walk.checks);
    signing.len()
}

const C: Status = Status::Current;
const N: Status = Status::Next;
const P: Status = Status::Previous;

#[tokio::test]
async fn rotations_run_the_moment_each_step_falls_due_never_refuse_a_live_token() {
    let schedule: [(u64, &str, &[Status]); 7] = [
        (T0, "adds the next key", &[C, N]),
        (T0 + PROPAGATION / 2, "finds nothing due", &[C, N]),
        (T0 + PROPAGATION, "makes the next key current", &[P, C]),
        (
            T0 + PROPAGATION + REFRESH_TTL,
            "adds a key while the old one still verifies",
            &[P, C, N],
        ),
        (
            T0 + PROPAGATION + RETIRE_AFTER,
            "retires the old key and makes the next current",
            &[P, C],
        ),
        (
            T0 + PROPAGATION + RETIRE_AFTER + REFRESH_TTL,
            "adds a key again",
            &[P, C, N],
        ),
        (
            T0 + PROPAGATION + 2 * RETIRE_AFTER,
            "retires and promotes again",
            &[P, C],
        ),
    ];
    assert_eq!(walk(&schedule).await, 4, "three promotions");
}

#[tokio::test]
async fn rotations_every_30_days_never_refuse_a_live_token() {
    let every = |k: u64| T0 + k * 30 * DAY;
    let schedule: [(u64, &str, &[Status]); 7] = [
        (every(0), "adds the next key", &[C, N]),
        (every(1), "makes it current", &[P, C]),
        (every(2), "adds a key while the old one still verifies", &[P, C, N]),
        (every(3), "retires the old key and makes the next current", &[P, C]),
        (every(4), "adds a key", &[P, C, N]),
        (every(5), "retires and promotes", &[P, C]),
        (every(6), "adds a key", &[P, C, N]),
    ];
    assert_eq!(walk(&schedule).await, 4, "a new key signs every 60 days");
}

/// `keytool rotate` with the stack's settings, as `make rotate-keys` runs it.
async fn keytool(s: &Stack, now: u64, extra: &str) -> Result<String, String> {
    let args = format!(
        "rotate --secret-id {PRIVATE} --public-keys-id {PUBLIC} --alg RS256 \
         --keys-refresh {KEYS_REFRESH} --access-ttl {ACCESS_TTL} --refresh-ttl {REFRESH_TTL} {extra}"
    );
    let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    keytool::run(&args, now, &s.client).await
}

#[tokio::test]
async fn keytool_rotates_through_the_four_steps_when_a_step_is_due_and_writes_nothing_otherwise() {
    let s = rs256_stack(T0).await;
    let said = keytool(&s, T0 + 1, "").await.unwrap();
    assert!(said.lines().any(|l| l.starts_with("added ")), "{said}");
    assert_eq!(
        statuses(&s.private()),
        [(Alg::RS256, Status::Current), (Alg::RS256, Status::Next)]
    );
    assert_eq!(s.private().public_jwks().unwrap(), s.public(), "published");
    assert!(s.version_with(PENDING).is_none(), "finished");
    let (private, public, writes) = (
        s.sm.versions(PRIVATE),
        s.sm.versions(PUBLIC),
        s.sm.calls("PutSecretValue"),
    );

    let said = keytool(&s, T0 + PROPAGATION, "").await.unwrap();
    assert!(
        said.contains(&format!("becomes current at {}", T0 + 1 + PROPAGATION)),
        "{said}"
    );
    assert!(said.contains("nothing written"), "{said}");
    assert_eq!(s.sm.versions(PRIVATE), private, "no new version");
    assert_eq!(s.sm.versions(PUBLIC), public);
    assert_eq!(s.sm.calls("PutSecretValue"), writes);
    assert_eq!(s.sm.calls("UpdateSecretVersionStage"), 2, "the first rotation's only");

    let said = keytool(&s, T0 + 1 + PROPAGATION, "").await.unwrap();
    assert!(said.lines().any(|l| l.starts_with("made ")), "{said}");
    assert_eq!(s.sm.versions(PRIVATE).len(), private.len() + 1);
}

#[tokio::test]
async fn keytool_refuses_to_wait_less_than_the_deployed_stack_or_to_rotate_without_the_public_secret() {
    let s = rs256_stack(T0).await;
    let error = keytool(&s, T0, "--propagation 600").await.unwrap_err();
    assert!(error.contains("below the stack's 7500"), "{error}");
    let error = keytool(&s, T0, "--max-token-lifetime 3600").await.unwrap_err();
    assert!(error.contains("below"), "{error}");
    let args: Vec<String> = format!("rotate --secret-id {PRIVATE}")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let error = keytool::run(&args, T0, &s.client).await.unwrap_err();
    assert!(error.contains("--public-keys-id"), "{error}");
    assert_eq!(s.sm.calls("PutSecretValue"), 0);
    assert!(
        keytool(&s, T0, "--propagation 9000").await.is_ok(),
        "a longer wait is fine"
    );
}

#[tokio::test]
async fn keytool_replace_all_publishes_the_one_new_key_in_the_same_four_steps() {
    let s = rs256_stack(T0).await;
    let old = kids(&s.public());
    let said = keytool(&s, T0 + 1, "--replace-all").await.unwrap();
    assert!(said.contains("every outstanding token is now refused"), "{said}");
    let now = kids(&s.public());
    assert_eq!(now.len(), 1);
    assert_ne!(now, old);
    assert_eq!(statuses(&s.private()), [(Alg::RS256, Status::Current)]);
}

#[tokio::test]
async fn keytool_rotate_on_a_file_writes_it_only_when_a_step_is_due() {
    let path = std::env::temp_dir().join(format!("keytool-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, KeySet::generate(Alg::EdDSA, T0).to_json()).unwrap();
    let client = stack(FRESH, EMPTY_JWKS, "RS256").await.client;
    let rotate = |now: u64| {
        let args: Vec<String> = format!("rotate --file {} --propagation 600", path.display())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let client = client.clone();
        async move { keytool::run(&args, now, &client).await.unwrap() }
    };
    let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(T0);
    let modified = || std::fs::metadata(&path).unwrap().modified().unwrap();

    assert!(rotate(T0 + 1).await.starts_with("added "));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let said = rotate(T0 + 600).await;
    assert!(said.contains("becomes current at"), "{said}");
    assert_eq!(modified(), long_ago, "nothing was due: the file is not written");
    assert!(rotate(T0 + 601).await.starts_with("made "));
    assert_ne!(modified(), long_ago);
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn keytool_public_prints_the_jwks_to_publish_and_no_private_key() {
    let s = stack(FRESH, EMPTY_JWKS, "RS256").await;
    s.rotate(T0).await;
    let args: Vec<String> = format!("public --secret-id {PRIVATE}")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let printed = keytool::run(&args, T0, &s.client).await.unwrap();
    assert_eq!(printed, s.public(), "what the rotation published");
    assert_eq!(
        kids(&printed).len(),
        1,
        "the RS256 key; the HS256 secret has no public half"
    );
    assert!(s.private().keys.iter().all(|k| !printed.contains(&k.key)));
}

#[tokio::test]
async fn the_stand_in_keeps_versions_and_labels_as_secrets_manager_does() {
    let s = stack(FRESH, EMPTY_JWKS, "RS256").await;
    let first = s.version_with(CURRENT).unwrap();
    let put = |token: &str, value: &str| {
        s.client
            .put_secret_value()
            .secret_id(PRIVATE)
            .client_request_token(token)
            .secret_string(value)
            .send()
    };
    put("version-2", "two").await.unwrap();
    assert_eq!(s.labels("version-2"), [CURRENT], "AWSCURRENT by default");
    assert_eq!(s.labels(&first), [PREVIOUS], "the one before becomes AWSPREVIOUS");
    put("version-2", "two")
        .await
        .expect("the same token and value again is a no-op");
    assert_eq!(s.sm.versions(PRIVATE).len(), 2);
    let changed = put("version-2", "other").await.unwrap_err();
    assert!(changed.into_service_error().is_resource_exists_exception());

    let get = |version: Option<&str>, stage: Option<&str>| {
        s.client
            .get_secret_value()
            .secret_id(PRIVATE)
            .set_version_id(version.map(str::to_owned))
            .set_version_stage(stage.map(str::to_owned))
            .send()
    };
    assert_eq!(get(None, None).await.unwrap().secret_string(), Some("two"));
    assert_eq!(get(Some(&first), None).await.unwrap().secret_string(), Some(FRESH));
    for (version, stage) in [
        (Some(first.as_str()), Some(CURRENT)),
        (None, Some(PENDING)),
        (Some("nope"), None),
    ] {
        let missing = get(version, stage).await.unwrap_err();
        assert!(missing.into_service_error().is_resource_not_found_exception());
    }
    let unknown = s
        .client
        .get_secret_value()
        .secret_id("no-such-secret")
        .send()
        .await
        .unwrap_err();
    assert!(unknown.into_service_error().is_resource_not_found_exception());

    let stage = |label: &str, to: Option<&str>, from: Option<&str>| {
        s.client
            .update_secret_version_stage()
            .secret_id(PRIVATE)
            .version_stage(label)
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
    };
    for (to, from) in [
        (Some(first.as_str()), None),
        (Some(first.as_str()), Some(first.as_str())),
        (None, Some("version-2")),
    ] {
        let refused = stage(CURRENT, to, from).await.unwrap_err();
        assert!(
            refused.into_service_error().is_invalid_parameter_exception(),
            "{to:?} {from:?}"
        );
    }
    stage(CURRENT, Some(&first), Some("version-2")).await.unwrap();
    assert_eq!(s.labels(&first), [CURRENT]);
    assert_eq!(s.labels("version-2"), [PREVIOUS]);
    let described = s.client.describe_secret().secret_id(PRIVATE).send().await.unwrap();
    assert_eq!(described.version_ids_to_stages().unwrap().len(), 2);
    assert_eq!(described.rotation_enabled(), Some(false));

    // The extension face serves the current version of every secret it holds.
    let url = s.sm.start().await;
    for (id, value) in [(PRIVATE, FRESH), (PUBLIC, EMPTY_JWKS)] {
        let source = shared::secret::SecretSource::new(
            &url,
            "JWT_SECRET_ARN",
            id,
            integration::secretsmanager::SESSION_TOKEN.into(),
        )
        .unwrap();
        assert_eq!(source.read().await.unwrap(), value);
    }
}
