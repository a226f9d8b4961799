//! The proof a restore owes: every archived Certificate is present and Ready, its Secret still holds the very
//! leaf certificate that was archived (same SHA-256 fingerprint), and cert-manager started no issuance for it
//! since the restore began. When something was reissued, say which and why, in cert-manager's own words.

use crate::cluster::collect::CONCURRENT_GETS;
use crate::cluster::raw::Resource;
use crate::cluster::wait::{condition, is_ready, readiness_message};
use anyhow::Result;
use cmarchive_archive::manifest::CertificateFacts;
use cmarchive_archive::text::escape_controls as shown;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Verdict for one Certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Same certificate, Ready, no issuance.
    Ok,
    /// Same certificate so far, but not Ready.
    NotReady,
    /// The Certificate does not exist.
    Missing,
    /// cert-manager issued (or started issuing) a new certificate because of the restore.
    Reissued,
    /// cert-manager issued a new certificate because the archived one was due for renewal (its reason is
    /// `Renewing`): time, not the restore, caused it, and `inspect` predicts it. Reported, not an error.
    Renewed,
}

/// What `verify` found for one archived Certificate.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateCheck {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.secretName` at pack time.
    pub secret_name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Ready condition, as text.
    pub ready: String,
    /// Fingerprint recorded in the archive.
    pub expected_fingerprint: String,
    /// Fingerprint of the leaf certificate in the live Secret (`None`: no Secret or no parseable certificate).
    pub actual_fingerprint: Option<String>,
    /// CertificateRequests owned by the Certificate and created since the cut-off.
    pub new_requests: Vec<String>,
    /// `status.revision` of the live Certificate.
    pub revision: Option<i64>,
    /// Why it was reissued or is not Ready: cert-manager's Issuing reason and message, or what we saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The whole verification.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Issuance after this moment counts as reissuance.
    pub since: jiff::Timestamp,
    /// One entry per archived Certificate with a recorded leaf certificate.
    pub certificates: Vec<CertificateCheck>,
    /// Number of reissued Certificates.
    pub reissued: usize,
    /// Number renewed because they were due (not counted as reissued).
    #[serde(default)]
    pub renewed: usize,
    /// Number not Ready (and not reissued).
    pub not_ready: usize,
    /// Number missing.
    pub missing: usize,
}

impl Report {
    /// Process exit code: 2 when anything was reissued, 1 when something is missing or not Ready, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.reissued > 0 {
            2
        } else if self.missing > 0 || self.not_ready > 0 {
            1
        } else {
            0
        }
    }

    /// A table for people, then one summary line.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rows: Vec<[String; 6]> = self
            .certificates
            .iter()
            .map(|c| {
                let fingerprint = match &c.actual_fingerprint {
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
        for c in &self.certificates {
            if let Some(reason) = &c.reason {
                let _ = writeln!(out, "{}/{}: {}", shown(&c.namespace), shown(&c.name), shown(reason));
            }
        }
        let _ = writeln!(
            out,
            "verified {} certificates: {} reissued, {} not ready, {} missing{}",
            self.certificates.len(),
            self.reissued,
            self.not_ready,
            self.missing,
            match self.renewed {
                0 => String::new(),
                n => format!(", {n} renewed because they were due"),
            }
        );
        out
    }
}

/// Lower-case hex SHA-256 of the DER of the first certificate in a PEM bundle.
pub fn leaf_fingerprint(pem: &[u8]) -> Option<String> {
    for item in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let Ok(block) = item else { return None };
        if block.label == "CERTIFICATE" {
            return Some(hex::encode(Sha256::digest(&block.contents)));
        }
    }
    None
}

fn secret_fingerprint(secret: &Value) -> Option<String> {
    // The typed Secret decodes `data`'s base64 for us.
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret.clone()).ok()?;
    leaf_fingerprint(&secret.data?.get("tls.crt")?.0)
}

fn timestamp(object: &Value, pointer: &str) -> Option<jiff::Timestamp> {
    object.pointer(pointer)?.as_str()?.parse().ok()
}

/// Whether a CertificateRequest is controlled by the Certificate with this UID.
fn owned_by(request: &Value, uid: &str) -> bool {
    request
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r.get("kind").and_then(Value::as_str) == Some("Certificate")
                    && r.get("uid").and_then(Value::as_str) == Some(uid)
            })
        })
}

fn condition_text(object: &Value, kind: &str) -> Option<String> {
    let c = condition(object, kind)?;
    if c.get("status").and_then(Value::as_str) != Some("True") && kind == "Issuing" {
        return None;
    }
    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(format!("{} {}: {}", kind, text("reason"), text("message")))
}

/// A reissuance whose cause cert-manager gives as `Renewing` (condition reason, or the Event message "Renewing
/// certificate as renewal was scheduled at …") was due anyway: it is a renewal, not damage done by the restore.
fn classify_renewal(result: &mut CertificateCheck) {
    let renewing = result
        .reason
        .as_deref()
        .is_some_and(|r| r.starts_with("Issuing Renewing") || r.starts_with("Issuing: Renewing"));
    if result.verdict == Verdict::Reissued && renewing {
        result.verdict = Verdict::Renewed;
    }
}

