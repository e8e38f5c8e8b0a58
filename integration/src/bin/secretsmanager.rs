//! The Secrets Manager stand-in as a process, for the stack `make test` runs:
//! `secretsmanager <port> <secret id> <file> [<secret id> <file> ...]`, each
//! secret holding the trimmed contents of its file as its current version.

use integration::secretsmanager::SecretsManager;

const USAGE: &str = "usage: secretsmanager <port> <secret id> <file holding its value> [<secret id> <file> ...]";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((port, pairs)) = args
        .split_first()
        .filter(|(_, rest)| !rest.is_empty() && rest.len() % 2 == 0)
    else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let values: Vec<(&str, String)> = pairs
        .chunks(2)
        .map(|pair| {
            let (id, file) = (&pair[0], &pair[1]);
            let value = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
            (id.as_str(), value.trim().to_owned())
        })
        .collect();
    let secrets: Vec<(&str, &str)> = values.iter().map(|(id, value)| (*id, value.as_str())).collect();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("a port")))
        .await
        .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
    SecretsManager::new(&secrets, 0).serve(listener).await;
}
