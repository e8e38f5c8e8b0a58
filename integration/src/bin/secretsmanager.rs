//! The Secrets Manager stand-in as a process, for the stack `make test` runs:
//! `secretsmanager <port> <secret id> <file holding its value>`.

use integration::secretsmanager::SecretsManager;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, id, file] = args.as_slice() else {
        eprintln!("usage: secretsmanager <port> <secret id> <file holding its value>");
        std::process::exit(2);
    };
    let value = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("a port")))
        .await
        .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
    SecretsManager::new(&[(id, value.trim())], 0).serve(listener).await;
}
