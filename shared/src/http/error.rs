//! Every error a client can get, and every domain error mapped to one: the
//! status, code and headers of an answer are decided here and nowhere else.

use super::response::json;
use crate::mail::MailError;
use crate::password::HashError;
use crate::secret::SecretError;
use crate::service::{
    AccountError, EmailError, EndError, LoginError, MfaError, RefreshError, RegisterError, ResetError,
};
use crate::store::StoreError;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "lambda-jwt-auth";

/// Every error a client can get. The variant decides status, code and headers, here and nowhere else.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The body or a field is not what the route expects; the message says which and why.
    InvalidRequest(String),
    /// Wrong password or unknown username: one answer for both.
    InvalidCredentials,
    /// A token that is missing, malformed, badly signed, expired, of the wrong kind, revoked or reused.
    InvalidToken,
    /// Like `InvalidToken`, from a resource route: adds the RFC 6750 challenge.
    BearerChallenge {
        token_sent: bool,
    },
    /// The route answers other methods only: `allow` lists them (`"GET, DELETE"`).
    MethodNotAllowed {
        allow: &'static str,
    },
    /// Nothing of the caller's is there (whether or not something of someone else's is).
    NotFound,
    /// OpenID discovery of a stack whose issuer is not the https URL of the
    /// API: there is no address for the keys that does not come from the request.
    NoDiscovery,
    UsernameTaken,
    /// Another account holds the address verified.
    EmailTaken,
    /// A verification code that is wrong, expired, used or void.
    InvalidCode,
    /// A password reset token that is unknown, expired or used (a `400`: it is not a credential of the request).
    InvalidResetToken,
    /// A second-factor code given as a credential that is wrong, used or void (a `401`).
    RejectedCode,
    /// The password was right and the account has a second factor: the
    /// client goes on at `POST /login/mfa` with this token.
    MfaRequired {
        mfa_token: String,
    },
    /// The right credentials of an account the operator disabled (a wrong
    /// password is still `InvalidCredentials`, so this tells a guesser nothing).
    AccountDisabled,
    /// A TOTP factor is active already.
    TotpEnabled,
    /// A WebAuthn `challenge_id` that is unknown, used, expired or not the caller's.
    InvalidChallenge,
    /// A passkey registration the relying party refused.
    InvalidPasskey,
    /// A passkey login that proved nothing (unknown passkey, bad signature, wrong origin...).
    RejectedPasskey,
    /// The credential is registered already.
    PasskeyTaken,
    /// The account holds the most passkeys it may.
    TooManyPasskeys,
    PayloadTooLarge,
    /// A body that is not declared `application/json`.
    UnsupportedMediaType,
    /// A new password the strength estimator scores below the minimum; the message is its advice.
    WeakPassword {
        message: String,
    },
    /// A new password found in a known breach (when the check blocks); the message says so.
    BreachedPassword {
        message: String,
    },
    TooManyAttempts {
        retry_after: u64,
    },
    /// The hour's mails to the account or the address are spent.
    TooManyMails {
        retry_after: u64,
    },
    /// A dependency (DynamoDB, the secret store) is unreachable or throttling.
    Unavailable,
}

/// The JSON body of every error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    /// `mfa_required` only: the token for the second step and how it can be taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    methods: Option<&'a [&'a str]>,
}

/// What `POST /login/mfa` takes besides the `mfa_token`.
pub const MFA_METHODS: &[&str] = &["totp", "recovery_code"];

impl ApiError {
    /// Shorthand for a `400 invalid_request` with a message for the client.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }

    /// A new password refused as guessable, with the estimator's advice.
    fn weak(weak: crate::strength::Weak) -> Self {
        tracing::info!(score = weak.score, "new password refused as weak");
        Self::WeakPassword { message: weak.message }
    }

    /// A new password refused as breached.
    fn breached(breached: crate::breached::Breached) -> Self {
        tracing::info!(count = breached.count, "new password refused as breached");
        Self::BreachedPassword {
            message: breached.to_string(),
        }
    }

