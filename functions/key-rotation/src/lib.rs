//! The rotation of the signing keys as Secrets Manager runs it: the four
//! steps of a rotation function, each safe to run again.
//!
//! - `createSecret`: the private key set (`JwtSecret`, current version) moved
//!   on by every step of `KeySet::rotate` that is due, stored as the pending
//!   version (`AWSPENDING`).
//! - `setSecret`: the public keys of the pending set published as the current
//!   version of the public secret (`JwtPublicKeys`), which the functions that
//!   only verify read.
//! - `testSecret`: the pending set loads, the published keys are exactly its
//!   public keys, and a token signed by the pending set (and one signed by the
//!   set the signers hold now) verifies with the published keys alone.
//! - `finishSecret`: the pending version becomes current (`AWSCURRENT`; the
//!   service moves `AWSPREVIOUS`), and `AWSPENDING` comes off it.
//!
//! `keytool rotate --secret-id` runs the same four steps in process
//! (`KeyRotation::rotate_in_process`). Nothing here logs or returns key
//! material: key ids, version ids and step names only.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde::Deserialize;
use shared::config::{ConfigError, TokenSettings};
use shared::keyset::{Alg, KeySet, KeySetError, RotationPolicy};
use shared::session::SessionGeneration;
use shared::token::{TokenAuthority, TokenVerifier};

/// The label of the version everyone reads.
pub const CURRENT: &str = "AWSCURRENT";
/// The label of the version a rotation is making.
pub const PENDING: &str = "AWSPENDING";

/// The event Secrets Manager invokes the rotation function with (other fields, such as `RotationToken`, are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    /// The id of the version this rotation makes.
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
    #[serde(rename = "Step")]
    pub step: Step,
}

/// One step of a rotation, as Secrets Manager names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Step {
    #[serde(rename = "createSecret")]
    Create,
    #[serde(rename = "setSecret")]
    Set,
    #[serde(rename = "testSecret")]
    Test,
    #[serde(rename = "finishSecret")]
    Finish,
}

impl Step {
    /// The name Secrets Manager gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "createSecret",
            Self::Set => "setSecret",
            Self::Test => "testSecret",
            Self::Finish => "finishSecret",
        }
    }
}

/// Why a step failed: returned to Secrets Manager, which records it and tries again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {message}")]
pub struct RotationError {
    pub step: &'static str,
    pub message: String,
}

impl From<RotationError> for lambda_runtime::Diagnostic {
    fn from(error: RotationError) -> Self {
        Self {
            error_type: "RotationError".into(),
            error_message: error.to_string(),
        }
    }
}

/// What a rotation needs besides the secret, read once per cold start.
#[derive(Debug, Clone)]
pub struct RotationConfig {
    /// The secret the public keys are published in.
    pub public_keys_id: String,
    /// The algorithm of new keys; `None` keeps the current key's.
    pub alg: Option<Alg>,
    /// How long a new key waits before it signs, and an old one before it goes.
    pub policy: RotationPolicy,
    /// Issuer, audience and lifetimes, for the probe token of `testSecret`.
    pub settings: TokenSettings,
}

/// The variables the rotation function cannot do without, and why.
const REQUIRED: [(&str, &str); 5] = [
    (
        "JWT_PUBLIC_KEYS_ARN",
        "set it to the secret the public keys are published in (the stack's JwtPublicKeys)",
    ),
    (
        "SIGNING_ALGORITHM",
        "set it to the algorithm of new keys: RS256, EdDSA or HS256",
    ),
    (
        "KEYS_REFRESH_SECONDS",
        "set it to the functions' key refresh interval: a new key signs only once every function has read it",
    ),
    (
        "ACCESS_TOKEN_TTL",
        "set it to the functions' access token lifetime: an old key verifies until its last token has expired",
    ),
    (
        "REFRESH_TOKEN_TTL",
        "set it to the functions' refresh token lifetime: an old key verifies until its last token has expired",
    ),
];

