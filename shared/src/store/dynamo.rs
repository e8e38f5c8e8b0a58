//! The DynamoDB adapter: one table, single-table design.
//!
//! | item        | pk                 | sk        | attributes                                              |
//! |-------------|--------------------|-----------|---------------------------------------------------------|
//! | user        | `USER#<lowercase>` | `PROFILE` | id, username, password_hash, created_at, email, email_verified, totp, passkeys (a count), deleting (only while a deletion is interrupted), disabled (only while the operator has disabled it) |
//! | email code  | `USER#<lowercase>` | `EMAIL_CODE` | email, code_hash, attempts, expires_at, ttl             |
//! | mail count  | `USER#<lowercase>` or `MAILS#<mailbox>` (`Email::mailbox`) | `MAILS#<hour>` | sent, ttl |
//! | email claim | `EMAIL#<lowercase address>` | `EMAIL` | user_id, username (only for a verified address)     |
//! | reset token | `RESET#<token hash>` | `RESET` | username, user_id, password_fingerprint, expires_at, ttl  |
//! | lockout     | `USER#<lowercase>` | `LOCKOUT` | failures, last_failure_at, ttl                          |
//! | TOTP factor | `USER#<lowercase>` | `MFA#TOTP` | secret, active, created_at, last_step, recovery (string set of digests), attempt, attempt_tries, ttl (while pending) |
//! | session     | `USER#<lowercase>` | `SESSION#<id>` | user_id, username, generation, token_hash, created_at, issued_at, expires_at, revoked, amr, ip, user_agent, ttl |
//! | event       | `USER#<lowercase>` | `EVENT#<at, 10 digits>#<UUID v7>` | type, at, ip, user_agent, session_id, user_id, ttl (`AUDIT_RETENTION_DAYS`) |
//! | address count | `IP#<address, or IPv6 /64>` | `FAILURES#`, `FORGOT#` or `REGISTER#<window start>` | count, ttl (two windows) |
//! | passkey     | `USER#<lowercase>` | `WEBAUTHN#<id>` | user_id, username, name, created_at, last_used_at, credential (after `PROFILE`: login's query never reads them) |
//! | credential claim | `CREDENTIAL#<id>` | `CREDENTIAL` | user_id, username (`id`: base64url SHA-256 of the credential id) |
//! | challenge   | `CHALLENGE#<id>`   | `CHALLENGE` | ceremony (`registration` or `login`), user_id (registration), state, expires_at, ttl |
//!
//! Everything that names a user lives in the user's partition, so one query
//! finds it all (account deletion), but for what must be found by something
//! else: the email and credential claims (login by email or passkey; deleted
//! with the user), WebAuthn challenges (nobody's yet at a login) and reset
//! tokens (found by their hash; void once the user is gone). `ttl` (epoch seconds) is the table's TTL
//! attribute; the code never relies on it and checks expiry itself.

use super::{
    AccountStore, AdminStore, AuditStore, Ceremony, Challenge, Change, CreateUserError, EmailCode, EmailStore,
    LoginRecord, MfaStore, NewPasskey, PasskeyStore, Proof, ResetToken, Rotation, SessionStore, StoreError,
    StoredPasskey, ThrottleStore, TotpFactor, User, UserStore, Verification,
};
use crate::credentials::{Email, Username};
use crate::lockout::FailedLogins;
use crate::mail::{MAILS_PER_HOUR, MAX_CODE_ATTEMPTS};
use crate::session::{Session, SessionKey};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement, KeyType, Put,
    ReturnValue, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

const PK: &str = "pk";
const SK: &str = "sk";
/// Most items DynamoDB takes in one transaction.
const TRANSACTION_ITEMS: usize = 100;
/// The table's TTL attribute.
pub const TTL: &str = "ttl";

/// The store on one DynamoDB table.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long audit events are kept, seconds.
    retention: u64,
    /// Whether events are stored at all: only `make bench` turns them off,
    /// to measure what they cost a login.
    events: bool,
    /// What each source address may do in a window.
    ip_limits: crate::throttle::IpLimits,
}

/// A DynamoDB client from the standard AWS environment (`AWS_ENDPOINT_URL_DYNAMODB` included).
pub async fn client_from_env() -> Client {
    Client::new(&crate::aws::config_from_env().await)
}

/// A client for DynamoDB Local (or anything at `endpoint`).
pub async fn local_client(endpoint: &str) -> Client {
    Client::new(&crate::aws::local_config(endpoint).await)
}

impl DynamoStore {
    /// The store on `table`, through `client` (built once per cold start).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention: crate::audit::DEFAULT_RETENTION,
            events: true,
            ip_limits: crate::throttle::IpLimits::default(),
        }
    }

    /// The same store, holding source addresses to `limits`.
    pub fn with_ip_limits(self, ip_limits: crate::throttle::IpLimits) -> Self {
        Self { ip_limits, ..self }
    }

    /// The same store, storing no audit event: for the benchmark that
    /// compares a login with and without them, never for a function.
    pub fn without_events(self) -> Self {
        Self { events: false, ..self }
    }

    /// The same store, keeping audit events `retention` seconds.
    pub fn with_retention(self, retention: u64) -> Self {
        Self { retention, ..self }
    }

    /// The table this store uses.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Creates the table with its key schema and TTL, if it does not exist yet.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("key schema fields are set")
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute fields are set")
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .attribute_definitions(attr(PK))
        .attribute_definitions(attr(SK))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(failed("CreateTable", e)),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build()
                .expect("TTL fields are set"),
        )
        .send()
        .await
        .map(|_| ())
        .or_else(|e| {
            // Enabling TTL twice is an error DynamoDB reports; the table is as wanted.
            let msg = DisplayErrorContext(&e).to_string();
            if msg.contains("already enabled") {
                Ok(())
            } else {
                Err(failed("UpdateTimeToLive", e))
            }
        })
}

/// A failed call, with what to do about it first when the cause is a setup mistake.
fn failed<E: std::error::Error + ProvideErrorMetadata + 'static, R: std::fmt::Debug>(
    operation: &'static str,
    e: SdkError<E, R>,
) -> StoreError {
    let hint = match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            "DynamoDB is unreachable: locally, is DynamoDB Local running (`make dev` starts it)? "
        }
        _ if e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ResourceNotFoundException") => {
            "the table does not exist: check TABLE_NAME (locally, `make dev` creates it). "
        }
        _ => "",
    };
    StoreError {
        operation,
        detail: format!("{hint}{}", DisplayErrorContext(&e)),
    }
}

fn corrupt(operation: &'static str, what: &str) -> StoreError {
    StoreError {
        operation,
        detail: format!("item is missing or has a malformed {what}"),
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn user_pk(username: &Username) -> AttributeValue {
    s(format!("USER#{}", username.normalized()))
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.into(), s(pk)), (SK.into(), s(sk))])
}

/// The claim of a verified address (normalized).
fn claim_key(email: &str) -> Item {
    key(format!("EMAIL#{email}"), "EMAIL")
}

fn reset_key(token_hash: &str) -> Item {
    key(format!("RESET#{token_hash}"), "RESET")
}

/// The sort key of a TOTP factor: between `LOCKOUT` and `PROFILE`, so the
/// login's one query reads it too.
const TOTP: &str = "MFA#TOTP";

fn totp_key(username: &str) -> Item {
    key(format!("USER#{}", username.to_ascii_lowercase()), TOTP)
}

/// The sort key prefix of passkeys: after `PROFILE` and `SESSION#`.
const PASSKEY: &str = "WEBAUTHN#";

fn passkey_key(username: &str, id: &str) -> Item {
    key(
        format!("USER#{}", username.to_ascii_lowercase()),
        &format!("{PASSKEY}{id}"),
    )
}

