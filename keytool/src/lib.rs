//! Creates and rotates the signing keys (`shared::keyset`), in a file or in
//! the stack's Secrets Manager secrets, where it runs the rotation function's
//! own four steps (`key_rotation`). It never prints key material, except
//! `new`, whose output is the key set to store.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use key_rotation::{KeyRotation, RotationConfig};
use shared::config::TokenSettings;
use shared::keyset::{Alg, KeySet, RotationPolicy, RotationStep, Status, StoredKey};

pub const USAGE: &str = "\
usage:
  keytool new <HS256|RS256|EdDSA>          print a new key set (one current key) to store
  keytool show   <--file PATH | --secret-id ARN>
  keytool public <--file PATH | --secret-id ARN>   print its public keys, the JWKS to publish
  keytool rotate --file PATH [--alg ALG] [--replace-all]
                 [--propagation SECONDS] [--max-token-lifetime SECONDS]
  keytool rotate --secret-id ARN --public-keys-id ARN [--alg ALG] [--replace-all]
                 [--keys-refresh SECONDS] [--access-ttl SECONDS] [--refresh-ttl SECONDS]
                 [--propagation SECONDS] [--max-token-lifetime SECONDS]

rotate does every step that is due, so running it again and again walks whole
rotations without rejecting a valid token: it retires previous keys once every
token they signed has expired (propagation + max token lifetime + 30 s after
they stopped signing), makes the next key current once every cache has had it
for the propagation time, and, with no next key waiting, adds one (of --alg,
else of the current key's algorithm). With --alg RS256 or EdDSA on a set whose
current key is HS256, a key of that algorithm signs at once. When nothing is
due it says what it waits for and writes nothing.

--file: the propagation is the functions' KEYS_REFRESH_SECONDS plus the JWKS
max-age (default 600); the max token lifetime is REFRESH_TOKEN_TTL (default:
that variable, else 2592000).

--secret-id: the rotation function's four steps (createSecret, setSecret,
testSecret, finishSecret) run here: the new set becomes the current version of
the secret and its public keys are published in --public-keys-id. It waits as
the deployed stack does: propagation = --keys-refresh + 7200 (API Gateway's JWT
authorizer caches keys up to two hours), max token lifetime = the longer of
--access-ttl and --refresh-ttl (defaults: KEYS_REFRESH_SECONDS,
ACCESS_TOKEN_TTL, REFRESH_TOKEN_TTL, else 300, 900, 2592000).
--propagation and --max-token-lifetime may raise these, never lower them.

--replace-all makes one new current key at once and drops every other key:
every outstanding token is refused. For a leaked key, or a stack with no users.";

/// Where the key set is kept.
enum Place {
    File(String),
    Secret(String),
}

/// What `rotate` was told.
#[derive(Default)]
struct Options {
    place: Option<Place>,
    public_keys_id: Option<String>,
    alg: Option<Alg>,
    replace_all: bool,
    propagation: Option<u64>,
    max_token_lifetime: Option<u64>,
    keys_refresh: Option<u64>,
    access_ttl: Option<u64>,
    refresh_ttl: Option<u64>,
}

/// A number of seconds from the environment, else `default`.
fn env_seconds(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value = || {
                rest.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
            };
            let seconds = |v: String| {
                v.parse::<u64>()
                    .map_err(|_| format!("{arg}: {v:?} is not a number of seconds"))
            };
            match arg.as_str() {
                "--file" => options.place = Some(Place::File(value()?)),
                "--secret-id" => options.place = Some(Place::Secret(value()?)),
                "--public-keys-id" => options.public_keys_id = Some(value()?),
                "--alg" => options.alg = Some(value()?.parse::<Alg>()?),
                "--replace-all" => options.replace_all = true,
                "--propagation" => options.propagation = Some(seconds(value()?)?),
                "--max-token-lifetime" => options.max_token_lifetime = Some(seconds(value()?)?),
                "--keys-refresh" => options.keys_refresh = Some(seconds(value()?)?),
                "--access-ttl" => options.access_ttl = Some(seconds(value()?)?),
                "--refresh-ttl" => options.refresh_ttl = Some(seconds(value()?)?),
                _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
            }
        }
        Ok(options)
    }

    /// The policy of a key set in a file: what it was told, else the defaults.
    fn file_policy(&self) -> RotationPolicy {
        RotationPolicy {
            propagation: self.propagation.unwrap_or(600),
            max_token_lifetime: self
                .max_token_lifetime
                .unwrap_or_else(|| env_seconds("REFRESH_TOKEN_TTL", 30 * 24 * 3600)),
        }
    }

    /// The rotation function's configuration for the stack's secrets: the
    /// deployed policy, which `--propagation` and `--max-token-lifetime` may
    /// raise but not lower (a new key would sign before every cache has it,
    /// or an old one go while its tokens live).
    fn stack_config(&self) -> Result<RotationConfig, String> {
        let public_keys_id = self.public_keys_id.clone().ok_or_else(|| {
            format!("--secret-id needs --public-keys-id, the secret the public keys are published in\n{USAGE}")
        })?;
        let keys_refresh = self
            .keys_refresh
            .unwrap_or_else(|| env_seconds("KEYS_REFRESH_SECONDS", 300));
        if keys_refresh == 0 {
            return Err(
                "--keys-refresh: 0 means the functions never read the keys again: no rotation reaches them".into(),
            );
        }
        let access = self.access_ttl.unwrap_or_else(|| env_seconds("ACCESS_TOKEN_TTL", 900));
        let refresh = self
            .refresh_ttl
            .unwrap_or_else(|| env_seconds("REFRESH_TOKEN_TTL", 30 * 24 * 3600));
        let mut policy = RotationPolicy::deployed(keys_refresh, access, refresh);
        if let Some(propagation) = self.propagation {
            if propagation < policy.propagation {
                return Err(format!(
                    "--propagation {propagation} is below the stack's {} (--keys-refresh {keys_refresh} + 7200 for \
                     API Gateway's JWT authorizer cache): a new key would sign before every verifier has it",
                    policy.propagation
                ));
            }
            policy.propagation = propagation;
        }
        if let Some(lifetime) = self.max_token_lifetime {
            if lifetime < policy.max_token_lifetime {
                return Err(format!(
                    "--max-token-lifetime {lifetime} is below the stack's longest token lifetime {}: \
                     a key would go while its tokens live",
                    policy.max_token_lifetime
                ));
            }
            policy.max_token_lifetime = lifetime;
        }
        let lifetimes = [("ACCESS_TOKEN_TTL", access), ("REFRESH_TOKEN_TTL", refresh)].map(|(n, v)| (n, v.to_string()));
        let settings = TokenSettings::from_lookup(|name| {
            lifetimes
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        })
        .map_err(|e| e.to_string())?;
        Ok(RotationConfig {
            public_keys_id,
            alg: self.alg,
            policy,
            settings,
        })
    }
}

