//! The operator's tool: find a user (by username, or by verified email),
//! disable or enable them, list or revoke their sessions, list their events,
//! delete them. It runs over the store traits, so the same code runs on the
//! stack's DynamoDB table (`main`) and on the in-memory store (the tests).
//! It never prints a secret: no password hash, token hash or code is read
//! into its output.

use serde_json::{Value, json};
use shared::audit::{Cursor, DEFAULT_PAGE, MAX_PAGE, Page};
use shared::credentials::{Email, Username, Who};
use shared::service::admin::{self, AdminError};
use shared::session::Session;
use shared::store::{AccountStore, AdminStore, AuditStore, Change, EmailStore, SessionStore, User};

/// What the tool needs of the store: all of it is on the stack's table.
pub trait Store: AccountStore + EmailStore + SessionStore + AuditStore + AdminStore {}
impl<S: AccountStore + EmailStore + SessionStore + AuditStore + AdminStore> Store for S {}

pub const USAGE: &str = "\
usage: admin <command> [--json]

  find <user>                      the account: id, email, status, second factors
  disable <user>                   disable it and revoke every session at once:
                                   the right password then gets 403 account_disabled
  enable <user>                    enable it again
  sessions <user>                  its live sessions, newest first, and how many ended
  revoke-sessions <user>           revoke every live session (each refresh token is refused)
  events <user> [--limit N] [--cursor C]
                                   its events, newest first: N of them (1 to 100,
                                   default 20), from the cursor a previous page gave
  delete <user> --yes              delete the account and everything stored under it
                                   (without --yes it only says what it would delete)
  help                             this text

<user> is a username, or an address with an @: the account that holds it verified.
--json prints one JSON object instead of text. Use -- before a username that
starts with '-'.

It uses the table TABLE_NAME with the operator's AWS credentials (the standard
AWS variables; AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).
Exit status: 0 done, 1 failed (no such user, the store failed), 2 usage error.";

/// Why a command did not run; each kind has its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// A deletion without `--yes` (exit 2): what it would delete.
    Unconfirmed(String),
    /// No account by that username or verified address (exit 1).
    NotFound(String),
    /// The store failed, or refused the change (exit 1).
    Failed(String),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::Unconfirmed(_) => 2,
            Self::NotFound(_) | Self::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(message) => write!(f, "{message}\n\n{USAGE}"),
            Self::Unconfirmed(message) | Self::NotFound(message) | Self::Failed(message) => f.write_str(message),
        }
    }
}

impl From<shared::store::StoreError> for Error {
    fn from(error: shared::store::StoreError) -> Self {
        Self::Failed(error.to_string())
    }
}

fn usage(message: impl Into<String>) -> Error {
    Error::Usage(message.into())
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Help,
    Find(Who),
    Disable(Who),
    Enable(Who),
    Sessions(Who),
    RevokeSessions(Who),
    Events {
        who: Who,
        limit: usize,
        cursor: Option<Cursor>,
    },
    Delete {
        who: Who,
        yes: bool,
    },
}

/// A parsed command line: the command and how to print its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    command: Command,
    json: bool,
}

/// The user a command names: an argument with an @ is an address.
fn who(raw: &str) -> Result<Who, Error> {
    if raw.contains('@') {
        Email::parse(raw)
            .map(Who::Email)
            .map_err(|e| usage(format!("{raw:?}: {e}")))
    } else {
        Username::parse(raw)
            .map(Who::Username)
            .map_err(|e| usage(format!("{raw:?}: {e}")))
    }
}