/// The claim of a credential id (its digest), unique among all users.
fn credential_key(id: &str) -> Item {
    key(format!("CREDENTIAL#{id}"), "CREDENTIAL")
}

fn challenge_key(id: &str) -> Item {
    key(format!("CHALLENGE#{id}"), "CHALLENGE")
}

fn code_key(username: &Username) -> Item {
    key(format!("USER#{}", username.normalized()), "EMAIL_CODE")
}

fn session_key(key: &SessionKey) -> Item {
    HashMap::from([
        (PK.into(), s(format!("USER#{}", key.user))),
        (SK.into(), s(format!("SESSION#{}", key.id))),
    ])
}

/// True when a write was refused by its condition: a domain outcome, not a failure.
fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException")
}

/// Reads typed attributes out of an item, naming the one that is wrong.
struct Fields<'a>(&'a Item, &'static str);

impl Fields<'_> {
    fn string(&self, name: &str) -> Result<String, StoreError> {
        match self.0.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(corrupt(self.1, name)),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<T, StoreError> {
        match self.0.get(name) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(self.1, name)),
            _ => Err(corrupt(self.1, name)),
        }
    }

    /// A string attribute written by a later version, absent from older items.
    fn string_or(&self, name: &str, default: &str) -> Result<String, StoreError> {
        match self.0.get(name) {
            None => Ok(default.to_owned()),
            _ => self.string(name),
        }
    }

    /// A list of strings, absent from older items.
    fn strings_or(&self, name: &str, default: &[&str]) -> Result<Vec<String>, StoreError> {
        match self.0.get(name) {
            None => Ok(default.iter().map(|d| (*d).to_owned()).collect()),
            Some(AttributeValue::L(values)) => values
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => Ok(s.clone()),
                    _ => Err(corrupt(self.1, name)),
                })
                .collect(),
            _ => Err(corrupt(self.1, name)),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, StoreError> {
        match self.0.get(name) {
            Some(AttributeValue::Bool(v)) => Ok(*v),
            None => Ok(false),
            _ => Err(corrupt(self.1, name)),
        }
    }
}

impl User {
    fn to_item(&self) -> Result<Item, StoreError> {
        let username = Username::parse(&self.username).map_err(|_| corrupt("PutItem", "username"))?;
        Ok(HashMap::from([
            (PK.into(), user_pk(&username)),
            (SK.into(), s("PROFILE")),
            ("id".into(), s(&self.id)),
            ("username".into(), s(&self.username)),
            ("password_hash".into(), s(&self.password_hash)),
            ("created_at".into(), n(self.created_at)),
            ("email_verified".into(), AttributeValue::Bool(self.email_verified)),
            ("totp".into(), AttributeValue::Bool(self.totp)),
            ("passkeys".into(), n(self.passkeys)),
        ])
        .into_iter()
        .chain(self.email.as_ref().map(|e| ("email".to_owned(), s(e))))
        .chain(
            self.disabled
                .then(|| ("disabled".to_owned(), AttributeValue::Bool(true))),
        )
        .collect())
    }

    fn from_item(item: &Item, operation: &'static str) -> Result<Self, StoreError> {
        let f = Fields(item, operation);
        Ok(Self {
            id: f.string("id")?,
            username: f.string("username")?,
            password_hash: f.string("password_hash")?,
            created_at: f.number("created_at")?,
            deleting: f.boolean("deleting")?,
            disabled: f.boolean("disabled")?,
            email: item.get("email").map(|_| f.string("email")).transpose()?,
            email_verified: f.boolean("email_verified")?,
            totp: f.boolean("totp")?,
            passkeys: item
                .get("passkeys")
                .map(|_| f.number("passkeys"))
                .transpose()?
                .unwrap_or(0),
        })
    }
}

impl FailedLogins {
    fn from_item(item: &Item, operation: &'static str) -> Result<Self, StoreError> {
        let f = Fields(item, operation);
        Ok(Self {
            count: f.number("failures")?,
            last_at: f.number("last_failure_at")?,
        })
    }
}

impl Session {
    fn to_item(&self) -> Item {
        let mut item = session_key(&self.key());
        item.extend([
            ("user_id".into(), s(&self.user_id)),
            ("username".into(), s(&self.username)),
            ("generation".into(), n(self.generation)),
            ("token_hash".into(), s(&self.token_hash)),
            ("created_at".into(), n(self.created_at)),
            ("issued_at".into(), n(self.issued_at)),
            ("expires_at".into(), n(self.expires_at)),
            ("revoked".into(), AttributeValue::Bool(self.revoked)),
            ("amr".into(), AttributeValue::L(self.amr.iter().map(s).collect())),
            ("ip".into(), s(&self.origin.ip)),
            ("user_agent".into(), s(&self.origin.user_agent)),
            (TTL.into(), n(self.expires_at)),
        ]);
        item
    }

    fn from_item(item: &Item, operation: &'static str) -> Result<Self, StoreError> {
        let f = Fields(item, operation);
        let sk = f.string(SK)?;
        let issued_at = f.number("issued_at")?;
        // Sessions stored before the metadata: a password login, its start unknown.
        let created_at = match item.get("created_at") {
            None => issued_at,
            Some(_) => f.number("created_at")?,
        };
        Ok(Self {
            id: sk
                .strip_prefix("SESSION#")
                .ok_or_else(|| corrupt(operation, SK))?
                .to_owned(),
            user_id: f.string("user_id")?,
            username: f.string("username")?,
            generation: f.number("generation")?,
            token_hash: f.string("token_hash")?,
            created_at,
            issued_at,
            expires_at: f.number("expires_at")?,
            revoked: f.boolean("revoked")?,
            amr: f.strings_or("amr", &[crate::session::PASSWORD])?,
            origin: crate::session::Origin {
                ip: f.string_or("ip", "")?,
                user_agent: f.string_or("user_agent", "")?,
            },
        })
    }
}

impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> Result<(), CreateUserError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(user.to_item()?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(CreateUserError::Taken),
            Err(e) => Err(failed("PutItem", e).into()),
        }
    }

    async fn login_record(&self, username: &Username) -> Result<LoginRecord, StoreError> {
        let mut record = LoginRecord::default();
        for item in &self.items_up_to_profile(username, "LOCKOUT").await? {
            match item.get(SK) {
                Some(AttributeValue::S(sk)) if sk == "PROFILE" => record.user = Some(User::from_item(item, "Query")?),
                Some(AttributeValue::S(sk)) if sk == "LOCKOUT" => {
                    record.failures = FailedLogins::from_item(item, "Query")?
                }
                Some(AttributeValue::S(sk)) if sk == TOTP => record.totp = Some(TotpFactor::from_item(item, "Query")?),
                _ => {}
            }
        }
        Ok(record)
    }

    async fn replace_password_hash(&self, username: &Username, old: &str, new: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, user_pk(username))
            .key(SK, s("PROFILE"))
            .update_expression("SET password_hash = :new")
            .condition_expression("password_hash = :old")
            .expression_attribute_values(":new", s(new))
            .expression_attribute_values(":old", s(old))
            .send()
            .await;
        match result {
            // Someone changed it first: theirs stands.
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(|_| ()).map_err(|e| failed("UpdateItem", e)),
        }
    }

    async fn count_attempt(
        &self,
        username: &Username,
        seen: FailedLogins,
        now: u64,
    ) -> Result<Option<FailedLogins>, StoreError> {
        let next = seen.after_failure(now);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, user_pk(username))
            .item(SK, s("LOCKOUT"))
            .item("failures", n(next.count))
            .item("last_failure_at", n(next.last_at))
            .item(TTL, n(next.last_at.saturating_add(FailedLogins::QUIET_PERIOD)));
        // Compare-and-swap against the record as read: no item, or exactly `seen`.
        put = if seen == FailedLogins::default() {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("failures = :count AND last_failure_at = :last")
                .expression_attribute_values(":count", n(seen.count))
                .expression_attribute_values(":last", n(seen.last_at))
        };
        match put.send().await {
            Ok(_) => Ok(Some(next)),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(failed("PutItem", e)),
        }
    }

    async fn add_attempt(&self, username: &Username, now: u64) -> Result<Option<FailedLogins>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, user_pk(username))
            .key(SK, s("LOCKOUT"))
            .update_expression("ADD failures :one SET last_failure_at = :now, #ttl = :ttl")
            .condition_expression("attribute_not_exists(failures) OR failures < :limit OR last_failure_at <= :stale")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":ttl", n(now.saturating_add(FailedLogins::QUIET_PERIOD)))
            .expression_attribute_values(":limit", n(FailedLogins::LIMIT))
            .expression_attribute_values(":stale", n(now.saturating_sub(FailedLogins::QUIET_PERIOD)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let seen = match result {
            Ok(out) => match out.attributes {
                Some(item) if item.contains_key("failures") => FailedLogins::from_item(&item, "UpdateItem")?,
                _ => FailedLogins::default(),
            },
            Err(e) if condition_failed(&e) => return Ok(None),
            Err(e) => return Err(failed("UpdateItem", e)),
        };
        if seen.count > 0 && seen.is_stale(now) {
            // Added to failures long past: the count starts again at this one
            // (unless another attempt was counted meanwhile: then it stays higher, the stricter way).
            let added = FailedLogins {
                count: seen.count.saturating_add(1),
                last_at: now,
            };
            self.uncount_attempt(username, added, seen.after_failure(now)).await?;
        }
        Ok(Some(seen))
    }

    async fn uncount_attempt(
        &self,
        username: &Username,
        counted: FailedLogins,
        before: FailedLogins,
    ) -> Result<(), StoreError> {
        let as_counted = "failures = :count AND last_failure_at = :last";
        // No failures is no item, as `count_attempt` and `login_record` take it.
        let result = if before == FailedLogins::default() {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(PK, user_pk(username))
                .key(SK, s("LOCKOUT"))
                .condition_expression(as_counted)
                .expression_attribute_values(":count", n(counted.count))
                .expression_attribute_values(":last", n(counted.last_at))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (condition_failed(&e), failed("DeleteItem", e)))
        } else {
            self.client
                .put_item()
                .table_name(&self.table)
                .item(PK, user_pk(username))
                .item(SK, s("LOCKOUT"))
                .item("failures", n(before.count))
                .item("last_failure_at", n(before.last_at))
                .item(TTL, n(before.last_at.saturating_add(FailedLogins::QUIET_PERIOD)))
                .condition_expression(as_counted)
                .expression_attribute_values(":count", n(counted.count))
                .expression_attribute_values(":last", n(counted.last_at))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (condition_failed(&e), failed("PutItem", e)))
        };
        match result {
            // Another attempt was counted since: the record stays as it is.
            Err((true, _)) => Ok(()),
            Err((false, e)) => Err(e),
            Ok(()) => Ok(()),
        }
    }
}

impl SessionStore for DynamoStore {
    async fn create_session(&self, session: &Session, user: Option<&User>) -> Result<Change, StoreError> {
        let Some(user) = user else {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(session.to_item()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
                .map_err(|e| failed("PutItem", e))?;
            return Ok(Change::Done);
        };
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .condition_expression(format!(
                "id = :id AND password_hash = :hash AND attribute_not_exists(deleting) AND attribute_not_exists(disabled) AND {TOTP_AS_READ}"
            ))
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":hash", s(&user.password_hash))
            .expression_attribute_values(":totp", AttributeValue::Bool(user.totp))
            .build()
            .expect("condition check fields are set");
        let items = vec![
            self.put(session.to_item(), Some("attribute_not_exists(pk)"), &[]),
            TransactWriteItem::builder().condition_check(check).build(),
        ];
        self.transact(items).await
    }

    async fn session(&self, key: &SessionKey) -> Result<Option<Session>, StoreError> {
        self.get(session_key(key))
            .await?
            .as_ref()
            .map(|item| Session::from_item(item, "GetItem"))
            .transpose()
    }

    async fn rotate_session(
        &self,
        key: &SessionKey,
        from_generation: u64,
        new_token_hash: &str,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(session_key(key)))
            .update_expression("SET generation = :next, token_hash = :hash, issued_at = :now")
            .condition_expression("generation = :from AND revoked = :false AND expires_at > :now")
            .expression_attribute_values(":next", n(from_generation.saturating_add(1)))
            .expression_attribute_values(":from", n(from_generation))
            .expression_attribute_values(":hash", s(new_token_hash))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Rotation::Rotated),
            Err(e) if condition_failed(&e) => Ok(Rotation::Conflict),
            Err(e) => Err(failed("UpdateItem", e)),
        }
    }

    async fn revoke_session(&self, key: &SessionKey, user_id: &str, now: u64) -> Result<Option<Session>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(session_key(key)))
            .update_expression("SET revoked = :true")
            .condition_expression("revoked = :false AND expires_at > :now AND user_id = :user")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":user", s(user_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => out
                .attributes()
                .map(|item| Session::from_item(item, "UpdateItem"))
                .transpose(),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(failed("UpdateItem", e)),
        }
    }

    async fn log_out_everywhere(
        &self,
        key: &SessionKey,
        user_id: &str,
        now: u64,
    ) -> Result<Option<(Session, u64)>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(session_key(key)))
            .update_expression("SET revoked = :true, everywhere_at = if_not_exists(everywhere_at, :now)")
            .condition_expression(
                "user_id = :user AND expires_at > :now AND (revoked = :false OR attribute_exists(everywhere_at))",
            )
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":user", s(user_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes().ok_or_else(|| corrupt("UpdateItem", "attributes"))?;
                let at = Fields(item, "UpdateItem").number("everywhere_at")?;
                Ok(Some((Session::from_item(item, "UpdateItem")?, at)))
            }
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(failed("UpdateItem", e)),
        }
    }

    async fn revoke_all_sessions(
        &self,
        username: &str,
        user_id: &str,
        began_by: u64,
        now: u64,
    ) -> Result<usize, StoreError> {
        let user = SessionKey::new(username, "");
        let mut revoked = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :session)")
                // Sessions stored before `created_at` began before any logout of today.
                .filter_expression(
                    "revoked = :false AND expires_at > :now AND user_id = :user \
                     AND (attribute_not_exists(created_at) OR created_at <= :began_by)",
                )
                .expression_attribute_values(":pk", s(format!("USER#{}", user.user)))
                .expression_attribute_values(":session", s("SESSION#"))
                .expression_attribute_values(":false", AttributeValue::Bool(false))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":user", s(user_id))
                .expression_attribute_values(":began_by", n(began_by))
                .projection_expression("sk")
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failed("Query", e))?;
            for item in page.items() {
                let id = Fields(item, "Query").string(SK)?;
                let key = SessionKey::new(username, id.trim_start_matches("SESSION#"));
                revoked += self.revoke_session(&key, user_id, now).await?.is_some() as usize;
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(revoked);
            }
        }
    }

    async fn sessions(&self, username: &str) -> Result<Vec<Session>, StoreError> {
        let pk = s(format!("USER#{}", SessionKey::new(username, "").user));
        let items = self.partition(pk, Some("SESSION#"), None).await?;
        items.iter().map(|item| Session::from_item(item, "Query")).collect()
    }
}