/// Runs one command at time `now`, with `secrets` for `--secret-id`; returns what to print.
pub async fn run(args: &[String], now: u64, secrets: &Client) -> Result<String, String> {
    let (command, rest) = args.split_first().ok_or(USAGE)?;
    if command == "new" {
        let alg: Alg = rest.first().ok_or(USAGE)?.parse()?;
        return Ok(KeySet::generate(alg, now).to_json());
    }
    if !["show", "public", "rotate"].contains(&command.as_str()) {
        return Err(USAGE.into());
    }
    let options = Options::parse(rest)?;
    let place = options
        .place
        .as_ref()
        .ok_or_else(|| format!("say where the keys are: --file or --secret-id\n{USAGE}"))?;
    let said = match (command.as_str(), place) {
        ("show", _) => Vec::new(),
        ("public", _) => {
            let set = KeySet::parse(read(place, secrets).await?.trim()).map_err(|e| e.to_string())?;
            return set.public_jwks().map_err(|e| e.to_string());
        }
        ("rotate", Place::File(path)) => rotate_file(path, &options, now)?,
        ("rotate", Place::Secret(id)) => rotate_secret(secrets, id, &options, now).await?,
        _ => return Err(USAGE.into()),
    };
    let set = KeySet::parse(read(place, secrets).await?.trim()).map_err(|e| e.to_string())?;
    Ok(said.into_iter().chain(describe(&set)?).collect::<Vec<_>>().join("\n"))
}

/// `rotate --file`: the steps due, written back only if they changed the set.
fn rotate_file(path: &str, options: &Options, now: u64) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let set = KeySet::parse(text.trim()).map_err(|e| e.to_string())?;
    let (new, said) = next_set(set.clone(), options, options.file_policy(), now)?;
    if new != set {
        std::fs::write(path, new.to_json()).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(said)
}

/// `rotate --secret-id`: the rotation function's four steps, in process,
/// when a step is due (or all keys are to be replaced); otherwise what it
/// waits for, and nothing written.
async fn rotate_secret(secrets: &Client, id: &str, options: &Options, now: u64) -> Result<Vec<String>, String> {
    let config = options.stack_config()?;
    let policy = config.policy;
    let current =
        KeySet::parse(read(&Place::Secret(id.to_owned()), secrets).await?.trim()).map_err(|e| e.to_string())?;
    if !options.replace_all && !current.due(options.alg, policy, now).map_err(|e| e.to_string())? {
        let (_, waits) = next_set(current, options, policy, now)?;
        return Ok(waits
            .into_iter()
            .chain(["nothing is due: nothing written".to_owned()])
            .collect());
    }
    let rotation = KeyRotation::new(secrets.clone(), config);
    let said = rotation
        .rotate_in_process(id, now, |set| {
            next_set(set, options, policy, now).map_err(shared::keyset::KeySetError)
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(said)
}

/// The set after `rotate` (the steps due under `policy`, or, with
/// `--replace-all`, one new key), and what was done or is waited for.
fn next_set(
    mut set: KeySet,
    options: &Options,
    policy: RotationPolicy,
    now: u64,
) -> Result<(KeySet, Vec<String>), String> {
    if options.replace_all {
        let alg = options.alg.ok_or("--replace-all needs --alg")?;
        let said = "replaced every key with one new current key: every outstanding token is now refused";
        return Ok((KeySet::generate(alg, now), vec![said.to_owned()]));
    }
    let steps = set.rotate(options.alg, policy, now).map_err(|e| e.to_string())?;
    Ok((set, steps.iter().map(RotationStep::to_string).collect()))
}

/// The key set's text: the file, or the secret's current version.
async fn read(place: &Place, client: &Client) -> Result<String, String> {
    match place {
        Place::File(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}")),
        Place::Secret(id) => client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| format!("cannot read the secret {id}: {}", DisplayErrorContext(&e)))?
            .secret_string()
            .map(str::to_owned)
            .ok_or_else(|| format!("the secret {id} holds no string")),
    }
}

/// One line per key: kid, algorithm, status and since when. No key material.
fn describe(set: &KeySet) -> Result<Vec<String>, String> {
    let loaded = set.load().map_err(|e| e.to_string())?;
    Ok(set
        .keys
        .iter()
        .zip(loaded.iter())
        .map(|(stored, key): (&StoredKey, _)| {
            let status = match stored.status {
                Status::Next => "next",
                Status::Current => "current",
                Status::Previous => "previous",
            };
            format!(
                "  {:<44} {:<6} {:<8} since {}",
                key.kid,
                stored.alg.name(),
                status,
                stored.since
            )
        })
        .collect())
}
