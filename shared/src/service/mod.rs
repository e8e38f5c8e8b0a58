//! The flows: register, log in, refresh, log out; and the account: reading
//! it, changing its password, deleting it, its sessions, its email address,
//! the password reset by mail, and the second factor. Each takes parsed input,
//! the store and the token authority, and returns a domain result or a
//! domain error; none knows HTTP (`http` maps the errors to answers).

pub mod account;
pub mod admin;
pub mod audit;
pub mod email;
pub mod login;
pub mod logout;
pub mod mfa;
#[cfg(feature = "passkeys")]
pub mod passkeys;
pub mod refresh;
pub mod register;
pub mod reset;
pub mod sessions;
pub mod throttle;

pub use account::AccountError;
pub use email::EmailError;
pub use login::{LoginError, login, login_by_email};
pub use logout::logout;
pub use mfa::MfaError;
#[cfg(feature = "passkeys")]
pub use passkeys::PasskeyError;
pub use refresh::{RefreshError, refresh};
pub use register::{RegisterError, register};
pub use reset::{ResetError, forgot, reset};
pub use sessions::{EndError, TokenPair};
