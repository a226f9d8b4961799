//! `cmarchive restore`: apply a verified archive to a cluster, phase by phase, then verify.
//!
//! Boundary: the shared code has already decrypted and verified the whole archive; this module receives it and
//! hands it to `crate::cluster::restore`, which owns everything that talks to the cluster. Returns the process
//! exit code ([`crate::cli::EXIT_REISSUED`] when a certificate was reissued).

use crate::cli::{ReportFormat, RestoreArgs};
use crate::cluster::client::ConnectOptions;
use crate::cluster::progress::Progress;
use crate::cluster::restore::{ArchiveContent, RestoreOptions, restore};
use crate::cluster::{self};
use crate::commands::selection;
use crate::commands::verify::print_report;
use crate::error::{CliError, Result};
use crate::interrupt;
use cmarchive_archive::certmanager::NamespaceMapping;
use cmarchive_archive::manifest::Manifest;
use cmarchive_archive::{VerifiedArchive, VerifiedObject};
use std::sync::Arc;

/// What the restore works on: the archive's content narrowed to `-n`/`-l` and moved by `--namespace-mapping`,
/// before the restore sees it, so that prediction, preflight, apply and verify all work on the selected, moved
/// objects and certificate facts. manifest.json's stored bytes are not needed to restore: they go here.
fn selected_and_moved(
    args: &RestoreArgs,
    mapping: &NamespaceMapping,
    archive: VerifiedArchive,
) -> Result<(Manifest, Vec<VerifiedObject>)> {
    // Messages name the archive, or the plain objects read instead of one.
    let input = args
        .archive
        .as_deref()
        .unwrap_or("the objects of --from-file/--from-dir");
    let VerifiedArchive {
        mut manifest,
        mut objects,
        ..
    } = selection::narrow(input, archive, &args.selection)?;
    if !mapping.is_empty() {
        mapping.check(&manifest).map_err(CliError::Usage)?;
        mapping
            .apply(&mut manifest, &mut objects)
            .map_err(|source| CliError::Archive {
                path: input.to_owned(),
                source,
            })?;
    }
    Ok((manifest, objects))
}

/// Restores `archive` into the cluster chosen by `args.cluster`.
/// Takes the archive by value: its objects move into the restore, so a large archive is held once, not twice.
pub fn run(args: &RestoreArgs, archive: VerifiedArchive) -> Result<i32> {
    let namespace_mapping = NamespaceMapping::parse(args.namespace_mappings.iter().map(String::as_str))
        .map_err(|e| CliError::Usage(format!("--namespace-mapping: {e}")))?;
    let options = RestoreOptions {
        connect: ConnectOptions {
            kubeconfig: args.cluster.kubeconfig.clone(),
            context: args.cluster.context.clone(),
        },
        dry_run: args.dry_run,
        force_conflicts: args.force_conflicts,
        timeout: args.timeout,
        same_cluster: args.same_cluster,
        pause_controller: args.pause_controller,
        no_verify: args.no_verify,
        cluster_resource_namespace: args.cluster_resource_namespace.clone(),
        allow_reissue: args.allow_reissue,
        namespace_mapping,
    };
    let (manifest, objects) = selected_and_moved(args, &options.namespace_mapping, archive)?;
    let content = ArchiveContent {
        manifest: &manifest,
        objects,
    };
    let progress = Arc::new(Progress::default());
    // A second signal exits at once, and still scales a paused controller back on its way out.
    let _last_words = interrupt::on_exit({
        let progress = progress.clone();
        move || {
            let progress = progress.clone();
            Box::pin(async move {
                if let Some(Ok(message) | Err(message)) = progress.resume_paused().await {
                    interrupt::say(&format!("cmarchive: {message}"));
                }
            })
        }
    });
    let _cooperation = interrupt::cooperate();
    let finished = cluster::block_on(async {
        tokio::select! {
            report = restore(content, &options, &progress) => Ok(report),
            // The restore is dropped here: its requests in flight are abandoned, which server-side apply makes
            // safe to send again.
            signal = interrupt::first() => Err((signal, progress.resume_paused().await)),
        }
    })
    .map_err(CliError::cluster)?;
    let report = match finished {
        Ok(report) => report.map_err(CliError::cluster)?,
        Err((signal, resumed)) => {
            let mut message = format!(
                "cmarchive: restore interrupted by {}\n{}",
                signal.name(),
                progress.summary()
            );
            match resumed {
                Some(Ok(line)) => message.push_str(&format!("  {line}\n")),
                Some(Err(line)) => message.push_str(&format!("  LEFT PAUSED: {line}\n")),
                None => {}
            }
            message.push_str(&format!(
                "to finish, run the same command again; it resumes where this one stopped:\n  {}",
                interrupt::command_line()
            ));
            interrupt::say(&message);
            return Ok(signal.exit_code());
        }
    };
    match args.output {
        ReportFormat::Table => {
            // A secrets-only restore whose Certificates are all still to come from Git has nothing to tabulate:
            // it has said so, and `verify` proves the adoption later.
            if let Some(verification) = &report.verify
                && (!verification.certificates.is_empty() || report.expected_from_git.is_empty())
            {
                print_report(verification, args.output)?;
            }
            if !report.not_ready.is_empty() {
                eprintln!(
                    "{} object(s) did not become Ready within --timeout {}s",
                    report.not_ready.len(),
                    args.timeout.as_secs()
                );
            }
        }
        format => print_report(&report, format)?,
    }
    Ok(report.exit_code())
}
