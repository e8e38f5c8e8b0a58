//! The login throttle as data: failures on one username and the lock they
//! put on it. Pure: the store keeps the record, `service::login` applies it.

/// Failures to log in for one username, and the lock they put on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedLogins {
    pub count: u32,
    /// When the last failure was recorded.
    pub last_at: u64,
}

impl FailedLogins {
    /// Failures allowed before the username is locked.
    pub const LIMIT: u32 = 5;
    /// The first lock, seconds; each further failure doubles it.
    pub const BASE_LOCK: u64 = 30;
    /// The longest lock, seconds: guessing someone's name locks them out briefly, never for long.
    pub const MAX_LOCK: u64 = 15 * 60;
    /// After this long without a failure the count starts again, seconds.
    pub const QUIET_PERIOD: u64 = 60 * 60;

    /// Seconds left on the lock, if the username is locked at `now`.
    pub fn locked_for(&self, now: u64) -> Option<u64> {
        if self.count < Self::LIMIT || self.is_stale(now) {
            return None;
        }
        let doublings = (self.count - Self::LIMIT).min(16);
        let lock = (Self::BASE_LOCK << doublings).min(Self::MAX_LOCK);
        let until = self.last_at.saturating_add(lock);
        (now < until).then(|| until - now)
    }

    /// True when the quiet period has passed, so the next failure counts from one.
    pub fn is_stale(&self, now: u64) -> bool {
        self.count == 0 || now >= self.last_at.saturating_add(Self::QUIET_PERIOD)
    }

    /// The record after one more failure at `now`.
    pub fn after_failure(&self, now: u64) -> Self {
        let count = if self.is_stale(now) {
            1
        } else {
            self.count.saturating_add(1)
        };
        Self { count, last_at: now }
    }
}

#[cfg(test)]
mod tests {
    use super::FailedLogins as F;

    #[test]
    fn five_failures_lock_for_30_seconds_and_each_further_one_doubles_the_lock() {
        let mut f = F::default();
        for t in 0..4 {
            f = f.after_failure(100 + t);
            assert_eq!(f.locked_for(100 + t), None);
        }
        f = f.after_failure(200);
        assert_eq!(f.count, 5);
        assert_eq!(f.locked_for(200), Some(30));
        assert_eq!(f.locked_for(229), Some(1));
        assert_eq!(f.locked_for(230), None, "the lock ends");
        f = f.after_failure(230);
        assert_eq!(f.locked_for(230), Some(60));
        f = f.after_failure(231);
        assert_eq!(f.locked_for(231), Some(120));
    }

    #[test]
    fn four_failures_do_not_lock() {
        let f = F {
            count: 4,
            last_at: 1000,
        };
        assert_eq!(f.locked_for(1000), None);
    }

    #[test]
    fn the_lock_never_exceeds_fifteen_minutes() {
        let f = F {
            count: 500,
            last_at: 1000,
        };
        assert_eq!(f.locked_for(1000), Some(F::MAX_LOCK));
        let f = F {
            count: 9,
            last_at: 1000,
        };
        assert_eq!(f.locked_for(1000), Some(480), "30 s doubled four times");
        let f = F {
            count: 10,
            last_at: 1000,
        };
        assert_eq!(f.locked_for(1000), Some(900), "960 s is capped at 900");
    }

    #[test]
    fn the_count_starts_again_after_a_quiet_hour() {
        let f = F {
            count: 9,
            last_at: 1000,
        };
        assert_eq!(F::QUIET_PERIOD, 3600);
        assert!(f.is_stale(1000 + 3600));
        assert!(!f.is_stale(1000 + 3599));
        assert_eq!(f.after_failure(1000 + F::QUIET_PERIOD).count, 1);
        assert_eq!(f.after_failure(1000 + F::QUIET_PERIOD - 1).count, 10);
        assert_eq!(f.locked_for(1000 + F::QUIET_PERIOD), None, "a stale lock is no lock");
    }

    #[test]
    fn no_failures_is_stale_whatever_the_time() {
        assert!(F::default().is_stale(0));
        assert_eq!(F::default().after_failure(5), F { count: 1, last_at: 5 });
    }

    #[test]
    fn a_record_from_the_far_future_neither_overflows_nor_unlocks() {
        let f = F {
            count: 5,
            last_at: u64::MAX - 1,
        };
        assert_eq!(
            f.locked_for(u64::MAX - 1),
            Some(1),
            "the lock saturates at the end of time"
        );
        assert!(!f.is_stale(u64::MAX - 1));
    }
}
