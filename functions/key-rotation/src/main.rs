//! `key-rotation`: the Secrets Manager rotation function of the signing keys (see the library).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = shared::config::or_exit(key_rotation::RotationConfig::from_env());
    let client = aws_sdk_secretsmanager::Client::new(&shared::aws::config_from_env().await);
    let rotation = key_rotation::KeyRotation::new(client, config);
    run(service_fn(|event: LambdaEvent<key_rotation::Event>| {
        rotation.handle(event.payload, shared::now())
    }))
    .await
}
