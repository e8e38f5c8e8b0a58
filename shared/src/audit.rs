//! The audit trail: what happened to an account, when, from where. A leaf:
//! the store keeps events (`store::AuditStore`), `service::audit` writes them.
//! An event never holds a password, code, token or hash: only its kind, its
//! time, the client's address and user agent, and the session it concerns.

use crate::session::Origin;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    LoginSucceeded,
    LoginFailed,
    LoginLocked,
    MfaFailed,
    RefreshReuseDetected,
    Logout,
    LogoutEverywhere,
    SessionRevoked,
    PasswordChanged,
    PasswordReset,
    EmailVerified,
    MfaEnabled,
    MfaDisabled,
    PasskeyAdded,
    PasskeyRemoved,
    AccountDisabled,
    AccountEnabled,
}

impl Kind {
    pub const ALL: [Kind; 17] = [
        Kind::LoginSucceeded,
        Kind::LoginFailed,
        Kind::LoginLocked,
        Kind::MfaFailed,
        Kind::RefreshReuseDetected,
        Kind::Logout,
        Kind::LogoutEverywhere,
        Kind::SessionRevoked,
        Kind::PasswordChanged,
        Kind::PasswordReset,
        Kind::EmailVerified,
        Kind::MfaEnabled,
        Kind::MfaDisabled,
        Kind::PasskeyAdded,
        Kind::PasskeyRemoved,
        Kind::AccountDisabled,
        Kind::AccountEnabled,
    ];

    /// Its name in the API and the table: `login_succeeded`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LoginSucceeded => "login_succeeded",
            Kind::LoginFailed => "login_failed",
            Kind::LoginLocked => "login_locked",
            Kind::MfaFailed => "mfa_failed",
            Kind::RefreshReuseDetected => "refresh_reuse_detected",
            Kind::Logout => "logout",
            Kind::LogoutEverywhere => "logout_everywhere",
            Kind::SessionRevoked => "session_revoked",
            Kind::PasswordChanged => "password_changed",
            Kind::PasswordReset => "password_reset",
            Kind::EmailVerified => "email_verified",
            Kind::MfaEnabled => "mfa_enabled",
            Kind::MfaDisabled => "mfa_disabled",
            Kind::PasskeyAdded => "passkey_added",
            Kind::PasskeyRemoved => "passkey_removed",
            Kind::AccountDisabled => "account_disabled",
            Kind::AccountEnabled => "account_enabled",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

tokio::task_local! {
    /// The client of the request being served (`http::respond` sets it).
    static CLIENT: Origin;
}

/// Runs `work` as the request of `client`: the events it records say where it came from.
pub async fn from_client<F: std::future::Future>(client: Origin, work: F) -> F::Output {
    CLIENT.scope(client, work).await
}

/// The client of the request being served (empty outside a request).
pub fn client() -> Origin {
    CLIENT.try_with(Origin::clone).unwrap_or_default()
}

/// The user agent recorded for what the operator's admin tool does.
pub const ADMIN: &str = "admin";

/// One event of one account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Unix seconds.
    pub at: u64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub session_id: Option<String>,
    /// Orders events of the same second (a UUID v7: milliseconds, then a
    /// counter); not shown.
    #[serde(skip)]
    pub id: String,
}

impl Event {
    /// An event of `kind` at `now`, from the client of the request being
    /// served (`from_client`; none outside a request).
    pub fn new(kind: Kind, now: u64) -> Self {
        Self::from(kind, now, &client())
    }

    /// An event of `kind` at `now` from `origin` (an empty address or agent is none).
    fn from(kind: Kind, now: u64, origin: &Origin) -> Self {
        let given = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        Self {
            kind,
            at: now,
            ip: given(&origin.ip),
            user_agent: given(&origin.user_agent),
            session_id: None,
            id: uuid::Uuid::now_v7().to_string(),
        }
    }

    /// An event the operator caused with the admin tool: no address.
    pub fn by_admin(kind: Kind, now: u64) -> Self {
        Self::from(
            kind,
            now,
            &Origin {
                ip: String::new(),
                user_agent: ADMIN.into(),
            },
        )
    }

    /// The same event, about session `id`.
    pub fn in_session(mut self, id: &str) -> Self {
        self.session_id = Some(id.to_owned());
        self
    }

    /// Where it sorts among the user's events: by time, then by id.
    pub fn position(&self) -> Cursor {
        Cursor {
            at: self.at,
            id: self.id.clone(),
        }
    }
}

