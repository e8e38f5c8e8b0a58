//! Passkeys (WebAuthn) as this service runs them: the relying party from
//! configuration, the limits, and the public id of a credential. The
//! ceremonies themselves are `webauthn-rs`'s (`service::passkeys`).

use crate::config::ConfigError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

/// How long a challenge may be answered, seconds.
pub const CHALLENGE_TTL: u64 = 300;

/// Passkeys one account may hold.
pub const MAX_PER_USER: u32 = 20;

/// The name of a passkey registered without one.
pub const DEFAULT_NAME: &str = "Passkey";

/// The longest name a passkey may be given, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The relying party: who the browser makes credentials for (`WEBAUTHN_RP_ID`)
/// and the one origin it accepts answers from (`WEBAUTHN_ORIGIN`).
pub struct RelyingParty(Webauthn);

impl RelyingParty {
    /// Reads `WEBAUTHN_RP_ID` (a domain, never an IP address: browsers
    /// refuse those) and `WEBAUTHN_ORIGIN` (`https://` on that domain or a
    /// subdomain of it; `http://` only for `localhost`) through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let rp_id = lookup("WEBAUTHN_RP_ID")
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(
                "WEBAUTHN_RP_ID",
                "the relying party id, the domain passkeys belong to (locally `localhost`)",
            ))?;
        let raw_origin = lookup("WEBAUTHN_ORIGIN")
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(
                "WEBAUTHN_ORIGIN",
                "the origin of the pages that use passkeys (locally `http://localhost:8090`)",
            ))?;
        let rp_id = rp_id.trim();
        let invalid_id = |why: &str| ConfigError::Invalid("WEBAUTHN_RP_ID", format!("{why}, got {rp_id:?}"));
        if rp_id.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok() {
            return Err(invalid_id(
                "an IP address cannot be a relying party id; use a domain name (locally `localhost`)",
            ));
        }
        let invalid_origin = |why: &str| ConfigError::Invalid("WEBAUTHN_ORIGIN", format!("{why}, got {raw_origin:?}"));
        let origin = Url::parse(raw_origin.trim())
            .map_err(|_| invalid_origin("expected a URL such as https://app.example.com"))?;
        let host = origin.host_str().unwrap_or_default();
        match origin.scheme() {
            "https" => {}
            "http" if host == "localhost" => {}
            _ => return Err(invalid_origin("expected https:// (http:// only on localhost)")),
        }
        if origin.path() != "/" || origin.query().is_some() || origin.fragment().is_some() {
            return Err(invalid_origin("expected an origin: scheme, host and port only"));
        }
        if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
            return Err(invalid_origin(&format!(
                "its host must be {rp_id} or a subdomain of it"
            )));
        }
        let webauthn = WebauthnBuilder::new(rp_id, &origin)
            .and_then(|b| b.rp_name(rp_id).build())
            .map_err(|e| invalid_origin(&format!("refused by webauthn-rs ({e})")))?;
        Ok(Self(webauthn))
    }

    /// `WEBAUTHN_RP_ID` and `WEBAUTHN_ORIGIN` from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn webauthn(&self) -> &Webauthn {
        &self.0
    }
}

/// The public id of a credential: base64url of the SHA-256 of its WebAuthn
/// credential id (43 characters whatever its length, up to 1023 bytes).
pub fn passkey_id(credential_id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(credential_id))
}

/// A passkey's name as its owner gave it: trimmed, 1 to `MAX_NAME_CHARS`
/// characters, no control characters; `DEFAULT_NAME` when none is given.
pub fn passkey_name(given: Option<&str>) -> Result<String, &'static str> {
    let Some(name) = given.map(str::trim) else {
        return Ok(DEFAULT_NAME.to_owned());
    };
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err("name must be 1 to 64 characters, without control characters");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rp_id: &str, origin: &str) -> Result<RelyingParty, ConfigError> {
        let (rp_id, origin) = (rp_id.to_owned(), origin.to_owned());
        RelyingParty::from_lookup(move |name| match name {
            "WEBAUTHN_RP_ID" => Some(rp_id.clone()),
            "WEBAUTHN_ORIGIN" => Some(origin.clone()),
            _ => None,
        })
    }

    #[test]
    fn localhost_over_http_and_a_domain_over_https_are_accepted() {
        assert!(settings("localhost", "http://localhost:8090").is_ok());
        assert!(settings("example.com", "https://example.com").is_ok());
        assert!(settings("example.com", "https://app.example.com").is_ok());
    }

    #[test]
    fn an_ip_address_a_foreign_origin_or_plain_http_is_a_startup_error() {
        for (rp_id, origin) in [
            ("127.0.0.1", "http://localhost:8090"),
            ("::1", "http://localhost:8090"),
            ("example.com", "https://example.org"),
            ("example.com", "https://badexample.com"),
            ("example.com", "http://example.com"),
            ("example.com", "https://example.com/login"),
            ("example.com", "https://example.com/?next=1"),
            ("example.com", "https://example.com/#top"),
            ("Example.com", "https://example.com"),
            ("example.com:443", "https://example.com"),
            ("localhost", "not a url"),
        ] {
            let error = settings(rp_id, origin).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("WEBAUTHN_")),
                "{rp_id} {origin}: {error:?}"
            );
        }
    }

    #[test]
    fn both_settings_are_required() {
        let error = RelyingParty::from_lookup(|_| None).err().unwrap().to_string();
        assert!(error.contains("WEBAUTHN_RP_ID is not set"), "{error}");
        let error = RelyingParty::from_lookup(|name| (name == "WEBAUTHN_RP_ID").then(|| "localhost".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("WEBAUTHN_ORIGIN is not set"), "{error}");
    }

    #[test]
    fn a_passkey_id_is_the_digest_of_the_credential_id() {
        assert_eq!(passkey_id(b"abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert_ne!(passkey_id(b"abc"), passkey_id(b"abd"));
        assert_eq!(passkey_id(&[7; 1023]).len(), 43);
    }

    #[test]
    fn names_are_trimmed_bounded_and_default() {
        assert_eq!(passkey_name(None).unwrap(), DEFAULT_NAME);
        assert_eq!(passkey_name(Some("  Laptop ")).unwrap(), "Laptop");
        assert_eq!(passkey_name(Some(&"é".repeat(64))).unwrap().chars().count(), 64);
        assert!(passkey_name(Some(&"é".repeat(65))).is_err());
        assert!(passkey_name(Some("  ")).is_err());
        assert!(passkey_name(Some("a\u{7}b")).is_err());
    }
}
