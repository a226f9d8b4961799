//! `cmarchive verify`: compare a live cluster with a verified archive (is every certificate the archived one?).
//!
//! Boundary: receives the already verified archive; the cluster side lives in `crate::cluster` (to come).
//! Returns the process exit code ([`crate::cli::EXIT_REISSUED`] when a certificate differs).

use crate::cli::VerifyArgs;
use crate::error::{CliError, Result};
use cmarchive_archive::VerifiedArchive;

/// Verifies the cluster chosen by `args.cluster` against `archive`.
pub fn run(args: &VerifyArgs, archive: &VerifiedArchive) -> Result<i32> {
    let _ = (args, archive);
    Err(CliError::NotImplemented("verify"))
}
