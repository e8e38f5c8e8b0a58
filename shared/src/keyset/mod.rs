//! The signing keys as stored: one current key that signs, and the keys that
//! only verify (the next one, published ahead of its turn, and the previous
//! ones, kept until every token they signed has expired).
//!
//! Stored as JSON (in `JWT_SECRET` or the Secrets Manager secret):
//! `{"keys": [{"alg": "EdDSA", "status": "current", "since": 1764000000, "key": "<PKCS#8 DER, base64>"}]}`.
//! A plain string instead of JSON is one HS256 secret, the simplest setup.
//!
//! `loaded` makes them usable (and derives each `kid` from its key, so the two
//! never disagree); `rotation` moves keys through their lives.

mod loaded;
mod rotation;
mod stored;

pub use loaded::{LoadedKey, SigningKeys, VerifyingKey, VerifyingKeys};
pub use rotation::{NATIVE_AUTHORIZER_CACHE, RotationPolicy, RotationStep};
pub use stored::{Alg, KeySet, KeySetError, Status, StoredKey};