impl DynamoStore {
    /// The item at `key`, read consistently.
    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("GetItem", e))?;
        Ok(out.item)
    }

    /// The items of the user's partition from sort key `from` to `PROFILE`,
    /// in one consistent query: the user item and the few that sort before
    /// it (`EMAIL_CODE`, `LOCKOUT`, `MAILS#...`), never the sessions after it.
    async fn items_up_to_profile(&self, username: &Username, from: &str) -> Result<Vec<Item>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :profile")
            .expression_attribute_values(":pk", user_pk(username))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":profile", s("PROFILE"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("Query", e))?;
        Ok(out.items().to_vec())
    }

    /// Every item of partition `pk` (those whose sort key begins with
    /// `prefix`, if given), read consistently, page after page; only the
    /// attributes `projection` names, if given.
    async fn partition(
        &self,
        pk: AttributeValue,
        prefix: Option<&str>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", pk.clone())
                .set_projection_expression(projection.map(str::to_owned))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            query = match prefix {
                Some(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let page = query.send().await.map_err(|e| failed("Query", e))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Runs one transaction; `Conflict` when a condition in it failed (nothing was written).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Change, StoreError> {
        Ok(match self.transact_with_reasons(items).await? {
            None => Change::Done,
            Some(_) => Change::Conflict,
        })
    }

    /// Runs one transaction: `None` when it went through, else which of its
    /// items had a failed condition (nothing was written).
    async fn transact_with_reasons(&self, items: Vec<TransactWriteItem>) -> Result<Option<Vec<bool>>, StoreError> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let reasons: Vec<Option<String>> = match &result {
                Ok(_) => return Ok(None),
                Err(SdkError::ServiceError(e)) => match e.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => c
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                },
                Err(_) => Vec::new(),
            };
            let refused: Vec<bool> = reasons
                .iter()
                .map(|r| r.as_deref() == Some("ConditionalCheckFailed"))
                .collect();
            if refused.contains(&true) {
                return Ok(Some(refused));
            }
            // Cancelled only because another transaction held one of the items
            // (nothing was written, and the SDK does not retry it): again, a
            // little later, a few times.
            let conflict = reasons.iter().any(|r| r.as_deref() == Some("TransactionConflict"));
            attempt += 1;
            if conflict && attempt < 4 {
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                continue;
            }
            return Err(failed(
                "TransactWriteItems",
                result.expect_err("not Ok: returned above"),
            ));
        }
    }

    /// A password change (`AccountStore::change_password`), with `also` in
    /// its last transaction (the reset token it consumes).
    async fn replace_password(
        &self,
        user: &User,
        new_hash: &str,
        revoke: &[SessionKey],
        also: Option<TransactWriteItem>,
    ) -> Result<Change, StoreError> {
        let profile = self.profile_key(user)?;
        let mut last = Vec::new();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(profile.clone()))
            .update_expression("SET password_hash = :new")
            .condition_expression(AS_READ)
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":hash", s(&user.password_hash))
            .build()
            .expect("update fields are set");
        last.push(TransactWriteItem::builder().update(update).build());
        // Deleting a missing item changes nothing: the failures, if any, go.
        let mut lockout = profile;
        lockout.insert(SK.into(), s("LOCKOUT"));
        last.push(self.delete(lockout));
        last.extend(also);
        // The sessions go first, in transactions of their own when there are
        // too many for one: an interrupted change leaves the password as it
        // was (the caller retries it), never a new password beside a live
        // session of the old one.
        let room = TRANSACTION_ITEMS - last.len();
        let split = revoke.len().saturating_sub(room);
        for chunk in revoke[..split].chunks(TRANSACTION_ITEMS) {
            let items = chunk.iter().map(|k| self.revoke(session_key(k))).collect();
            if self.transact(items).await? == Change::Conflict {
                return Ok(Change::Conflict);
            }
        }
        last.extend(revoke[split..].iter().map(|k| self.revoke(session_key(k))));
        self.transact(last).await
    }

    fn profile_key(&self, user: &User) -> Result<Item, StoreError> {
        let username = Username::parse(&user.username).map_err(|_| corrupt("TransactWriteItems", "username"))?;
        Ok(HashMap::from([
            (PK.into(), user_pk(&username)),
            (SK.into(), s("PROFILE")),
        ]))
    }

    /// Sets `revoked` on an existing session (never creates one).
    fn revoke(&self, key: Item) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("SET revoked = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .expect("update fields are set");
        TransactWriteItem::builder().update(update).build()
    }

    fn delete(&self, key: Item) -> TransactWriteItem {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .expect("delete fields are set");
        TransactWriteItem::builder().delete(delete).build()
    }
}

/// The user item as read: same id, same hash, still there.
const AS_READ: &str = "id = :id AND password_hash = :hash";

/// The sort key of an event at `at` with id `id`: in time order, then id order.
fn event_sk(at: u64, id: &str) -> String {
    format!("{EVENT}{at:010}#{id}")
}
const EVENT: &str = "EVENT#";

impl AuditStore for DynamoStore {
    async fn record_event(&self, username: &str, user_id: &str, event: &crate::audit::Event) -> Result<(), StoreError> {
        if !self.events {
            return Ok(());
        }
        let mut item = key(
            format!("USER#{}", username.to_ascii_lowercase()),
            &event_sk(event.at, &event.id),
        );
        item.extend([
            ("type".into(), s(event.kind.as_str())),
            ("at".into(), n(event.at)),
            ("user_id".into(), s(user_id)),
            (TTL.into(), n(event.at.saturating_add(self.retention))),
        ]);
        for (name, value) in [
            ("ip", &event.ip),
            ("user_agent", &event.user_agent),
            ("session_id", &event.session_id),
        ] {
            if let Some(value) = value {
                item.insert(name.into(), s(value));
            }
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| failed("PutItem", e))?;
        Ok(())
    }

    async fn events(
        &self,
        username: &str,
        cursor: Option<&crate::audit::Cursor>,
        limit: usize,
    ) -> Result<crate::audit::Page, StoreError> {
        let pk = s(format!("USER#{}", username.to_ascii_lowercase()));
        // Newest first: below the cursor, or below every event.
        let below = match cursor {
            Some(c) => event_sk(c.at, &c.id),
            None => format!("{EVENT}~"),
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :below")
            .expression_attribute_values(":pk", pk)
            .expression_attribute_values(":first", s(EVENT))
            .expression_attribute_values(":below", s(below))
            .scan_index_forward(false)
            // One more than a page tells whether there is another; BETWEEN
            // takes the cursor's own event too, skipped below.
            .limit(i32::try_from(limit + 1 + usize::from(cursor.is_some())).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| failed("Query", e))?;
        let mut events = Vec::new();
        for item in out.items() {
            let event = event_from_item(item)?;
            if cursor.is_some_and(|c| *c == event.position()) {
                continue;
            }
            events.push(event);
        }
        let next = (events.len() > limit).then(|| events[limit - 1].position());
        events.truncate(limit);
        Ok(crate::audit::Page { events, next })
    }
}

fn event_from_item(item: &Item) -> Result<crate::audit::Event, StoreError> {
    let f = Fields(item, "Query");
    let sk = f.string(SK)?;
    let id = sk.rsplit('#').next().unwrap_or_default().to_owned();
    let kind = f.string("type")?;
    let optional = |name: &str| item.get(name).map(|_| f.string(name)).transpose();
    Ok(crate::audit::Event {
        kind: crate::audit::Kind::parse(&kind).ok_or_else(|| corrupt("Query", "type"))?,
        at: f.number("at")?,
        ip: optional("ip")?,
        user_agent: optional("user_agent")?,
        session_id: optional("session_id")?,
        id,
    })
}

/// The key of address `key`'s count of `counter` in the window from `start`.
fn ip_key(key: &str, counter: crate::throttle::Counter, start: u64) -> Item {
    self::key(format!("IP#{key}"), &format!("{}#{start}", counter.as_str()))
}

impl ThrottleStore for DynamoStore {
    fn ip_limits(&self) -> crate::throttle::IpLimits {
        self.ip_limits
    }

