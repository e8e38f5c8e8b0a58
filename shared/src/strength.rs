//! How guessable a new password is, by Dropbox's estimator (zxcvbn, its
//! dictionaries built in: no network): refused below `PASSWORD_MIN_SCORE`
//! (`400 weak_password`, the estimator's feedback as the message). Checked
//! where a password is set (register, change, reset), never at login, so a
//! stricter setting locks nobody out.
//!
//! The estimator's time grows with the square of the length, times the
//! number of "l33t" readings it tries (`4` or `@` for `a`, `(` `{` `[` `<`
//! for `c`, ...), which multiply with each distinct symbol: measured in
//! release, 0.1 ms for 20 typical characters and 2.9 ms for 64, but 350 ms
//! for 64 characters made only of those symbols and 500 ms for 100 (zxcvbn
//! itself stops at 100): a register could be made to burn half a second. So it reads the longest prefix (at most 100
//! characters, at least 16) whose length squared times its l33t readings
//! stays within a budget: all of a password of words and a few symbols, the
//! first 60 or more characters of one mixing letters and digits, the first
//! 12 to 16 of a string of symbols (which already score 4). A password whose
//! estimated prefix is hard to guess is no easier with more characters after it.
//! With it the slowest check measured is 2.3 ms (a 1024-character
//! passphrase; `make bench`, shared/benches/tokens.rs, `strength/*`), plus
//! about 10 ms once per instance for the dictionaries (`prepare`).

use crate::config::{ConfigError, whole_number};
use crate::credentials::Password;

/// The lowest score a new password may have unless `PASSWORD_MIN_SCORE` says otherwise:
/// zxcvbn's "safely unguessable" (about 10^10 guesses, an offline attack on a slow hash).
pub const DEFAULT_MIN_SCORE: u8 = 3;

/// Said when the estimator refuses a password but gives no advice of its own
/// (it gives none for a score of 3, which a minimum of 4 refuses).
/// The most characters the estimator reads (its own limit too).
const MAX_ESTIMATED: usize = 100;

/// The fewest it reads of a password that long, whatever the budget.
const MIN_ESTIMATED: usize = 12;

/// Length squared times l33t readings: all of a 100-character password with
/// one reading, 63 characters with 4 (2.3 ms in release).
const BUDGET: usize = 16_000;

const FALLBACK: &str = "This password is too easy to guess. Add another word or two; uncommon words are better.";

/// The rule a new password must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrengthPolicy {
    /// zxcvbn's score, 0 (accept anything the length rule does) to 4.
    pub min_score: u8,
}

/// A password the estimator scores below the minimum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Weak {
    /// The estimator's score, 0 to 4.
    pub score: u8,
    /// The estimator's warning and suggestions as one text, safe to show the client.
    pub message: String,
}

impl Default for StrengthPolicy {
    fn default() -> Self {
        Self {
            min_score: DEFAULT_MIN_SCORE,
        }
    }
}

impl StrengthPolicy {
    /// The policy from `PASSWORD_MIN_SCORE` (0 to 4, default 3).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The policy through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let min_score = whole_number(
            lookup,
            "PASSWORD_MIN_SCORE",
            "zxcvbn score",
            DEFAULT_MIN_SCORE.into(),
            0..=4,
        )?;
        Ok(Self {
            min_score: min_score as u8,
        })
    }

    /// Refuses `password` when it scores below the minimum, `user_inputs`
    /// (see [`user_inputs`]) counting as words an attacker would try first.
    pub fn check(&self, password: &Password, user_inputs: &[&str]) -> Result<(), Weak> {
        if self.min_score == 0 {
            return Ok(());
        }
        let estimate = zxcvbn::zxcvbn(estimated_part(password.expose()), user_inputs);
        let score = u8::from(estimate.score());
        if score >= self.min_score {
            return Ok(());
        }
        let message = estimate
            .feedback()
            .map(|feedback| {
                let warning = feedback.warning().map(|w| w.to_string());
                let suggestions = feedback.suggestions().iter().map(|s| s.to_string());
                warning.into_iter().chain(suggestions).collect::<Vec<_>>().join(" ")
            })
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| FALLBACK.to_owned());
        Err(Weak { score, message })
    }
}

