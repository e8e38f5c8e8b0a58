//! The real binary refuses to start without a strong signing secret.

use std::process::Command;

fn start(secret: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_protected"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Some(secret) = secret {
        cmd.env("JWT_SECRET", secret);
    }
    cmd.output().expect("the binary runs")
}

#[test]
fn without_a_signing_secret_the_function_stops_at_start_with_a_clear_message() {
    let out = start(None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("startup error: JWT_SECRET is not set"), "{stderr}");
}

#[test]
fn with_a_secret_under_32_bytes_the_function_stops_at_start_without_printing_it() {
    let out = start(Some("short-secret-1234"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JWT_SECRET is invalid") && stderr.contains("at least 32"),
        "{stderr}"
    );
    assert!(!stderr.contains("short-secret-1234"), "{stderr}");
}
