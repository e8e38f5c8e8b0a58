//! The TOTP second factor as data (RFC 6238 through `totp-rs`: SHA-1, six
//! digits, 30-second steps, one step of drift either way) and its recovery
//! codes. Pure: the clock is passed in, the store keeps the factor.
//!
//! Neither a secret nor a code is ever logged: `TotpSecret` prints without
//! its bytes.

use crate::config::ConfigError;
use rsa::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Bytes of a new secret: 160 bits, the size of an HMAC-SHA-1 key (RFC 4226 §4).
pub const SECRET_BYTES: usize = 20;
/// Seconds a TOTP step lasts.
pub const STEP: u64 = 30;
/// Steps of clock drift accepted on either side of the current one.
const SKEW: u16 = 1;
/// How long an enrollment waits for its first code, seconds.
pub const PENDING_TTL: u64 = 15 * 60;
/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;
/// Codes tried with one `mfa_token` before it is void.
pub const MAX_TRIES: u32 = 5;
/// Characters of a recovery code: Crockford's base32 in lowercase (no `i l o
/// u`; a typed `o` reads as `0`, `i` and `l` as `1`), 5 bits each.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters of a recovery code (without its dashes): 80 random bits.
const RECOVERY_LEN: usize = 16;

/// A TOTP shared secret. Printed without its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A new secret of `SECRET_BYTES` random bytes.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret as stored and shown: RFC 4648 base32 without padding.
    pub fn base32(&self) -> String {
        Secret::new(self.0.clone().into_boxed_slice()).to_base32()
    }

    /// The secret of its base32 form, if it is one of at least 128 bits.
    pub fn from_base32(encoded: &str) -> Option<Self> {
        let bytes = Secret::try_from_base32(encoded).ok()?.as_bytes().to_vec();
        (bytes.len() >= 16).then_some(Self(bytes))
    }

    fn totp(&self, issuer: Option<&str>, account: &str) -> Result<Totp, totp_rs::TotpError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(SKEW)
            .with_step_duration(STEP)
            .with_secret(Secret::new(self.0.clone().into_boxed_slice()))
            .with_issuer(issuer)
            .with_account_name(account)
            .build()
    }

    /// The step (`time / 30`) whose code `code` is, among the current step at
    /// `now` and one either side; `None` for any other code, or anything that
    /// is not six digits.
    pub fn matching_step(&self, code: &str, now: u64) -> Option<u64> {
        self.totp(None, "").ok()?.check(code, now)
    }

    /// The code of the step of `at`: what an authenticator app shows then.
    pub fn code_at(&self, at: u64) -> String {
        self.totp(None, "")
            .expect("a secret of at least 128 bits builds")
            .generate(at)
            .to_string()
    }

    /// The `otpauth://` URI an authenticator app scans: `issuer`, the
    /// account's name, the secret and the parameters.
    pub fn uri(&self, issuer: &TotpIssuer, account: &str) -> String {
        self.totp(Some(&issuer.0), account)
            .and_then(|totp| totp.to_url())
            .expect("the issuer is checked at start-up and a username holds no ':'")
    }
}

/// The issuer an authenticator app shows beside the account (`TOTP_ISSUER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpIssuer(String);

impl TotpIssuer {
    /// The default name, when `TOTP_ISSUER` is unset.
    pub const DEFAULT: &str = "lambda-jwt-auth";

