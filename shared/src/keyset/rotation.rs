//! Rotation: keys move from next to current to previous to gone, each step
//! only once every verifier has caught up, so no valid token is ever refused.

use super::loaded::LoadedKey;
use super::stored::{Alg, KeySet, KeySetError, Status, StoredKey};
use crate::limits::LEEWAY;
use std::fmt;

/// How fast a new key reaches every verifier, and how long a token lives.
#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// Seconds until every function and every JWKS cache has seen a change
    /// (the functions' key refresh interval plus the JWKS max-age).
    pub propagation: u64,
    /// The longest lifetime of any token, seconds (the refresh token's).
    pub max_token_lifetime: u64,
}

impl RotationPolicy {
    /// How long after it stopped signing a key still verifies tokens it signed.
    fn retire_after(self) -> u64 {
        self.propagation
            .saturating_add(self.max_token_lifetime)
            .saturating_add(LEEWAY)
    }
}

/// What one run of `KeySet::rotate` did, or what it waits for. Its text is
/// what `make rotate-keys` prints, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationStep {
    /// A previous key was dropped: every token it signed has expired.
    Retired { kid: String, alg: Alg },
    /// The next key now signs; the old one verifies until `verifies_until`.
    Promoted { kid: String, verifies_until: u64 },
    /// A next key is published but not yet known everywhere.
    WaitingToPromote { kid: String, at: u64, now: u64 },
    /// The previous key still verifies tokens it signed.
    WaitingToRetire { until: u64, now: u64 },
    /// A next key was added and published.
    Added { kid: String, alg: Alg, current_after: u64 },
}

impl fmt::Display for RotationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retired { kid, alg } => {
                write!(f, "retired {kid} ({}): every token it signed has expired", alg.name())
            }
            Self::Promoted { kid, verifies_until } => write!(
                f,
                "made {kid} current; the old key verifies until {verifies_until} and is retired by the first run after that"
            ),
            Self::WaitingToPromote { kid, at, now } => write!(
                f,
                "{kid} becomes current at {at} (in {} s), once every cache has it: run again then",
                at - now
            ),
            Self::WaitingToRetire { until, now } => write!(
                f,
                "the previous key verifies until {until} (in {} s); the next rotation starts on a run after that",
                until - now
            ),
            Self::Added {
                kid,
                alg,
                current_after,
            } => write!(
                f,
                "added {kid} ({}), published now; it becomes current on a run after {current_after}",
                alg.name()
            ),
        }
    }
}