    /// The response a client sees: status, `{"error", "message"}` and any headers the error needs.
    pub fn into_response(self) -> Response<Body> {
        let (status, code, message): (StatusCode, &str, &str) = match &self {
            Self::InvalidRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
            Self::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "username or password is incorrect",
            ),
            Self::InvalidToken | Self::BearerChallenge { .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is missing, invalid, expired or revoked",
            ),
            Self::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not answer that method",
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "there is nothing of yours there"),
            Self::NoDiscovery => (
                StatusCode::NOT_FOUND,
                "not_found",
                "discovery needs an https issuer: set JWT_ISSUER (the stack's JwtIssuer) to the API's URL; \
                 the keys are at /.well-known/jwks.json",
            ),
            Self::UsernameTaken => (
                StatusCode::CONFLICT,
                "username_taken",
                "that username is already registered",
            ),
            Self::EmailTaken => (
                StatusCode::CONFLICT,
                "email_taken",
                "that email address belongs to another account",
            ),
            Self::InvalidCode => (
                StatusCode::BAD_REQUEST,
                "invalid_code",
                "the code is wrong, expired or used; after 5 wrong codes, request a new one",
            ),
            Self::InvalidResetToken => (
                StatusCode::BAD_REQUEST,
                "invalid_token",
                "the reset link is invalid, expired or already used; request a new one",
            ),
            Self::RejectedCode => (
                StatusCode::UNAUTHORIZED,
                "invalid_code",
                "the code is wrong or was already used; wait for the next one",
            ),
            Self::MfaRequired { .. } => (
                StatusCode::FORBIDDEN,
                "mfa_required",
                "the password is right; send a code from the authenticator app (or a recovery code) to POST /login/mfa with this mfa_token",
            ),
            Self::TotpEnabled => (
                StatusCode::CONFLICT,
                "totp_enabled",
                "an authenticator app is already set up; remove it first",
            ),
            Self::InvalidChallenge => (
                StatusCode::BAD_REQUEST,
                "invalid_challenge",
                "the challenge is unknown, used or expired; start again",
            ),
            Self::InvalidPasskey => (
                StatusCode::BAD_REQUEST,
                "invalid_credential",
                "the authenticator's answer was not accepted",
            ),
            Self::RejectedPasskey => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the passkey was not accepted",
            ),
            Self::PasskeyTaken => (
                StatusCode::CONFLICT,
                "passkey_taken",
                "this passkey is registered already",
            ),
            Self::TooManyPasskeys => (
                StatusCode::CONFLICT,
                "too_many_passkeys",
                "the account has the most passkeys it may hold; remove one first",
            ),
            Self::TooManyMails { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many mails to this account or address; retry later",
            ),
            Self::WeakPassword { message } => (StatusCode::BAD_REQUEST, "weak_password", message),
            Self::BreachedPassword { message } => (StatusCode::BAD_REQUEST, "breached_password", message),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON, sent with Content-Type: application/json",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than 16 KiB",
            ),
            Self::TooManyAttempts { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed attempts for this account or from this address; retry later",
            ),
            Self::AccountDisabled => (
                StatusCode::FORBIDDEN,
                "account_disabled",
                "this account is disabled; contact the service's operator",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is temporarily unavailable; retry shortly",
            ),
        };
        let mfa_token = match &self {
            Self::MfaRequired { mfa_token } => Some(mfa_token.as_str()),
            _ => None,
        };
        let body = ErrorBody {
            error: code,
            message,
            mfa_token,
            methods: mfa_token.map(|_| MFA_METHODS),
        };
        let mut response = json(status, &body);
        let headers = response.headers_mut();
        match self {
            Self::BearerChallenge { token_sent } => {
                let challenge = if token_sent {
                    format!("Bearer realm=\"{REALM}\", error=\"invalid_token\"")
                } else {
                    format!("Bearer realm=\"{REALM}\"")
                };
                headers.insert(header::WWW_AUTHENTICATE, header_value(&challenge));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, header_value(allow));
            }
            Self::TooManyAttempts { retry_after } | Self::TooManyMails { retry_after } => {
                headers.insert(header::RETRY_AFTER, header_value(&retry_after.max(1).to_string()));
            }
            Self::Unavailable => {
                crate::metrics::count(crate::metrics::Metric::Unavailable);
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // It carries a token (RFC 6749 §5.1, as the token response).
            Self::MfaRequired { .. } => {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            }
            _ => {}
        }
        response
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header values built here are ASCII")
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store unavailable");
        Self::Unavailable
    }
}

