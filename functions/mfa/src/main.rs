//! `POST /mfa/totp`, `POST /mfa/totp/confirm`, `DELETE /mfa/totp`,
//! `POST /mfa/recovery-codes`: the caller's TOTP second factor.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let issuer = shared::config::or_exit(shared::totp::TotpIssuer::from_env());
    let state = mfa::State {
        keys: shared::key_cache::KeyCache::verifying_from_env(),
        store: shared::store_from_env().await,
    };
    run(service_fn(|req| mfa::handle(&state, &issuer, req))).await
}
