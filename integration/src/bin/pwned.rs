//! The project's own Pwned Passwords range server, for `make dev` and the
//! tests: `pwned <port> [--delay-ms N] [--slow-ms N]` on 127.0.0.1, speaking
//! the range API's protocol over plain HTTP so that the functions' real
//! client (`shared::breached`) is what the tests exercise.
//!
//! `GET /range/<5 hex>` answers the `SUFFIX:COUNT` lines (CRLF, sorted) of a
//! data set generated at start: the SHA-1 of every password in `BREACHED`
//! with its count, and in every range some made-up breached suffixes
//! (counts 1 to 5,000, the same for a prefix on every run). With
//! `Add-Padding: true` the range is padded, as the real API does, to 800 to
//! 1,000 lines with random suffixes of count 0.
//!
//! `--delay-ms` holds every answer that long; the range of `SLOW` is always
//! held `--slow-ms` (default 5,000), so one test can show that a check past
//! its deadline fails open while the others sharing the server go on.
//! `GET /served` is how many ranges were answered, for a test that checks
//! that nothing was asked.

use shared::breached::sha1_hex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Passwords the data set holds as breached, with how often each was seen.
/// Some are weak (the strength check refuses them first); the last ones
/// score 4 with zxcvbn, so only the breached check can refuse them.
/// `correct horse battery staple` is deliberately absent: the suites register with it.
const BREACHED: &[(&str, u64)] = &[
    ("password", 9_545_824),
    ("123456789", 7_016_669),
    ("qwerty123", 1_217_508),
    ("iloveyou", 1_593_388),
    ("password123", 2_418_984),
    ("P@ssw0rd!", 85_326),
    ("letmein2024", 1_204),
    ("Winter2024!", 3_713),
    ("Tr0ub4dor&3", 1_077),
    ("BreachedButStrong#2024", 42),
    ("Purple-Giraffe-Umbrella-91", 7),
    (SLOW, 3),
];

/// A breached password whose range is always answered late (`--slow-ms`).
const SLOW: &str = "Slow&Steady-Tortoise-2024";

const USAGE: &str = "usage: pwned <port> [--delay-ms N] [--slow-ms N]";

struct Server {
    /// Prefix -> its breached suffixes and counts.
    breached: HashMap<String, Vec<(String, u64)>>,
    slow_prefix: String,
    delay: Duration,
    slow: Duration,
    served: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((port, options)) = args.split_first() else {
        fail(USAGE)
    };
    let port: u16 = port.parse().unwrap_or_else(|_| fail(USAGE));
    let (mut delay, mut slow) = (Duration::ZERO, Duration::from_secs(5));
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let mut millis = || -> u64 {
            options
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| fail(USAGE))
        };
        match option.as_str() {
            "--delay-ms" => delay = Duration::from_millis(millis()),
            "--slow-ms" => slow = Duration::from_millis(millis()),
            _ => fail(USAGE),
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on 127.0.0.1:{port}: {e}")));
    eprintln!(
        "pwned: {} breached passwords, ranges at http://{}/range/<prefix>",
        BREACHED.len(),
        listener.local_addr().expect("a bound socket has an address")
    );
    Arc::new(Server::new(delay, slow)).serve(listener).await
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2)
}

impl Server {
    fn new(delay: Duration, slow: Duration) -> Self {
        let mut breached: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        for (password, count) in BREACHED {
            let digest = sha1_hex(password);
            let (prefix, suffix) = digest.split_at(5);
            breached
                .entry(prefix.to_owned())
                .or_default()
                .push((suffix.to_owned(), *count));
        }
        Self {
            breached,
            slow_prefix: sha1_hex(SLOW)[..5].to_owned(),
            delay,
            slow,
            served: AtomicU64::new(0),
        }
    }

    async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            if let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(self.clone().connection(socket));
            }
        }
    }

    /// Requests on one connection (kept alive, as the client pools it).
    async fn connection(self: Arc<Self>, mut socket: TcpStream) {
        while let Some(request) = read_head(&mut socket).await {
            let (status, body) = self.answer(&request).await;
            let close = request.close;
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "connection: close\r\n" } else { "" }
            );
            if socket.write_all(response.as_bytes()).await.is_err() || close {
                return;
            }
        }
    }

    async fn answer(&self, request: &Head) -> (&'static str, String) {
        if request.method != "GET" {
            return ("405 Method Not Allowed", String::new());
        }
        if request.path == "/served" {
            return ("200 OK", self.served.load(Ordering::SeqCst).to_string());
        }
        let Some(prefix) = request.path.strip_prefix("/range/") else {
            return ("404 Not Found", String::new());
        };
        if prefix.len() != 5 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            // The real API's words for it.
            return ("400 Bad Request", "The hash prefix was not in a valid format".into());
        }
        let prefix = prefix.to_ascii_uppercase();
        tokio::time::sleep(if prefix == self.slow_prefix {
            self.slow
        } else {
            self.delay
        })
        .await;
        self.served.fetch_add(1, Ordering::SeqCst);
        ("200 OK", self.range(&prefix, request.padding))
    }

    /// The range of `prefix`: its breached suffixes, made-up ones, and padding if asked.
    fn range(&self, prefix: &str, padding: bool) -> String {
        let mut random = SplitMix(u64::from_str_radix(prefix, 16).expect("checked hex"));
        let mut lines: Vec<(String, u64)> = self.breached.get(prefix).cloned().unwrap_or_default();
        for _ in 0..20 + random.next() % 30 {
            lines.push((random.suffix(), 1 + random.next() % 5_000));
        }
        if padding {
            // Fresh on each answer, as the real API's padding is.
            let mut fresh = SplitMix(rand_seed());
            let total = 800 + (fresh.next() % 201) as usize;
            while lines.len() < total {
                lines.push((fresh.suffix(), 0));
            }
        }
        lines.sort();
        lines
            .iter()
            .map(|(suffix, count)| format!("{suffix}:{count}\r\n"))
            .collect()
    }
}

