//! Mail: the two messages the service sends (a verification code, a reset
//! link), the secrets in them, and the sender behind a narrow trait: SES in
//! production (`mail::ses`), a recorder in handler unit tests.
//!
//! A code or a token is never logged: `Mail` prints without its text.

use crate::config::{ConfigError, seconds};
use crate::credentials::Email;
use rsa::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::future::Future;

#[cfg(feature = "email")]
pub mod ses;

/// At most this many mails an hour to one account, and to one address.
pub const MAILS_PER_HOUR: u32 = 3;
/// Wrong codes after which a verification code is void.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// One message: plain text, to one recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl std::fmt::Debug for Mail {
    /// Without the text, which holds a code or a link with a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The mail could not be handed to the sender: unreachable, throttling,
/// refused (an unverified identity, the SES sandbox).
#[derive(Debug, thiserror::Error)]
#[error("mail not sent: {0}")]
pub struct MailError(pub String);

/// Sends mail.
pub trait Mailer: Send + Sync {
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<(), MailError>> + Send;
}

/// What mail needs from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// `EMAIL_FROM`: the sender, an SES identity.
    pub from: String,
    /// `APP_URL`: where reset links point, without a trailing slash.
    pub app_url: String,
    /// `EMAIL_CODE_TTL`: how long a verification code lives, seconds.
    pub code_ttl: u64,
    /// `PASSWORD_RESET_TTL`: how long a reset token lives, seconds.
    pub reset_ttl: u64,
}

impl MailSettings {
    /// Reads the settings through `lookup`. `EMAIL_FROM` is required, and
    /// `APP_URL` too when `links` (the function sends reset links).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, links: bool) -> Result<Self, ConfigError> {
        let from = lookup("EMAIL_FROM")
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(
                "EMAIL_FROM",
                "set it to the sender address, an SES identity you have verified",
            ))?;
        Email::parse(from.trim()).map_err(|rule| ConfigError::Invalid("EMAIL_FROM", rule.to_owned()))?;
        let app_url = match lookup("APP_URL").filter(|v| !v.trim().is_empty()) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                url.trim().trim_end_matches('/').to_owned()
            }
            Some(url) => {
                return Err(ConfigError::Invalid(
                    "APP_URL",
                    format!("expected an http(s) URL, got {url:?}"),
                ));
            }
            None if links => {
                return Err(ConfigError::Missing(
                    "APP_URL",
                    "set it to the web app's base URL; reset links point to <APP_URL>/reset-password",
                ));
            }
            None => String::new(),
        };
        Ok(Self {
            from: from.trim().to_owned(),
            app_url,
            code_ttl: seconds(&lookup, "EMAIL_CODE_TTL", 15 * 60, 60, 24 * 3600)?,
            reset_ttl: seconds(&lookup, "PASSWORD_RESET_TTL", 15 * 60, 60, 24 * 3600)?,
        })
    }

    /// From the process environment.
    pub fn from_env(links: bool) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), links)
    }

    /// The verification mail for `code`, to `to`: the code is its only run of six digits.
    pub fn verification(&self, to: &Email, code: &str) -> Mail {
        Mail {
            to: to.as_str().to_owned(),
            subject: "Your verification code".into(),
            text: format!(
                "Your verification code is {code}.\n\nEnter it where you added this address. It expires in {} minutes \
                 and works once. If you did not ask for it, ignore this mail.\n",
                self.code_ttl / 60
            ),
        }
    }

    /// The notice to the owner of `to` that someone registered with it: the
    /// registration is answered as any other, so the address's owner, not
    /// the client, learns that it is taken.
    pub fn address_taken(&self, to: &Email) -> Mail {
        Mail {
            to: to.as_str().to_owned(),
            subject: "Someone registered with your address".into(),
            text: "Someone just registered a new account giving this address, which belongs to your account.                    Nothing changed on your account, and the new one cannot use this address. If it was you,                    log in to your account instead (or reset its password); otherwise ignore this mail.\n"
                .into(),
        }
    }

    /// The reset mail for `token`, to `to`: a link with the token in its fragment.
    pub fn reset(&self, to: &str, token: &str) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: "Reset your password".into(),
            text: format!(
                "Someone asked to reset the password of your account. To choose a new one, open:\n\n\
                 {}/reset-password#token={token}\n\nThe link expires in {} minutes and works once; using it \
                 logs you out everywhere. If you did not ask for it, ignore this mail: your password stays as it is.\n",
                self.app_url,
                self.reset_ttl / 60
            ),
        }
    }
}

/// A new verification code: six decimal digits, uniformly drawn.
pub fn new_code() -> String {
    loop {
        if let Some(code) = code_from(OsRng.next_u32()) {
            return code;
        }
    }
}

/// The largest multiple of a million that fits in a `u32`: draws at or
/// above it are refused, so every code is equally likely.
const CODE_DRAW_LIMIT: u32 = u32::MAX - u32::MAX % 1_000_000;

/// The code a random draw gives, or `None` for a draw to refuse.
fn code_from(draw: u32) -> Option<String> {
    (draw < CODE_DRAW_LIMIT).then(|| format!("{:06}", draw % 1_000_000))
}

/// A new reset token: 256 random bits, base64url (43 characters).
pub fn new_reset_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a verification code: a digest bound to the user, so
/// the table never holds the code itself. (Six digits cannot resist a
/// search of the digest; their protection is the short life and the five
/// attempts.)
pub fn code_hash(user_id: &str, code: &str) -> String {
    hex(&Sha256::new()
        .chain_update(user_id)
        .chain_update([0])
        .chain_update(code)
        .finalize())
}