impl KeySet {
    /// One step of a rotation, whichever is due: retire previous keys whose
    /// tokens have all expired; make the next key current once every cache
    /// has seen it; or, with neither a next key waiting nor a previous key
    /// left, add a next key (of `alg`, else of the current key's algorithm).
    /// Running it again and again walks whole rotations, one after another,
    /// without ever rejecting a valid token, and never holds more than two
    /// keys. Says what it did, or what it waits for.
    pub fn rotate(
        &mut self,
        alg: Option<Alg>,
        policy: RotationPolicy,
        now: u64,
    ) -> Result<Vec<RotationStep>, KeySetError> {
        let mut steps = Vec::new();
        let retire_after = policy.retire_after();
        self.load()?;
        let mut kept = Vec::with_capacity(self.keys.len());
        for stored in self.keys.drain(..) {
            if stored.status == Status::Previous && now >= stored.since.saturating_add(retire_after) {
                steps.push(RotationStep::Retired {
                    kid: LoadedKey::new(&stored)?.kid,
                    alg: stored.alg,
                });
            } else {
                kept.push(stored);
            }
        }
        self.keys = kept;
        match self.keys.iter().position(|k| k.status == Status::Next) {
            Some(next) if now >= self.keys[next].since.saturating_add(policy.propagation) => {
                for key in &mut self.keys {
                    if key.status == Status::Current {
                        key.status = Status::Previous;
                        key.since = now;
                    }
                }
                self.keys[next].status = Status::Current;
                self.keys[next].since = now;
                steps.push(RotationStep::Promoted {
                    kid: LoadedKey::new(&self.keys[next])?.kid,
                    verifies_until: now.saturating_add(retire_after),
                });
            }
            Some(next) => steps.push(RotationStep::WaitingToPromote {
                kid: LoadedKey::new(&self.keys[next])?.kid,
                at: self.keys[next].since.saturating_add(policy.propagation),
                now,
            }),
            None if steps.is_empty() && self.keys.iter().any(|k| k.status == Status::Previous) => {
                let until = self
                    .keys
                    .iter()
                    .filter(|k| k.status == Status::Previous)
                    .map(|k| k.since.saturating_add(retire_after))
                    .max()
                    .unwrap_or(now);
                steps.push(RotationStep::WaitingToRetire { until, now });
            }
            None if !steps.is_empty() => {}
            None => {
                let alg = alg.unwrap_or_else(|| {
                    self.keys
                        .iter()
                        .find(|k| k.status == Status::Current)
                        .map_or(Alg::EdDSA, |k| k.alg)
                });
                let key = StoredKey::generate(alg, Status::Next, now);
                steps.push(RotationStep::Added {
                    kid: LoadedKey::new(&key)?.kid,
                    alg,
                    current_after: now.saturating_add(policy.propagation),
                });
                self.keys.push(key);
            }
        }
        self.load()?;
        Ok(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RotationPolicy = RotationPolicy {
        propagation: 600,
        max_token_lifetime: 3600,
    };

    fn status_of(set: &KeySet) -> Vec<(Alg, Status, u64)> {
        set.keys.iter().map(|k| (k.alg, k.status, k.since)).collect()
    }

    #[test]
    fn an_early_run_only_says_when_the_next_key_becomes_current() {
        let mut set = KeySet::generate(Alg::EdDSA, 0);
        let added = set.rotate(None, POLICY, 1000).unwrap();
        assert!(
            matches!(
                &added[..],
                [RotationStep::Added {
                    alg: Alg::EdDSA,
                    current_after: 1600,
                    ..
                }]
            ),
            "{added:?}"
        );
        let before = set.clone();
        let said = set.rotate(None, POLICY, 1599).unwrap();
        assert_eq!(set, before);
        assert!(
            matches!(
                &said[..],
                [RotationStep::WaitingToPromote {
                    at: 1600,
                    now: 1599,
                    ..
                }]
            ),
            "{said:?}"
        );
        assert_eq!(said[0].to_string().split(' ').nth(1), Some("becomes"));
        let promoted = set.rotate(None, POLICY, 1600).unwrap();
        assert!(
            matches!(&promoted[..], [RotationStep::Promoted { verifies_until, .. }] if *verifies_until == 1600 + 600 + 3600 + LEEWAY),
            "{promoted:?}"
        );
        assert_eq!(
            status_of(&set),
            vec![
                (Alg::EdDSA, Status::Previous, 1600),
                (Alg::EdDSA, Status::Current, 1600)
            ]
        );
    }

    #[test]
    fn the_previous_key_is_retired_exactly_when_its_last_token_has_expired() {
        let mut set = KeySet::generate(Alg::HS256, 0);
        set.rotate(Some(Alg::EdDSA), POLICY, 0).unwrap();
        set.rotate(None, POLICY, 600).unwrap();
        let until = 600 + 600 + 3600 + LEEWAY;
        let waiting = set.rotate(None, POLICY, until - 1).unwrap();
        assert_eq!(waiting, vec![RotationStep::WaitingToRetire { until, now: until - 1 }]);
        assert_eq!(set.keys.len(), 2);
        let retired = set.rotate(None, POLICY, until).unwrap();
        assert!(
            matches!(&retired[..], [RotationStep::Retired { alg: Alg::HS256, .. }]),
            "{retired:?}"
        );
        assert_eq!(status_of(&set), vec![(Alg::EdDSA, Status::Current, 600)]);
        let next = set.rotate(None, POLICY, until).unwrap();
        assert!(
            matches!(&next[..], [RotationStep::Added { alg: Alg::EdDSA, .. }]),
            "the next rotation keeps the current algorithm: {next:?}"
        );
    }

    #[test]
    fn the_wait_is_for_the_previous_key_and_a_new_key_takes_the_current_ones_algorithm() {
        let mut set = KeySet::generate(Alg::HS256, 5000);
        set.keys.push(StoredKey::generate(Alg::HS256, Status::Previous, 600));
        let until = 600 + 600 + 3600 + LEEWAY;
        assert_eq!(
            set.rotate(None, POLICY, 1000).unwrap(),
            vec![RotationStep::WaitingToRetire { until, now: 1000 }],
            "the previous key's wait, not the current key's"
        );
        let mut alone = KeySet::generate(Alg::HS256, 0);
        let added = alone.rotate(None, POLICY, 10).unwrap();
        assert!(
            matches!(&added[..], [RotationStep::Added { alg: Alg::HS256, .. }]),
            "{added:?}"
        );
    }

    #[test]
    fn each_step_prints_as_the_line_make_rotate_keys_shows() {
        let lines = [
            RotationStep::Added {
                kid: "k".into(),
                alg: Alg::RS256,
                current_after: 9,
            },
            RotationStep::Promoted {
                kid: "k".into(),
                verifies_until: 9,
            },
            RotationStep::Retired {
                kid: "k".into(),
                alg: Alg::HS256,
            },
        ]
        .map(|s| s.to_string());
        assert_eq!(
            lines[0],
            "added k (RS256), published now; it becomes current on a run after 9"
        );
        assert!(lines[1].starts_with("made k current;"), "{}", lines[1]);
        assert!(lines[2].starts_with("retired k (HS256)"), "{}", lines[2]);
    }
}