    async fn ip_count(&self, key: &str, counter: crate::throttle::Counter, start: u64) -> Result<u64, StoreError> {
        match self.get(ip_key(key, counter, start)).await? {
            Some(item) => Fields(&item, "GetItem").number("count"),
            None => Ok(0),
        }
    }

    async fn add_ip(&self, key: &str, counter: crate::throttle::Counter, start: u64) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(ip_key(key, counter, start)))
            .update_expression("ADD #count :one SET #ttl = :ttl")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", n(start.saturating_add(2 * self.ip_limits.window)))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| failed("UpdateItem", e))?;
        let item = out.attributes.unwrap_or_default();
        Fields(&item, "UpdateItem").number("count")
    }
}

impl AdminStore for DynamoStore {
    async fn set_disabled(&self, user: &User, disabled: bool) -> Result<Change, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .condition_expression("id = :id AND attribute_not_exists(deleting)")
            .expression_attribute_values(":id", s(&user.id));
        let update = match disabled {
            true => update
                .update_expression("SET disabled = :true")
                .expression_attribute_values(":true", AttributeValue::Bool(true)),
            false => update.update_expression("REMOVE disabled"),
        };
        match update.send().await {
            Ok(_) => Ok(Change::Done),
            Err(e) if condition_failed(&e) => Ok(Change::Conflict),
            Err(e) => Err(failed("UpdateItem", e)),
        }
    }
}

impl AccountStore for DynamoStore {
    async fn user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        self.get(key(format!("USER#{}", username.normalized()), "PROFILE"))
            .await?
            .as_ref()
            .map(|item| User::from_item(item, "GetItem"))
            .transpose()
    }

    async fn change_password(&self, user: &User, new_hash: &str, revoke: &[SessionKey]) -> Result<Change, StoreError> {
        self.replace_password(user, new_hash, revoke, None).await
    }

    async fn delete_user(&self, user: &User) -> Result<Change, StoreError> {
        let profile = self.profile_key(user)?;
        let pk = profile[PK].clone();
        let mut others: Vec<Item> = self
            .partition(pk, None, Some("pk, sk, revoked"))
            .await?
            .into_iter()
            .filter(|item| item.get(SK) != Some(&s("PROFILE")))
            .collect();
        // Live sessions first, so that the first transaction ends as many as it can.
        others.sort_by_key(|item| item.get("revoked") == Some(&AttributeValue::Bool(true)));
        let keys: Vec<Item> = others
            .into_iter()
            .map(|mut item| {
                item.retain(|name, _| name == PK || name == SK);
                item
            })
            .collect();
        // The user as read, its address, second factor and passkeys
        // included: a verification, a TOTP confirmation or a passkey added
        // meanwhile makes this a conflict, never a claim or a factor left behind.
        let (email_as_read, mut values) = email_as_read(user);
        let as_read =
            format!("{email_as_read} AND {TOTP_AS_READ} AND (attribute_not_exists(passkeys) OR passkeys = :passkeys)");
        let as_read = as_read.as_str();
        values.push((":id", s(&user.id)));
        values.push((":totp", AttributeValue::Bool(user.totp)));
        values.push((":passkeys", n(user.passkeys)));
        // Each passkey goes with the claim of its credential id.
        let keys: Vec<Item> = keys
            .into_iter()
            .flat_map(|item| {
                let claim = match item.get(SK) {
                    Some(AttributeValue::S(sk)) => sk.strip_prefix(PASSKEY).map(credential_key),
                    _ => None,
                };
                std::iter::once(item).chain(claim)
            })
            .collect();
        let delete_profile = || {
            let mut delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(profile.clone()))
                .condition_expression(as_read);
            for (name, value) in &values {
                delete = delete.expression_attribute_values(*name, value.clone());
            }
            TransactWriteItem::builder()
                .delete(delete.build().expect("delete fields are set"))
                .build()
        };
        // The address the user holds verified is free again with the user.
        let release_claim = || {
            user.verified_email().map(|email| {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(claim_key(&email)))
                    .condition_expression("user_id = :id")
                    .expression_attribute_values(":id", s(&user.id))
                    .build()
                    .expect("delete fields are set");
                TransactWriteItem::builder().delete(delete).build()
            })
        };
        if keys.len() < TRANSACTION_ITEMS - 1 {
            // The usual case: everything at once.
            let mut items = vec![delete_profile()];
            items.extend(release_claim());
            items.extend(keys.into_iter().map(|k| self.delete(k)));
            return self.transact(items).await;
        }
        // Too many for one transaction: first mark the user as being deleted
        // (nobody logs in as them any more) with the first items, then the
        // rest, and the user and its claim last. Interrupted, it is finished by a retry.
        let mut chunks = keys.chunks(TRANSACTION_ITEMS - 1);
        let first = chunks.next().expect("more than one transaction's worth");
        let mut mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(profile.clone()))
            .update_expression("SET deleting = :true")
            .condition_expression(as_read)
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        for (name, value) in &values {
            mark = mark.expression_attribute_values(*name, value.clone());
        }
        let mark = mark.build().expect("update fields are set");
        let mut items = vec![TransactWriteItem::builder().update(mark).build()];
        items.extend(first.iter().cloned().map(|k| self.delete(k)));
        if self.transact(items).await? == Change::Conflict {
            return Ok(Change::Conflict);
        }
        for chunk in chunks {
            self.transact(chunk.iter().cloned().map(|k| self.delete(k)).collect())
                .await?;
        }
        let mut last = vec![delete_profile()];
        last.extend(release_claim());
        self.transact(last).await
    }
}

/// The condition that the user item's TOTP mark is still `:totp` (absent in items of older versions).
const TOTP_AS_READ: &str = "(attribute_not_exists(totp) OR totp = :totp)";

/// The condition that the user item's address is still as `user` holds it,
/// with its values but `:id` (the user's id, which the condition names too).
fn email_as_read(user: &User) -> (&'static str, Vec<(&'static str, AttributeValue)>) {
    match (&user.email, user.email_verified) {
        (Some(email), true) => (
            "id = :id AND email_verified = :verified AND email = :email",
            vec![(":verified", AttributeValue::Bool(true)), (":email", s(email))],
        ),
        _ => (
            "id = :id AND (attribute_not_exists(email_verified) OR email_verified = :verified)",
            vec![(":verified", AttributeValue::Bool(false))],
        ),
    }
}

impl EmailCode {
    fn from_item(item: &Item, operation: &'static str) -> Result<Self, StoreError> {
        let f = Fields(item, operation);
        Ok(Self {
            email: f.string("email")?,
            code_hash: f.string("code_hash")?,
            attempts: f.number("attempts")?,
            expires_at: f.number("expires_at")?,
        })
    }
}

impl ResetToken {
    fn from_item(item: &Item, operation: &'static str) -> Result<Self, StoreError> {
        let f = Fields(item, operation);
        Ok(Self {
            token_hash: f.string(PK)?.trim_start_matches("RESET#").to_owned(),
            username: f.string("username")?,
            user_id: f.string("user_id")?,
            password_fingerprint: f.string("password_fingerprint")?,
            expires_at: f.number("expires_at")?,
        })
    }
}

impl DynamoStore {
    /// One more mail this hour under `pk`, refused at the limit.
    fn count_one_mail(&self, pk: String, now: u64) -> TransactWriteItem {
        let hour = now / 3600;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, &format!("MAILS#{hour}"))))
            .update_expression("ADD sent :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(sent) OR sent < :max")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAILS_PER_HOUR))
            .expression_attribute_values(":ttl", n((hour + 2) * 3600))
            .build()
            .expect("update fields are set");
        TransactWriteItem::builder().update(update).build()
    }

    fn put(&self, item: Item, condition: Option<&str>, values: &[(&str, AttributeValue)]) -> TransactWriteItem {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned));
        for (name, value) in values {
            put = put.expression_attribute_values(*name, value.clone());
        }
        TransactWriteItem::builder()
            .put(put.build().expect("put fields are set"))
            .build()
    }
}

