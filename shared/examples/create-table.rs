//! Creates the service's table on DynamoDB Local, idempotently: used by `make dev` and `make test`.
//!
//! `cargo run -p shared --features dynamodb --example create-table -- <endpoint> <table>`

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(endpoint), Some(table)) = (args.next(), args.next()) else {
        eprintln!("usage: create-table <endpoint> <table>");
        std::process::exit(2);
    };
    let client = shared::store::dynamo::local_client(&endpoint).await;
    if let Err(error) = shared::store::dynamo::create_table(&client, &table).await {
        eprintln!("could not create table {table} at {endpoint}: {error}");
        std::process::exit(1);
    }
    println!("table {table} ready at {endpoint} (TTL on attribute `ttl`)");
}