impl Invocation {
    /// Reads the command line (without the program name).
    pub fn parse(args: &[String]) -> Result<Self, Error> {
        let mut json = false;
        let mut yes = false;
        let mut limit = None;
        let mut cursor = None;
        let mut positional = Vec::new();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value = || {
                rest.next()
                    .cloned()
                    .ok_or_else(|| usage(format!("{arg} needs a value")))
            };
            match arg.as_str() {
                "--json" => json = true,
                "--yes" => yes = true,
                "--limit" => {
                    let raw = value()?;
                    let n = raw
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| usage(format!("--limit {raw:?}: give a number from 1 to {MAX_PAGE}")))?;
                    limit = Some(n);
                }
                "--cursor" => {
                    let raw = value()?;
                    let parsed = Cursor::parse(&raw).map_err(|e| usage(format!("--cursor {raw:?}: {e}")))?;
                    cursor = Some(parsed);
                }
                "-h" | "--help" => positional.insert(0, "help".to_owned()),
                "--" => positional.extend(rest.by_ref().cloned()),
                flag if flag.starts_with('-') && flag.len() > 1 => {
                    return Err(usage(format!("unknown option {flag:?}")));
                }
                _ => positional.push(arg.clone()),
            }
        }
        let (name, operands) = positional.split_first().ok_or_else(|| usage("no command given"))?;
        let user = || match operands {
            [one] => who(one),
            [] => Err(usage(format!("{name} needs a username or an email address"))),
            _ => Err(usage(format!("{name} takes one user, got {}", operands.len()))),
        };
        let command = match name.as_str() {
            "help" => Command::Help,
            "find" => Command::Find(user()?),
            "disable" => Command::Disable(user()?),
            "enable" => Command::Enable(user()?),
            "sessions" => Command::Sessions(user()?),
            "revoke-sessions" => Command::RevokeSessions(user()?),
            "events" => Command::Events {
                who: user()?,
                limit: limit.unwrap_or(DEFAULT_PAGE),
                cursor: cursor.take(),
            },
            "delete" => Command::Delete { who: user()?, yes },
            other => return Err(usage(format!("unknown command {other:?}"))),
        };
        let events = matches!(command, Command::Events { .. });
        if !events && (limit.is_some() || cursor.is_some()) {
            return Err(usage(format!("--limit and --cursor are for events, not {name}")));
        }
        if yes && !matches!(command, Command::Delete { .. }) {
            return Err(usage(format!("--yes is for delete, not {name}")));
        }
        Ok(Self { command, json })
    }

    /// Whether the command reads the store (`help` does not: it needs no
    /// table and no credentials).
    pub fn needs_store(&self) -> bool {
        self.command != Command::Help
    }

    /// Runs the command at `now` on `store`; returns what to print.
    pub async fn run<S: Store>(&self, now: u64, store: &S) -> Result<String, Error> {
        let output = match &self.command {
            Command::Help => return Ok(USAGE.to_owned()),
            Command::Find(who) => find(&user(store, who).await?),
            Command::Disable(who) => disable(store, &user(store, who).await?, now).await?,
            Command::Enable(who) => enable(store, &user(store, who).await?, now).await?,
            Command::Sessions(who) => sessions(store, &user(store, who).await?, now).await?,
            Command::RevokeSessions(who) => revoke_sessions(store, &user(store, who).await?, now).await?,
            Command::Events { who, limit, cursor } => {
                events(store, &user(store, who).await?, cursor.as_ref(), *limit).await?
            }
            Command::Delete { who, yes } => delete(store, &user(store, who).await?, *yes).await?,
        };
        Ok(if self.json {
            output.json.to_string()
        } else {
            output.text
        })
    }
}

/// Parses `args` and runs the command at `now` on `store`; returns what to print.
pub async fn run<S: Store>(args: &[String], now: u64, store: &S) -> Result<String, Error> {
    Invocation::parse(args)?.run(now, store).await
}

/// A command's result, as text for a person and as one JSON object.
struct Output {
    text: String,
    json: Value,
}

/// The account `who` names: by its username, or the one that holds the address verified.
async fn user<S: AccountStore + EmailStore>(store: &S, who: &Who) -> Result<User, Error> {
    let (username, id) = match who {
        Who::Username(username) => (username.clone(), None),
        Who::Email(email) => {
            let Some((id, username)) = store.email_owner(email).await? else {
                return Err(Error::NotFound(format!(
                    "no account holds the address {} verified",
                    email.as_str()
                )));
            };
            let username = Username::parse(&username)
                .map_err(|_| Error::Failed(format!("the claim of {} names no valid username", email.as_str())))?;
            (username, Some(id))
        }
    };
    let holds_the_claim = |user: &User| match who {
        Who::Username(_) => true,
        // As login by email checks it: the claim and the account agree.
        Who::Email(email) => id.as_deref() == Some(&user.id) && user.verified_email() == Some(email.normalized()),
    };
    match store.user(&username).await? {
        Some(user) if holds_the_claim(&user) => Ok(user),
        _ => Err(Error::NotFound(match who {
            Who::Username(username) => format!("no user {}", username.as_str()),
            Who::Email(email) => format!("no account holds the address {} verified", email.as_str()),
        })),
    }
}