impl EmailStore for DynamoStore {
    async fn email_owner(&self, email: &Email) -> Result<Option<(String, String)>, StoreError> {
        self.get(claim_key(&email.normalized()))
            .await?
            .as_ref()
            .map(|item| {
                let f = Fields(item, "GetItem");
                Ok((f.string("user_id")?, f.string("username")?))
            })
            .transpose()
    }

    async fn count_mail(&self, username: &Username, address: &Email, now: u64) -> Result<bool, StoreError> {
        let items = vec![
            self.count_one_mail(format!("USER#{}", username.normalized()), now),
            self.count_one_mail(format!("MAILS#{}", address.mailbox()), now),
        ];
        Ok(self.transact(items).await? == Change::Done)
    }

    async fn put_email_code(&self, user: &User, code: &EmailCode) -> Result<Change, StoreError> {
        let username = Username::parse(&user.username).map_err(|_| corrupt("PutItem", "username"))?;
        let mut item = code_key(&username);
        item.extend([
            ("email".into(), s(&code.email)),
            ("code_hash".into(), s(&code.code_hash)),
            ("attempts".into(), n(code.attempts)),
            ("expires_at".into(), n(code.expires_at)),
            (TTL.into(), n(code.expires_at)),
        ]);
        if user.email_verified {
            // The verified address stays the account's until the new one is verified.
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| failed("PutItem", e))?;
            return Ok(Change::Done);
        }
        // Still without a verified address, as read.
        let (as_read, values) = email_as_read(user);
        let mut pending = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .update_expression("SET email = :email")
            .condition_expression(as_read)
            .expression_attribute_values(":email", s(&code.email))
            .expression_attribute_values(":id", s(&user.id));
        for (name, value) in values {
            pending = pending.expression_attribute_values(name, value);
        }
        let pending = pending.build().expect("update fields are set");
        let items = vec![
            self.put(item, None, &[]),
            TransactWriteItem::builder().update(pending).build(),
        ];
        self.transact(items).await
    }

    async fn email_code(&self, username: &Username) -> Result<(Option<User>, Option<EmailCode>), StoreError> {
        let (mut user, mut code) = (None, None);
        for item in &self.items_up_to_profile(username, "EMAIL_CODE").await? {
            match item.get(SK) {
                Some(AttributeValue::S(sk)) if sk == "PROFILE" => user = Some(User::from_item(item, "Query")?),
                Some(AttributeValue::S(sk)) if sk == "EMAIL_CODE" => code = Some(EmailCode::from_item(item, "Query")?),
                _ => {}
            }
        }
        Ok((user, code))
    }

    async fn count_code_failure(&self, username: &Username, code: &EmailCode) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(code_key(username)))
            .update_expression("ADD attempts :one")
            .condition_expression("code_hash = :hash")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":hash", s(&code.code_hash))
            .send()
            .await;
        match result {
            // A new code replaced it, or it was used: nothing to count.
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(|_| ()).map_err(|e| failed("UpdateItem", e)),
        }
    }

    async fn delete_email_code(&self, username: &Username, code: &EmailCode) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(code_key(username)))
            .condition_expression("code_hash = :hash")
            .expression_attribute_values(":hash", s(&code.code_hash))
            .send()
            .await;
        match result {
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(|_| ()).map_err(|e| failed("DeleteItem", e)),
        }
    }

    async fn verify_email(&self, user: &User, code: &EmailCode) -> Result<Verification, StoreError> {
        let username = Username::parse(&user.username).map_err(|_| corrupt("TransactWriteItems", "username"))?;
        let email = code.email.to_lowercase();
        let consume = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(code_key(&username)))
            .condition_expression("code_hash = :hash AND attempts < :max")
            .expression_attribute_values(":hash", s(&code.code_hash))
            .expression_attribute_values(":max", n(MAX_CODE_ATTEMPTS))
            .build()
            .expect("delete fields are set");
        let profile = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .update_expression("SET email = :email, email_verified = :true")
            .condition_expression("id = :id AND attribute_not_exists(deleting)")
            .expression_attribute_values(":email", s(&code.email))
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .expect("update fields are set");
        let mut claim = claim_key(&email);
        claim.extend([("user_id".into(), s(&user.id)), ("username".into(), s(&user.username))]);
        const CLAIM: usize = 2;
        let mut items = vec![
            TransactWriteItem::builder().delete(consume).build(),
            TransactWriteItem::builder().update(profile).build(),
            self.put(
                claim,
                Some("attribute_not_exists(pk) OR user_id = :id"),
                &[(":id", s(&user.id))],
            ),
        ];
        if let Some(former) = user.verified_email().filter(|former| *former != email) {
            items.push(self.delete(claim_key(&former)));
        }
        Ok(match self.transact_with_reasons(items).await? {
            None => Verification::Verified,
            Some(failed) if failed.get(CLAIM) == Some(&true) => Verification::Taken,
            Some(_) => Verification::Conflict,
        })
    }

    async fn put_reset_token(&self, token: &ResetToken) -> Result<(), StoreError> {
        let mut item = reset_key(&token.token_hash);
        item.extend([
            ("username".into(), s(&token.username)),
            ("user_id".into(), s(&token.user_id)),
            ("password_fingerprint".into(), s(&token.password_fingerprint)),
            ("expires_at".into(), n(token.expires_at)),
            (TTL.into(), n(token.expires_at)),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("PutItem", e))
    }

    async fn reset_token(&self, token_hash: &str) -> Result<Option<ResetToken>, StoreError> {
        self.get(reset_key(token_hash))
            .await?
            .as_ref()
            .map(|item| ResetToken::from_item(item, "GetItem"))
            .transpose()
    }

    async fn delete_reset_token(&self, token_hash: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(reset_key(token_hash)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("DeleteItem", e))
    }

    async fn reset_password(
        &self,
        user: &User,
        token: &ResetToken,
        new_hash: &str,
        revoke: &[SessionKey],
    ) -> Result<Change, StoreError> {
        let consume = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(reset_key(&token.token_hash)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .expect("delete fields are set");
        let consume = TransactWriteItem::builder().delete(consume).build();
        self.replace_password(user, new_hash, revoke, Some(consume)).await
    }
}

impl TotpFactor {
    fn from_item(item: &Item, operation: &'static str) -> Result<Self, StoreError> {
        let f = Fields(item, operation);
        let recovery = match item.get("recovery") {
            None => Vec::new(),
            Some(AttributeValue::Ss(set)) => set.clone(),
            _ => return Err(corrupt(operation, "recovery")),
        };
        Ok(Self {
            secret: crate::totp::TotpSecret::from_base32(&f.string("secret")?)
                .ok_or_else(|| corrupt(operation, "secret"))?,
            active: f.boolean("active")?,
            created_at: f.number("created_at")?,
            last_step: f.number("last_step")?,
            recovery,
            attempt: f.string_or("attempt", "")?,
            attempt_tries: match item.get("attempt_tries") {
                None => 0,
                Some(_) => f.number("attempt_tries")?,
            },
        })
    }
}

/// An update of one item: its expression, condition and values, built up
/// clause by clause so that a proof can join any of them.
struct ItemUpdate {
    set: Vec<&'static str>,
    remove: Vec<&'static str>,
    delete: Vec<&'static str>,
    conditions: Vec<&'static str>,
    values: Vec<(&'static str, AttributeValue)>,
    /// `#name` placeholders, for attribute names that are reserved words (`ttl`).
    names: Vec<(&'static str, &'static str)>,
}

impl ItemUpdate {
    fn new(conditions: Vec<&'static str>, values: Vec<(&'static str, AttributeValue)>) -> Self {
        Self {
            set: Vec::new(),
            remove: Vec::new(),
            delete: Vec::new(),
            conditions,
            values,
            names: Vec::new(),
        }
    }

    /// An update of the factor `factor` as read: still the same secret, and active or not as it was.
    fn of_factor(factor: &TotpFactor) -> Self {
        Self::new(
            vec!["secret = :secret", "active = :active"],
            vec![
                (":secret", s(factor.secret.base32())),
                (":active", AttributeValue::Bool(factor.active)),
            ],
        )
    }

    /// Consumes `proof`: the code's step only if later than the last one
    /// accepted, the recovery code only if still in the set.
    fn consume(mut self, proof: Option<&Proof>) -> Self {
        match proof {
            None => {}
            Some(Proof::Step(step)) => {
                self.set.push("last_step = :step");
                self.conditions.push("last_step < :step");
                self.values.push((":step", n(step)));
            }
            Some(Proof::Recovery(digest)) => {
                self.delete.push("recovery :used");
                self.conditions.push("contains(recovery, :code)");
                self.values.push((":used", AttributeValue::Ss(vec![digest.clone()])));
                self.values.push((":code", s(digest)));
            }
        }
        self
    }

    fn expression(&self) -> String {
        let mut parts = Vec::new();
        for (word, clauses) in [("SET", &self.set), ("REMOVE", &self.remove), ("DELETE", &self.delete)] {
            if !clauses.is_empty() {
                parts.push(format!("{word} {}", clauses.join(", ")));
            }
        }
        parts.join(" ")
    }

    fn condition(&self) -> String {
        self.conditions.join(" AND ")
    }

    fn values(&self) -> HashMap<String, AttributeValue> {
        self.values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| {
            self.names
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
    }

    fn into_transact_item(self, table: &str, key: Item) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(self.expression())
            .condition_expression(self.condition())
            .set_expression_attribute_values(Some(self.values()))
            .set_expression_attribute_names(self.names())
            .build()
            .expect("update fields are set");
        TransactWriteItem::builder().update(update).build()
    }
}

fn string_set(digests: &[String]) -> AttributeValue {
    AttributeValue::Ss(digests.to_vec())
}

impl DynamoStore {
    /// A condition on the user item: still of `user`'s id, not being deleted.
    fn user_still(&self, user: &User) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .condition_expression("id = :id AND attribute_not_exists(deleting)")
            .expression_attribute_values(":id", s(&user.id))
            .build()
            .expect("condition check fields are set");
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Sets the user item's `totp` mark, on the user still of the same id.
    fn mark_totp(&self, user: &User, active: bool) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .update_expression("SET totp = :totp")
            .condition_expression("id = :id AND attribute_not_exists(deleting)")
            .expression_attribute_values(":totp", AttributeValue::Bool(active))
            .expression_attribute_values(":id", s(&user.id))
            .build()
            .expect("update fields are set");
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Runs one conditional update of the item at `key`: `Conflict` when its condition failed.
    async fn update_if(&self, key: Item, update: ItemUpdate) -> Result<Change, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update.expression())
            .condition_expression(update.condition())
            .set_expression_attribute_values(Some(update.values()))
            .set_expression_attribute_names(update.names())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Change::Done),
            Err(e) if condition_failed(&e) => Ok(Change::Conflict),
            Err(e) => Err(failed("UpdateItem", e)),
        }
    }
}