impl From<HashError> for ApiError {
    fn from(error: HashError) -> Self {
        tracing::error!(%error, "password hashing unavailable");
        Self::Unavailable
    }
}

impl From<SecretError> for ApiError {
    fn from(error: SecretError) -> Self {
        tracing::error!(%error, "secret store unavailable");
        Self::Unavailable
    }
}

impl From<MailError> for ApiError {
    fn from(error: MailError) -> Self {
        tracing::error!(%error, "mail unavailable");
        Self::Unavailable
    }
}

impl From<EmailError> for ApiError {
    fn from(error: EmailError) -> Self {
        match error {
            EmailError::Taken => Self::EmailTaken,
            EmailError::Limited { retry_after } => Self::TooManyMails { retry_after },
            EmailError::InvalidCode => Self::InvalidCode,
            EmailError::Gone => Self::BearerChallenge { token_sent: true },
            EmailError::Store(e) => e.into(),
            EmailError::Mail(e) => e.into(),
        }
    }
}

impl From<ResetError> for ApiError {
    fn from(error: ResetError) -> Self {
        match error {
            ResetError::InvalidToken => Self::InvalidResetToken,
            ResetError::Limited { retry_after } => Self::TooManyAttempts { retry_after },
            ResetError::WeakPassword(weak) => Self::weak(weak),
            ResetError::BreachedPassword(breached) => Self::breached(breached),
            ResetError::Store(e) => e.into(),
            ResetError::Hash(e) => e.into(),
            ResetError::Mail(e) => e.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::InvalidCredentials => Self::InvalidCredentials,
            LoginError::Locked { retry_after } => Self::TooManyAttempts { retry_after },
            LoginError::MfaRequired { mfa_token } => Self::MfaRequired { mfa_token },
            LoginError::AccountDisabled => Self::AccountDisabled,
            LoginError::Store(e) => e.into(),
            LoginError::Hash(e) => e.into(),
        }
    }
}

impl From<MfaError> for ApiError {
    fn from(error: MfaError) -> Self {
        match error {
            MfaError::InvalidCode => Self::RejectedCode,
            // Setting the factor up, the code is input to check, not a credential.
            MfaError::InvalidEnrollmentCode => Self::InvalidCode,
            MfaError::InvalidCredentials => Self::InvalidCredentials,
            MfaError::Locked { retry_after } => Self::TooManyAttempts { retry_after },
            MfaError::NotFound => Self::NotFound,
            MfaError::AlreadyActive => Self::TotpEnabled,
            MfaError::Gone => Self::BearerChallenge { token_sent: true },
            MfaError::InvalidMfaToken => Self::InvalidToken,
            MfaError::AccountDisabled => Self::AccountDisabled,
            MfaError::Store(e) => e.into(),
            MfaError::Hash(e) => e.into(),
        }
    }
}

