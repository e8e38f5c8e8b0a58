//! `admin`: see `admin help`.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match admin::Invocation::parse(&args) {
        // `help` needs no table and no credentials.
        Ok(invocation) if !invocation.needs_store() => Ok(admin::USAGE.to_owned()),
        Ok(invocation) => invocation.run(shared::now(), &shared::store_from_env().await).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(out) => println!("{out}"),
        Err(error) => {
            eprintln!("admin: {error}");
            std::process::exit(error.exit_code());
        }
    }
}
