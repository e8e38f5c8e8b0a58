//! Per-source-address throttling of the request being served (`throttle`):
//! its address comes from the request (`audit::client`); a request with none
//! (outside API Gateway) is not counted.

use crate::store::{StoreError, ThrottleStore};
use crate::throttle::{Counter, client_key};

/// Seconds to wait when the client has used up `counter` in this window;
/// `None` while it may go on. One read.
pub async fn blocked(store: &impl ThrottleStore, counter: Counter, now: u64) -> Result<Option<u64>, StoreError> {
    let Some(key) = client_key(&crate::audit::client().ip) else {
        return Ok(None);
    };
    let limits = store.ip_limits();
    let count = store.ip_count(&key, counter, limits.window_start(now)).await?;
    Ok((count >= limits.limit(counter)).then(|| limits.retry_after(now)))
}

/// Counts one `counter` attempt of the client (one write).
pub async fn count(store: &impl ThrottleStore, counter: Counter, now: u64) -> Result<(), StoreError> {
    if let Some(key) = client_key(&crate::audit::client().ip) {
        let limits = store.ip_limits();
        store.add_ip(&key, counter, limits.window_start(now)).await?;
    }
    Ok(())
}

/// Counts one `counter` attempt of the client and says whether it is over
/// the limit (seconds to wait), in one write: for what is counted whatever
/// its outcome (registrations, forgot-password requests).
pub async fn admit(store: &impl ThrottleStore, counter: Counter, now: u64) -> Result<Option<u64>, StoreError> {
    let Some(key) = client_key(&crate::audit::client().ip) else {
        return Ok(None);
    };
    let limits = store.ip_limits();
    let count = store.add_ip(&key, counter, limits.window_start(now)).await?;
    Ok((count > limits.limit(counter)).then(|| limits.retry_after(now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::from_client;
    use crate::session::Origin;
    use crate::store::memory::MemoryStore;
    use crate::throttle::IpLimits;

    fn from(ip: &str) -> Origin {
        Origin {
            ip: ip.into(),
            user_agent: String::new(),
        }
    }

    fn store(failures: u64) -> MemoryStore {
        let mut store = MemoryStore::default();
        store.ip_limits = IpLimits {
            failures,
            register: 2,
            ..IpLimits::default()
        };
        store
    }

    #[tokio::test]
    async fn an_address_is_blocked_once_it_reaches_its_limit_until_the_window_ends() {
        let store = store(3);
        let now = 1_800;
        let check = |ip: &'static str, counter, at| from_client(from(ip), blocked(&store, counter, at));
        for _ in 0..3 {
            assert_eq!(check("203.0.113.1", Counter::Failures, now).await.unwrap(), None);
            from_client(from("203.0.113.1"), count(&store, Counter::Failures, now))
                .await
                .unwrap();
        }
        assert_eq!(
            check("203.0.113.1", Counter::Failures, now + 100).await.unwrap(),
            Some(800)
        );
        assert_eq!(
            check("203.0.113.2", Counter::Failures, now).await.unwrap(),
            None,
            "another address"
        );
        assert_eq!(
            check("203.0.113.1", Counter::Forgot, now).await.unwrap(),
            None,
            "another counter"
        );
        assert_eq!(
            check("203.0.113.1", Counter::Failures, now + 900).await.unwrap(),
            None,
            "the next window"
        );
    }

    #[tokio::test]
    async fn addresses_of_one_ipv6_64_share_a_count() {
        let store = store(2);
        from_client(from("2001:db8:5:6::1"), count(&store, Counter::Failures, 0))
            .await
            .unwrap();
        from_client(from("2001:db8:5:6:ffff::9"), count(&store, Counter::Failures, 0))
            .await
            .unwrap();
        let same = from_client(from("2001:db8:5:6::abcd"), blocked(&store, Counter::Failures, 0))
            .await
            .unwrap();
        let next = from_client(from("2001:db8:5:7::1"), blocked(&store, Counter::Failures, 0))
            .await
            .unwrap();
        assert_eq!((same.is_some(), next), (true, None));
    }

    #[tokio::test]
    async fn admit_counts_every_attempt_and_refuses_past_the_limit() {
        let store = store(3);
        let admitted = |now| from_client(from("198.51.100.1"), admit(&store, Counter::Register, now));
        assert_eq!(admitted(0).await.unwrap(), None);
        assert_eq!(admitted(1).await.unwrap(), None);
        assert_eq!(admitted(2).await.unwrap(), Some(898));
        assert_eq!(
            admit(&store, Counter::Register, 3).await.unwrap(),
            None,
            "no address: not counted"
        );
    }
}
