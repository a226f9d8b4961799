//! Turns key flags and environment variables into the archive crate's [`Recipients`] and [`Identities`].
//!
//! Flags win over the environment, the way sops treats `SOPS_AGE_*`:
//! - `CMARCHIVE_AGE_RECIPIENTS`: comma- or whitespace-separated recipients, used by `pack` when no `-r/-R/-p/-j`;
//! - `CMARCHIVE_AGE_KEY_FILE`: an identity file, used when no `-i/-j`;
//! - `CMARCHIVE_AGE_KEY`: identity lines (`AGE-SECRET-KEY-1…`) themselves, same rule (for CI secrets);
//! - `CMARCHIVE_PASSPHRASE`: the passphrase for `-p` and passphrase archives when no `--passphrase-file`.
//!
//! Passphrases are asked on the terminal only when a person is there (stderr is a terminal).

use crate::cli::{IdentityArgs, RecipientArgs};
use crate::error::{CliError, Result};
use age::secrecy::{ExposeSecret, SecretString};
use cmarchive_archive::crypto::{KeyShape, key_shape};
use cmarchive_archive::{Identities, Interaction, Recipients};
use std::io::{self, IsTerminal, Read};
use std::path::Path;

/// Environment variable with recipients for `pack`.
pub const ENV_RECIPIENTS: &str = "CMARCHIVE_AGE_RECIPIENTS";
/// Environment variable naming an identity file.
pub const ENV_KEY_FILE: &str = "CMARCHIVE_AGE_KEY_FILE";
/// Environment variable holding identities.
pub const ENV_KEY: &str = "CMARCHIVE_AGE_KEY";
/// Environment variable holding a passphrase.
pub const ENV_PASSPHRASE: &str = "CMARCHIVE_PASSPHRASE";

/// Recipients for `pack`.
pub fn recipients(args: &RecipientArgs) -> Result<Recipients> {
    let wants_passphrase = args.passphrase || args.passphrase_file.is_some();
    let has_keys = !args.recipients.is_empty() || !args.recipients_files.is_empty() || !args.plugins.is_empty();
    if wants_passphrase && has_keys {
        return Err(CliError::Usage(
            "a passphrase (-p/--passphrase-file) cannot be combined with -r, -R or -j; choose one".into(),
        ));
    }
    if wants_passphrase {
        let passphrase = match &args.passphrase_file {
            Some(file) => read_passphrase_file(file)?,
            None => match env_passphrase() {
                Some(p) => p,
                None => prompt_new_passphrase()?,
            },
        };
        return Ok(Recipients::passphrase(passphrase));
    }

    let mut recipients = Recipients::new(interaction());
    if has_keys {
        for r in &args.recipients {
            recipients.add(r).map_err(CliError::Keys)?;
        }
        for file in &args.recipients_files {
            let contents = read_key_file(file, KeyFlag::RECIPIENTS_FILE)?;
            recipients.add_file(file, &contents).map_err(CliError::Keys)?;
        }
        for plugin in &args.plugins {
            recipients.add_plugin_default(plugin).map_err(CliError::Keys)?;
        }
    } else if let Ok(list) = std::env::var(ENV_RECIPIENTS) {
        for r in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|r| !r.is_empty())
        {
            recipients
                .add(r)
                .map_err(|e| CliError::Usage(format!("{ENV_RECIPIENTS}: {e}")))?;
        }
    }
    if recipients.is_empty() {
        return Err(CliError::NoRecipients);
    }
    Ok(recipients)
}

/// Identities for the reading commands. `archive_on_stdin` forbids `-i -`.
pub fn identities(args: &IdentityArgs, archive_on_stdin: bool) -> Result<Identities> {
    let mut identities = Identities::new(interaction());
    if !args.identities.is_empty() || !args.plugins.is_empty() {
        for file in &args.identities {
            if file == "-" && archive_on_stdin {
                return Err(CliError::Usage("the archive and -i cannot both be stdin (`-`)".into()));
            }
            let contents = read_key_file(file, KeyFlag::IDENTITY)?;
            identities.add_file(file, &contents).map_err(CliError::Keys)?;
        }
        for plugin in &args.plugins {
            identities.add_plugin_default(plugin).map_err(CliError::Keys)?;
        }
    } else if let Ok(file) = std::env::var(ENV_KEY_FILE) {
        let contents = std::fs::read(&file).map_err(|e| {
            KeyFlag::KEY_FILE_ENV
                .misplaced_key(&file)
                .unwrap_or_else(|| CliError::io(format!("{ENV_KEY_FILE}={file}"))(e))
        })?;
        identities.add_file(&file, &contents).map_err(CliError::Keys)?;
    } else if let Ok(keys) = std::env::var(ENV_KEY) {
        identities.add_file(ENV_KEY, keys.as_bytes()).map_err(CliError::Keys)?;
    }
    if let Some(file) = &args.passphrase_file {
        identities.set_passphrase(read_passphrase_file(file)?);
    } else if let Some(p) = env_passphrase() {
        identities.set_passphrase(p);
    }
    Ok(identities)
}