/// The user as the tool shows it: everything but the password hash.
fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "email_verified": user.email_verified,
        "created_at": user.created_at,
        "disabled": user.disabled,
        "deleting": user.deleting,
        "mfa": {"totp": user.totp, "passkeys": user.passkeys},
    })
}

/// The fields every result about one user starts with.
fn about(user: &User) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("username".into(), user.username.clone().into());
    map.insert("user_id".into(), user.id.clone().into());
    map
}

fn status(user: &User) -> &'static str {
    if user.deleting {
        "being deleted (an interrupted deletion: `admin delete <user> --yes` finishes it)"
    } else if user.disabled {
        "disabled (`admin enable <user>` enables it)"
    } else {
        "active"
    }
}

fn find(user: &User) -> Output {
    let email = match (&user.email, user.email_verified) {
        (None, _) => "none".to_owned(),
        (Some(e), true) => format!("{e} (verified)"),
        (Some(e), false) => format!("{e} (waiting for its code)"),
    };
    let mut mfa = Vec::new();
    if user.totp {
        mfa.push("TOTP".to_owned());
    }
    if user.passkeys > 0 {
        let s = if user.passkeys == 1 { "" } else { "s" };
        mfa.push(format!("{} passkey{s}", user.passkeys));
    }
    let mfa = if mfa.is_empty() {
        "none".to_owned()
    } else {
        mfa.join(", ")
    };
    let text = format!(
        "{}\n  id       {}\n  created  {}\n  email    {email}\n  status   {}\n  mfa      {mfa}",
        user.username,
        user.id,
        utc(user.created_at),
        status(user),
    );
    Output {
        text,
        json: json!({ "user": user_json(user) }),
    }
}

