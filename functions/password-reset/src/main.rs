//! `POST /password/forgot`, `POST /password/reset`: a forgotten password, reset by mail.

use lambda_http::{Error, run, service_fn};
use shared::service::register::PasswordRules;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let store = shared::store_from_env().await;
    let outbox = shared::outbox_from_env(true).await;
    let rules = shared::config::or_exit(PasswordRules::from_env());
    shared::strength::prepare();
    run(service_fn(|req| password_reset::handle(&store, &outbox, &rules, req))).await
}
