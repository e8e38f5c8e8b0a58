//! Per-source-address throttling as data: which address a request counts
//! against, and how many of each kind of attempt it may make in a window.
//! Pure: the store keeps the counts, the services apply them.

use crate::config::{ConfigError, whole_number};
use std::net::IpAddr;

/// What is counted per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Failed logins and wrong second-factor codes.
    Failures,
    /// Forgot-password requests, whatever their outcome.
    Forgot,
    /// Registrations, whatever their outcome.
    Register,
}

impl Counter {
    /// Its name in the table's sort key.
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Failures => "FAILURES",
            Counter::Forgot => "FORGOT",
            Counter::Register => "REGISTER",
        }
    }
}

/// How many attempts of each kind one address may make in a fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpLimits {
    /// The window, seconds (`IP_WINDOW_SECONDS`, default 900).
    pub window: u64,
    /// `IP_MAX_FAILURES`, default 30.
    pub failures: u64,
    /// `IP_MAX_FORGOT`, default 20.
    pub forgot: u64,
    /// `IP_MAX_REGISTRATIONS`, default 20.
    pub register: u64,
}

impl Default for IpLimits {
    fn default() -> Self {
        Self {
            window: 900,
            failures: 30,
            forgot: 20,
            register: 20,
        }
    }
}

impl IpLimits {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            window: whole_number(&lookup, "IP_WINDOW_SECONDS", "seconds", d.window, 60..=86_400)?,
            failures: whole_number(&lookup, "IP_MAX_FAILURES", "attempts", d.failures, 1..=1_000_000)?,
            forgot: whole_number(&lookup, "IP_MAX_FORGOT", "requests", d.forgot, 1..=1_000_000)?,
            register: whole_number(
                &lookup,
                "IP_MAX_REGISTRATIONS",
                "registrations",
                d.register,
                1..=1_000_000,
            )?,
        })
    }

    /// The most attempts of `counter` an address may make in a window.
    pub fn limit(&self, counter: Counter) -> u64 {
        match counter {
            Counter::Failures => self.failures,
            Counter::Forgot => self.forgot,
            Counter::Register => self.register,
        }
    }

    /// The start of the window `now` falls in.
    pub fn window_start(&self, now: u64) -> u64 {
        now - now % self.window
    }

    /// Seconds from `now` to the end of its window.
    pub fn retry_after(&self, now: u64) -> u64 {
        self.window_start(now) + self.window - now
    }
}

/// The key an address is counted under: an IPv4 address itself, an IPv6
/// address by its /64 (one subscriber's network: a host picks any address in
/// it), an IPv4-mapped IPv6 address as the IPv4 one. `None`, not counted,
/// for no address (outside API Gateway) and for the machine's own 127.0.0.1
/// or ::1: API Gateway never reports a loopback source, and on the local
/// stack that is every tool's default address (`cargo lambda watch` reports
/// it for every client; its front door, `integration/src/bin/front.rs`, the
/// client's own loopback address): counting those together would throttle
/// the developer's machine as one client. A client bound to another loopback
/// address (127.0.0.2, ...) is counted as deployed.
pub fn client_key(ip: &str) -> Option<String> {
    let ip = ip.trim().parse::<IpAddr>().ok()?.to_canonical();
    if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST) {
        return None;
    }
    match ip {
        IpAddr::V4(v4) => Some(v4.to_string()),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_address_is_its_own_key_and_ipv6_addresses_count_by_their_64() {
        assert_eq!(client_key("203.0.113.7").as_deref(), Some("203.0.113.7"));
        let a = client_key("2001:db8:1:2:aaaa::1");
        let b = client_key("2001:0db8:0001:0002:ffff:ffff:ffff:ffff");
        assert_eq!(a.as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(a, b, "one /64, one key");
        assert_ne!(a, client_key("2001:db8:1:3::1"), "the next /64 is another");
        assert_eq!(client_key("::ffff:198.51.100.9").as_deref(), Some("198.51.100.9"));
    }

    #[test]
    fn the_machines_own_address_is_not_counted_and_other_loopback_addresses_are() {
        assert_eq!(client_key("127.0.0.1"), None);
        assert_eq!(client_key("::1"), None);
        assert_eq!(client_key("::ffff:127.0.0.1"), None);
        assert_eq!(client_key("127.0.0.2").as_deref(), Some("127.0.0.2"));
        assert_eq!(client_key(""), None);
        for none in ["", "not an address", "300.1.1.1", "[::1]"] {
            assert_eq!(client_key(none), None, "{none:?}");
        }
    }

    #[test]
    fn each_counter_has_a_key_of_its_own_in_the_table() {
        let names = [Counter::Failures, Counter::Forgot, Counter::Register].map(Counter::as_str);
        assert_eq!(names, ["FAILURES", "FORGOT", "REGISTER"]);
    }

    #[test]
    fn windows_are_fixed_and_retry_after_reaches_the_next_one() {
        let limits = IpLimits::default();
        assert_eq!(limits.window_start(1_800), 1_800);
        assert_eq!(limits.window_start(2_699), 1_800);
        assert_eq!(limits.retry_after(2_699), 1);
        assert_eq!(limits.retry_after(1_800), 900);
    }

    #[test]
    fn limits_come_from_the_environment_and_nonsense_is_refused() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(IpLimits::from_lookup(env(&[])).unwrap(), IpLimits::default());
        let set = IpLimits::from_lookup(env(&[("IP_MAX_FAILURES", "5"), ("IP_WINDOW_SECONDS", "60")])).unwrap();
        assert_eq!((set.failures, set.window, set.limit(Counter::Failures)), (5, 60, 5));
        for bad in [
            ("IP_MAX_FAILURES", "0"),
            ("IP_WINDOW_SECONDS", "10"),
            ("IP_MAX_FORGOT", "many"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(Box::new([bad]));
            assert!(IpLimits::from_lookup(env(pairs)).is_err(), "{bad:?}");
        }
    }
}
