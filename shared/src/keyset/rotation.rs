//! Rotation: keys move from next to current to previous to gone, each step
//! only once every verifier has caught up, so no valid token is ever refused.

use super::loaded::LoadedKey;
use super::stored::{Alg, KeySet, KeySetError, Status, StoredKey};
use crate::limits::LEEWAY;
use std::fmt;

/// How long API Gateway's native JWT authorizer may cache a JWKS, seconds:
/// a deployed stack waits this (which also covers the JWKS max-age) plus the
/// functions' key refresh interval before a new key signs.
pub const NATIVE_AUTHORIZER_CACHE: u64 = 7200;

/// How fast a new key reaches every verifier, and how long a token lives.
#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// Seconds until every function and every JWKS cache has seen a change
    /// (the functions' key refresh interval plus the longest JWKS cache).
    pub propagation: u64,
    /// The longest lifetime of any token, seconds (the refresh token's).
    pub max_token_lifetime: u64,
}

impl RotationPolicy {
    /// The policy of a deployed stack: its functions read the keys every
    /// `keys_refresh` seconds, API Gateway's native JWT authorizer caches
    /// them up to two hours, and no token outlives the longer of the two
    /// lifetimes.
    pub fn deployed(keys_refresh: u64, access_ttl: u64, refresh_ttl: u64) -> Self {
        Self {
            propagation: keys_refresh.saturating_add(NATIVE_AUTHORIZER_CACHE),
            max_token_lifetime: access_ttl.max(refresh_ttl),
        }
    }

    /// How long after it stopped signing a key still verifies tokens it signed.
    fn retire_after(self) -> u64 {
        self.propagation
            .saturating_add(self.max_token_lifetime)
            .saturating_add(LEEWAY)
    }
}

/// What one run of `KeySet::rotate` did, or what it waits for. Its text is
/// what `make rotate-keys` and the rotation function print, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationStep {
    /// A previous key was dropped: every token it signed has expired.
    Retired { kid: String, alg: Alg },
    /// The next key now signs; the old one verifies until `verifies_until`.
    Promoted { kid: String, verifies_until: u64 },
    /// A new asymmetric key signs at once in place of an HMAC key, whose
    /// tokens the functions that read only public keys cannot verify anyway;
    /// the HMAC key verifies (refresh tokens, for the functions that read the
    /// secret) until `verifies_until`.
    Migrated { kid: String, alg: Alg, verifies_until: u64 },
    /// A next key was added and published.
    Added { kid: String, alg: Alg, current_after: u64 },
    /// A next key is published but not yet known everywhere.
    WaitingToPromote { kid: String, at: u64, now: u64 },
    /// A previous key still verifies tokens it signed.
    WaitingToRetire { until: u64, now: u64 },
}

impl RotationStep {
    /// Whether the step changed the key set (the waits do not).
    pub fn changes(&self) -> bool {
        !matches!(self, Self::WaitingToPromote { .. } | Self::WaitingToRetire { .. })
    }
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
            Self::Migrated {
                kid,
                alg,
                verifies_until,
            } => write!(
                f,
                "made {kid} ({}) current at once in place of the HS256 key, which verifies until {verifies_until}",
                alg.name()
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
            Self::WaitingToPromote { kid, at, now } => write!(
                f,
                "{kid} becomes current at {at} (in {} s), once every cache has it: run again then",
                at - now
            ),
            Self::WaitingToRetire { until, now } => write!(
                f,
                "a previous key verifies until {until} (in {} s); the next key is added on a run after that",
                until - now
            ),
        }
    }
}

