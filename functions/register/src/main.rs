//! `POST /register`: creates a user.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let store = shared::store_from_env().await;
    run(service_fn(|req| register::handle(&store, req))).await
}
