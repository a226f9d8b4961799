//! Signed archives on the command line: `pack --sign KEY` writes `ARCHIVE.sig` beside the archive, and the reading
//! commands' `--signers FILE` refuse an archive unless that signature, by a key the file allows, verifies over the
//! archive's bytes, before any of them is decrypted (`cmarchive_archive::signature` has the format).

use crate::cli::IdentityArgs;
use crate::error::{CliError, Result};
use crate::keys;
use cmarchive_archive::signature::{AllowedSigners, SigningKey};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// The signing key of `pack --sign KEY` (asking for its passphrase on a terminal when it has one).
pub fn signing_key(path: &Path) -> Result<SigningKey> {
    let name = path.display().to_string();
    let contents = std::fs::read(path).map_err(CliError::io(format!("reading {name}")))?;
    SigningKey::from_openssh(&name, &contents, &keys::interaction()).map_err(CliError::Keys)
}

/// Where an archive's signature is: `--signature`, else `ARCHIVE.sig` (an archive on stdin or stdout has no place
/// beside it, so there the flag is needed).
pub fn signature_path(archive: &str, given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(path) => Ok(path.to_owned()),
        None if archive == "-" => Err(CliError::Usage(
            "the archive is stdin or stdout, so its signature has no place beside it: name it with --signature FILE"
                .into(),
        )),
        None => Ok(PathBuf::from(format!("{archive}.sig"))),
    }
}

/// Signs the archive's bytes and writes the signature to `path` (replaced only when it is complete).
pub fn write_signature(key: &SigningKey, archive: &[u8], path: &Path, overwrite: bool) -> Result<()> {
    let signature = key.sign(archive).map_err(CliError::Keys)?;
    crate::commands::pack::write_file_atomically(path, overwrite, |mut file| {
        file.write_all(signature.as_bytes())
            .map_err(CliError::io(format!("writing {}", path.display())))
    })
}

/// With `--signers`, the archive's bytes once its signature verified (read whole: what was verified is what is
/// decrypted); `None` without the flag.
pub fn verified_archive(archive: &str, identity: &IdentityArgs) -> Result<Option<Vec<u8>>> {
    let Some(signers) = &identity.signers else {
        return Ok(None);
    };
    let refused = |source| CliError::Archive {
        path: archive.to_owned(),
        source,
    };
    let signers_name = signers.display().to_string();
    let allowed = std::fs::read(signers).map_err(CliError::io(format!("reading {signers_name}")))?;
    let allowed = AllowedSigners::parse(&signers_name, &allowed).map_err(CliError::Keys)?;
    let signature_path = signature_path(archive, identity.signature.as_deref())?;
    let signature = match std::fs::read(&signature_path) {
        Ok(signature) => signature,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CliError::Usage(format!(
                "{archive} is not signed: {} does not exist; --signers accepts only archives signed with \
                 `cmarchive pack --sign KEY` (name the signature with --signature FILE)",
                signature_path.display()
            )));
        }
        Err(e) => return Err(CliError::io(format!("reading {}", signature_path.display()))(e)),
    };
    let mut bytes = Vec::new();
    if archive == "-" {
        if io::stdin().is_terminal() {
            return Err(CliError::Usage(
                "the archive `-` means stdin, but stdin is a terminal; pipe the archive in or name the file".into(),
            ));
        }
        io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(CliError::io("reading stdin"))?;
    } else {
        std::fs::File::open(archive)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(CliError::io(format!("reading {archive}")))?;
    }
    let signer = allowed
        .verify(&bytes, &signature, jiff::Timestamp::now())
        .map_err(refused)?;
    tracing::info!(principals = %signer.principals, key = %signer.fingerprint, "signature verified");
    Ok(Some(bytes))
}

/// A writer that keeps a copy of what passes through, when asked to (the bytes `pack --sign` signs).
pub struct Copying<W> {
    inner: W,
    /// What was written, when kept.
    pub copy: Option<Vec<u8>>,
}

impl<W> Copying<W> {
    /// Passes writes to `inner`, keeping them when `keep`.
    pub fn new(inner: W, keep: bool) -> Self {
        Copying {
            inner,
            copy: keep.then(Vec::new),
        }
    }
}

impl<W: Write> Write for Copying<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(copy) = &mut self.copy {
            copy.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
