//! `POST /password/forgot` in process, on DynamoDB Local and aws-ses-v2-local:
//! the median time for a verified account (a token written, a mail sent)
//! against an unknown address (nothing to do), interleaved. Writes
//! `target/bench/forgot.json` for the report of `make bench`.

use shared::Outbox;
use shared::mail::ses::SesMailer;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (verified, unknown) = rt.block_on(async {
        let (store, _) = integration::fresh_store().await;
        let settings = shared::testing::outbox().settings;
        let outbox = Outbox {
            mailer: SesMailer::local(&integration::required_env("SES_ENDPOINT"), settings.from.clone()).await,
            settings,
        };
        let (verified, unknown, _) = integration::forgot_timing(&store, &outbox, 21).await;
        (verified, unknown)
    });
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let figures = serde_json::json!({ "verified_ms": ms(verified), "unknown_ms": ms(unknown) });
    println!("forgot: {figures}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/forgot.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(out, figures.to_string()).unwrap();
}
