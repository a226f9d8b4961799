//! `cmarchive inspect`: what is in an archive, for a person (`-o table`) or a program (`-o json`/`-o yaml`:
//! the manifest with one more top-level field, `reissuancePrediction`, computed at `--at` or now).

use crate::cli::{InspectArgs, ReportFormat};
use crate::error::{CliError, Result};
use cmarchive_archive::VerifiedArchive;
use cmarchive_archive::certmanager::{Outcome, Prediction, predict_stored};
use cmarchive_archive::manifest::Manifest;
use cmarchive_archive::text::escape_controls as shown;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::{self, Write};

/// Prints the summary of an already verified archive.
pub fn run(args: &InspectArgs, archive: &VerifiedArchive) -> Result<()> {
    let at = args.at.unwrap_or_else(jiff::Timestamp::now);
    let output = match args.output {
        ReportFormat::Json => {
            let mut text = serde_json::to_vec_pretty(&with_prediction(archive, at)?)
                .map_err(|e| CliError::render("the manifest as JSON")(&e))?;
            text.push(b'\n');
            text
        }
        ReportFormat::Yaml => serde_saphyr::to_string(&with_prediction(archive, at)?)
            .map_err(|e| CliError::render("the manifest as YAML")(&e))?
            .into_bytes(),
        ReportFormat::Table => {
            let mut text = summary(&args.archive, archive, at);
            let filter = args.selection.filter();
            if !filter.is_everything() {
                // Said first: every count below is of the selection, not of the archive.
                text.insert_str(
                    0,
                    &format!("selection: {} (with what it needs)\n", shown(&filter.flags())),
                );
            }
            text.into_bytes()
        }
    };
    let mut out = io::stdout().lock();
    out.write_all(&output)
        .and_then(|()| out.flush())
        .map_err(CliError::stdout)
}

/// The human summary: source, creation, phases with counts, warnings, exclusions, then the prediction. Every
/// string from the archive is shown with its control characters escaped ([`shown`]), one line each.
pub fn summary(name: &str, archive: &VerifiedArchive, at: jiff::Timestamp) -> String {
    let m = &archive.manifest;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "archive:  {name} (format {}, written by cmarchive {})",
        shown(&m.format_version),
        shown(&m.tool_version)
    );
    let _ = writeln!(s, "created:  {}", m.created);
    let _ = writeln!(s, "source:   {}", describe_source(m));
    let _ = writeln!(
        s,
        "cluster resource namespace: {}",
        shown(&m.source.cluster_resource_namespace)
    );
    if m.secrets_only() {
        let _ = writeln!(
            s,
            "mode:     secrets-only (GitOps): issuers and Certificates are expected from Git; `cmarchive verify` \
             proves they adopted the restored Secrets"
        );
    }
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
        let what = if m.secrets_only() {
            "certificates recorded for verify (expected from Git)"
        } else {
            "certificates with archived key material"
        };
        let _ = write!(s, "\n{what}: {}", m.certificates.len());
        if let Some(earliest) = earliest {
            let _ = write!(s, " (earliest expiry {earliest})");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "\nwarnings: {}", m.warnings.len());
    for w in &m.warnings {
        match &w.object {
            Some(object) => {
                let _ = writeln!(s, "  {} {object}: {}", shown(&w.code), shown(&w.message));
            }
            None => {
                let _ = writeln!(s, "  {}: {}", shown(&w.code), shown(&w.message));
            }
        }
    }
    let _ = writeln!(s, "\nexcluded: {}", m.excluded.len());
    for e in &m.excluded {
        let _ = writeln!(s, "  {}: {}", e.key, shown(&e.reason));
    }
    if let Some(prediction) = reissuance_prediction(archive, at) {
        let _ = write!(s, "\n{prediction}");
    }
    s
}

/// What cert-manager will do with each archived Certificate once restored, judged at `at`.
fn predictions(archive: &VerifiedArchive, at: jiff::Timestamp) -> Vec<Prediction> {
    predict_stored(archive.objects.iter().map(|o| (&o.entry.key, o.bytes.as_slice())), at)
}

/// The stored manifest plus `reissuancePrediction`, so a program reads both from one document.
fn with_prediction(archive: &VerifiedArchive, at: jiff::Timestamp) -> Result<Value> {
    let mut manifest: Value = serde_json::from_slice(&archive.manifest_json)
        .map_err(|e| CliError::render("manifest.json as a JSON object")(&e))?;
    let certificates =
        serde_json::to_value(predictions(archive, at)).map_err(|e| CliError::render("the prediction")(&e))?;
    if let Some(map) = manifest.as_object_mut() {
        map.insert(
            "reissuancePrediction".into(),
            json!({"at": at.to_string(), "certificates": certificates}),
        );
    }
    Ok(manifest)
}

/// The prediction as a short table: a count of what stays, then one line per Certificate that will be reissued.
fn reissuance_prediction(archive: &VerifiedArchive, at: jiff::Timestamp) -> Option<String> {
    let predictions = predictions(archive, at);
    if predictions.is_empty() {
        return None;
    }
    let reissued: Vec<(&Prediction, &str, &str)> = predictions
        .iter()
        .filter_map(|p| match &p.outcome {
            Outcome::Stays => None,
            Outcome::Reissued { reason, message } => Some((p, reason.as_str(), message.as_str())),
        })
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "reissuance prediction at {at}: {} of {} certificates stay, {} will be reissued",
        predictions.len() - reissued.len(),
        predictions.len(),
        reissued.len()
    );
    for (p, reason, message) in reissued {
        let _ = writeln!(s, "  {}  {}: {}", p.certificate, shown(reason), shown(message));
    }
    Some(s)
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
    shown(&parts.join(", ")).into_owned()
}
