//! `GET /account`, `DELETE /account`, `POST /account/password`: the caller's own account.

use lambda_http::{Error, run, service_fn};
use shared::service::register::PasswordRules;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = account::State {
        keys: shared::key_cache::KeyCache::verifying_from_env(),
        store: shared::store_from_env().await,
    };
    let rules = shared::config::or_exit(PasswordRules::from_env());
    shared::strength::prepare();
    run(service_fn(|req| account::handle(&state, &rules, req))).await
}