impl MfaStore for DynamoStore {
    async fn put_pending_totp(&self, user: &User, factor: &TotpFactor) -> Result<Change, StoreError> {
        let mut item = totp_key(&user.username);
        item.extend([
            ("secret".to_owned(), s(factor.secret.base32())),
            ("active".to_owned(), AttributeValue::Bool(false)),
            ("created_at".to_owned(), n(factor.created_at)),
            ("last_step".to_owned(), n(factor.last_step)),
            (
                TTL.to_owned(),
                n(factor.created_at.saturating_add(crate::totp::PENDING_TTL)),
            ),
        ]);
        let put = self.put(
            item,
            Some("attribute_not_exists(pk) OR active = :false"),
            &[(":false", AttributeValue::Bool(false))],
        );
        self.transact(vec![put, self.user_still(user)?]).await
    }

    async fn activate_totp(
        &self,
        user: &User,
        factor: &TotpFactor,
        step: u64,
        recovery: &[String],
    ) -> Result<Change, StoreError> {
        let mut update = ItemUpdate::of_factor(factor).consume(Some(&Proof::Step(step)));
        update.set.extend(["active = :true", "recovery = :recovery"]);
        // Active, it lives until removed: no `ttl` (a reserved word, so named through `#ttl`).
        update.remove.push("#ttl");
        update.names.push(("#ttl", TTL));
        update.values.push((":true", AttributeValue::Bool(true)));
        update.values.push((":recovery", string_set(recovery)));
        let item = update.into_transact_item(&self.table, totp_key(&user.username));
        self.transact(vec![item, self.mark_totp(user, true)?]).await
    }

    async fn remove_totp(&self, user: &User, factor: &TotpFactor, proof: Option<&Proof>) -> Result<Change, StoreError> {
        let condition = ItemUpdate::of_factor(factor).consume(proof);
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(totp_key(&user.username)))
            .condition_expression(condition.condition());
        for (name, value) in condition.values {
            // A delete takes the condition only: not the set a recovery code would leave.
            if name != ":used" {
                delete = delete.expression_attribute_values(name, value);
            }
        }
        let delete = TransactWriteItem::builder()
            .delete(delete.build().expect("delete fields are set"))
            .build();
        self.transact(vec![delete, self.mark_totp(user, false)?]).await
    }

    async fn replace_recovery_codes(
        &self,
        user: &User,
        factor: &TotpFactor,
        proof: Option<&Proof>,
        recovery: &[String],
    ) -> Result<Change, StoreError> {
        let mut update = ItemUpdate::of_factor(factor).consume(proof);
        update.set.push("recovery = :recovery");
        update.values.push((":recovery", string_set(recovery)));
        self.update_if(totp_key(&user.username), update).await
    }

    async fn start_mfa_attempt(&self, username: &Username, attempt: &str) -> Result<Change, StoreError> {
        let mut update = ItemUpdate::new(
            vec!["active = :true"],
            vec![
                (":attempt", s(attempt)),
                (":zero", n(0)),
                (":true", AttributeValue::Bool(true)),
            ],
        );
        update.set.extend(["attempt = :attempt", "attempt_tries = :zero"]);
        self.update_if(totp_key(username.as_str()), update).await
    }

    async fn count_mfa_try(&self, username: &Username, attempt: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(totp_key(username.as_str())))
            .update_expression("ADD attempt_tries :one")
            .condition_expression("active = :true AND attempt = :attempt AND attempt_tries < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":attempt", s(attempt))
            .expression_attribute_values(":max", n(crate::totp::MAX_TRIES))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(failed("UpdateItem", e)),
        }
    }

    async fn finish_mfa_login(
        &self,
        user: &User,
        attempt: &str,
        proof: &Proof,
        session: &Session,
    ) -> Result<Change, StoreError> {
        let mut end = ItemUpdate::new(
            vec!["active = :true", "attempt = :attempt"],
            vec![(":true", AttributeValue::Bool(true)), (":attempt", s(attempt))],
        );
        end.remove.extend(["attempt", "attempt_tries"]);
        let mut end = end.consume(Some(proof));
        end.conditions.push("attempt_tries <= :max");
        end.values.push((":max", n(crate::totp::MAX_TRIES)));
        let profile = self.profile_key(user)?;
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(profile.clone()))
            .condition_expression("id = :id AND password_hash = :hash AND attribute_not_exists(deleting) AND attribute_not_exists(disabled)")
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":hash", s(&user.password_hash))
            .build()
            .expect("condition check fields are set");
        let mut lockout = profile;
        lockout.insert(SK.into(), s("LOCKOUT"));
        let items = vec![
            end.into_transact_item(&self.table, totp_key(&user.username)),
            self.put(session.to_item(), Some("attribute_not_exists(pk)"), &[]),
            TransactWriteItem::builder().condition_check(check).build(),
            self.delete(lockout),
        ];
        self.transact(items).await
    }
}

