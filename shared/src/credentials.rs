//! Usernames, passwords and email addresses, parsed once: a value of these types obeys the spec's rules.

use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// A username as registered: 3 to 64 ASCII letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Checks the spec's rules; the error message is safe to show the client.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let len = raw.chars().count();
        if !(3..=64).contains(&len) {
            return Err("username must be 3 to 64 characters");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("username may contain only letters, digits, '.', '_' and '-'");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The username as the user typed it at registration.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key uniqueness and lookups use.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// A password of 8 to 1024 characters (NIST SP 800-63B), any Unicode,
/// normalised to NFKC so that one password typed on two keyboards (`é` as one
/// code point or as `e` and a combining accent) is one password. Never printed.
pub struct Password {
    /// The NFKC form: what is counted, estimated and hashed.
    normalized: String,
    /// The form as it arrived, kept only where it differs from `normalized`:
    /// a hash stored before normalisation was of this form (`password::verify`).
    raw: Option<String>,
}

impl Password {
    /// Normalises to NFKC, then checks the length rule on the normalised form's
    /// code points; the error message is safe to show the client.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const LENGTH: &str = "password must be 8 to 1024 characters";
        // NFKC expands a code point to at most 18: bound the work before it.
        if raw.len() > 4 * 18 * 1024 {
            return Err(LENGTH);
        }
        let normalized: String = raw.nfkc().collect();
        if !(8..=1024).contains(&normalized.chars().count()) {
            return Err(LENGTH);
        }
        let raw = (normalized != raw).then(|| raw.to_owned());
        Ok(Self { normalized, raw })
    }

    /// The secret itself in its normalised form, for hashing and estimating only.
    pub fn expose(&self) -> &str {
        &self.normalized
    }

    /// The secret as it arrived, when that differs from `expose()`: only for
    /// checking a hash stored before passwords were normalised.
    pub fn expose_unnormalized(&self) -> Option<&str> {
        self.raw.as_deref()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An email address as given, in the form SES and mail servers take: a
/// local part of 1 to 64 characters (dot-separated atoms of letters, digits
/// and ``!#$%&'*+-/=?^_`{|}~``), `@`, and a domain of two or more labels of
/// letters, digits and inner hyphens (1 to 63 each); at most 254 characters
/// in all, ASCII only. Compared case-insensitively (`normalized`), stored and
/// mailed as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Checks the rules above; the error message is safe to show the client.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const INVALID: &str = "email must be an address like name@example.com";
        if raw.len() > 254 {
            return Err("email must be at most 254 characters");
        }
        let (local, domain) = raw.split_once('@').ok_or(INVALID)?;
        let atom_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
        let local_ok = local.len() <= 64
            && local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.bytes().all(atom_char));
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        let domain_ok = domain.split('.').count() >= 2 && domain.split('.').all(label_ok);
        if !local_ok || !domain_ok {
            return Err(INVALID);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The mailbox the address delivers to, as far as it can be told, for
    /// counting mails: lower case, without a `+tag`, and for Gmail without
    /// dots, so `Bob.Smith+1@gmail.com` and `bobsmith@googlemail.com` count
    /// as one inbox.
    pub fn mailbox(&self) -> String {
        let normalized = self.normalized();
        let (local, domain) = normalized.split_once('@').expect("parsed with one @");
        let local = local.split('+').next().unwrap_or(local);
        match domain {
            "gmail.com" | "googlemail.com" => format!("{}@gmail.com", local.replace('.', "")),
            _ => format!("{local}@{domain}"),
        }
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key uniqueness and lookups use.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

/// An account named by its username or by its verified email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Username(Username),
    Email(Email),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_are_emails_compared_without_case() {
        let e = Email::parse("Alice.Smith+auth@Example.COM").unwrap();
        assert_eq!(e.as_str(), "Alice.Smith+auth@Example.COM");
        assert_eq!(e.normalized(), "alice.smith+auth@example.com");
        assert!(Email::parse("a@b.co").is_ok());
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
        assert!(Email::parse("o'brien.x_y-z@mail-1.example.co.uk").is_ok());
        let longest = format!(
            "{}@{}.{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(55),
            "e"
        );
        assert_eq!(longest.len(), 254);
        assert!(Email::parse(&longest).is_ok());
        assert!(Email::parse(&format!("{longest}x")).is_err(), "255 characters");
    }

    #[test]
    fn tags_and_gmail_dots_count_as_one_mailbox() {
        let mailbox = |raw: &str| Email::parse(raw).unwrap().mailbox();
        assert_eq!(mailbox("Bob.Smith+1@Gmail.com"), "bobsmith@gmail.com");
        assert_eq!(mailbox("bobsmith@googlemail.com"), "bobsmith@gmail.com");
        assert_eq!(mailbox("Bob.Smith+news@Example.com"), "bob.smith@example.com");
        assert_eq!(mailbox("+x@example.com"), "@example.com");
    }

    #[test]
    fn anything_that_is_not_one_plain_address_is_refused() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long = format!("a@{}.com", "b".repeat(64));
        for raw in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@@example.com",
            "alice@example..com",
            "alice@.example.com",
            "alice@example.com.",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@exa_mple.com",
            "alice@-example.com",
            "alice@example-.com",
            "alice@example.c*m",
            "al ice@example.com",
            "alice@example.com\nBcc: x@y.z",
            "Alice <alice@example.com>",
            "a@example.com,b@example.com",
            "a\"b@example.com",
            "jösé@example.com",
            "alice@exämple.com",
            &long_local,
            &long,
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn usernames_of_3_and_64_characters_are_accepted() {
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn usernames_of_2_or_65_characters_or_empty_are_rejected() {
        for raw in ["", "ab", &"a".repeat(65)] {
            assert!(Username::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn usernames_with_spaces_symbols_or_non_ascii_letters_are_rejected() {
        for raw in ["al ice", "alice!", "bob@x", "jösé", "a\u{0}b", "../etc"] {
            assert!(Username::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn usernames_keep_their_case_but_normalize_to_lower_case() {
        let u = Username::parse("Alice.Smith_-9").unwrap();
        assert_eq!(u.as_str(), "Alice.Smith_-9");
        assert_eq!(u.normalized(), "alice.smith_-9");
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(Password::parse("ééééééé").is_err(), "7 characters, 14 bytes");
        assert!(Password::parse("éééééééé").is_ok());
        assert!(Password::parse(&"é".repeat(1024)).is_ok());
        assert!(Password::parse(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let p = Password::parse("hunter2-hunter2").unwrap();
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        let decomposed = Password::parse("cafe\u{301} au lait").unwrap();
        assert_eq!(format!("{decomposed:?}"), "Password(<redacted>)", "nor its raw form");
    }

    #[test]
    fn a_password_typed_in_nfd_is_the_same_password_as_in_nfc() {
        let nfc = Password::parse("caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e").unwrap();
        let nfd = Password::parse("cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e").unwrap();
        assert_eq!(nfc.expose(), nfd.expose());
        assert_eq!(nfc.expose_unnormalized(), None, "already normal");
        assert_eq!(
            nfd.expose_unnormalized(),
            Some("cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e")
        );
    }

    #[test]
    fn compatibility_forms_normalise_too() {
        let p = Password::parse("\u{fb01}le \u{ff21}\u{ff22}\u{ff23} \u{2460}\u{2461}").unwrap();
        assert_eq!(
            p.expose(),
            "file ABC 12",
            "ligature, full-width letters, circled digits"
        );
    }

    #[test]
    fn the_length_rule_counts_code_points_of_the_normalised_form() {
        // Eight code points as typed, four once the accents are composed.
        let nfd = "e\u{301}e\u{301}e\u{301}e\u{301}";
        assert_eq!(nfd.chars().count(), 8);
        assert!(Password::parse(nfd).is_err());
        assert!(Password::parse(&nfd.repeat(2)).is_ok(), "eight once composed");
        // 1024 composed characters typed as 2048 code points are within the rule.
        assert!(Password::parse(&"e\u{301}".repeat(1024)).is_ok());
        assert!(Password::parse(&"e\u{301}".repeat(1025)).is_err());
        // Four code points that expand to ten are long enough.
        assert!(Password::parse("\u{fb03}\u{fb03}\u{fb03}x").is_ok(), "ffiffiffix");
    }
}
