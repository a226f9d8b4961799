//! `cmarchive restore`: apply a verified archive to a cluster, phase by phase, then verify.
//!
//! Boundary: the shared code has already decrypted and verified the whole archive; this module receives it and
//! hands it to `crate::cluster::restore`, which owns everything that talks to the cluster. Returns the process
//! exit code ([`crate::cli::EXIT_REISSUED`] when a certificate was reissued).

use crate::cli::{ReportFormat, RestoreArgs};
use crate::cluster::client::ConnectOptions;
use crate::cluster::restore::{ArchiveContent, RestoreOptions, parse_duration, restore};
use crate::cluster::{self};
use crate::commands::verify::print_report;
use crate::error::{CliError, Result};
use cmarchive_archive::VerifiedArchive;

/// Restores `archive` into the cluster chosen by `args.cluster`.
/// Takes the archive by value: its objects move into the restore, so a large archive is held once, not twice.
pub fn run(args: &RestoreArgs, archive: VerifiedArchive) -> Result<i32> {
    let options = RestoreOptions {
        connect: ConnectOptions {
            kubeconfig: args.cluster.kubeconfig.clone(),
            context: args.cluster.context.clone(),
        },
        dry_run: args.dry_run,
        force_conflicts: args.force_conflicts,
        timeout: parse_duration(&args.timeout).map_err(|e| CliError::Usage(format!("--timeout: {e:#}")))?,
        same_cluster: args.same_cluster,
        pause_controller: args.pause_controller,
        no_verify: args.no_verify,
        cluster_resource_namespace: args.cluster_resource_namespace.clone(),
    };
    // manifest.json's stored bytes are not needed to restore: let them go before the objects are prepared.
    let VerifiedArchive { manifest, objects, .. } = archive;
    let content = ArchiveContent {
        manifest: &manifest,
        objects,
    };
    let report = cluster::block_on(restore(content, &options))
        .map_err(CliError::Cluster)?
        .map_err(CliError::Cluster)?;
    match args.output {
        ReportFormat::Table => {
            if let Some(verification) = &report.verify {
                print_report(verification, args.output)?;
            }
            if !report.not_ready.is_empty() {
                eprintln!(
                    "{} object(s) did not become Ready within --timeout {}",
                    report.not_ready.len(),
                    args.timeout
                );
            }
        }
        format => print_report(&report, format)?,
    }
    Ok(report.exit_code())
}
