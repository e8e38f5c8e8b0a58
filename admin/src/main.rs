//! `admin`: see `admin help`.

fn main() {
    eprintln!("admin: not built yet");
    std::process::exit(1);
}
