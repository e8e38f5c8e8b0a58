//! Numbers more than one module agrees on. A leaf: it imports nothing.

/// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds (the spec allows at most 60).
pub const LEEWAY: u64 = 30;

/// Shortest HMAC secret accepted, in bytes (HS256 wants at least its output size).
pub const MIN_SECRET_BYTES: usize = 32;

/// The least time `POST /password/forgot` takes to answer, whatever the
/// account: a known one costs a write and a call to SES more than an unknown
/// one (tens of milliseconds deployed), and the answer must not tell them apart.
pub const FORGOT_FLOOR: std::time::Duration = std::time::Duration::from_millis(400);
