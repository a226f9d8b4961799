//! The proof a restore owes, as I/O: reads every archived Certificate, its Secret and the CertificateRequests
//! of its namespace from the live cluster (and cert-manager's `Issuing` Events when the condition is gone), and
//! hands them to `cmarchive_archive::certmanager::evidence`, which decides what counts as the same certificate.

use crate::cluster::collect::CONCURRENT_GETS;
use crate::cluster::raw::Resource;
use anyhow::Result;
use cmarchive_archive::manifest::CertificateFacts;
use cmarchive_archive::text::escape_controls as shown;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use cmarchive_archive::certmanager::evidence::{CertificateCheck, Report, Verdict, check, check_unarchived};

/// A table for people, then one summary line.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 6]> = report
        .certificates
        .iter()
        .map(|c| {
            let fingerprint = match &c.actual_fingerprint {
                // Restored from plain objects without its Secret: nothing to compare with.
                Some(_) if c.expected_fingerprint.is_empty() => "not archived".to_owned(),
                Some(f) if *f == c.expected_fingerprint => "same".to_owned(),
                Some(_) => "DIFFERENT".to_owned(),
                None => "absent".to_owned(),
            };
            [
                shown(&c.namespace).into_owned(),
                shown(&c.name).into_owned(),
                if c.ready.starts_with("Ready=True") {
                    "True".into()
                } else {
                    "False".into()
                },
                fingerprint,
                c.new_requests.len().to_string(),
                match c.verdict {
                    Verdict::Ok => "ok".into(),
                    Verdict::NotReady => "NOT READY".into(),
                    Verdict::Missing => "MISSING".into(),
                    Verdict::Reissued => "REISSUED".into(),
                    Verdict::Renewed => "renewed (was due)".into(),
                    Verdict::ReissuedAsPredicted => "reissued as predicted (allowed)".into(),
                },
            ]
        })
        .collect();
    let header = ["NAMESPACE", "CERTIFICATE", "READY", "CERT", "NEW CRS", "RESULT"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(l, "{cell:<w$}  ");
        }
        l.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(&header));
    for row in &rows {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    for c in &report.certificates {
        if let Some(reason) = &c.reason {
            let _ = writeln!(out, "{}/{}: {}", shown(&c.namespace), shown(&c.name), shown(reason));
        }
    }
    let _ = writeln!(
        out,
        "verified {} certificates: {} reissued, {} not ready, {} missing{}{}",
        report.certificates.len(),
        report.reissued,
        report.not_ready,
        report.missing,
        match report.renewed {
            0 => String::new(),
            n => format!(", {n} renewed because they were due"),
        },
        match report.reissued_as_predicted {
            0 => String::new(),
            n => format!(", {n} reissued as predicted (--allow-reissue)"),
        }
    );
    out
}

/// Takes the Certificates that do not exist out of a report (as `namespace/name`), for a secrets-only archive
/// whose Certificates Git applies later: absent is not yet, not lost.
pub fn split_absent(report: Report) -> (Vec<String>, Report) {
    let (absent, present): (Vec<CertificateCheck>, Vec<CertificateCheck>) = report
        .certificates
        .into_iter()
        .partition(|c| c.verdict == Verdict::Missing);
    let names = absent.iter().map(|c| format!("{}/{}", c.namespace, c.name)).collect();
    (names, Report::new(report.since, present))
}

/// cert-manager's own word on why it issued: the first `Issuing` Event it recorded on the Certificate since the
/// cut-off (e.g. "Issuing certificate as Secret does not exist"). The `Issuing` condition is gone once an
/// issuance completes; the Event stays for an hour. `None` when there is none or Events may not be read.
async fn issuing_event(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    since: jiff::Timestamp,
) -> Option<String> {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> = kube::Api::namespaced(client.clone(), namespace);
    let params =
        kube::api::ListParams::default().fields(&format!("involvedObject.kind=Certificate,involvedObject.name={name}"));
    let list = match crate::cluster::retry::transient("listing Events", || events.list(&params)).await {
        Ok(list) => list,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list Events; reissuance reason from conditions only");
            return None;
        }
    };
    let when = |e: &k8s_openapi::api::core::v1::Event| {
        e.first_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    list.items
        .iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
        .filter(|e| e.reason.as_deref() == Some("Issuing"))
        .filter(|e| when(e).is_some_and(|t| t >= since - jiff::SignedDuration::from_secs(1)))
        .min_by_key(|e| when(e))
        .map(|e| e.message.clone().unwrap_or_default())
}