    /// `TOTP_ISSUER` read through `lookup`: 1 to 64 characters, no `:` (it
    /// separates the issuer from the account in the URI's label).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw = lookup("TOTP_ISSUER").unwrap_or_else(|| Self::DEFAULT.to_owned());
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 64 || name.contains(':') || name.chars().any(char::is_control) {
            return Err(ConfigError::Invalid(
                "TOTP_ISSUER",
                format!("expected a name of 1 to 64 characters without ':', got {raw:?}"),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// `TOTP_ISSUER` from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// A new set of `RECOVERY_CODES` codes, each `xxxx-xxxx-xxxx-xxxx`.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect()
}

fn new_recovery_code() -> String {
    let mut bytes = [0u8; RECOVERY_LEN];
    OsRng.fill_bytes(&mut bytes);
    // The low 5 bits of a random byte: every character equally likely.
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| RECOVERY_ALPHABET[(b & 31) as usize] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// What is stored of a recovery code of user `user_id`: SHA-256 of the
/// code as typed in any case, with or without its dashes and spaces; `None`
/// when the input cannot be a recovery code at all.
pub fn recovery_code_hash(user_id: &str, code: &str) -> Option<String> {
    let normalized: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect();
    let valid = normalized.len() == RECOVERY_LEN && normalized.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
    valid.then(|| {
        Sha256::new()
            .chain_update(b"recovery\0")
            .chain_update(user_id)
            .chain_update([0])
            .chain_update(&normalized)
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret, "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn the_codes_are_rfc_6238s_test_vectors_cut_to_six_digits() {
        // RFC 6238 appendix B (8 digits there): 94287082, 07081804, 14050471, 89005924.
        for (time, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
        ] {
            assert_eq!(rfc_secret().code_at(time), code, "at {time}");
            assert!(rfc_secret().matching_step(code, time).is_some());
        }
    }

    #[test]
    fn the_codes_of_the_previous_and_next_step_are_accepted_and_two_steps_away_refused() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_015; // mid-step: step 60_000_000
        let step = now / STEP;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = (step as i64 + offset) as u64 * STEP;
            let code = secret.code_at(at);
            let found = secret.matching_step(&code, now);
            if accepted {
                assert_eq!(found, Some(at / STEP), "offset {offset}");
            } else {
                // A far code may equal a near one by chance (1 in a million each): only then found.
                let near = (-1..=1).any(|d| secret.code_at(((step as i64 + d) as u64) * STEP) == code);
                assert_eq!(found.is_some(), near, "offset {offset}");
            }
        }
    }

    #[test]
    fn the_window_edges_are_exact_to_the_second() {
        let secret = TotpSecret::generate();
        let step = 60_000_000u64;
        let code = secret.code_at(step * STEP);
        // Accepted from the last second of the step before to the first... of two steps later.
        let unique = (step - 3..=step + 3)
            .filter(|s| *s != step)
            .all(|s| secret.code_at(s * STEP) != code);
        if unique {
            assert_eq!(secret.matching_step(&code, (step - 1) * STEP), Some(step));
            assert_eq!(secret.matching_step(&code, (step + 2) * STEP - 1), Some(step));
            assert_eq!(secret.matching_step(&code, (step - 1) * STEP - 1), None);
            assert_eq!(secret.matching_step(&code, (step + 2) * STEP), None);
        }
    }

    #[test]
    fn anything_but_six_digits_matches_nothing() {
        let secret = rfc_secret();
        let code = secret.code_at(59);
        for bad in [
            "",
            "28708",
            "2870820",
            "+87082",
            " 287082",
            "28708a",
            "２８７０８２",
            &format!("{code}\n"),
        ] {
            assert_eq!(secret.matching_step(bad, 59), None, "{bad:?}");
        }
    }

    #[test]
    fn a_new_secret_is_160_random_bits_in_32_base32_characters_and_reads_back() {
        let (a, b) = (TotpSecret::generate(), TotpSecret::generate());
        assert_ne!(a, b);
        let encoded = a.base32();
        assert_eq!(encoded.len(), 32);
        assert!(
            encoded
                .bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
        assert_eq!(TotpSecret::from_base32(&encoded), Some(a));
        assert_eq!(TotpSecret::from_base32("not base32!"), None);
        assert_eq!(TotpSecret::from_base32("GEZDGNBV"), None, "40 bits is too short");
    }

    #[test]
    fn a_secret_never_prints() {
        let secret = TotpSecret::generate();
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
    }

    #[test]
    fn the_uri_names_the_issuer_the_account_and_the_parameters() {
        let issuer = TotpIssuer::from_lookup(|_| Some("Acme Corp".into())).unwrap();
        let secret = rfc_secret();
        let uri = secret.uri(&issuer, "alice");
        assert!(uri.starts_with("otpauth://totp/Acme%20Corp:alice?"), "{uri}");
        for part in [format!("secret={}", secret.base32()), "issuer=Acme%20Corp".into()] {
            assert!(uri.contains(&part), "{uri} lacks {part}");
        }
        // SHA-1, six digits and 30 s are the URI format's defaults: left out, as apps expect.
        for default in ["digits=", "algorithm=", "period="] {
            assert!(!uri.contains(default), "{uri}");
        }
    }

    #[test]
    fn an_issuer_of_64_characters_is_accepted() {
        let name = "x".repeat(64);
        assert_eq!(TotpIssuer::from_lookup(|_| Some(name.clone())).unwrap().0, name);
    }

    #[test]
    fn the_issuer_defaults_and_refuses_a_colon_or_nothing() {
        assert_eq!(TotpIssuer::from_lookup(|_| None).unwrap().0, TotpIssuer::DEFAULT);
        for bad in ["", "  ", "a:b", &"x".repeat(65)] {
            let err = TotpIssuer::from_lookup(|_| Some(bad.into())).unwrap_err();
            assert!(err.to_string().contains("TOTP_ISSUER"), "{err}");
        }
    }

    #[test]
    fn recovery_codes_are_ten_distinct_80_bit_codes_in_four_groups() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        for code in &codes {
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 4, "{code}");
            assert!(groups.iter().all(|g| g.len() == 4), "{code}");
            assert!(recovery_code_hash("u-1", code).is_some(), "{code}");
        }
    }

    #[test]
    fn a_recovery_code_hashes_the_same_in_any_case_and_spacing_and_per_user() {
        let code = "abcd-efgh-jk01-pqrs";
        let hash = recovery_code_hash("u-1", code).unwrap();
        assert_eq!(hash.len(), 64);
        for typed in [
            "ABCD-EFGH-JK01-PQRS",
            "abcdefghjk01pqrs",
            " abcd efgh jkoi pqrs ",
            "abcd-efgh-jkOl-pqrs",
        ] {
            assert_eq!(
                recovery_code_hash("u-1", typed).as_deref(),
                Some(hash.as_str()),
                "{typed}"
            );
        }
        assert_ne!(recovery_code_hash("u-2", code).unwrap(), hash);
        assert_ne!(recovery_code_hash("u-1", "abcd-efgh-jk01-pqrt").unwrap(), hash);
    }

    #[test]
    fn input_that_cannot_be_a_recovery_code_has_no_hash() {
        for bad in [
            "",
            "abcd-efgh-jkmn-pqr",
            "abcd-efgh-jkmn-pqrst",
            "abcd-efgh-jkmn-pqru",
            "abcd-efgh-jkmn-pqré",
        ] {
            assert_eq!(recovery_code_hash("u-1", bad), None, "{bad:?}");
        }
    }
}
