//! Usernames and passwords, parsed once: a value of these types obeys the spec's rules.

use std::fmt;

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

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password of 8 to 1024 characters (NIST SP 800-63B), any Unicode. Never printed.
pub struct Password(String);

impl Password {
    /// Checks the length rule; the error message is safe to show the client.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if !(8..=1024).contains(&raw.chars().count()) {
            return Err("password must be 8 to 1024 characters");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret itself, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
