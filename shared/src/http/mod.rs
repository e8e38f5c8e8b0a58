//! The HTTP edge, the only part of the crate that knows `lambda_http` (the
//! `http` feature): request parsing that never panics, bearer tokens, the
//! responses, and the one place where errors become answers.

mod bearer;
mod error;
mod request;
mod respond;
mod response;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use bearer::{authenticate, bearer_token, parse_bearer};
pub use error::{ApiError, REALM};
pub use request::{JsonObject, MAX_BODY_BYTES, last_segment, origin, refresh_token, require_method};
pub use respond::respond;
pub use response::{account_view, json, no_content, no_store, tokens};
