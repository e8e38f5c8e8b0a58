//! `keytool`: see `keytool help`.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secrets = aws_sdk_secretsmanager::Client::new(&shared::aws::config_from_env().await);
    match keytool::run(&args, shared::now(), &secrets).await {
        Ok(out) => println!("{out}"),
        Err(error) => {
            eprintln!("keytool: {error}");
            std::process::exit(1);
        }
    }
}
