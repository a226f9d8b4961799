//! `cmarchive pack` from a live cluster: collect what a restore needs.
//!
//! Boundary: this module only *reads* the cluster and returns raw objects (as JSON, never through typed structs)
//! plus facts about the source. Planning (phases, sanitizing), encryption and writing are shared with the
//! offline `--from-file/--from-dir` path in `commands::pack`.

use crate::cli::PackArgs;
use crate::commands::pack::Collected;
use crate::error::{CliError, Result};

/// Reads the cluster chosen by `args.cluster` / `args.namespaces` / `args.selector`.
pub fn collect(args: &PackArgs) -> Result<Collected> {
    let _ = args;
    Err(CliError::NotImplemented("packing from a live cluster"))
}