/// Starts building the estimator's dictionaries (about 10 ms, once per
/// instance) on a thread of its own, called at init: init does not wait for
/// them, a request that checks no password never does, and the first check
/// waits only for what is left (zxcvbn builds them once, behind a lock: a
/// check meanwhile waits for them, it never builds them twice). A thread
/// that cannot start costs nothing: the first check then builds them.
pub fn prepare() {
    let _ = std::thread::Builder::new()
        .name("zxcvbn-dictionaries".into())
        .spawn(|| zxcvbn::zxcvbn("prepare the dictionaries", &[]));
}

/// The prefix of `password` the estimator reads: see the module's doc.
fn estimated_part(password: &str) -> &str {
    let ends: Vec<usize> = password
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take(MAX_ESTIMATED)
        .collect();
    let mut length = ends.len();
    while length > MIN_ESTIMATED && l33t_readings(&password[..ends[length - 1]]) * length * length > BUDGET {
        length -= 1;
    }
    match length {
        0 => password,
        n => &password[..ends[n - 1]],
    }
}

/// How many l33t readings of `text` zxcvbn tries: for each letter of its
/// table, the number of that letter's stand-ins present, multiplied.
fn l33t_readings(text: &str) -> usize {
    const TABLE: [&str; 12] = ["4@", "8", "({[<", "3", "69", "1!|", "1|7", "0", "$5", "+7", "%", "2"];
    TABLE
        .iter()
        .map(|standins| standins.chars().filter(|c| text.contains(*c)).count().max(1))
        .product()
}

