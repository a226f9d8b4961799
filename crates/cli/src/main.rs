//! The `cmarchive` command.

fn main() {
    eprintln!("cmarchive: not built yet");
    std::process::exit(1);
}
