//! A Lambda REQUEST authorizer for HTTP APIs: protects any route with the service's access tokens.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let keys = shared::key_cache::KeyCache::verifying_from_env();
    let require_mfa = shared::config::or_exit(authorizer::RequireMfa::from_env());
    run(service_fn(|event: LambdaEvent<authorizer::Event>| {
        authorizer::handle(&keys, &require_mfa, event.payload)
    }))
    .await
}