impl KeySet {
    /// Every step of a rotation that is due at `now`, in one run:
    /// - retire the previous keys whose tokens have all expired;
    /// - make the next key current once every cache has had it for the
    ///   policy's propagation time (or, when `alg` is asymmetric and the
    ///   current key is an HMAC secret, make a key of `alg` current at once);
    /// - when this run made no key current, no next key waits and at most
    ///   one previous key is left, add a next key (of `alg`, else of the
    ///   current key's algorithm).
    ///
    /// Run on a schedule, each run moves one rotation on; run again and
    /// again, it walks whole rotations one after another without ever
    /// rejecting a valid token, and never holds more than three keys. Says
    /// what it did, or, when nothing was due, what it waits for.
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
        let current_alg = self.current_alg();
        let next = self.keys.iter().position(|k| k.status == Status::Next);
        let promoted = match alg {
            Some(alg) if alg != Alg::HS256 && current_alg == Alg::HS256 => {
                // A next key of `alg` is already published: it goes first.
                let waiting = next.filter(|&i| self.keys[i].alg == alg);
                self.keys.retain(|k| k.status != Status::Next || k.alg == alg);
                let index = match waiting {
                    Some(_) => self.keys.iter().position(|k| k.status == Status::Next).expect("kept"),
                    None => {
                        self.keys.push(StoredKey::generate(alg, Status::Next, now));
                        self.keys.len() - 1
                    }
                };
                let kid = self.promote(index, now)?;
                steps.push(RotationStep::Migrated {
                    kid,
                    alg,
                    verifies_until: now.saturating_add(retire_after),
                });
                true
            }
            _ => match next {
                Some(i) if now >= self.keys[i].since.saturating_add(policy.propagation) => {
                    let kid = self.promote(i, now)?;
                    steps.push(RotationStep::Promoted {
                        kid,
                        verifies_until: now.saturating_add(retire_after),
                    });
                    true
                }
                _ => false,
            },
        };
        let waiting = self.keys.iter().find(|k| k.status == Status::Next);
        let previous: Vec<u64> = self
            .keys
            .iter()
            .filter(|k| k.status == Status::Previous)
            .map(|k| k.since.saturating_add(retire_after))
            .collect();
        match waiting {
            Some(next) if steps.is_empty() => steps.push(RotationStep::WaitingToPromote {
                kid: LoadedKey::new(next)?.kid,
                at: next.since.saturating_add(policy.propagation),
                now,
            }),
            Some(_) => {}
            None if promoted => {}
            None if previous.len() > 1 => {
                if steps.is_empty() {
                    let until = previous.iter().copied().min().unwrap_or(now);
                    steps.push(RotationStep::WaitingToRetire { until, now });
                }
            }
            None => {
                let alg = alg.unwrap_or_else(|| self.current_alg());
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

    /// Whether `rotate` would change anything at `now`.
    pub fn due(&self, alg: Option<Alg>, policy: RotationPolicy, now: u64) -> Result<bool, KeySetError> {
        let mut copy = self.clone();
        Ok(copy.rotate(alg, policy, now)?.iter().any(RotationStep::changes))
    }

    /// The algorithm of the current key (a loaded set has exactly one).
    fn current_alg(&self) -> Alg {
        self.keys
            .iter()
            .find(|k| k.status == Status::Current)
            .map_or(Alg::EdDSA, |k| k.alg)
    }

    /// Makes key `index` current and the current one previous, from `now`; returns the new current key's id.
    fn promote(&mut self, index: usize, now: u64) -> Result<String, KeySetError> {
        for key in &mut self.keys {
            if key.status == Status::Current {
                key.status = Status::Previous;
                key.since = now;
            }
        }
        self.keys[index].status = Status::Current;
        self.keys[index].since = now;
        Ok(LoadedKey::new(&self.keys[index])?.kid)
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
    fn a_run_does_every_due_step_and_a_set_never_holds_more_than_three_keys() {
        let mut set = KeySet::generate(Alg::EdDSA, 0);
        set.rotate(None, POLICY, 1000).unwrap();
        let promoted = set.rotate(None, POLICY, 1600).unwrap();
        assert!(
            matches!(&promoted[..], [RotationStep::Promoted { .. }]),
            "no key is added in the run that promotes: {promoted:?}"
        );
        let added = set.rotate(None, POLICY, 1601).unwrap();
        assert!(matches!(&added[..], [RotationStep::Added { .. }]), "{added:?}");
        assert_eq!(set.keys.len(), 3);
        set.rotate(None, POLICY, 2201).unwrap();
        let statuses: Vec<Status> = set.keys.iter().map(|k| k.status).collect();
        assert_eq!(statuses, [Status::Previous, Status::Previous, Status::Current]);
        let until = 1600 + 600 + 3600 + LEEWAY;
        let waiting = set.rotate(None, POLICY, 2202).unwrap();
        assert_eq!(
            waiting,
            vec![RotationStep::WaitingToRetire { until, now: 2202 }],
            "two previous keys: the first to go is awaited"
        );
        assert!(!set.due(None, POLICY, until - 1).unwrap());
        assert!(set.due(None, POLICY, until).unwrap());
        let both = set.rotate(None, POLICY, until).unwrap();
        assert!(
            matches!(
                &both[..],
                [
                    RotationStep::Retired { .. },
                    RotationStep::Added { alg: Alg::EdDSA, .. }
                ]
            ),
            "retired and, one previous key left, added in the same run: {both:?}"
        );
        assert_eq!(set.keys.len(), 3);
    }

    #[test]
    fn a_run_that_retires_a_key_says_so_and_not_that_the_next_key_still_waits() {
        let mut set = KeySet::generate(Alg::EdDSA, 0);
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Previous, 0));
        set.keys.push(StoredKey::generate(Alg::EdDSA, Status::Next, 10_000));
        let steps = set.rotate(None, POLICY, 10_001).unwrap();
        assert!(matches!(&steps[..], [RotationStep::Retired { .. }]), "{steps:?}");
    }

    #[test]
    fn a_previous_key_is_retired_exactly_when_its_last_token_has_expired() {
        let mut set = KeySet::generate(Alg::RS256, 0);
        set.keys.push(StoredKey::generate(Alg::RS256, Status::Previous, 600));
        set.keys.push(StoredKey::generate(Alg::RS256, Status::Previous, 700));
        let until = 600 + 600 + 3600 + LEEWAY;
        let before = set.clone();
        assert_eq!(
            set.rotate(None, POLICY, until - 1).unwrap(),
            vec![RotationStep::WaitingToRetire { until, now: until - 1 }]
        );
        assert_eq!(set, before, "a wait changes nothing");
        let retired = set.rotate(None, POLICY, until).unwrap();
        assert!(matches!(&retired[0], RotationStep::Retired { .. }), "{retired:?}");
        assert!(set.keys.iter().all(|k| k.since != 600));
    }

    #[test]
    fn an_hs256_set_moving_to_an_asymmetric_algorithm_signs_with_it_at_once_and_keeps_the_secret_to_verify() {
        let mut set = KeySet::parse("generated-by-cloudformation-0123456789abcdefghijklmnop").unwrap();
        let steps = set.rotate(Some(Alg::RS256), POLICY, 5000).unwrap();
        assert!(
            matches!(&steps[..], [RotationStep::Migrated { alg: Alg::RS256, verifies_until, .. }] if *verifies_until == 5000 + 600 + 3600 + LEEWAY),
            "{steps:?}"
        );
        assert_eq!(
            status_of(&set),
            vec![
                (Alg::HS256, Status::Previous, 5000),
                (Alg::RS256, Status::Current, 5000)
            ]
        );
        assert_eq!(set.load().unwrap().current().alg, Alg::RS256);
        assert!(steps[0].to_string().contains("at once"), "{}", steps[0]);

        let mut waiting = KeySet::generate(Alg::HS256, 0);
        waiting.keys.push(StoredKey::generate(Alg::RS256, Status::Next, 10));
        waiting.keys.push(StoredKey::generate(Alg::HS256, Status::Previous, 10));
        let published = waiting.keys[1].clone();
        waiting.rotate(Some(Alg::RS256), POLICY, 20).unwrap();
        let current = waiting.keys.iter().find(|k| k.status == Status::Current).unwrap();
        assert_eq!(current.key, published.key, "the next key already published goes first");

        let mut hmac_next = KeySet::generate(Alg::HS256, 0);
        hmac_next.keys.push(StoredKey::generate(Alg::HS256, Status::Next, 10));
        hmac_next.rotate(Some(Alg::EdDSA), POLICY, 20).unwrap();
        assert_eq!(
            status_of(&hmac_next),
            vec![(Alg::HS256, Status::Previous, 20), (Alg::EdDSA, Status::Current, 20)],
            "an HMAC next key never signed and goes"
        );
        let mut stay = KeySet::generate(Alg::HS256, 0);
        let added = stay.rotate(Some(Alg::HS256), POLICY, 20).unwrap();
        assert!(
            matches!(&added[..], [RotationStep::Added { alg: Alg::HS256, .. }]),
            "{added:?}"
        );
    }

    #[test]
    fn a_new_key_takes_the_current_ones_algorithm_unless_told_otherwise() {
        let mut alone = KeySet::generate(Alg::HS256, 0);
        let added = alone.rotate(None, POLICY, 10).unwrap();
        assert!(
            matches!(&added[..], [RotationStep::Added { alg: Alg::HS256, .. }]),
            "{added:?}"
        );
        let mut rsa = KeySet::generate(Alg::RS256, 0);
        let added = rsa.rotate(Some(Alg::EdDSA), POLICY, 10).unwrap();
        assert!(
            matches!(&added[..], [RotationStep::Added { alg: Alg::EdDSA, .. }]),
            "between asymmetric algorithms the usual wait: {added:?}"
        );
        assert_eq!(rsa.load().unwrap().current().alg, Alg::RS256);
    }

    #[test]
    fn the_deployed_policy_waits_for_the_native_authorizers_cache_and_the_longest_token() {
        let policy = RotationPolicy::deployed(300, 900, 2_592_000);
        assert_eq!(policy.propagation, 300 + 7200);
        assert_eq!(policy.max_token_lifetime, 2_592_000);
        assert_eq!(RotationPolicy::deployed(60, 86_400, 3600).max_token_lifetime, 86_400);
        assert!(
            RotationStep::Added {
                kid: "k".into(),
                alg: Alg::RS256,
                current_after: 1
            }
            .changes()
        );
        assert!(!RotationStep::WaitingToRetire { until: 2, now: 1 }.changes());
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
