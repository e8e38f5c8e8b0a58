//! A Lambda REQUEST authorizer for HTTP APIs: protects any route with the service's access tokens.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let keys = shared::key_cache::KeyCache::from_env();
    run(service_fn(|event: LambdaEvent<authorizer::Event>| {
        authorizer::handle(&keys, event.payload)
    }))
    .await
}
