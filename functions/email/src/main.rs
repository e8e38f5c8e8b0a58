//! `POST /account/email`, `POST /account/email/verify`: the caller's email address.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = email::State {
        keys: shared::key_cache::KeyCache::verifying_from_env(),
        store: shared::store_from_env().await,
    };
    let outbox = shared::outbox_from_env(false).await;
    run(service_fn(|req| email::handle(&state, &outbox, req))).await
}
