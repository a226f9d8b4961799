//! `cmarchive inspect`: what is in an archive, for a person (`-o table`) or a program (`-o json` prints
//! `manifest.json` exactly as stored; `-o yaml` the same manifest as YAML).

use crate::cli::{InspectArgs, ReportFormat};
use crate::error::{CliError, Result};
use cmarchive_archive::VerifiedArchive;
use cmarchive_archive::manifest::Manifest;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Prints the summary of an already verified archive.
pub fn run(args: &InspectArgs, archive: &VerifiedArchive) -> Result<()> {
    let at = args.at.unwrap_or_else(jiff::Timestamp::now);
    let output = match args.output {
        ReportFormat::Json => archive.manifest_json.clone(),
        ReportFormat::Yaml => serde_saphyr::to_string(&archive.manifest)
            .map_err(|e| CliError::Usage(format!("cannot render the manifest as YAML: {e}")))?
            .into_bytes(),
        ReportFormat::Table => summary(&args.archive, archive, at).into_bytes(),
    };
    let mut out = io::stdout().lock();
    out.write_all(&output)
        .and_then(|()| out.flush())
        .map_err(CliError::io("writing to stdout"))
}

/// The human summary: source, creation, phases with counts, warnings, exclusions, then the prediction.
pub fn summary(name: &str, archive: &VerifiedArchive, at: jiff::Timestamp) -> String {
    let m = &archive.manifest;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "archive:  {name} (format {}, written by cmarchive {})",
        m.format_version, m.tool_version
    );
    let _ = writeln!(s, "created:  {}", m.created);
    let _ = writeln!(s, "source:   {}", describe_source(m));
    let _ = writeln!(s, "cluster resource namespace: {}", m.source.cluster_resource_namespace);
    let total: usize = m.phases.iter().map(|p| p.entries.len()).sum();
    let _ = writeln!(s, "\nphases (restore order), {total} objects:");
    for phase in &m.phases {
        let _ = writeln!(
            s,
            "  {}. {:<20} {:>6}",
            phase.name.ordinal(),
            phase.name.as_str(),
            phase.entries.len()
        );
    }
    if !m.certificates.is_empty() {
        let earliest = m.certificates.iter().map(|c| c.not_after).min();
        let _ = write!(s, "\ncertificates with archived key material: {}", m.certificates.len());
        if let Some(earliest) = earliest {
            let _ = write!(s, " (earliest expiry {earliest})");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "\nwarnings: {}", m.warnings.len());
    for w in &m.warnings {
        match &w.object {
            Some(object) => {
                let _ = writeln!(s, "  {} {object}: {}", w.code, w.message);
            }
            None => {
                let _ = writeln!(s, "  {}: {}", w.code, w.message);
            }
        }
    }
    let _ = writeln!(s, "\nexcluded: {}", m.excluded.len());
    for e in &m.excluded {
        let _ = writeln!(s, "  {}: {}", e.key, e.reason);
    }
    if let Some(prediction) = reissuance_prediction(archive, at) {
        let _ = write!(s, "\n{prediction}");
    }
    s
}

/// Hook for the offline reissuance prediction ("3 certificates will be renewed at once: …") as of `at`.
/// `None` until the cert-manager knowledge provides it; then it renders that table here.
fn reissuance_prediction(archive: &VerifiedArchive, at: jiff::Timestamp) -> Option<String> {
    let _ = (archive, at);
    None
}

fn describe_source(m: &Manifest) -> String {
    let src = &m.source;
    let mut parts = vec![src.kind.clone()];
    if let Some(server) = &src.server {
        parts.push(server.clone());
    }
    if let Some(context) = &src.context {
        parts.push(format!("context {context}"));
    }
    if let Some(v) = &src.kubernetes_version {
        parts.push(format!("Kubernetes {v}"));
    }
    if let Some(v) = &src.cert_manager_version {
        parts.push(format!("cert-manager {v}"));
    }
    if !src.inputs.is_empty() {
        parts.push(src.inputs.join(", "));
    }
    parts.join(", ")
}