/// The words of an account an attacker tries first: its username, and its
/// email with the email's local part and that part's pieces (`bob.smith` →
/// `bob`, `smith`), so that `bob2026!` is weak for `bob` or `bob.smith@…`.
pub fn user_inputs(username: &str, email: Option<&str>) -> Vec<String> {
    let mut inputs = vec![username.to_owned()];
    if let Some(email) = email {
        inputs.push(email.to_owned());
        if let Some((local, _)) = email.split_once('@') {
            inputs.push(local.to_owned());
            let pieces = local.split(|c: char| !c.is_ascii_alphanumeric());
            inputs.extend(pieces.filter(|p| p.len() >= 3 && *p != local).map(str::to_owned));
        }
    }
    inputs.sort();
    inputs.dedup();
    inputs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lookup;

    fn pw(raw: &str) -> Password {
        Password::parse(raw).unwrap()
    }

    fn score(raw: &str, inputs: &[&str]) -> u8 {
        zxcvbn::zxcvbn(pw(raw).expose(), inputs).score().into()
    }

    #[test]
    fn the_minimum_score_is_3_unless_configured() {
        assert_eq!(StrengthPolicy::from_lookup(lookup(&[])).unwrap().min_score, 3);
        let zero = StrengthPolicy::from_lookup(lookup(&[("PASSWORD_MIN_SCORE", "0")])).unwrap();
        assert_eq!(zero.min_score, 0);
    }

    #[test]
    fn a_minimum_score_outside_0_to_4_is_a_startup_error() {
        for value in ["5", "-1", "three", "3.5"] {
            let err = StrengthPolicy::from_lookup(lookup(&[("PASSWORD_MIN_SCORE", value)])).unwrap_err();
            assert!(err.to_string().contains("PASSWORD_MIN_SCORE"), "{err}");
        }
    }

    #[test]
    fn password123_is_weak_with_the_estimators_advice() {
        let weak = StrengthPolicy::default().check(&pw("password123"), &[]).unwrap_err();
        assert_eq!(weak.score, 0);
        assert!(weak.message.contains("common password"), "{}", weak.message);
    }

    fn inputs_of(username: &str, email: &str) -> Vec<String> {
        user_inputs(username, Some(email))
    }

    fn guesses_log10(raw: &str, inputs: &[String]) -> f64 {
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        zxcvbn::zxcvbn(pw(raw).expose(), &inputs).guesses_log10()
    }

    #[test]
    fn bob2026_is_weak_for_bob_and_his_name_makes_it_weaker() {
        let bob = inputs_of("bob", "bob@example.com");
        let bob_refs: Vec<&str> = bob.iter().map(String::as_str).collect();
        let weak = StrengthPolicy::default().check(&pw("bob2026!"), &bob_refs).unwrap_err();
        assert_eq!(weak.score, 2);
        assert!(weak.message.contains("Add another word"), "{}", weak.message);
        // "bob" is a common name anyway (2 for a stranger too); as the user's own name it is guessed sooner.
        assert!(guesses_log10("bob2026!", &bob) < guesses_log10("bob2026!", &[]));
    }

    #[test]
    fn a_password_built_on_the_users_own_rare_name_is_weak_for_that_user_only() {
        let policy = StrengthPolicy::default();
        assert_eq!(score("zorblax2026!", &[]), 4, "strong for a stranger");
        for inputs in [
            inputs_of("zorblax", "z@example.com"),
            inputs_of("someone", "zorblax@example.com"),
        ] {
            let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            assert!(policy.check(&pw("zorblax2026!"), &refs).is_err(), "{inputs:?}");
        }
    }

    #[test]
    fn the_email_local_part_and_its_pieces_count_as_user_inputs() {
        assert_eq!(
            user_inputs("bsmith", Some("Bob.Smith+x@example.com")),
            ["Bob", "Bob.Smith+x", "Bob.Smith+x@example.com", "Smith", "bsmith"]
        );
        assert_eq!(user_inputs("bob", None), ["bob"]);
        let pieces = inputs_of("someone", "quintrell.x@example.com");
        assert!(pieces.contains(&"quintrell".to_owned()), "{pieces:?}");
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert!(StrengthPolicy::default().check(&pw("quintrell99"), &refs).is_err());
        assert_eq!(StrengthPolicy::default().check(&pw("quintrell99"), &[]), Ok(()));
    }

    #[test]
    fn correct_horse_battery_staple_passes_at_the_default_minimum() {
        // The end-to-end suites register with it: the default must keep them passing.
        assert_eq!(score("correct horse battery staple", &[]), 4);
        let inputs = user_inputs("alice", Some("alice@example.com"));
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        assert_eq!(
            StrengthPolicy::default().check(&pw("correct horse battery staple"), &inputs),
            Ok(())
        );
    }

    #[test]
    fn a_long_random_password_passes_even_at_4() {
        let strict = StrengthPolicy { min_score: 4 };
        assert_eq!(strict.check(&pw("q7#Vf2!mZ9^tLw4&Rb8@"), &[]), Ok(()));
        assert_eq!(
            strict.check(
                &pw("xK9$mP2vL8#nQ4wR7tY3zB6cF1hJ5gD0sA8eU2iO6pN4kM7jH9bV3cX5zT1rW8q"),
                &[]
            ),
            Ok(())
        );
    }

    #[test]
    fn a_score_of_3_under_a_minimum_of_4_gets_the_fixed_advice() {
        assert_eq!(score("correct horse", &[]), 3);
        let weak = StrengthPolicy { min_score: 4 }
            .check(&pw("correct horse"), &[])
            .unwrap_err();
        assert_eq!((weak.score, weak.message.as_str()), (3, FALLBACK));
    }

    #[test]
    fn a_minimum_of_0_accepts_everything_the_length_rule_does() {
        let anything = StrengthPolicy { min_score: 0 };
        for raw in ["password", "12345678", "aaaaaaaa", "bob2026!"] {
            assert_eq!(anything.check(&pw(raw), &["bob"]), Ok(()), "{raw}");
        }
    }

    #[test]
    fn a_password_of_words_is_read_whole_and_a_string_of_symbols_in_part() {
        let words = "sunlit orchard, quietly folding the copper kettle; mauve at dusk";
        assert_eq!(estimated_part(words), words);
        let digits = "sunlit orchard 47 quietly folds the copper kettle; mauve! 1983 x";
        assert_eq!(estimated_part(digits).chars().count(), 63, "4 readings: 63 characters");
        let long = "plum-Harbor 8 ".repeat(10);
        assert_eq!(estimated_part(&long).chars().count(), 100, "zxcvbn's own limit");
        let symbols = "4@8({[<369!|170$5+%2".repeat(5);
        let part = estimated_part(&symbols).chars().count();
        assert!((12..=16).contains(&part), "{part}");
        assert_eq!(estimated_part("ab"), "ab");
        assert_eq!(estimated_part(&"é".repeat(200)), "é".repeat(100));
    }

    #[test]
    fn a_string_of_symbols_read_in_part_still_passes() {
        let symbols = "4@8({[<3691!|1|70$5+7%2>?".repeat(4);
        assert_eq!(StrengthPolicy { min_score: 4 }.check(&pw(&symbols), &[]), Ok(()));
    }

    #[test]
    fn nfd_and_nfc_forms_score_alike() {
        assert_eq!(
            score("cre\u{300}me bru\u{302}le\u{301}e", &[]),
            score("cr\u{e8}me br\u{fb}l\u{e9}e", &[])
        );
    }
}