impl RotationConfig {
    /// Reads `JWT_PUBLIC_KEYS_ARN`, `SIGNING_ALGORITHM`, `KEYS_REFRESH_SECONDS`
    /// (1 to 3600: with 0 the functions would never learn a new key),
    /// `ACCESS_TOKEN_TTL` and `REFRESH_TOKEN_TTL` through `lookup`, every one
    /// required: a guessed lifetime could retire a key while its tokens live.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let lookup = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut values = Vec::with_capacity(REQUIRED.len());
        for (name, why) in REQUIRED {
            values.push(lookup(name).ok_or(ConfigError::Missing(name, why))?);
        }
        let alg = values[1]
            .trim()
            .parse::<Alg>()
            .map_err(|e| ConfigError::Invalid("SIGNING_ALGORITHM", e))?;
        let settings = TokenSettings::from_lookup(lookup)?;
        let keys_refresh = shared::config::seconds(lookup, "KEYS_REFRESH_SECONDS", 0, 1, 3600)?;
        Ok(Self {
            public_keys_id: values[0].trim().to_owned(),
            alg: Some(alg),
            policy: RotationPolicy::deployed(keys_refresh, settings.access_ttl, settings.refresh_ttl),
            settings,
        })
    }

    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// The four steps of a rotation of one key set, against Secrets Manager.
pub struct KeyRotation {
    client: Client,
    config: RotationConfig,
}

/// What a step did, one line each, as logged.
pub type Said = Vec<String>;

impl KeyRotation {
    /// A rotation through `client` with `config`.
    pub fn new(client: Client, config: RotationConfig) -> Self {
        Self { client, config }
    }

    /// The rotation function's answer to one event at `now`, after the checks
    /// AWS's own rotation functions make: rotation is on, the token is a
    /// version of the secret, and it is pending (or already current: then
    /// there is nothing left to do but tidy its labels).
    pub async fn handle(&self, event: Event, now: u64) -> Result<(), RotationError> {
        let Event { secret_id, token, step } = event;
        let result = match self.check_event(&secret_id, &token, step).await {
            Ok(true) => match step {
                Step::Create => self.create_secret(&secret_id, &token, now).await,
                Step::Set => self.set_secret(&secret_id, &token).await,
                Step::Test => self.test_secret(&secret_id, &token, now).await,
                Step::Finish => self.finish_secret(&secret_id, &token).await,
            },
            Ok(false) => Ok(Vec::new()),
            Err(error) => Err(error),
        };
        if let Err(error) = &result {
            tracing::error!(step = step.name(), secret = %secret_id, version = %token, "{}", error.message);
        }
        result.map(drop)
    }

