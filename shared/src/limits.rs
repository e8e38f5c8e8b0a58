//! Numbers more than one module agrees on. A leaf: it imports nothing.

/// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds (the spec allows at most 60).
pub const LEEWAY: u64 = 30;

/// Shortest HMAC secret accepted, in bytes (HS256 wants at least its output size).
pub const MIN_SECRET_BYTES: usize = 32;
