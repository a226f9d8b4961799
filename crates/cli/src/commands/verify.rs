//! `cmarchive verify`: compare a live cluster with a verified archive (is every certificate the archived one?).
//!
//! Boundary: receives the already verified archive; the cluster side lives in `crate::cluster::verify`.
//! Returns the process exit code ([`crate::cli::EXIT_REISSUED`] when a certificate differs).

use crate::cli::{ReportFormat, VerifyArgs};
use crate::cluster::client::{ConnectOptions, connect};
use crate::cluster::controller;
use crate::cluster::restore::remap_facts;
use crate::cluster::verify::{Report, Verdict, verify};
use crate::cluster::{self, discovery};
use crate::error::{CliError, Result};
use cmarchive_archive::VerifiedArchive;
use serde::Serialize;
use std::io::Write as _;

/// Verifies the cluster chosen by `args.cluster` against `archive`.
pub fn run(args: &VerifyArgs, archive: &VerifiedArchive) -> Result<i32> {
    let options = ConnectOptions {
        kubeconfig: args.cluster.kubeconfig.clone(),
        context: args.cluster.context.clone(),
    };
    // Issuance after the archive was written counts unless told otherwise: in a fresh cluster every Certificate
    // is younger than the archive, and in the source cluster a renewal since the backup is a different certificate.
    let since = args.since.unwrap_or(archive.manifest.created);
    let work = async {
        let connection = connect(&options).await?;
        let client = &connection.client;
        let apis = discovery::cert_manager(client, connection.display_name()).await?;
        let given = args.cluster_resource_namespace.as_deref();
        let deployment = controller::find(client).await;
        if let Some(d) = &deployment
            && let Some(warning) = d.left_paused_warning()
        {
            eprintln!(
                "warning: {warning}: run the restore again to finish it, or scale it back by hand: {}",
                d.scale_command(d.replicas_to_restore())
            );
        }
        let target_crn = controller::effective_crn(given, deployment.as_ref());
        let facts = remap_facts(
            &archive.manifest.certificates,
            &archive.manifest.source.cluster_resource_namespace,
            &target_crn,
        );
        verify(
            client,
            &apis.certificates,
            &apis.certificate_requests,
            &facts,
            &[],
            since,
        )
        .await
    };
    let mut report: Report = cluster::block_on(work)
        .map_err(CliError::cluster)?
        .map_err(CliError::cluster)?;
    if archive.manifest.secrets_only() && report.missing > 0 {
        for check in report.certificates.iter_mut().filter(|c| c.verdict == Verdict::Missing) {
            check.reason =
                Some("the Certificate does not exist yet: the archive is secrets-only, Git applies it".into());
        }
        eprintln!(
            "{} of {} Certificate(s) are not in the cluster yet: this archive is secrets-only; let Git (the GitOps \
             controller) apply the issuers and Certificates after the restored Secrets, then run verify again",
            report.missing,
            report.certificates.len()
        );
    }
    print_report(&report, args.output)?;
    Ok(crate::cli::exit_code(report.conclusion()))
}

/// Prints a report in the chosen format to stdout; the table form is the verification table.
pub fn print_report<T: Serialize + ReportTable>(report: &T, format: ReportFormat) -> Result<()> {
    let text = match format {
        ReportFormat::Table => report.table(),
        ReportFormat::Json => {
            serde_json::to_string_pretty(report).map_err(|e| CliError::render("the report as JSON")(&e))? + "\n"
        }
        ReportFormat::Yaml => {
            serde_saphyr::to_string(report).map_err(|e| CliError::render("the report as YAML")(&e))?
        }
    };
    // A reader that went away (`| head`) does not change the exit code the verification decided.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::io("writing the report")(e)),
        _ => Ok(()),
    }
}

/// Reports that have a table form for people.
pub trait ReportTable {
    /// The table.
    fn table(&self) -> String;
}

impl ReportTable for Report {
    fn table(&self) -> String {
        crate::cluster::verify::table(self)
    }
}

impl ReportTable for crate::cluster::restore::RestoreReport {
    fn table(&self) -> String {
        self.verify
            .as_ref()
            .map(crate::cluster::verify::table)
            .unwrap_or_default()
    }
}