/// A value a client could set (a user agent, an address) as it may be shown
/// on a terminal: control characters escaped, so none can move the cursor
/// or recolour the operator's screen.
fn shown(raw: &str) -> String {
    raw.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Empty origin fields are unknown (the event carried none).
fn known(raw: &str) -> Option<&str> {
    (!raw.is_empty()).then_some(raw)
}

fn session_json(session: &Session) -> Value {
    json!({
        "id": session.id,
        "created_at": session.created_at,
        "last_used_at": session.issued_at,
        "expires_at": session.expires_at,
        "ip": known(&session.origin.ip),
        "user_agent": known(&session.origin.user_agent),
        "amr": session.amr,
    })
}

/// The user's live sessions, newest first, and how many of theirs have ended
/// (revoked or past their end, until the table's TTL removes them).
async fn sessions<S: SessionStore>(store: &S, user: &User, now: u64) -> Result<Output, Error> {
    // A name registered again after a deletion is another user: the sessions of the former are not these.
    let theirs: Vec<Session> = store
        .sessions(&user.username)
        .await?
        .into_iter()
        .filter(|s| s.user_id == user.id)
        .collect();
    let (mut live, ended): (Vec<Session>, Vec<Session>) = theirs.into_iter().partition(|s| s.is_live(now));
    live.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
    let head = match live.len() {
        0 => format!("no live session of {}", user.username),
        1 => format!("1 live session of {}", user.username),
        n => format!("{n} live sessions of {}, newest first", user.username),
    };
    let mut lines = vec![format!("{head} ({} ended)", ended.len())];
    for s in &live {
        lines.push(format!(
            "  {}  started {}  last used {}  ip {}  amr {}  agent {}",
            s.id,
            utc(s.created_at),
            utc(s.issued_at),
            known(&s.origin.ip).map_or("-".into(), shown),
            s.amr.join("+"),
            known(&s.origin.user_agent).map_or("-".into(), |a| format!("\"{}\"", shown(a))),
        ));
    }
    let mut json = about(user);
    json.insert("sessions".into(), live.iter().map(session_json).collect());
    json.insert("ended".into(), ended.len().into());
    Ok(Output {
        text: lines.join("\n"),
        json: json.into(),
    })
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The error of an admin action on `user`.
fn admin_error(user: &User) -> impl Fn(AdminError) -> Error + '_ {
    |error| match error {
        AdminError::Gone => Error::NotFound(format!(
            "{} (id {}) was deleted, or is being deleted, meanwhile: nothing was changed",
            user.username, user.id
        )),
        AdminError::Store(e) => e.into(),
    }
}

/// An account being deleted is neither disabled nor enabled: the deletion is to be finished.
fn not_deleting(user: &User) -> Result<(), Error> {
    if user.deleting {
        return Err(Error::Failed(format!(
            "{} is being deleted (an interrupted deletion): `admin delete {} --yes` finishes it",
            user.username, user.username
        )));
    }
    Ok(())
}

/// Disables the account and revokes its sessions. Run again on a disabled
/// account it does it again: a run cut off between the mark and the
/// revocation is finished by the next.
async fn disable<S: Store>(store: &S, user: &User, now: u64) -> Result<Output, Error> {
    not_deleting(user)?;
    let revoked = admin::disable(store, user, now).await.map_err(|error| match error {
        AdminError::Store(e) => Error::Failed(format!(
            "{e}\nthe account may be disabled with sessions still live: run `admin disable {}` again",
            user.username
        )),
        gone => admin_error(user)(gone),
    })?;
    let already = if user.disabled {
        " (it was disabled already)"
    } else {
        ""
    };
    let mut json = about(user);
    json.insert("disabled".into(), true.into());
    json.insert("sessions_revoked".into(), revoked.into());
    Ok(Output {
        text: format!(
            "disabled {} (id {}){already}: {} revoked; the right password now gets 403 account_disabled",
            user.username,
            user.id,
            plural(revoked, "session"),
        ),
        json: json.into(),
    })
}

/// Enables the account; one that is not disabled is left as it is (no event).
async fn enable<S: Store>(store: &S, user: &User, now: u64) -> Result<Output, Error> {
    not_deleting(user)?;
    let text = if user.disabled {
        admin::enable(store, user, now).await.map_err(admin_error(user))?;
        format!("enabled {} (id {})", user.username, user.id)
    } else {
        format!("{} (id {}) is not disabled: nothing changed", user.username, user.id)
    };
    let mut json = about(user);
    json.insert("disabled".into(), false.into());
    json.insert("changed".into(), user.disabled.into());
    Ok(Output {
        text,
        json: json.into(),
    })
}

/// Revokes every live session of the account.
async fn revoke_sessions<S: Store>(store: &S, user: &User, now: u64) -> Result<Output, Error> {
    let revoked = admin::revoke_sessions(store, user, now).await?;
    let mut json = about(user);
    json.insert("sessions_revoked".into(), revoked.into());
    Ok(Output {
        text: format!("revoked {} of {}", plural(revoked, "live session"), user.username),
        json: json.into(),
    })
}

/// A page of the account's events, newest first, and the cursor of the next.
async fn events<S: Store>(store: &S, user: &User, cursor: Option<&Cursor>, limit: usize) -> Result<Output, Error> {
    let Page { events, next } = store.events(&user.username, cursor, limit).await?;
    let mut lines = vec![match (events.len(), cursor) {
        (0, None) => format!("no events of {}", user.username),
        (0, Some(_)) => format!("no more events of {}", user.username),
        (n, _) => format!("{} of {}, newest first", plural(n, "event"), user.username),
    }];
    let or_dash = |v: &Option<String>| v.as_deref().map_or("-".into(), shown);
    for e in &events {
        lines.push(format!(
            "  {}  {:<22}  ip {}  session {}  agent {}",
            utc(e.at),
            e.kind.as_str(),
            or_dash(&e.ip),
            or_dash(&e.session_id),
            e.user_agent
                .as_deref()
                .map_or("-".into(), |a| format!("\"{}\"", shown(a))),
        ));
    }
    if let Some(next) = &next {
        // Options first: a name may start with '-'.
        lines.push(format!(
            "more: admin events --limit {limit} --cursor {next} -- {}",
            user.username
        ));
    }
    let mut json = about(user);
    let events: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).expect("an event serializes"))
        .collect();
    json.insert("events".into(), events.into());
    json.insert("next_cursor".into(), next.map(|c| c.to_string()).into());
    Ok(Output {
        text: lines.join("\n"),
        json: json.into(),
    })
}

/// Deletes the account with `yes`; without it, refuses and says what it would delete.
async fn delete<S: AccountStore>(store: &S, user: &User, yes: bool) -> Result<Output, Error> {
    if !yes {
        return Err(Error::Unconfirmed(format!(
            "delete is permanent: it would delete {} (id {}) and everything stored under the name; \
             run it again with --yes",
            user.username, user.id
        )));
    }
    match store.delete_user(user).await? {
        Change::Done => {}
        Change::Conflict => {
            return Err(Error::Failed(format!(
                "{} changed while it was being deleted (or is gone): nothing was deleted; run it again",
                user.username
            )));
        }
    }
    let mut json = about(user);
    json.insert("deleted".into(), true.into());
    Ok(Output {
        text: format!("deleted {} (id {})", user.username, user.id),
        json: json.into(),
    })
}

