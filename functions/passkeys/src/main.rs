//! Passkeys: registration, listing, removal, and the passwordless login.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let rp = shared::config::or_exit(shared::passkey::RelyingParty::from_env());
    let state = passkeys::State {
        keys: shared::key_cache::KeyCache::signing_from_env(),
        store: shared::store_from_env().await,
    };
    run(service_fn(|req| passkeys::handle(&state, &rp, req))).await
}