/// A page of events, newest first, and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub events: Vec<Event>,
    pub next: Option<Cursor>,
}

/// Where a page ends: the last event's time and id. Clients see it as an
/// opaque string (`Display`, `Cursor::parse`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub at: u64,
    pub id: String,
}

/// A cursor a client made up or mangled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cursor is not one this service gave out")]
pub struct BadCursor;

impl Cursor {
    pub fn parse(text: &str) -> Result<Self, BadCursor> {
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| BadCursor)?;
        let raw = String::from_utf8(raw).map_err(|_| BadCursor)?;
        let (at, id) = raw.split_once('#').ok_or(BadCursor)?;
        let at = at.parse().map_err(|_| BadCursor)?;
        let id = uuid::Uuid::try_parse(id).map_err(|_| BadCursor)?.to_string();
        Ok(Self { at, id })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(format!("{}#{}", self.at, self.id)))
    }
}

/// How long events are kept: `AUDIT_RETENTION_DAYS` (1 to 3650, default 90), in seconds.
pub fn retention_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<u64, crate::config::ConfigError> {
    const DAY: u64 = 24 * 3600;
    let days = crate::config::whole_number(lookup, "AUDIT_RETENTION_DAYS", "days", 90, 1..=3650)?;
    Ok(days * DAY)
}

/// Events kept by default: 90 days.
pub const DEFAULT_RETENTION: u64 = 90 * 24 * 3600;

/// Most events a page holds, and how many when the client does not say.
pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_name_the_spec_gives_it_and_is_found_by_it() {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "login_succeeded",
                "login_failed",
                "login_locked",
                "mfa_failed",
                "refresh_reuse_detected",
                "logout",
                "logout_everywhere",
                "session_revoked",
                "password_changed",
                "password_reset",
                "email_verified",
                "mfa_enabled",
                "mfa_disabled",
                "passkey_added",
                "passkey_removed",
                "account_disabled",
                "account_enabled",
            ]
        );
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(Kind::parse("login"), None);
    }

    #[tokio::test]
    async fn an_event_shows_its_type_time_the_requests_client_and_session_and_nothing_else() {
        let origin = Origin {
            ip: "203.0.113.7".into(),
            user_agent: "curl/8".into(),
        };
        let event = from_client(origin, async {
            Event::new(Kind::Logout, 1_700_000_000).in_session("s-1")
        })
        .await;
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type": "logout", "at": 1_700_000_000u64, "ip": "203.0.113.7", "user_agent": "curl/8", "session_id": "s-1"})
        );
        let admin = serde_json::to_value(Event::by_admin(Kind::AccountDisabled, 5)).unwrap();
        assert_eq!(
            (admin["ip"].is_null(), &admin["user_agent"]),
            (true, &serde_json::json!("admin"))
        );
        let outside = Event::new(Kind::Logout, 5);
        assert_eq!((outside.ip, outside.user_agent), (None, None));
    }

    #[test]
    fn a_cursor_survives_its_round_trip_and_a_made_up_one_is_refused() {
        let event = Event::new(Kind::Logout, 1_700_000_000);
        let cursor = event.position();
        assert_eq!(Cursor::parse(&cursor.to_string()), Ok(cursor.clone()));
        assert!(!cursor.to_string().contains('#'), "opaque: {cursor}");
        for bad in [
            "",
            "x",
            "MTIz",
            &URL_SAFE_NO_PAD.encode("12#not-a-uuid"),
            &URL_SAFE_NO_PAD.encode(format!("-1#{}", event.id)),
        ] {
            assert_eq!(Cursor::parse(bad), Err(BadCursor), "{bad}");
        }
    }

    #[test]
    fn events_of_one_second_sort_in_the_order_they_happened() {
        let first = Event::new(Kind::LoginFailed, 7);
        let second = Event::new(Kind::LoginSucceeded, 7);
        assert!(first.position() < second.position());
    }

    #[test]
    fn retention_is_90_days_by_default_and_refuses_nonsense() {
        let days = |v: Option<&str>| retention_from_lookup(|_| v.map(str::to_owned));
        assert_eq!(days(None).unwrap(), DEFAULT_RETENTION);
        assert_eq!(days(Some("1")).unwrap(), 86_400);
        for bad in ["0", "3651", "ninety", "-1"] {
            assert!(days(Some(bad)).is_err(), "{bad}");
        }
    }
}