/// Checks one Certificate against its archived facts, given the live objects.
pub fn check(
    facts: &CertificateFacts,
    certificate: Option<&Value>,
    secret: Option<&Value>,
    requests: &[Value],
    since: jiff::Timestamp,
) -> CertificateCheck {
    let mut result = CertificateCheck {
        namespace: facts.namespace.clone(),
        name: facts.name.clone(),
        secret_name: facts.secret_name.clone(),
        verdict: Verdict::Ok,
        ready: readiness_message(certificate),
        expected_fingerprint: facts.sha256_fingerprint.clone(),
        actual_fingerprint: secret.and_then(secret_fingerprint),
        new_requests: Vec::new(),
        revision: certificate
            .and_then(|c| c.pointer("/status/revision"))
            .and_then(Value::as_i64),
        reason: None,
    };
    let Some(certificate) = certificate else {
        result.verdict = Verdict::Missing;
        result.reason = Some("the Certificate does not exist".into());
        return result;
    };
    let uid = certificate
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let created = timestamp(certificate, "/metadata/creationTimestamp");
    let restored_since = created.is_some_and(|c| c >= since);
    result.new_requests = requests
        .iter()
        .filter(|r| owned_by(r, uid) && timestamp(r, "/metadata/creationTimestamp").is_some_and(|t| t >= since))
        .filter_map(|r| r.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    result.new_requests.sort();
    let issuing = condition_text(certificate, "Issuing");
    let mut evidence = Vec::new();
    match &result.actual_fingerprint {
        Some(f) if *f == facts.sha256_fingerprint => {}
        Some(_) => evidence.push(format!("Secret {} holds a different certificate", facts.secret_name)),
        None => evidence.push(format!("Secret {} has no certificate", facts.secret_name)),
    }
    if !result.new_requests.is_empty() {
        evidence.push(format!(
            "CertificateRequest {} created since {since}",
            result.new_requests.join(", ")
        ));
    }
    if restored_since && let Some(revision) = result.revision {
        evidence.push(format!("status.revision raised to {revision}"));
    }
    if let Some(issuing) = &issuing {
        evidence.push(issuing.clone());
    }
    if !evidence.is_empty() {
        result.verdict = Verdict::Reissued;
        // cert-manager's own reason first: it says *why*; the rest says how we know.
        evidence.sort_by_key(|e| !e.starts_with("Issuing"));
        result.reason = Some(evidence.join("; "));
        classify_renewal(&mut result);
    } else if !is_ready(certificate) {
        result.verdict = Verdict::NotReady;
        result.reason = Some(result.ready.clone());
    }
    result
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
    let list = match events.list(&params).await {
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
        .map(|e| format!("Issuing: {}", e.message.clone().unwrap_or_default()))
}

/// Verifies every archived Certificate against the live cluster.
pub async fn verify(
    client: &kube::Client,
    certificates: &Resource,
    certificate_requests: &Resource,
    facts: &[CertificateFacts],
    since: jiff::Timestamp,
) -> Result<Report> {
    let secrets = Resource::secrets();
    let mut requests_by_namespace: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for namespace in facts
        .iter()
        .map(|f| f.namespace.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let requests = certificate_requests.list(client, Some(&namespace), None).await?;
        requests_by_namespace.insert(namespace, requests);
    }
    let requests_by_namespace = &requests_by_namespace;
    let secrets = &secrets;
    let mut checks: Vec<CertificateCheck> = stream::iter(facts)
        .map(|f| async move {
            let certificate = certificates.get(client, Some(&f.namespace), &f.name).await?;
            let secret_name = certificate
                .as_ref()
                .and_then(|c| c.pointer("/spec/secretName"))
                .and_then(Value::as_str)
                .unwrap_or(&f.secret_name)
                .to_owned();
            let secret = secrets.get(client, Some(&f.namespace), &secret_name).await?;
            let requests = requests_by_namespace
                .get(&f.namespace)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut checked = check(f, certificate.as_ref(), secret.as_ref(), requests, since);
            if checked.verdict == Verdict::Reissued
                && !checked.reason.as_deref().is_some_and(|r| r.starts_with("Issuing"))
                && let Some(uid) = certificate
                    .as_ref()
                    .and_then(|c| c.pointer("/metadata/uid"))
                    .and_then(Value::as_str)
                && let Some(trigger) = issuing_event(client, &f.namespace, &f.name, uid, since).await
            {
                checked.reason = Some(format!("{trigger}; {}", checked.reason.unwrap_or_default()));
                classify_renewal(&mut checked);
            }
            anyhow::Ok(checked)
        })
        .buffer_unordered(CONCURRENT_GETS)
        .try_collect()
        .await?;
    checks.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    Ok(Report {
        since,
        reissued: count(Verdict::Reissued),
        renewed: count(Verdict::Renewed),
        not_ready: count(Verdict::NotReady),
        missing: count(Verdict::Missing),
        certificates: checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(fingerprint: &str) -> CertificateFacts {
        CertificateFacts {
            namespace: "a".into(),
            name: "web".into(),
            secret_name: "web-tls".into(),
            serial_number: "01".into(),
            not_before: "2026-01-01T00:00:00Z".parse().unwrap(),
            not_after: "2027-01-01T00:00:00Z".parse().unwrap(),
            sha256_fingerprint: fingerprint.into(),
            common_name: None,
            dns_names: vec![],
            ip_addresses: vec![],
            uris: vec![],
            email_addresses: vec![],
            is_ca: false,
            public_key_algorithm: "RSA-2048".into(),
        }
    }

    fn pem_and_fingerprint() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["web.example".into()]).unwrap();
        let fingerprint = hex::encode(Sha256::digest(cert.cert.der()));
        (cert.cert.pem(), fingerprint)
    }

    fn secret(pem: &str) -> Value {
        let data = std::collections::BTreeMap::from([(
            "tls.crt".to_owned(),
            k8s_openapi::ByteString(pem.as_bytes().to_vec()),
        )]);
        let secret = k8s_openapi::api::core::v1::Secret {
            data: Some(data),
            ..Default::default()
        };
        serde_json::to_value(secret).unwrap()
    }

    fn certificate(extra_status: Value) -> Value {
        let mut status =
            json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}]});
        if let (Some(s), Some(e)) = (status.as_object_mut(), extra_status.as_object()) {
            s.extend(e.clone());
        }
        json!({"metadata": {"uid": "u1", "creationTimestamp": "2026-06-01T10:00:00Z", "generation": 1},
               "spec": {"secretName": "web-tls"}, "status": status})
    }

    fn since() -> jiff::Timestamp {
        "2026-06-01T09:59:00Z".parse().unwrap()
    }

    #[test]
    fn same_certificate_is_ok() {
        let (pem, fingerprint) = pem_and_fingerprint();
        assert_eq!(leaf_fingerprint(pem.as_bytes()).as_deref(), Some(fingerprint.as_str()));
        let result = check(
            &facts(&fingerprint),
            Some(&certificate(json!({}))),
            Some(&secret(&pem)),
            &[],
            since(),
        );
        assert_eq!(result.verdict, Verdict::Ok, "{result:?}");
    }

    #[test]
    fn different_certificate_with_issuing_reason_is_reissued() {
        let (pem, _) = pem_and_fingerprint();
        let cert = certificate(json!({"revision": 1, "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Issuing", "status": "True", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist"}]}));
        let request = json!({"metadata": {"name": "web-1", "creationTimestamp": "2026-06-01T10:00:01Z",
            "ownerReferences": [{"kind": "Certificate", "name": "web", "uid": "u1"}]}});
        let old_request = json!({"metadata": {"name": "web-0", "creationTimestamp": "2026-05-01T10:00:01Z",
            "ownerReferences": [{"kind": "Certificate", "name": "web", "uid": "u1"}]}});
        let result = check(
            &facts("00"),
            Some(&cert),
            Some(&secret(&pem)),
            &[request, old_request],
            since(),
        );
        assert_eq!(result.verdict, Verdict::Reissued);
        assert_eq!(result.new_requests, vec!["web-1".to_owned()]);
        let reason = result.reason.unwrap();
        assert!(reason.starts_with("Issuing DoesNotExist"), "{reason}");
        assert!(reason.contains("status.revision raised to 1"), "{reason}");
    }

    #[test]
    fn renewal_that_was_due_is_not_reissuance() {
        let (pem, _) = pem_and_fingerprint();
        let cert = certificate(json!({"revision": 1, "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Issuing", "status": "True", "reason": "Renewing", "message": "Renewing certificate as renewal was scheduled at …"}]}));
        let result = check(&facts("00"), Some(&cert), Some(&secret(&pem)), &[], since());
        assert_eq!(result.verdict, Verdict::Renewed, "{result:?}");
        let report = Report {
            since: since(),
            certificates: vec![result],
            reissued: 0,
            renewed: 1,
            not_ready: 0,
            missing: 0,
        };
        assert_eq!(report.exit_code(), 0);
        assert!(report.table().contains("1 renewed because they were due"));
    }

    #[test]
    fn missing_and_not_ready() {
        let (pem, fingerprint) = pem_and_fingerprint();
        assert_eq!(
            check(&facts(&fingerprint), None, None, &[], since()).verdict,
            Verdict::Missing
        );
        let pending = json!({"metadata": {"uid": "u1", "creationTimestamp": "2026-06-01T10:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending", "message": "waiting"}]}});
        let result = check(&facts(&fingerprint), Some(&pending), Some(&secret(&pem)), &[], since());
        assert_eq!(result.verdict, Verdict::NotReady);
        let report = Report {
            since: since(),
            certificates: vec![result],
            reissued: 0,
            renewed: 0,
            not_ready: 1,
            missing: 0,
        };
        assert_eq!(report.exit_code(), 1);
        assert!(report.table().contains("NOT READY"));
    }
}
