//! `cmarchive restore`: apply a verified archive to a cluster, phase by phase, then verify.
//!
//! Boundary: the shared code has already decrypted and verified the whole archive; this module receives it and
//! owns everything that talks to the cluster (through `crate::cluster`, to come). Returns the process exit code
//! ([`crate::cli::EXIT_REISSUED`] when a certificate was reissued).

use crate::cli::RestoreArgs;
use crate::error::{CliError, Result};
use cmarchive_archive::VerifiedArchive;

/// Restores `archive` into the cluster chosen by `args.cluster`.
pub fn run(args: &RestoreArgs, archive: &VerifiedArchive) -> Result<i32> {
    let _ = (args, archive);
    Err(CliError::NotImplemented("restore"))
}