impl StoredPasskey {
    fn to_item(&self) -> Item {
        let mut item = passkey_key(&self.username, &self.id);
        item.extend([
            ("user_id".to_owned(), s(&self.user_id)),
            ("username".to_owned(), s(&self.username)),
            ("name".to_owned(), s(&self.name)),
            ("created_at".to_owned(), n(self.created_at)),
            ("credential".to_owned(), s(&self.credential)),
        ]);
        item.extend(self.last_used_at.map(|at| ("last_used_at".to_owned(), n(at))));
        item
    }

    fn from_item(item: &Item, operation: &'static str) -> Result<Self, StoreError> {
        let f = Fields(item, operation);
        Ok(Self {
            id: f
                .string(SK)?
                .strip_prefix(PASSKEY)
                .ok_or_else(|| corrupt(operation, SK))?
                .to_owned(),
            user_id: f.string("user_id")?,
            username: f.string("username")?,
            name: f.string("name")?,
            created_at: f.number("created_at")?,
            last_used_at: item.get("last_used_at").map(|_| f.number("last_used_at")).transpose()?,
            credential: f.string("credential")?,
        })
    }
}

const REGISTRATION: &str = "registration";
const LOGIN: &str = "login";

impl PasskeyStore for DynamoStore {
    async fn put_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        let mut item = challenge_key(&challenge.id);
        item.extend([
            ("state".to_owned(), s(&challenge.state)),
            ("expires_at".to_owned(), n(challenge.expires_at)),
            (TTL.to_owned(), n(challenge.expires_at)),
        ]);
        match &challenge.ceremony {
            Ceremony::Registration { user_id } => {
                item.insert("ceremony".into(), s(REGISTRATION));
                item.insert("user_id".into(), s(user_id));
            }
            Ceremony::Login => {
                item.insert("ceremony".into(), s(LOGIN));
            }
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| failed("PutItem", e))?;
        Ok(())
    }

    async fn take_challenge(&self, id: &str, ceremony: &Ceremony) -> Result<Option<Challenge>, StoreError> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(challenge_key(id)))
            .return_values(ReturnValue::AllOld);
        delete = match ceremony {
            Ceremony::Registration { user_id } => delete
                .condition_expression("ceremony = :ceremony AND user_id = :user_id")
                .expression_attribute_values(":ceremony", s(REGISTRATION))
                .expression_attribute_values(":user_id", s(user_id)),
            Ceremony::Login => delete
                .condition_expression("ceremony = :ceremony")
                .expression_attribute_values(":ceremony", s(LOGIN)),
        };
        let item = match delete.send().await {
            Ok(out) => out.attributes,
            Err(e) if condition_failed(&e) => return Ok(None),
            Err(e) => return Err(failed("DeleteItem", e)),
        };
        let Some(item) = item else { return Ok(None) };
        let f = Fields(&item, "DeleteItem");
        Ok(Some(Challenge {
            id: id.to_owned(),
            ceremony: ceremony.clone(),
            state: f.string("state")?,
            expires_at: f.number("expires_at")?,
        }))
    }

    async fn passkeys(&self, username: &Username) -> Result<Vec<StoredPasskey>, StoreError> {
        let items = self.partition(user_pk(username), Some(PASSKEY), None).await?;
        let mut passkeys = items
            .iter()
            .map(|item| StoredPasskey::from_item(item, "Query"))
            .collect::<Result<Vec<_>, _>>()?;
        passkeys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(passkeys)
    }

    async fn passkey(&self, id: &str) -> Result<Option<(User, StoredPasskey)>, StoreError> {
        let Some(claim) = self.get(credential_key(id)).await? else {
            return Ok(None);
        };
        let f = Fields(&claim, "GetItem");
        let (user_id, username) = (f.string("user_id")?, f.string("username")?);
        let (user, passkey) = tokio::join!(
            self.get(key(format!("USER#{}", username.to_ascii_lowercase()), "PROFILE")),
            self.get(passkey_key(&username, id))
        );
        let (Some(user), Some(passkey)) = (user?, passkey?) else {
            return Ok(None);
        };
        let user = User::from_item(&user, "GetItem")?;
        let passkey = StoredPasskey::from_item(&passkey, "GetItem")?;
        Ok((user.id == user_id && passkey.user_id == user_id).then_some((user, passkey)))
    }

    async fn add_passkey(&self, user: &User, passkey: &StoredPasskey, max: u32) -> Result<NewPasskey, StoreError> {
        let mut claim = credential_key(&passkey.id);
        claim.extend([
            ("user_id".to_owned(), s(&user.id)),
            ("username".to_owned(), s(&user.username)),
        ]);
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .update_expression("ADD passkeys :one")
            .condition_expression(
                "id = :id AND attribute_not_exists(deleting) AND (attribute_not_exists(passkeys) OR passkeys < :max)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":max", n(max))
            .build()
            .expect("update fields are set");
        let items = vec![
            self.put(claim, Some("attribute_not_exists(pk)"), &[]),
            self.put(passkey.to_item(), Some("attribute_not_exists(pk)"), &[]),
            TransactWriteItem::builder().update(count).build(),
        ];
        Ok(match self.transact_with_reasons(items).await? {
            None => NewPasskey::Added,
            Some(refused) if refused[0] || refused[1] => NewPasskey::Taken,
            Some(_) => NewPasskey::Conflict,
        })
    }

    async fn remove_passkey(&self, user: &User, id: &str) -> Result<Change, StoreError> {
        let owned = |key: Item| {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .condition_expression("user_id = :id")
                .expression_attribute_values(":id", s(&user.id))
                .build()
                .expect("delete fields are set");
            TransactWriteItem::builder().delete(delete).build()
        };
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .update_expression("ADD passkeys :minus_one")
            .condition_expression("id = :id AND passkeys > :zero")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":id", s(&user.id))
            .build()
            .expect("update fields are set");
        let items = vec![
            owned(passkey_key(&user.username, id)),
            owned(credential_key(id)),
            TransactWriteItem::builder().update(count).build(),
        ];
        self.transact(items).await
    }

    async fn finish_passkey_login(
        &self,
        user: &User,
        passkey: &StoredPasskey,
        credential: &str,
        session: &Session,
    ) -> Result<Change, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(self.profile_key(user)?))
            .condition_expression(format!(
                "{AS_READ} AND attribute_not_exists(deleting) AND attribute_not_exists(disabled)"
            ))
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":hash", s(&user.password_hash))
            .build()
            .expect("condition check fields are set");
        let used = Update::builder()
            .table_name(&self.table)
            .set_key(Some(passkey_key(&passkey.username, &passkey.id)))
            .update_expression("SET credential = :new, last_used_at = :now")
            .condition_expression("user_id = :id AND credential = :old")
            .expression_attribute_values(":new", s(credential))
            .expression_attribute_values(":now", n(session.issued_at))
            .expression_attribute_values(":id", s(&user.id))
            .expression_attribute_values(":old", s(&passkey.credential))
            .build()
            .expect("update fields are set");
        let items = vec![
            self.put(session.to_item(), Some("attribute_not_exists(pk)"), &[]),
            TransactWriteItem::builder().condition_check(check).build(),
            TransactWriteItem::builder().update(used).build(),
        ];
        self.transact(items).await
    }
}
