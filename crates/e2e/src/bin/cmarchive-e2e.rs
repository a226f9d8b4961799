//! `cmarchive-e2e up|down`: a local cluster with cert-manager for a person to try cmarchive against.

fn main() {
    eprintln!("cmarchive-e2e: not built yet");
    std::process::exit(1);
}
