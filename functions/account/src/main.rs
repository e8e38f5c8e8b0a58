//! `GET /account`, `DELETE /account`, `POST /account/password`: the caller's own account.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = account::State {
        keys: shared::key_cache::KeyCache::verifying_from_env(),
        store: shared::store_from_env().await,
    };
    run(service_fn(|req| account::handle(&state, req))).await
}