    /// The secret's rotation state and versions, as `step` reads them.
    async fn describe(
        &self,
        secret_id: &str,
        step: Step,
    ) -> Result<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput, RotationError> {
        self.client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| RotationError {
                step: step.name(),
                message: format!("cannot describe {secret_id}: {}", DisplayErrorContext(&e)),
            })
    }

    /// Whether the step should run: an error if the event is not one of a
    /// rotation of this secret in progress; `false` if its version is
    /// already current (a rotation that finished, asked again), except for
    /// `finishSecret`, which then only tidies.
    async fn check_event(&self, secret_id: &str, token: &str, step: Step) -> Result<bool, RotationError> {
        let fail = |message: String| RotationError {
            step: step.name(),
            message,
        };
        let described = self.describe(secret_id, step).await?;
        if described.rotation_enabled() != Some(true) {
            return Err(fail(format!("{secret_id} is not enabled for rotation")));
        }
        let stages = described
            .version_ids_to_stages()
            .and_then(|versions| versions.get(token))
            .ok_or_else(|| fail(format!("version {token} has no stage for rotation of {secret_id}")))?;
        if stages.iter().any(|s| s == CURRENT) {
            self.say(step, secret_id, &[format!("version {token} is already current")]);
            return Ok(step == Step::Finish);
        }
        if !stages.iter().any(|s| s == PENDING) {
            return Err(fail(format!(
                "version {token} of {secret_id} is not pending (AWSPENDING)"
            )));
        }
        Ok(true)
    }

    /// `createSecret`: the current set moved on by every rotation step due
    /// at `now`, stored as version `token` (pending). Secrets Manager needs a
    /// pending version even when nothing is due: it then holds the current set.
    pub async fn create_secret(&self, secret_id: &str, token: &str, now: u64) -> Result<Said, RotationError> {
        let (alg, policy) = (self.config.alg, self.config.policy);
        self.create_secret_with(secret_id, token, |mut set| {
            let steps = set.rotate(alg, policy, now)?;
            Ok((set, steps.iter().map(ToString::to_string).collect()))
        })
        .await
    }

    /// `createSecret` with the new set made by `next` from the current one
    /// (with what it did, one line per change); done already if version
    /// `token` holds a value.
    pub async fn create_secret_with(
        &self,
        secret_id: &str,
        token: &str,
        next: impl FnOnce(KeySet) -> Result<(KeySet, Said), KeySetError>,
    ) -> Result<Said, RotationError> {
        let step = Step::Create;
        let fail = |message: String| RotationError {
            step: step.name(),
            message,
        };
        if self.value(step, secret_id, Some(token), Some(PENDING)).await?.is_some() {
            return Ok(self.say(
                step,
                secret_id,
                &[format!("version {token} already holds the new key set")],
            ));
        }
        let current = self.current(step, secret_id).await?;
        let set = KeySet::parse(current.trim()).map_err(|e| fail(format!("the current key set is unusable: {e}")))?;
        let (new, mut said) = next(set.clone()).map_err(|e| fail(format!("cannot rotate the key set: {e}")))?;
        new.load()
            .map_err(|e| fail(format!("the new key set is unusable: {e}")))?;
        if new == set {
            said.push("nothing was due: the pending version holds the current key set unchanged".into());
        }
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(new.to_json())
            .version_stages(PENDING)
            .send()
            .await
            .map_err(|e| fail(format!("cannot store version {token}: {}", DisplayErrorContext(&e))))?;
        said.push(format!("stored the new key set as version {token} (AWSPENDING)"));
        Ok(self.say(step, secret_id, &said))
    }

    /// `setSecret`: the public keys of version `token` published as the
    /// current value of the public secret, unless it holds exactly them already.
    pub async fn set_secret(&self, secret_id: &str, token: &str) -> Result<Said, RotationError> {
        let step = Step::Set;
        let fail = |message: String| RotationError {
            step: step.name(),
            message,
        };
        let (pending, _) = self.pending(step, secret_id, token).await?;
        let public = pending
            .public_jwks()
            .map_err(|e| fail(format!("the pending key set is unusable: {e}")))?;
        let public_id = &self.config.public_keys_id;
        if self.current(step, public_id).await? == public {
            return Ok(self.say(step, secret_id, &[format!("{public_id} already holds its public keys")]));
        }
        // A fresh version id (the SDK's): the rotation's token could name a
        // version written long ago, which the service would not make current again.
        self.client
            .put_secret_value()
            .secret_id(public_id)
            .secret_string(&public)
            .send()
            .await
            .map_err(|e| fail(format!("cannot publish in {public_id}: {}", DisplayErrorContext(&e))))?;
        let count = count_keys(&public);
        Ok(self.say(
            step,
            secret_id,
            &[format!(
                "published the {count} public key(s) of version {token} in {public_id}"
            )],
        ))
    }

    /// `testSecret`: version `token` loads; the published keys are exactly
    /// its public keys; a token it signs verifies with them (when it signs
    /// with a public-key algorithm), and so does one signed by the current
    /// version, which the signers hold until `finishSecret` (unless the new
    /// set drops that key on purpose, as `keytool rotate --replace-all` does).
    pub async fn test_secret(&self, secret_id: &str, token: &str, now: u64) -> Result<Said, RotationError> {
        let step = Step::Test;
        let fail = |message: String| RotationError {
            step: step.name(),
            message,
        };
        let (pending, pending_text) = self.pending(step, secret_id, token).await?;
        let expected = pending
            .public_jwks()
            .map_err(|e| fail(format!("the pending key set is unusable: {e}")))?;
        let public_id = &self.config.public_keys_id;
        let published = self.current(step, public_id).await?;
        if published != expected {
            return Err(fail(format!(
                "{public_id} does not hold the public keys of version {token}: setSecret has not published them"
            )));
        }
        let mut said = vec![format!("version {token} loads and {public_id} holds its public keys")];
        let current = self.current(step, secret_id).await?;
        let kept = pending
            .load()
            .map_err(|e| fail(format!("the pending key set is unusable: {e}")))?;
        for (text, which) in [(pending_text.as_str(), "the pending"), (current.trim(), "the current")] {
            let signer = TokenAuthority::from_secret(self.config.settings.clone(), text)
                .map_err(|e| fail(format!("{which} key set is unusable: {e}")))?;
            if !kept.iter().any(|k| k.kid == signer.kid()) {
                // Only `keytool rotate --replace-all` drops the key that signs: on purpose.
                said.push(format!(
                    "the key that signs until finishSecret ({}) is not in version {token}: every token it signed \
                     is refused from then on",
                    signer.kid()
                ));
                continue;
            }
            let probe = probe_token(&signer, now);
            signer
                .verify_access(&probe, now)
                .map_err(|e| fail(format!("a token of {which} key set does not verify with that set: {e}")))?;
            if signing_alg(text) == Some(Alg::HS256) {
                continue; // an HMAC key has no public half to publish
            }
            let verifier = TokenVerifier::from_public(self.config.settings.clone(), &published)
                .map_err(|e| fail(format!("{public_id} is unusable: {e}")))?
                .ok_or_else(|| fail(format!("{public_id} holds no key")))?;
            verifier.verify_access(&probe, now).map_err(|e| {
                fail(format!(
                    "a token of {which} key set does not verify with the keys published in {public_id}: {e}"
                ))
            })?;
            said.push(format!(
                "a token signed by {which} key set ({}) verifies with the published keys",
                signer.kid()
            ));
        }
        Ok(self.say(step, secret_id, &said))
    }

    /// `finishSecret`: version `token` made current (the service labels the
    /// one before `AWSPREVIOUS`), then `AWSPENDING` taken off it.
    pub async fn finish_secret(&self, secret_id: &str, token: &str) -> Result<Said, RotationError> {
        let step = Step::Finish;
        let fail = |message: String| RotationError {
            step: step.name(),
            message,
        };
        let described = self.describe(secret_id, step).await?;
        let versions = described.version_ids_to_stages().cloned().unwrap_or_default();
        let has = |version: &str, stage: &str| versions.get(version).is_some_and(|s| s.iter().any(|s| s == stage));
        let current = versions.keys().find(|v| has(v, CURRENT));
        let mut said = Vec::new();
        if current.is_some_and(|c| c == token) {
            said.push(format!("version {token} is already current"));
        } else {
            self.client
                .update_secret_version_stage()
                .secret_id(secret_id)
                .version_stage(CURRENT)
                .move_to_version_id(token)
                .set_remove_from_version_id(current.cloned())
                .send()
                .await
                .map_err(|e| {
                    fail(format!(
                        "cannot make version {token} current: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            said.push(format!("made version {token} current (AWSCURRENT)"));
        }
        if has(token, PENDING) {
            self.client
                .update_secret_version_stage()
                .secret_id(secret_id)
                .version_stage(PENDING)
                .remove_from_version_id(token)
                .send()
                .await
                .map_err(|e| {
                    fail(format!(
                        "cannot take AWSPENDING off version {token}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            said.push(format!("took AWSPENDING off version {token}"));
        }
        Ok(self.say(step, secret_id, &said))
    }

    /// The four steps in one go with a fresh version id, as `keytool`
    /// runs them (no rotation schedule needed): the new set is what `next`
    /// makes of the current one. Says what each step did.
    pub async fn rotate_in_process(
        &self,
        secret_id: &str,
        now: u64,
        next: impl FnOnce(KeySet) -> Result<(KeySet, Said), KeySetError>,
    ) -> Result<Said, RotationError> {
        let token = uuid::Uuid::new_v4().to_string();
        let mut said = self.create_secret_with(secret_id, &token, next).await?;
        said.extend(self.set_secret(secret_id, &token).await?);
        said.extend(self.test_secret(secret_id, &token, now).await?);
        said.extend(self.finish_secret(secret_id, &token).await?);
        Ok(said)
    }

    /// Logs what a step did, one line each; returns the lines.
    fn say(&self, step: Step, secret_id: &str, lines: &[String]) -> Said {
        for line in lines {
            tracing::info!(step = step.name(), secret = %secret_id, "{line}");
        }
        lines.to_vec()
    }

    /// The pending version `token` of the key set, checked, and its text.
    async fn pending(&self, step: Step, secret_id: &str, token: &str) -> Result<(KeySet, String), RotationError> {
        let text = self
            .value(step, secret_id, Some(token), Some(PENDING))
            .await?
            .ok_or_else(|| RotationError {
                step: step.name(),
                message: format!("{secret_id} has no pending version {token}: createSecret has not run"),
            })?;
        let set = KeySet::parse(text.trim())
            .and_then(|set| set.load().map(|_| set))
            .map_err(|e| RotationError {
                step: step.name(),
                message: format!("the pending key set is unusable: {e}"),
            })?;
        Ok((set, text.trim().to_owned()))
    }

    /// The current value of `secret_id`, which every secret has.
    async fn current(&self, step: Step, secret_id: &str) -> Result<String, RotationError> {
        self.value(step, secret_id, None, Some(CURRENT))
            .await?
            .ok_or_else(|| RotationError {
                step: step.name(),
                message: format!("{secret_id} has no current value"),
            })
    }

    /// The value of the version of `secret_id` with id `version_id` and
    /// label `stage` (either may be left out); `None` if there is no such
    /// version or it holds no value yet.
    async fn value(
        &self,
        step: Step,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Option<String>, RotationError> {
        let read = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version_id.map(str::to_owned))
            .set_version_stage(stage.map(str::to_owned))
            .send()
            .await;
        match read {
            Ok(value) => Ok(value.secret_string().map(str::to_owned)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(RotationError {
                step: step.name(),
                message: format!("cannot read {secret_id}: {}", DisplayErrorContext(&e)),
            }),
        }
    }
}

/// The algorithm of the key that signs in a key set's text, if it loads.
fn signing_alg(text: &str) -> Option<Alg> {
    Some(KeySet::parse(text).ok()?.load().ok()?.current().alg)
}

/// An access token of no user, to see that a key set's signatures verify.
fn probe_token(signer: &TokenAuthority, now: u64) -> String {
    let probe = "key-rotation-probe";
    signer.issue_access(
        &SessionGeneration {
            session_id: probe,
            user_id: probe,
            username: probe,
            generation: 0,
            issued_at: now,
            session_expires_at: now.saturating_add(60),
            amr: &[],
        },
        now,
    )
}

/// How many keys a published JWKS holds.
fn count_keys(jwks: &str) -> usize {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_str::<Jwks>(jwks).map_or(0, |j| j.keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::lookup;

    const ALL: [(&str, &str); 5] = [
        ("JWT_PUBLIC_KEYS_ARN", "arn:public"),
        ("SIGNING_ALGORITHM", "RS256"),
        ("KEYS_REFRESH_SECONDS", "300"),
        ("ACCESS_TOKEN_TTL", "900"),
        ("REFRESH_TOKEN_TTL", "2592000"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        ALL.iter().copied().filter(|(n, _)| *n != name).collect()
    }

    #[test]
    fn the_policy_waits_for_the_native_authorizer_cache_and_the_longest_token() {
        let config = RotationConfig::from_lookup(lookup(&ALL)).unwrap();
        assert_eq!(config.public_keys_id, "arn:public");
        assert_eq!(config.alg, Some(Alg::RS256));
        assert_eq!(config.policy.propagation, 300 + 7200);
        assert_eq!(config.policy.max_token_lifetime, 2_592_000);
    }

    #[test]
    fn every_variable_is_required_and_a_missing_one_is_named() {
        for (name, _) in ALL {
            let vars = without(name);
            let error = RotationConfig::from_lookup(lookup(&vars)).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn a_refresh_interval_of_zero_or_a_bad_algorithm_is_a_startup_error() {
        for (name, value) in [
            ("KEYS_REFRESH_SECONDS", "0"),
            ("KEYS_REFRESH_SECONDS", "3601"),
            ("KEYS_REFRESH_SECONDS", "five"),
            ("SIGNING_ALGORITHM", "none"),
            ("ACCESS_TOKEN_TTL", "0"),
        ] {
            let mut vars = without(name);
            vars.push((name, value));
            let error = RotationConfig::from_lookup(lookup(&vars)).unwrap_err().to_string();
            assert!(error.contains(name), "{name}={value}: {error}");
        }
    }

    #[test]
    fn an_event_reads_as_secrets_manager_sends_it_with_fields_it_does_not_know() {
        let event: Event = serde_json::from_str(
            r#"{"SecretId": "arn:s", "ClientRequestToken": "t-1", "Step": "finishSecret", "RotationToken": "x"}"#,
        )
        .unwrap();
        assert_eq!(
            (event.secret_id.as_str(), event.token.as_str(), event.step),
            ("arn:s", "t-1", Step::Finish)
        );
        assert!(
            serde_json::from_str::<Event>(r#"{"SecretId": "s", "ClientRequestToken": "t", "Step": "dropSecret"}"#)
                .is_err()
        );
    }

    #[test]
    fn the_sample_events_are_the_four_steps_of_one_rotation() {
        let steps: Vec<Step> = ["create", "set", "test", "finish"]
            .iter()
            .map(|name| {
                let path = format!("{}/../../events/key-rotation-{name}.json", env!("CARGO_MANIFEST_DIR"));
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                let event: Event = serde_json::from_str(&text).unwrap();
                assert_eq!(event.token, "7d0c5d5e-0b6f-4a43-9d55-3f2f0f8c1a11", "{path}");
                event.step
            })
            .collect();
        assert_eq!(steps, [Step::Create, Step::Set, Step::Test, Step::Finish]);
    }

    #[test]
    fn an_error_reaches_secrets_manager_with_its_step() {
        let diagnostic = lambda_runtime::Diagnostic::from(RotationError {
            step: "setSecret",
            message: "cannot publish".into(),
        });
        assert_eq!(diagnostic.error_type, "RotationError");
        assert_eq!(diagnostic.error_message, "setSecret: cannot publish");
    }
}
