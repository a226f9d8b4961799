//! `cmarchive keygen [FILE]`: a new X25519 identity, the way age-keygen makes one.

use crate::cli::KeygenArgs;
use crate::error::{CliError, Result};
use age::secrecy::ExposeSecret;
use std::io::{self, IsTerminal, Write};

/// Writes a new identity to the file (mode 0600, never overwriting) or stdout; prints the public key to stderr.
pub fn run(args: &KeygenArgs) -> Result<()> {
    let key = cmarchive_archive::crypto::generate_key(jiff::Timestamp::now());
    match args.file.as_deref().filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let mut file = crate::commands::create_file(path, 0o600, false)?;
            file.write_all(key.identity_file.expose_secret().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(CliError::io(format!("writing {}", path.display())))?;
            eprintln!("Public key: {}", key.recipient);
        }
        None => {
            let stdout = io::stdout();
            if !stdout.is_terminal() {
                // The identity goes into a pipe or file; the person still needs the public key.
                eprintln!("Public key: {}", key.recipient);
            }
            let mut out = stdout.lock();
            out.write_all(key.identity_file.expose_secret().as_bytes())
                .and_then(|()| out.flush())
                .map_err(CliError::io("writing to stdout"))?;
        }
    }
    Ok(())
}
