//! Every error a person can see from `cmarchive`, written for the person at the terminal: the first line says what
//! went wrong, [`CliError::remedy`] (printed as a second line when there is one) says what to do about it.

use crate::cluster::error::ClusterError;
use cmarchive_archive::error::ArchiveError;
use cmarchive_archive::folder::FolderError;
use std::io;
use std::path::PathBuf;

/// A user-facing error.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Reading, verifying or writing an archive failed; the archive error already says what to do.
    #[error("{path}: {source}")]
    Archive {
        /// The archive as the user named it (`-` for stdin/stdout).
        path: String,
        /// What went wrong.
        source: ArchiveError,
    },
    /// A key, recipient or identity could not be used.
    #[error("{0}")]
    Keys(ArchiveError),
    /// `pack` without any recipient.
    #[error("no recipients given: nobody could open this archive")]
    NoRecipients,
    /// Binary data would go to a terminal.
    #[error("refusing to write a binary archive to a terminal")]
    BinaryToTerminal,
    /// The output file already exists.
    #[error("{0}: already exists")]
    OutputExists(PathBuf),
    /// `unpack --dir` could not write its folder (not empty, links or special files in it, the system refused).
    #[error("{0}")]
    Folder(FolderError),
    /// An input file of `pack --from-file/--from-dir` could not be understood.
    #[error("{path}: {reason}")]
    Input {
        /// Which input.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Whoever read stdout stopped reading (`cmarchive unpack … | head`): not an error, the command just stops,
    /// quietly and with exit 0, as other command-line tools do.
    #[error("stdout was closed")]
    StdoutClosed,
    /// An I/O error outside the archive (output files, key files, …).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// Two flags or values that cannot go together, or a missing one.
    #[error("{0}")]
    Usage(String),
    /// `--strict` found something it refuses (the message says what).
    #[error("--strict: {0}")]
    Strict(String),
    /// A report or object could not be written in the asked format.
    #[error("cannot render {what}: {reason}")]
    Render {
        /// What was being rendered.
        what: &'static str,
        /// Why not.
        reason: String,
    },
    /// Anything from the cluster layer (`restore`, `verify` and cluster `pack`), which owns its messages and
    /// remedies.
    #[error(transparent)]
    Cluster(ClusterError),
}

impl CliError {
    /// A second line telling the person what to do, when the first line does not already say it.
    pub fn remedy(&self) -> Option<String> {
        match self {
            CliError::NoRecipients => Some(
                "pass -r RECIPIENT (age1…, ssh-ed25519 …), -R FILE or -p, or set CMARCHIVE_AGE_RECIPIENTS; \
                 make a key with `cmarchive keygen key.txt`"
                    .into(),
            ),
            CliError::BinaryToTerminal => {
                Some("name an output file (`cmarchive pack backup.cmar …`), redirect stdout, or pass -a".into())
            }
            CliError::OutputExists(_) => Some("choose another name or pass --force to overwrite it".into()),
            CliError::Folder(FolderError::NotEmpty(_)) => {
                Some("choose an empty folder or pass --force to write into it".into())
            }
            CliError::Folder(FolderError::Unsafe { .. }) => Some(
                "remove it, or unpack into an empty folder (links and special files are never written through)".into(),
            ),
            CliError::Strict(_) => Some("fix the input, or run without --strict to record warnings instead".into()),
            CliError::Cluster(error) => error.remedy(),
            _ => None,
        }
    }

    /// A rendering failure of `what`.
    pub fn render(what: &'static str) -> impl FnOnce(&dyn std::fmt::Display) -> CliError {
        move |reason| CliError::Render {
            what,
            reason: reason.to_string(),
        }
    }

    /// An error of the cluster layer.
    pub fn cluster(error: impl Into<ClusterError>) -> CliError {
        CliError::Cluster(error.into())
    }

    /// What a failed write to stdout is: [`CliError::StdoutClosed`] when the reader went away.
    pub fn stdout(source: io::Error) -> CliError {
        match source.kind() {
            io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
            _ => CliError::Io {
                context: "writing to stdout".into(),
                source,
            },
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

/// Result of a command.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