/// Prompts through age's own terminal code (pinentry when installed), only when a person is at a terminal.
pub(crate) fn interaction() -> Interaction {
    Interaction::none()
        .with_passphrase_prompt(|description| {
            if !io::stderr().is_terminal() {
                return None;
            }
            age::cli_common::read_secret(description, "Passphrase", None).ok()
        })
        .with_messages(|message| note!("{message}"))
}

fn prompt_new_passphrase() -> Result<SecretString> {
    if !io::stderr().is_terminal() {
        return Err(CliError::Usage(format!(
            "-p needs a passphrase: no terminal to ask on; use --passphrase-file FILE or set {ENV_PASSPHRASE}"
        )));
    }
    let passphrase = age::cli_common::read_secret("Passphrase for the archive", "Passphrase", Some("Confirm"))
        .map_err(|e| CliError::Io {
            context: "reading the passphrase from the terminal".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    if passphrase.expose_secret().is_empty() {
        return Err(CliError::Usage("the passphrase is empty".into()));
    }
    Ok(passphrase)
}

fn env_passphrase() -> Option<SecretString> {
    std::env::var(ENV_PASSPHRASE)
        .ok()
        .filter(|p| !p.is_empty())
        .map(SecretString::from)
}

/// The first line of a file, without its line ending. A name that is not there is not repeated in the error
/// (whatever the reason: missing, too long, a file where a folder should be): it may be the passphrase itself,
/// typed where its file belongs, and errors end up in CI logs.
fn read_passphrase_file(path: &Path) -> Result<SecretString> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if std::fs::symlink_metadata(path).is_ok() {
            CliError::io(format!("reading {}", path.display()))(e)
        } else {
            CliError::Usage(format!(
                "--passphrase-file names no readable file ({e}); the value is not repeated here in case it is \
                 the passphrase itself: give a file whose first line is the passphrase, or set {ENV_PASSPHRASE}"
            ))
        }
    })?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: the passphrase file's first line is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(line))
}

/// A flag or variable that names a key file, for saying what went wrong when it was given a key instead.
#[derive(Clone, Copy)]
struct KeyFlag {
    name: &'static str,
    /// Whether it names keys that open archives (identities) rather than recipients.
    opens: bool,
}

impl KeyFlag {
    const IDENTITY: KeyFlag = KeyFlag {
        name: "-i",
        opens: true,
    };
    const KEY_FILE_ENV: KeyFlag = KeyFlag {
        name: ENV_KEY_FILE,
        opens: true,
    };
    const RECIPIENTS_FILE: KeyFlag = KeyFlag {
        name: "-R",
        opens: false,
    };

    /// The error for a file name that is not there because it is a key: a secret key pasted where its file
    /// belongs (never echoed: the I/O error would print it), or a public key given to the wrong flag.
    fn misplaced_key(self, value: &str) -> Option<CliError> {
        let name = self.name;
        let message = match (key_shape(value)?, self.opens) {
            (KeyShape::PublicKey, true) => format!(
                "{name} takes a secret key file, and the value given is a public key (a recipient), which can \
                 encrypt but not open an archive; pass the file of the secret key it belongs to"
            ),
            (KeyShape::PublicKey, false) => {
                format!("{name} takes a file of recipients; to encrypt to one given on the command line, use -r")
            }
            (KeyShape::SecretKey | KeyShape::SshPrivateKey, true) => format!(
                "{name} takes a key file, not the key itself: save the key in a file only you can read and pass \
                 that, or put the key in {ENV_KEY}"
            ),
            (KeyShape::SecretKey | KeyShape::SshPrivateKey, false) => format!(
                "{name} takes a file of recipients, and the value given is a secret key: encrypt to its public key \
                 with -r (`cmarchive keygen` printed it) and keep the secret key for -i"
            ),
        };
        Some(CliError::Usage(message))
    }
}

/// Reads a key or recipients file; `-` is stdin. Capped at 16 MiB like age.
fn read_key_file(name: &str, flag: KeyFlag) -> Result<Vec<u8>> {
    let mut contents = Vec::new();
    let limit = 16 << 20;
    if name == "-" {
        io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut contents)
            .map_err(CliError::io("reading stdin"))?;
    } else {
        let mut file = std::fs::File::open(name).map_err(|e| {
            flag.misplaced_key(name)
                .unwrap_or_else(|| CliError::io(format!("reading {name}"))(e))
        })?;
        file.by_ref()
            .take(limit)
            .read_to_end(&mut contents)
            .map_err(CliError::io(format!("reading {name}")))?;
    }
    Ok(contents)
}
