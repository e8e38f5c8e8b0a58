//! `POST /logout`: revokes the session of a refresh token.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = logout::State {
        keys: shared::key_cache::KeyCache::verifying_from_env(),
        store: shared::store_from_env().await,
    };
    run(service_fn(|req| logout::handle(&state, req))).await
}
