//! `password::prepare` in a process of its own, where nothing has hashed yet.
#![cfg(target_os = "linux")]

/// This process's resident memory, in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn prepare_touches_the_memory_of_a_whole_hash_before_any_hash_and_once() {
    let before = resident_kib();
    shared::password::prepare().await;
    let after = resident_kib();
    assert!(
        after - before >= u64::from(shared::password::M_COST_KIB) * 9 / 10,
        "resident memory grew by {} KiB only",
        after - before
    );
    shared::password::prepare().await;
    assert!(resident_kib() < after + 1024, "a second prepare allocated again");
}
