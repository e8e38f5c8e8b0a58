//! Creates and rotates the signing keys (`shared::keyset`), in a file or in a
//! Secrets Manager secret. It never prints key material, except `new`, whose
//! output is the key set to store.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use shared::keyset::{Alg, KeySet, RotationPolicy, Status, StoredKey};

pub const USAGE: &str = "\
usage:
  keytool new <HS256|RS256|EdDSA>          print a new key set (one current key) to store
  keytool show   <--file PATH | --secret-id ARN>
  keytool rotate <--file PATH | --secret-id ARN> [--alg ALG] [--replace-all]
                 [--propagation SECONDS] [--max-token-lifetime SECONDS]

rotate does whichever step is due, so running it again and again walks a whole
rotation without rejecting a valid token: it retires previous keys once every
token they signed has expired (propagation + max token lifetime + 30 s after
they stopped signing), makes the next key current once every cache has it
(propagation after it was added), or, with no next key waiting, adds one (of
--alg, else of the current key's algorithm). --propagation is the functions'
KEYS_REFRESH_SECONDS plus the JWKS max-age (default 600); --max-token-lifetime
is REFRESH_TOKEN_TTL (default: that variable, else 2592000).
--replace-all makes one new key current at once and drops every other key:
every outstanding token is refused. For a leaked key, or a stack with no users.";

/// Where the key set is kept.
enum Place {
    File(String),
    Secret(String),
}

impl Place {
    async fn read(&self, client: &Client) -> Result<String, String> {
        match self {
            Self::File(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}")),
            Self::Secret(id) => client
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

    async fn write(&self, client: &Client, set: &KeySet) -> Result<(), String> {
        match self {
            Self::File(path) => std::fs::write(path, set.to_json()).map_err(|e| format!("cannot write {path}: {e}")),
            Self::Secret(id) => client
                .put_secret_value()
                .secret_id(id)
                .secret_string(set.to_json())
                .send()
                .await
                .map(drop)
                .map_err(|e| format!("cannot write the secret {id}: {}", DisplayErrorContext(&e))),
        }
    }
}

/// Runs one command at time `now`, with `secrets` for `--secret-id`; returns what to print.
pub async fn run(args: &[String], now: u64, secrets: &Client) -> Result<String, String> {
    let mut place = None;
    let mut alg = None;
    let mut replace_all = false;
    let mut policy = RotationPolicy {
        propagation: 600,
        max_token_lifetime: std::env::var("REFRESH_TOKEN_TTL")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30 * 24 * 3600),
    };
    let (command, mut rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest.iter()),
        None => return Err(USAGE.into()),
    };
    if command == "new" {
        let alg: Alg = rest.next().ok_or(USAGE)?.parse()?;
        return Ok(KeySet::generate(alg, now).to_json());
    }
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
            "--file" => place = Some(Place::File(value()?)),
            "--secret-id" => place = Some(Place::Secret(value()?)),
            "--alg" => alg = Some(value()?.parse::<Alg>()?),
            "--replace-all" => replace_all = true,
            "--propagation" => policy.propagation = seconds(value()?)?,
            "--max-token-lifetime" => policy.max_token_lifetime = seconds(value()?)?,
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    let place = place.ok_or_else(|| format!("say where the keys are: --file or --secret-id\n{USAGE}"))?;
    let mut set = KeySet::parse(place.read(secrets).await?.trim()).map_err(|e| e.to_string())?;
    let said = match command {
        "show" => vec![],
        "rotate" if replace_all => {
            let alg = alg.ok_or("--replace-all needs --alg")?;
            set = KeySet::generate(alg, now);
            vec!["replaced every key with one new current key: every outstanding token is now refused".to_owned()]
        }
        "rotate" => set
            .rotate(alg, policy, now)
            .map_err(|e| e.to_string())?
            .iter()
            .map(ToString::to_string)
            .collect(),
        _ => return Err(USAGE.into()),
    };
    if command == "rotate" {
        place.write(secrets, &set).await?;
    }
    Ok(said.into_iter().chain(describe(&set)?).collect::<Vec<_>>().join("\n"))
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
