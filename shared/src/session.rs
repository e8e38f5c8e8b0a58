//! Login sessions as data: where one is stored, its live generation, and
//! what a presented refresh token is to it. Pure: no I/O, no tokens.

use std::cmp::Ordering;

/// Where a session is found: under its user's normalized name, by its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The normalized (lower-case) username.
    pub user: String,
    pub id: String,
}

impl SessionKey {
    /// The key of session `id` of `username`, in any case.
    pub fn new(username: &str, id: &str) -> Self {
        Self {
            user: username.to_ascii_lowercase(),
            id: id.to_owned(),
        }
    }
}

/// Where a session was started from, as API Gateway saw the request (never a
/// header a client can set). Empty where the event carries neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip: String,
    pub user_agent: String,
}

/// The RFC 8176 `amr` value of a password login.
pub const PASSWORD: &str = "pwd";

/// One login session: the live generation of its refresh token, its end,
/// and where and how it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub username: String,
    /// Incremented by each rotation.
    pub generation: u64,
    /// SHA-256 of the live refresh token: the token itself is never stored.
    pub token_hash: String,
    /// When the session began (the login).
    pub created_at: u64,
    /// When the live generation was issued (and so when the previous one was
    /// consumed): the session's last use.
    pub issued_at: u64,
    /// The session's absolute end, whatever the refreshes.
    pub expires_at: u64,
    pub revoked: bool,
    /// How the user logged in (RFC 8176), carried by every token of the session.
    pub amr: Vec<String>,
    /// Where the login came from.
    pub origin: Origin,
}

impl Session {
    /// Where the session is stored.
    pub fn key(&self) -> SessionKey {
        SessionKey::new(&self.username, &self.id)
    }

    /// True when the session may still be refreshed at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        !self.revoked && now < self.expires_at
    }

    /// What a refresh token of `generation`, presented at `now`, is to this
    /// session. `generation` comes from a signed token, but is still a
    /// client's number: no arithmetic on it may overflow.
    pub fn classify(&self, generation: u64, now: u64, grace: u64) -> Presented {
        match generation.cmp(&self.generation) {
            Ordering::Equal => Presented::Live,
            Ordering::Greater => Presented::Unknown,
            // `generation` is below the session's, so `+ 1` cannot overflow.
            Ordering::Less
                if generation + 1 == self.generation && grace > 0 && now <= self.issued_at.saturating_add(grace) =>
            {
                Presented::Retry
            }
            Ordering::Less => Presented::Reused,
        }
    }

    /// The inputs of the refresh token of the live generation.
    pub fn generation(&self) -> SessionGeneration<'_> {
        SessionGeneration {
            session_id: &self.id,
            user_id: &self.user_id,
            username: &self.username,
            generation: self.generation,
            issued_at: self.issued_at,
            session_expires_at: self.expires_at,
            amr: &self.amr,
        }
    }
}

/// The state of a session a refresh token is derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGeneration<'a> {
    pub session_id: &'a str,
    pub user_id: &'a str,
    pub username: &'a str,
    pub generation: u64,
    /// When this generation was issued.
    pub issued_at: u64,
    /// The session's absolute end.
    pub session_expires_at: u64,
    /// How the user logged in (RFC 8176).
    pub amr: &'a [String],
}

/// A presented refresh token, as its session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// The live generation: it may be consumed.
    Live,
    /// The generation consumed last, within the grace window: a retry or a second tab.
    Retry,
    /// An older generation, or the last one after the window: a theft signal.
    Reused,
    /// A generation the session never issued.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::{Presented as P, Session};

    fn at_generation(generation: u64) -> Session {
        Session {
            id: "s".into(),
            user_id: "u".into(),
            username: "a".into(),
            generation,
            token_hash: String::new(),
            created_at: 1000,
            issued_at: 1000,
            expires_at: 9999,
            revoked: false,
            amr: vec![super::PASSWORD.into()],
            origin: super::Origin::default(),
        }
    }

    #[test]
    fn a_presented_generation_is_live_a_retry_within_grace_or_a_reuse() {
        let s = at_generation(3);
        assert_eq!(s.classify(3, 1005, 10), P::Live);
        assert_eq!(s.classify(2, 1010, 10), P::Retry, "the last second of the window");
        assert_eq!(s.classify(2, 1011, 10), P::Reused, "after the window");
        assert_eq!(s.classify(2, 1000, 0), P::Reused, "strict mode");
        assert_eq!(s.classify(1, 1001, 10), P::Reused, "an older generation");
        assert_eq!(s.classify(4, 1001, 10), P::Unknown);
    }

    #[test]
    fn the_largest_generation_a_token_can_name_is_unknown_not_an_overflow() {
        assert_eq!(at_generation(0).classify(u64::MAX, 1005, 10), P::Unknown);
        assert_eq!(at_generation(u64::MAX).classify(u64::MAX - 1, 1005, 10), P::Retry);
        let mut late = at_generation(1);
        late.issued_at = u64::MAX - 1;
        assert_eq!(late.classify(0, u64::MAX, 10), P::Retry, "the window saturates");
    }

    #[test]
    fn a_session_is_live_until_its_end_unless_revoked() {
        let s = at_generation(0);
        assert!(s.is_live(9998));
        assert!(!s.is_live(9999), "the end itself is past");
        let revoked = Session { revoked: true, ..s };
        assert!(!revoked.is_live(1000));
    }
}