/// A seed that differs between answers.
fn rand_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
}

/// A small deterministic generator (SplitMix64): the data set needs no cryptographic randomness.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 35 upper-case hex characters, as a suffix.
    fn suffix(&mut self) -> String {
        let hex = format!("{:016X}{:016X}{:016X}", self.next(), self.next(), self.next());
        hex[..35].to_owned()
    }
}

/// What is used of a request: its method, path and two headers.
struct Head {
    method: String,
    path: String,
    padding: bool,
    close: bool,
}

/// The next request's head on `socket` (a GET has no body), or `None` when the client is gone.
async fn read_head(socket: &mut TcpStream) -> Option<Head> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    Some(Head {
        method,
        path: target.split('?').next().unwrap_or_default().to_owned(),
        padding: header("add-padding").as_deref() == Some("true"),
        close: header("connection").as_deref() == Some("close"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::breached::{BreachedCheck, Mode, Verdict, count_in_range};
    use shared::credentials::Password;

    fn head(path: &str, padding: bool) -> Head {
        Head {
            method: "GET".into(),
            path: path.into(),
            padding,
            close: false,
        }
    }

    #[tokio::test]
    async fn a_range_lists_its_breached_passwords_among_made_up_ones() {
        let server = Server::new(Duration::ZERO, Duration::ZERO);
        let digest = sha1_hex("password123");
        let (status, body) = server.answer(&head(&format!("/range/{}", &digest[..5]), false)).await;
        assert_eq!(status, "200 OK");
        assert_eq!(count_in_range(&body, &digest[5..]), Ok(Some(2_418_984)));
        let lines = body.lines().count();
        assert!((21..=50).contains(&lines), "{lines} lines");
        assert!(
            body.ends_with("\r\n") && !body.contains(":0\r\n"),
            "no padding unless asked"
        );
        let again = server
            .answer(&head(&format!("/range/{}", &digest[..5].to_lowercase()), false))
            .await;
        assert_eq!(again.1, body, "the same range on every ask, whatever the prefix's case");
    }

    #[tokio::test]
    async fn padding_fills_a_range_to_800_to_1000_lines_of_count_0() {
        let server = Server::new(Duration::ZERO, Duration::ZERO);
        let digest = sha1_hex("BreachedButStrong#2024");
        let (_, body) = server.answer(&head(&format!("/range/{}", &digest[..5]), true)).await;
        let lines: Vec<&str> = body.lines().collect();
        assert!((800..=1000).contains(&lines.len()), "{} lines", lines.len());
        assert!(lines.iter().filter(|l| l.ends_with(":0")).count() >= 750);
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted");
        assert_eq!(count_in_range(&body, &digest[5..]), Ok(Some(42)));
    }

    #[tokio::test]
    async fn anything_but_a_range_of_five_hex_characters_is_refused() {
        let server = Server::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(server.answer(&head("/range/ABCD", false)).await.0, "400 Bad Request");
        assert_eq!(server.answer(&head("/range/ABCDEF", false)).await.0, "400 Bad Request");
        assert_eq!(server.answer(&head("/range/GHIJK", false)).await.0, "400 Bad Request");
        assert_eq!(server.answer(&head("/", false)).await.0, "404 Not Found");
    }

    /// The server on a free port, and a check in `mode` against it.
    async fn started(delay: Duration, slow: Duration, mode: Mode, timeout_ms: u64) -> (Arc<Server>, BreachedCheck) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = Arc::new(Server::new(delay, slow));
        tokio::spawn(server.clone().serve(listener));
        let check = BreachedCheck::new(mode, &endpoint, Duration::from_millis(timeout_ms)).unwrap();
        (server, check)
    }

    fn pw(raw: &str) -> Password {
        Password::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn the_functions_client_finds_the_breached_passwords_and_no_others() {
        let (server, check) = started(Duration::ZERO, Duration::ZERO, Mode::Block, 2000).await;
        for (password, count) in BREACHED.iter().filter(|(p, _)| p.chars().count() >= 8) {
            assert_eq!(
                check.check(&pw(password)).await,
                Verdict::Breached { count: *count },
                "{password}"
            );
        }
        assert_eq!(check.check(&pw("correct horse battery staple")).await, Verdict::Clean);
        assert!(check.enforce(&pw("BreachedButStrong#2024")).await.is_err());
        assert!(server.served.load(Ordering::SeqCst) >= 10);
    }

    #[tokio::test]
    async fn a_slow_server_makes_the_check_fail_open() {
        let (_, check) = started(Duration::from_millis(500), Duration::ZERO, Mode::Block, 100).await;
        assert_eq!(check.check(&pw("password123")).await, Verdict::Unknown);
        assert_eq!(check.enforce(&pw("password123")).await, Ok(()));
    }

    #[tokio::test]
    async fn only_the_slow_passwords_range_is_held() {
        let (_, check) = started(Duration::ZERO, Duration::from_secs(5), Mode::Block, 300).await;
        assert_eq!(check.enforce(&pw(SLOW)).await, Ok(()), "past the deadline: fails open");
        assert!(
            check.enforce(&pw("BreachedButStrong#2024")).await.is_err(),
            "others answered at once"
        );
    }
}
