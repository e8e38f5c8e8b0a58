//! `GET /protected`: answers who the access token belongs to, without any database.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let keys = shared::key_cache::KeyCache::verifying_from_env();
    run(service_fn(|req| protected::handle(&keys, req))).await
}