/// What is stored of a reset token, and its key: SHA-256 of 256 random bits.
pub fn reset_token_hash(token: &str) -> String {
    hex(&Sha256::digest(token))
}

/// A digest of a password hash, stored with a reset token: a token is good
/// only while the password is the one it was issued against.
pub fn password_fingerprint(password_hash: &str) -> String {
    hex(&Sha256::digest(password_hash))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Records every mail instead of sending it, or refuses all of them; for tests.
#[derive(Default)]
pub struct MemoryMailer {
    sent: std::sync::Mutex<Vec<Mail>>,
    /// When set, every send fails as if SES were unreachable.
    pub unavailable: bool,
}

impl MemoryMailer {
    /// A mailer that fails every send.
    pub fn unreachable() -> Self {
        Self {
            unavailable: true,
            ..Self::default()
        }
    }

    /// The mails sent so far.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if self.unavailable {
            return Err(MailError("configured unavailable".into()));
        }
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).push(mail.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lookup;

    fn settings() -> MailSettings {
        MailSettings::from_lookup(
            lookup(&[
                ("EMAIL_FROM", "no-reply@example.com"),
                ("APP_URL", "https://app.example.com/"),
            ]),
            true,
        )
        .unwrap()
    }

    /// Every run of six or more digits in `text`.
    fn digit_runs(text: &str) -> Vec<&str> {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|r| r.len() >= 6)
            .collect()
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..50).map(|_| new_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.len() > 45, "{codes:?}");
    }

    #[test]
    fn every_code_is_equally_likely_draws_past_the_last_whole_million_are_refused() {
        const { assert!(CODE_DRAW_LIMIT.is_multiple_of(1_000_000) && u32::MAX - CODE_DRAW_LIMIT < 1_000_000) };
        assert_eq!(code_from(0).as_deref(), Some("000000"));
        assert_eq!(code_from(1_000_042).as_deref(), Some("000042"));
        assert_eq!(code_from(CODE_DRAW_LIMIT - 1).as_deref(), Some("999999"));
        assert_eq!(code_from(CODE_DRAW_LIMIT), None);
        assert_eq!(code_from(u32::MAX), None);
    }

    #[test]
    fn reset_tokens_carry_256_random_bits() {
        let (a, b) = (new_reset_token(), new_reset_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_ne!(reset_token_hash(&a), reset_token_hash(&b));
    }

    #[test]
    fn the_verification_mail_holds_the_code_as_its_only_run_of_six_digits() {
        let mail = settings().verification(&Email::parse("Bob@Example.com").unwrap(), "012345");
        assert_eq!(mail.to, "Bob@Example.com");
        assert_eq!(digit_runs(&mail.text), ["012345"]);
        assert!(mail.text.contains("15 minutes"), "{}", mail.text);
    }

    #[test]
    fn the_reset_mail_holds_the_link_with_the_token_in_its_fragment() {
        let mail = settings().reset("bob@example.com", "tok_en-123");
        assert!(
            mail.text
                .contains("https://app.example.com/reset-password#token=tok_en-123\n"),
            "{}",
            mail.text
        );
    }

    #[test]
    fn a_mail_prints_without_its_secret() {
        let mail = settings().reset("bob@example.com", "SECRET-TOKEN");
        assert_eq!(format!("{mail:?}"), r#"Mail { subject: "Reset your password", .. }"#);
    }

    #[test]
    fn code_digests_are_bound_to_the_user() {
        assert_ne!(code_hash("u-1", "123456"), code_hash("u-2", "123456"));
        assert_eq!(code_hash("u-1", "123456"), code_hash("u-1", "123456"));
        assert_ne!(code_hash("u-1", "123456"), code_hash("u-1", "123457"));
    }

    #[test]
    fn the_sender_is_required_and_must_be_an_address() {
        let err = MailSettings::from_lookup(lookup(&[]), false).unwrap_err();
        assert!(err.to_string().contains("EMAIL_FROM"), "{err}");
        let err = MailSettings::from_lookup(lookup(&[("EMAIL_FROM", "nobody")]), false).unwrap_err();
        assert!(err.to_string().contains("EMAIL_FROM"), "{err}");
    }

    #[test]
    fn reset_links_need_an_http_app_url() {
        let from = ("EMAIL_FROM", "no-reply@example.com");
        let err = MailSettings::from_lookup(lookup(&[from]), true).unwrap_err();
        assert!(err.to_string().contains("APP_URL"), "{err}");
        let err = MailSettings::from_lookup(lookup(&[from, ("APP_URL", "app.example.com")]), true).unwrap_err();
        assert!(err.to_string().contains("APP_URL"), "{err}");
        assert!(MailSettings::from_lookup(lookup(&[from]), false).is_ok());
    }

    #[test]
    fn lifetimes_default_to_15_minutes_and_are_bounded() {
        let s = settings();
        assert_eq!(
            (s.code_ttl, s.reset_ttl, s.app_url.as_str()),
            (900, 900, "https://app.example.com")
        );
        let err = MailSettings::from_lookup(lookup(&[("EMAIL_FROM", "a@b.co"), ("PASSWORD_RESET_TTL", "5")]), false)
            .unwrap_err();
        assert!(err.to_string().contains("PASSWORD_RESET_TTL"), "{err}");
        let with = |name, value| MailSettings::from_lookup(lookup(&[("EMAIL_FROM", "a@b.co"), (name, value)]), false);
        for name in ["EMAIL_CODE_TTL", "PASSWORD_RESET_TTL"] {
            assert!(with(name, "86400").is_ok(), "a day at most");
            assert!(with(name, "86401").is_err(), "{name}");
            assert!(with(name, "60").is_ok());
            assert!(with(name, "59").is_err(), "{name}");
        }
    }
}
