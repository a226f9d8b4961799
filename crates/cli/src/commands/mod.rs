//! One module per subcommand. Shared here: opening an archive (decrypt + verify) for the reading commands, and
//! creating the files that hold keys and Secrets.

pub mod inspect;
pub mod keygen;
pub mod man;
pub mod pack;
pub mod pack_cluster;
pub mod plain_objects;
pub mod restore;
pub mod selection;
pub mod unpack;
pub mod verify;

use crate::cli::IdentityArgs;
use crate::error::{CliError, Result};
use crate::keys;
use cmarchive_archive::{CheckedArchive, ObjectRef, ReadLimits, Replay, VerifiedArchive, check_archive};
use std::fs::File;
use std::io::{self, BufReader, IsTerminal};
use std::path::Path;

/// Creates a file with `mode` from the start (a key or a Secret is never readable by others, not even for a
/// moment); without `overwrite` an existing file is an error, with it the file is truncated and its mode reset
/// (truncation keeps an old, possibly wider mode).
pub fn create_file(path: &Path, mode: u32, overwrite: bool) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let file = options.open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => CliError::OutputExists(path.to_owned()),
        _ => CliError::io(format!("creating {}", path.display()))(e),
    })?;
    #[cfg(unix)]
    if overwrite {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(CliError::io(format!("chmod {}", path.display())))?;
    }
    Ok(file)
}

/// Decrypts and verifies the archive named on the command line (`-` = stdin). Nothing is returned, and so nothing
/// can be printed or applied, unless the whole archive passed every check.
pub fn open_archive(archive: &str, identity: &IdentityArgs) -> Result<VerifiedArchive> {
    let checked = check_archive_named(archive, identity)?;
    checked.into_verified().map_err(|source| CliError::Archive {
        path: archive.to_owned(),
        source,
    })
}

/// [`open_archive`] for a command that takes the objects one at a time ([`CheckedArchive::for_each_object`]):
/// the verified archive stays compressed in memory.
pub fn check_archive_named(archive: &str, identity: &IdentityArgs) -> Result<CheckedArchive> {
    let identities = keys::identities(identity, archive == "-")?;
    let limits = ReadLimits {
        max_decompressed: identity.max_size,
        ..ReadLimits::default()
    };
    if let Some(bytes) = crate::signing::verified_archive(archive, identity)? {
        return check_archive(bytes.as_slice(), &identities, &limits).map_err(|source| CliError::Archive {
            path: archive.to_owned(),
            source,
        });
    }
    let result = if archive == "-" {
        if io::stdin().is_terminal() {
            return Err(CliError::Usage(
                "the archive `-` means stdin, but stdin is a terminal; pipe the archive in or name the file".into(),
            ));
        }
        check_archive(io::stdin().lock(), &identities, &limits)
    } else {
        let file = File::open(archive).map_err(CliError::io(format!("opening {archive}")))?;
        check_archive(BufReader::new(file), &identities, &limits)
    };
    result.map_err(|source| CliError::Archive {
        path: archive.to_owned(),
        source,
    })
}

/// Hands each verified object to `visit`, in restore order; an archive error names the archive.
pub fn for_each_object(
    name: &str,
    archive: &CheckedArchive,
    visit: impl FnMut(ObjectRef<'_>) -> Result<()>,
) -> Result<()> {
    archive.for_each_object(visit).map_err(|e| match e {
        Replay::Archive(source) => CliError::Archive {
            path: name.to_owned(),
            source,
        },
        Replay::Visit(e) => e,
    })
}