/// A restored Certificate that came without a leaf certificate to compare with (plain objects without its
/// Secret): only cert-manager's signs of an issuance are looked for.
#[derive(Clone, Debug)]
pub struct Unarchived {
    /// Namespace in the target.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.secretName` as restored.
    pub secret_name: String,
}

/// Verifies every archived Certificate, and every `unarchived` one, against the live cluster.
pub async fn verify(
    client: &kube::Client,
    certificates: &Resource,
    certificate_requests: &Resource,
    facts: &[CertificateFacts],
    unarchived: &[Unarchived],
    since: jiff::Timestamp,
) -> Result<Report> {
    let secrets = Resource::secrets();
    let mut requests_by_namespace: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for namespace in facts
        .iter()
        .map(|f| f.namespace.clone())
        .chain(unarchived.iter().map(|u| u.namespace.clone()))
        .collect::<std::collections::BTreeSet<_>>()
    {
        let requests = certificate_requests.list(client, Some(&namespace), None).await?;
        requests_by_namespace.insert(namespace, requests);
    }
    let requests_by_namespace = &requests_by_namespace;
    let secrets = &secrets;
    let targets = facts
        .iter()
        .map(|f| (f.namespace.as_str(), f.name.as_str(), f.secret_name.as_str(), Some(f)))
        .chain(
            unarchived
                .iter()
                .map(|u| (u.namespace.as_str(), u.name.as_str(), u.secret_name.as_str(), None)),
        );
    let checks: Vec<CertificateCheck> = stream::iter(targets)
        .map(|(namespace, name, archived_secret, facts)| async move {
            let certificate = certificates.get(client, Some(namespace), name).await?;
            let secret_name = certificate
                .as_ref()
                .and_then(|c| c.pointer("/spec/secretName"))
                .and_then(Value::as_str)
                .unwrap_or(archived_secret)
                .to_owned();
            let secret = secrets.get(client, Some(namespace), &secret_name).await?;
            let requests = requests_by_namespace
                .get(namespace)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut checked = match facts {
                Some(f) => check(f, certificate.as_ref(), secret.as_ref(), requests, since),
                None => check_unarchived(
                    namespace,
                    name,
                    &secret_name,
                    certificate.as_ref(),
                    secret.as_ref(),
                    requests,
                    since,
                ),
            };
            if checked.wants_issuing_reason()
                && let Some(uid) = certificate
                    .as_ref()
                    .and_then(|c| c.pointer("/metadata/uid"))
                    .and_then(Value::as_str)
                && let Some(message) = issuing_event(client, namespace, name, uid, since).await
            {
                checked.add_issuing_event(message);
            }
            anyhow::Ok(checked)
        })
        .buffer_unordered(CONCURRENT_GETS)
        .try_collect()
        .await?;
    Ok(Report::new(since, checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_with(verdict: Verdict, reason: Option<&str>) -> CertificateCheck {
        CertificateCheck {
            namespace: "a".into(),
            name: "web".into(),
            secret_name: "web-tls".into(),
            verdict,
            ready: "Ready=False Pending: waiting".into(),
            expected_fingerprint: "00".into(),
            actual_fingerprint: Some("00".into()),
            new_requests: vec![],
            revision: None,
            evidence: vec![],
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn table_says_each_verdict_and_sums_up() {
        let since = "2026-06-01T09:59:00Z".parse().unwrap();
        let report = Report::new(
            since,
            vec![
                check_with(Verdict::NotReady, Some("Ready=False Pending: waiting")),
                check_with(Verdict::Renewed, Some("Issuing Renewing: due")),
            ],
        );
        let text = table(&report);
        assert!(
            text.contains("NOT READY") && text.contains("renewed (was due)"),
            "{text}"
        );
        assert!(text.contains("a/web: Ready=False Pending: waiting"), "{text}");
        assert!(
            text.ends_with(
                "verified 2 certificates: 0 reissued, 1 not ready, 0 missing, 1 renewed because they were due\n"
            ),
            "{text}"
        );
    }
}