#[cfg(feature = "passkeys")]
impl From<crate::service::PasskeyError> for ApiError {
    fn from(error: crate::service::PasskeyError) -> Self {
        use crate::service::PasskeyError;
        match error {
            PasskeyError::Malformed(reason) => {
                tracing::info!(%reason, "malformed credential");
                Self::invalid("credential is not a WebAuthn credential of this ceremony (PublicKeyCredential.toJSON())")
            }
            PasskeyError::InvalidChallenge => Self::InvalidChallenge,
            PasskeyError::AccountDisabled => Self::AccountDisabled,
            PasskeyError::Refused(reason) => {
                tracing::info!(%reason, "passkey registration refused");
                Self::InvalidPasskey
            }
            PasskeyError::LoginRefused(reason) => {
                tracing::info!(%reason, "passkey login refused");
                Self::RejectedPasskey
            }
            PasskeyError::Taken => Self::PasskeyTaken,
            PasskeyError::TooMany => Self::TooManyPasskeys,
            PasskeyError::NotFound => Self::NotFound,
            PasskeyError::Gone => Self::BearerChallenge { token_sent: true },
            PasskeyError::Store(e) => e.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::Invalid | RefreshError::Reused { .. } => Self::InvalidToken,
            RefreshError::Store(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::InvalidCredentials => Self::InvalidCredentials,
            AccountError::Locked { retry_after } => Self::TooManyAttempts { retry_after },
            // The token's user no longer exists: the token is no good.
            AccountError::Gone => Self::BearerChallenge { token_sent: true },
            AccountError::WeakPassword(weak) => Self::weak(weak),
            AccountError::BreachedPassword(breached) => Self::breached(breached),
            AccountError::Store(e) => e.into(),
            AccountError::Hash(e) => e.into(),
        }
    }
}

impl From<EndError> for ApiError {
    fn from(error: EndError) -> Self {
        match error {
            EndError::NotFound => Self::NotFound,
            EndError::Store(e) => e.into(),
        }
    }
}

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::Taken => Self::UsernameTaken,
            RegisterError::Limited { retry_after } => Self::TooManyAttempts { retry_after },
            RegisterError::WeakPassword(weak) => Self::weak(weak),
            RegisterError::BreachedPassword(breached) => Self::breached(breached),
            RegisterError::Email(e) => e.into(),
            RegisterError::Store(e) => e.into(),
            RegisterError::Hash(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::response_json;

    #[test]
    fn every_error_is_json_with_a_code_and_a_message() {
        let all = [
            ApiError::invalid("x"),
            ApiError::InvalidCredentials,
            ApiError::InvalidToken,
            ApiError::BearerChallenge { token_sent: true },
            ApiError::MethodNotAllowed { allow: "POST" },
            ApiError::NotFound,
            ApiError::UsernameTaken,
            ApiError::EmailTaken,
            ApiError::InvalidCode,
            ApiError::InvalidResetToken,
            ApiError::PayloadTooLarge,
            ApiError::TooManyAttempts { retry_after: 30 },
            ApiError::TooManyMails { retry_after: 30 },
            ApiError::WeakPassword { message: "x".into() },
            ApiError::BreachedPassword { message: "x".into() },
            ApiError::Unavailable,
        ];
        for error in all {
            let response = error.into_response();
            assert!(response.status().is_client_error() || response.status().is_server_error());
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = response_json(&response);
            assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
        }
    }

    #[test]
    fn status_codes_and_headers_follow_the_spec() {
        let r = ApiError::MethodNotAllowed { allow: "GET, DELETE" }.into_response();
        assert_eq!(
            (r.status().as_u16(), &r.headers()["allow"]),
            (405, &HeaderValue::from_static("GET, DELETE"))
        );
        let r = ApiError::NotFound.into_response();
        assert_eq!(
            (r.status().as_u16(), response_json(&r)["error"].as_str()),
            (404, Some("not_found"))
        );
        let r = ApiError::TooManyAttempts { retry_after: 42 }.into_response();
        assert_eq!(
            (r.status().as_u16(), &r.headers()["retry-after"]),
            (429, &HeaderValue::from_static("42"))
        );
        let r = ApiError::TooManyAttempts { retry_after: 0 }.into_response();
        assert_eq!(r.headers()["retry-after"], "1", "never 0");
        let r = ApiError::Unavailable.into_response();
        assert_eq!(
            (r.status().as_u16(), &r.headers()["retry-after"]),
            (503, &HeaderValue::from_static("1"))
        );
        assert_eq!(response_json(&r)["error"], "unavailable");
        let r = ApiError::BearerChallenge { token_sent: false }.into_response();
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"lambda-jwt-auth\"");
        let r = ApiError::BearerChallenge { token_sent: true }.into_response();
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"lambda-jwt-auth\", error=\"invalid_token\""
        );
    }

    #[test]
    fn domain_errors_map_to_their_answers() {
        let store = || StoreError {
            operation: "GetItem",
            detail: "timeout".into(),
        };
        assert_eq!(
            ApiError::from(LoginError::InvalidCredentials),
            ApiError::InvalidCredentials
        );
        assert_eq!(
            ApiError::from(LoginError::Locked { retry_after: 7 }),
            ApiError::TooManyAttempts { retry_after: 7 }
        );
        assert_eq!(ApiError::from(LoginError::Store(store())), ApiError::Unavailable);
        assert_eq!(ApiError::from(RefreshError::Invalid), ApiError::InvalidToken);
        assert_eq!(
            ApiError::from(RefreshError::Reused { session_id: "s".into() }),
            ApiError::InvalidToken,
            "a reuse looks like any invalid token to the client"
        );
        assert_eq!(ApiError::from(RefreshError::Store(store())), ApiError::Unavailable);
        assert_eq!(ApiError::from(RegisterError::Taken), ApiError::UsernameTaken);
        assert_eq!(
            ApiError::from(AccountError::InvalidCredentials),
            ApiError::InvalidCredentials
        );
        assert_eq!(
            ApiError::from(AccountError::Locked { retry_after: 3 }),
            ApiError::TooManyAttempts { retry_after: 3 }
        );
        assert_eq!(
            ApiError::from(AccountError::Gone),
            ApiError::BearerChallenge { token_sent: true }
        );
        assert_eq!(ApiError::from(AccountError::Store(store())), ApiError::Unavailable);
        assert_eq!(ApiError::from(EndError::NotFound), ApiError::NotFound);
        assert_eq!(ApiError::from(EndError::Store(store())), ApiError::Unavailable);
        assert_eq!(ApiError::from(RegisterError::Store(store())), ApiError::Unavailable);
        assert_eq!(ApiError::from(EmailError::Taken), ApiError::EmailTaken);
        assert_eq!(
            ApiError::from(RegisterError::Email(EmailError::Taken)),
            ApiError::EmailTaken
        );
        assert_eq!(ApiError::from(EmailError::InvalidCode), ApiError::InvalidCode);
        assert_eq!(
            ApiError::from(EmailError::Limited { retry_after: 9 }),
            ApiError::TooManyMails { retry_after: 9 }
        );
        assert_eq!(
            ApiError::from(EmailError::Gone),
            ApiError::BearerChallenge { token_sent: true }
        );
        assert_eq!(
            ApiError::from(EmailError::Mail(MailError("down".into()))),
            ApiError::Unavailable
        );
        assert_eq!(ApiError::from(ResetError::InvalidToken), ApiError::InvalidResetToken);
        assert_eq!(
            ApiError::from(ResetError::Mail(MailError("down".into()))),
            ApiError::Unavailable
        );
    }

    #[test]
    fn refused_new_passwords_are_400_with_their_reason_as_the_message() {
        let weak = crate::strength::Weak {
            score: 0,
            message: "This is a very common password.".into(),
        };
        let r = ApiError::from(RegisterError::WeakPassword(weak.clone())).into_response();
        let body = response_json(&r);
        assert_eq!(
            (r.status().as_u16(), body["error"].as_str(), body["message"].as_str()),
            (400, Some("weak_password"), Some("This is a very common password."))
        );
        let breached = crate::breached::Breached { count: 42 };
        for error in [
            ApiError::from(RegisterError::BreachedPassword(breached)),
            ApiError::from(AccountError::BreachedPassword(breached)),
            ApiError::from(ResetError::BreachedPassword(breached)),
        ] {
            let r = error.into_response();
            let body = response_json(&r);
            assert_eq!(
                (r.status().as_u16(), body["error"].as_str()),
                (400, Some("breached_password"))
            );
            assert!(body["message"].as_str().unwrap().contains("42 times"), "{body}");
        }
        assert_eq!(
            ApiError::from(AccountError::WeakPassword(weak.clone())),
            ApiError::WeakPassword {
                message: weak.message.clone()
            }
        );
        assert_eq!(
            ApiError::from(ResetError::WeakPassword(weak.clone())),
            ApiError::WeakPassword { message: weak.message }
        );
    }

    #[test]
    fn mail_and_code_errors_have_their_own_codes() {
        let r = ApiError::InvalidResetToken.into_response();
        assert_eq!(
            (r.status().as_u16(), response_json(&r)["error"].as_str()),
            (400, Some("invalid_token"))
        );
        let r = ApiError::InvalidCode.into_response();
        assert_eq!(
            (r.status().as_u16(), response_json(&r)["error"].as_str()),
            (400, Some("invalid_code"))
        );
        let r = ApiError::EmailTaken.into_response();
        assert_eq!(
            (r.status().as_u16(), response_json(&r)["error"].as_str()),
            (409, Some("email_taken"))
        );
        let r = ApiError::TooManyMails { retry_after: 60 }.into_response();
        assert_eq!(
            (
                r.status().as_u16(),
                &r.headers()["retry-after"],
                response_json(&r)["error"].as_str()
            ),
            (429, &HeaderValue::from_static("60"), Some("too_many_attempts"))
        );
    }
}