/// `secs` (Unix time) as a UTC date and time, `2025-06-01 12:00:00 UTC`.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::audit::{Event, Kind};
    use shared::session::Origin;
    use shared::store::UserStore;
    use shared::store::memory::MemoryStore;
    use shared::testing::{user, verify_address};

    const NOW: u64 = 1_800_000_000;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    async fn admin(store: &MemoryStore, line: &str) -> Result<String, Error> {
        run(&args(line), NOW, store).await
    }

    /// alice (with a password hash that must never show) in a store.
    async fn store_with_alice() -> (MemoryStore, User) {
        let store = MemoryStore::default();
        let alice = User {
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$secret-hash-never-shown".into(),
            created_at: NOW - 86_400,
            ..user("u-1", "Alice")
        };
        store.create_user(&alice).await.unwrap();
        (store, alice)
    }

    fn session(user: &User, id: &str, created_at: u64) -> Session {
        Session {
            id: id.into(),
            user_id: user.id.clone(),
            username: user.username.clone(),
            generation: 3,
            token_hash: "token-hash-never-shown".into(),
            created_at,
            issued_at: created_at + 60,
            expires_at: NOW + 3600,
            revoked: false,
            amr: vec!["pwd".into()],
            origin: Origin {
                ip: "203.0.113.10".into(),
                user_agent: "curl/8.5.0".into(),
            },
        }
    }

    fn no_secret_in(out: &str) {
        for secret in [
            "secret-hash-never-shown",
            "argon2",
            "token-hash-never-shown",
            "password",
        ] {
            assert!(!out.contains(secret), "{secret:?} in {out}");
        }
    }

    #[tokio::test]
    async fn find_shows_the_account_by_username_in_any_case_without_its_password_hash() {
        let (store, alice) = store_with_alice().await;
        let out = admin(&store, "find alice").await.unwrap();
        assert!(out.starts_with("Alice\n"), "{out}");
        assert!(
            out.contains(&alice.id) && out.contains("active") && out.contains("2027-01-14"),
            "{out}"
        );
        no_secret_in(&out);
        let json: Value = serde_json::from_str(&admin(&store, "find ALICE --json").await.unwrap()).unwrap();
        assert_eq!(json["user"]["id"], "u-1");
        assert_eq!(json["user"]["username"], "Alice");
        assert_eq!(json["user"]["mfa"], json!({"totp": false, "passkeys": 0}));
        no_secret_in(&json.to_string());
    }

    #[tokio::test]
    async fn find_by_address_finds_the_account_that_holds_it_verified_and_no_other() {
        let (store, alice) = store_with_alice().await;
        verify_address(&store, &alice, "Alice@Example.com").await;
        let bob = user("u-2", "bob");
        store.create_user(&bob).await.unwrap();
        let unverified = shared::store::EmailCode {
            email: "bob@example.com".into(),
            code_hash: "h".into(),
            attempts: 0,
            expires_at: u64::MAX,
        };
        store.put_email_code(&bob, &unverified).await.unwrap();
        assert_eq!(
            store.user_now("bob").email.as_deref(),
            Some("bob@example.com"),
            "waiting for its code"
        );
        let out = admin(&store, "find alice@example.COM --json").await.unwrap();
        let json: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (
                json["user"]["username"].as_str(),
                json["user"]["email_verified"].as_bool()
            ),
            (Some("Alice"), Some(true))
        );
        let unknown = admin(&store, "find bob@example.com").await.unwrap_err();
        assert_eq!(unknown.exit_code(), 1);
        assert_eq!(
            unknown.to_string(),
            "no account holds the address bob@example.com verified"
        );
    }

    #[tokio::test]
    async fn an_unknown_user_is_a_clear_error_with_exit_status_1_for_every_command() {
        let store = MemoryStore::default();
        for line in [
            "find nobody",
            "disable nobody",
            "enable nobody",
            "sessions nobody",
            "revoke-sessions nobody",
            "events nobody",
            "delete nobody --yes",
            "delete nobody",
        ] {
            let error = admin(&store, line).await.unwrap_err();
            assert_eq!(error, Error::NotFound("no user nobody".into()), "{line}");
            assert_eq!(error.exit_code(), 1);
        }
    }

    #[tokio::test]
    async fn a_wrong_command_line_is_a_usage_error_with_exit_status_2_before_any_store_call() {
        let store = MemoryStore::unreachable();
        for line in [
            "",
            "frobnicate alice",
            "find",
            "find alice bob",
            "find al",
            "find not@an@address",
            "find alice --verbose",
            "find alice --yes",
            "sessions alice --limit 5",
            "events alice --limit 0",
            "events alice --limit 101",
            "events alice --limit many",
            "events alice --cursor",
            "events alice --cursor not-a-cursor",
        ] {
            let error = admin(&store, line).await.unwrap_err();
            assert!(matches!(error, Error::Usage(_)), "{line}: {error:?}");
            assert_eq!(error.exit_code(), 2, "{line}");
            assert!(error.to_string().contains("usage: admin"), "{line}");
        }
        assert_eq!(store.calls(), 0);
    }

    #[tokio::test]
    async fn help_prints_the_usage_and_needs_no_store() {
        let store = MemoryStore::unreachable();
        for line in ["help", "--help", "find alice -h"] {
            assert!(!Invocation::parse(&args(line)).unwrap().needs_store(), "{line}");
            assert_eq!(admin(&store, line).await.unwrap(), USAGE);
        }
    }

    #[test]
    fn options_go_anywhere_and_a_name_that_starts_with_a_dash_follows_two_dashes() {
        let cursor = Event::by_admin(Kind::Logout, NOW).position();
        let line = format!("--json events --cursor {cursor} bob --limit 5");
        let parsed = Invocation::parse(&args(&line)).unwrap();
        assert!(parsed.json);
        assert_eq!(
            parsed.command,
            Command::Events {
                who: Who::Username(Username::parse("bob").unwrap()),
                limit: 5,
                cursor: Some(cursor)
            }
        );
        let dashed = Invocation::parse(&args("find -- -bob-")).unwrap();
        assert_eq!(
            dashed.command,
            Command::Find(Who::Username(Username::parse("-bob-").unwrap()))
        );
        let default = Invocation::parse(&args("events bob")).unwrap();
        assert!(matches!(
            default.command,
            Command::Events {
                limit: DEFAULT_PAGE,
                cursor: None,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn sessions_lists_the_live_ones_newest_first_and_counts_the_ended() {
        let (store, alice) = store_with_alice().await;
        let old = session(&alice, "s-old", NOW - 500);
        let new = Session {
            origin: Origin::default(),
            ..session(&alice, "s-new", NOW - 100)
        };
        let revoked = Session {
            revoked: true,
            ..session(&alice, "s-revoked", NOW - 50)
        };
        let expired = Session {
            expires_at: NOW,
            ..session(&alice, "s-expired", NOW - 50)
        };
        let previous_owner = session(&user("u-0", "alice"), "s-previous", NOW - 10);
        let bobs = session(&user("u-2", "bob"), "s-bob", NOW - 10);
        for s in [&old, &new, &revoked, &expired, &previous_owner, &bobs] {
            store.create_session(s, None).await.unwrap();
        }
        let out = admin(&store, "sessions alice").await.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "2 live sessions of Alice, newest first (2 ended)");
        assert!(
            lines[1].contains("s-new") && lines[1].contains("ip -") && lines[1].contains("agent -"),
            "{out}"
        );
        assert!(
            lines[2].contains("s-old") && lines[2].contains("203.0.113.10") && lines[2].contains("\"curl/8.5.0\""),
            "{out}"
        );
        assert_eq!(lines.len(), 3, "{out}");
        no_secret_in(&out);
        let json: Value = serde_json::from_str(&admin(&store, "sessions alice --json").await.unwrap()).unwrap();
        assert_eq!(json["username"], "Alice");
        assert_eq!(json["ended"], 2);
        let ids: Vec<&str> = json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["s-new", "s-old"]);
        assert_eq!(json["sessions"][0]["ip"], Value::Null);
        assert_eq!(json["sessions"][1]["last_used_at"], NOW - 440);
        no_secret_in(&json.to_string());
    }

    #[tokio::test]
    async fn a_user_without_sessions_is_told_so() {
        let (store, _) = store_with_alice().await;
        assert_eq!(
            admin(&store, "sessions alice").await.unwrap(),
            "no live session of Alice (0 ended)"
        );
    }

    #[tokio::test]
    async fn a_user_agent_cannot_send_escape_sequences_to_the_operators_terminal() {
        let (store, alice) = store_with_alice().await;
        let mut evil = session(&alice, "s-1", NOW - 10);
        evil.origin.user_agent = "x\u{1b}[2J\u{1b}]0;pwned\u{7}\r\ny".into();
        store.create_session(&evil, None).await.unwrap();
        let out = admin(&store, "sessions alice").await.unwrap();
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(out.contains(r#""x\u{1b}[2J\u{1b}]0;pwned\u{7}\r\ny""#), "{out}");
        assert_eq!(out.lines().count(), 2);
    }

    #[tokio::test]
    async fn delete_without_yes_says_what_it_would_delete_and_deletes_nothing() {
        let (store, alice) = store_with_alice().await;
        let error = admin(&store, "delete alice").await.unwrap_err();
        assert!(matches!(error, Error::Unconfirmed(_)));
        assert_eq!(error.exit_code(), 2);
        assert!(
            error.to_string().contains("Alice (id u-1)") && error.to_string().contains("--yes"),
            "{error}"
        );
        assert_eq!(store.user_now("alice"), alice);
    }

    #[tokio::test]
    async fn delete_with_yes_deletes_the_account_its_sessions_and_its_address_claim() {
        let (store, alice) = store_with_alice().await;
        verify_address(&store, &alice, "alice@example.com").await;
        let s = session(&alice, "s-1", NOW - 10);
        store.create_session(&s, None).await.unwrap();
        let json: Value =
            serde_json::from_str(&admin(&store, "delete alice@example.com --yes --json").await.unwrap()).unwrap();
        assert_eq!(json, json!({"username": "Alice", "user_id": "u-1", "deleted": true}));
        assert!(store.session_now(&s.key()).is_none());
        assert_eq!(admin(&store, "find alice").await.unwrap_err().exit_code(), 1);
        assert_eq!(
            admin(&store, "find alice@example.com").await.unwrap_err().exit_code(),
            1
        );
        let again = admin(&store, "delete alice --yes").await.unwrap_err();
        assert_eq!(again, Error::NotFound("no user alice".into()));
    }

    #[tokio::test]
    async fn an_unreachable_store_is_an_error_with_exit_status_1() {
        let store = MemoryStore::unreachable();
        let error = admin(&store, "find alice").await.unwrap_err();
        assert!(matches!(error, Error::Failed(_)));
        assert_eq!(error.exit_code(), 1);
        assert!(error.to_string().contains("store"), "{error}");
    }

    #[test]
    fn times_are_shown_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_800_000_000), "2027-01-15 08:00:00 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }
    fn kinds(page: &Page) -> Vec<&'static str> {
        page.events.iter().map(|e| e.kind.as_str()).collect()
    }

    async fn alice_with_sessions(n: usize) -> (MemoryStore, User, Vec<Session>) {
        let (store, alice) = store_with_alice().await;
        let mut sessions = Vec::new();
        for i in 0..n {
            let s = session(&alice, &format!("s-{i}"), NOW - 100 + i as u64);
            store.create_session(&s, Some(&alice)).await.unwrap();
            sessions.push(s);
        }
        (store, alice, sessions)
    }

    #[tokio::test]
    async fn disable_marks_the_user_revokes_every_session_and_records_it_as_the_admins() {
        let (store, _, sessions) = alice_with_sessions(2).await;
        let out = admin(&store, "disable alice").await.unwrap();
        assert_eq!(
            out,
            "disabled Alice (id u-1): 2 sessions revoked; the right password now gets 403 account_disabled"
        );
        assert!(store.user_now("alice").disabled);
        assert!(sessions.iter().all(|s| store.session_now(&s.key()).unwrap().revoked));
        let page = store.events("alice", None, 10).await.unwrap();
        assert_eq!(kinds(&page), ["account_disabled"]);
        assert_eq!(
            (page.events[0].ip.as_deref(), page.events[0].user_agent.as_deref()),
            (None, Some("admin"))
        );
        assert!(admin(&store, "find alice").await.unwrap().contains("status   disabled"));
        let again: Value = serde_json::from_str(&admin(&store, "disable alice --json").await.unwrap()).unwrap();
        assert_eq!(
            again,
            json!({"username": "Alice", "user_id": "u-1", "disabled": true, "sessions_revoked": 0})
        );
    }

    #[tokio::test]
    async fn enable_clears_the_mark_and_an_enabled_user_is_left_alone() {
        let (store, _, _) = alice_with_sessions(1).await;
        let untouched = admin(&store, "enable alice").await.unwrap();
        assert_eq!(untouched, "Alice (id u-1) is not disabled: nothing changed");
        assert_eq!(
            kinds(&store.events("alice", None, 10).await.unwrap()),
            Vec::<&str>::new()
        );
        admin(&store, "disable alice").await.unwrap();
        let json: Value = serde_json::from_str(&admin(&store, "enable alice --json").await.unwrap()).unwrap();
        assert_eq!(
            json,
            json!({"username": "Alice", "user_id": "u-1", "disabled": false, "changed": true})
        );
        assert!(!store.user_now("alice").disabled);
        let page = store.events("alice", None, 10).await.unwrap();
        assert_eq!(kinds(&page), ["account_enabled", "account_disabled"]);
    }

    #[tokio::test]
    async fn an_account_being_deleted_is_neither_disabled_nor_enabled() {
        let (store, _) = store_with_alice().await;
        store.mark_deleting("alice");
        for line in ["disable alice", "enable alice"] {
            let error = admin(&store, line).await.unwrap_err();
            assert_eq!(error.exit_code(), 1);
            assert!(error.to_string().contains("delete Alice --yes"), "{error}");
        }
        assert!(!store.user_now("alice").disabled);
        assert!(admin(&store, "find alice").await.unwrap().contains("being deleted"));
        admin(&store, "delete alice --yes").await.unwrap();
        assert_eq!(admin(&store, "find alice").await.unwrap_err().exit_code(), 1);
    }

    #[tokio::test]
    async fn revoke_sessions_ends_the_live_ones_and_leaves_the_account_enabled() {
        let (store, _, sessions) = alice_with_sessions(3).await;
        assert_eq!(
            admin(&store, "revoke-sessions alice").await.unwrap(),
            "revoked 3 live sessions of Alice"
        );
        assert!(sessions.iter().all(|s| store.session_now(&s.key()).unwrap().revoked));
        assert!(!store.user_now("alice").disabled);
        let json: Value = serde_json::from_str(&admin(&store, "revoke-sessions alice --json").await.unwrap()).unwrap();
        assert_eq!(
            json,
            json!({"username": "Alice", "user_id": "u-1", "sessions_revoked": 0})
        );
        assert_eq!(
            kinds(&store.events("alice", None, 10).await.unwrap()),
            ["session_revoked", "session_revoked"]
        );
        assert_eq!(
            admin(&store, "sessions alice").await.unwrap(),
            "no live session of Alice (3 ended)"
        );
    }

    #[tokio::test]
    async fn events_come_newest_first_a_page_at_a_time_with_the_cursor_of_the_next() {
        let (store, alice) = store_with_alice().await;
        let kinds_in_order = [Kind::LoginFailed, Kind::LoginSucceeded, Kind::PasswordChanged];
        for (i, kind) in kinds_in_order.into_iter().enumerate() {
            let event = Event::by_admin(kind, NOW - 10 + i as u64).in_session("s-1");
            store.record_event(&alice.username, &alice.id, &event).await.unwrap();
        }
        let first: Value =
            serde_json::from_str(&admin(&store, "events alice --limit 2 --json").await.unwrap()).unwrap();
        let types: Vec<&str> = first["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["password_changed", "login_succeeded"]);
        assert_eq!(
            first["events"][0],
            json!({"type": "password_changed", "at": NOW - 8, "ip": null, "user_agent": "admin", "session_id": "s-1"})
        );
        let cursor = first["next_cursor"].as_str().expect("a next page");
        let text = admin(&store, "events alice --limit 2").await.unwrap();
        assert!(text.starts_with("2 events of Alice, newest first\n"), "{text}");
        assert!(
            text.contains("password_changed") && text.contains("session s-1"),
            "{text}"
        );
        assert!(
            text.ends_with(&format!("more: admin events --limit 2 --cursor {cursor} -- Alice")),
            "{text}"
        );
        let line = format!("events alice --limit 2 --cursor {cursor} --json");
        let last: Value = serde_json::from_str(&admin(&store, &line).await.unwrap()).unwrap();
        assert_eq!(last["events"].as_array().unwrap().len(), 1);
        assert_eq!(last["events"][0]["type"], "login_failed");
        assert_eq!(last["next_cursor"], Value::Null);
        let fresh = MemoryStore::default();
        fresh.create_user(&alice).await.unwrap();
        assert_eq!(admin(&fresh, "events alice").await.unwrap(), "no events of Alice");
    }
}
