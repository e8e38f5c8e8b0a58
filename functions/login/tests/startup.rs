//! The real binary refuses to start without its table or signing secret.

use std::process::Command;

fn start(vars: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_login"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.envs(vars.iter().copied());
    let out = cmd.output().expect("the binary runs");
    assert!(!out.status.success(), "it must not start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn without_a_signing_secret_login_stops_at_start() {
    let stderr = start(&[("TABLE_NAME", "t")]);
    assert!(stderr.contains("JWT_SECRET is not set"), "{stderr}");
}

#[test]
fn without_a_table_name_login_stops_at_start() {
    let stderr = start(&[("JWT_SECRET", "a-perfectly-fine-secret-0123456789abcdef")]);
    assert!(stderr.contains("TABLE_NAME is not set"), "{stderr}");
}
