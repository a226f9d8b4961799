//! What counts as "the same certificate" after a restore: the archived facts of a Certificate against its live
//! objects (the Certificate, its Secret, the CertificateRequests of its namespace). Evidence of an issuance is
//! typed — a different leaf in the Secret, a CertificateRequest created since the cut-off, a raised
//! `status.revision`, cert-manager's own `Issuing` reason — and the verdict follows from it; an issuance whose only
//! cause is that the certificate was due (cert-manager's reason `Renewing`) is a renewal, not a reissue.
//!
//! Pure: `cmarchive verify` and `restore` read the live objects and feed them in.

use super::certinfo;
use crate::manifest::CertificateFacts;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// cert-manager's reason for an issuance that was due: time caused it, not the restore.
pub const RENEWING: &str = "Renewing";

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
    /// cert-manager issued a new certificate because the archived one was due for renewal: reported, not an error.
    Renewed,
    /// cert-manager issued a new certificate, as predicted before the restore wrote anything, and the restore was
    /// told to go ahead (`--allow-reissue`): reported, not an error.
    ReissuedAsPredicted,
}

/// One sign that cert-manager issued (or started issuing) a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Evidence {
    /// cert-manager's own word: its `Issuing` condition (with a reason) or the `Issuing` Event it recorded.
    Issuing {
        /// The condition's reason (`DoesNotExist`, `Renewing`, …); `None` for an Event.
        reason: Option<String>,
        /// What cert-manager says.
        message: String,
    },
    /// The Secret holds another leaf certificate than the archived one.
    DifferentCertificate {
        /// The Secret.
        secret: String,
    },
    /// The Secret is missing or holds no certificate.
    NoCertificate {
        /// The Secret.
        secret: String,
    },
    /// CertificateRequests the Certificate owns, created since the cut-off.
    NewRequests {
        /// Their names.
        names: Vec<String>,
        /// The cut-off.
        since: jiff::Timestamp,
    },
    /// A Certificate restored since the cut-off already counts issuances.
    RevisionRaised {
        /// Its `status.revision`.
        revision: i64,
    },
}

impl Evidence {
    /// Whether this says the issuance was a renewal that was due.
    fn is_renewal(&self) -> bool {
        match self {
            Evidence::Issuing { reason: Some(r), .. } => r == RENEWING,
            Evidence::Issuing { reason: None, message } => message.starts_with(RENEWING),
            _ => false,
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Issuing {
                reason: Some(reason),
                message,
            } => write!(f, "Issuing {reason}: {message}"),
            Evidence::Issuing { reason: None, message } => write!(f, "Issuing: {message}"),
            Evidence::DifferentCertificate { secret } => write!(f, "Secret {secret} holds a different certificate"),
            Evidence::NoCertificate { secret } => write!(f, "Secret {secret} has no certificate"),
            Evidence::NewRequests { names, since } => {
                write!(f, "CertificateRequest {} created since {since}", names.join(", "))
            }
            Evidence::RevisionRaised { revision } => write!(f, "status.revision raised to {revision}"),
        }
    }
}

/// What was found for one archived Certificate.
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
    /// Every sign of an issuance, cert-manager's own reason first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Why it was reissued or is not Ready, in words: the evidence, or the Ready condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CertificateCheck {
    /// Whether cert-manager's own reason is still to be found (a reissue whose evidence has no `Issuing` entry:
    /// the condition is gone once an issuance completes, the Event stays for an hour).
    pub fn wants_issuing_reason(&self) -> bool {
        self.verdict == Verdict::Reissued && !self.evidence.iter().any(|e| matches!(e, Evidence::Issuing { .. }))
    }

    /// Adds what an `Issuing` Event says and decides again.
    pub fn add_issuing_event(&mut self, message: String) {
        self.evidence.insert(0, Evidence::Issuing { reason: None, message });
        self.decide_issued();
    }

    /// The verdict and reason once there is evidence: a renewal when cert-manager says it was due.
    fn decide_issued(&mut self) {
        self.verdict = if self.evidence.iter().any(Evidence::is_renewal) {
            Verdict::Renewed
        } else {
            Verdict::Reissued
        };
        let words: Vec<String> = self.evidence.iter().map(ToString::to_string).collect();
        self.reason = Some(words.join("; "));
    }
}

/// The condition of this type on a cert-manager object, if any.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// Whether the object's `Ready` condition is `True` for its current generation.
pub fn is_ready(object: &Value) -> bool {
    let generation = object.pointer("/metadata/generation").and_then(Value::as_i64);
    condition(object, "Ready").is_some_and(|c| {
        c.get("status").and_then(Value::as_str) == Some("True")
            && match (generation, c.get("observedGeneration").and_then(Value::as_i64)) {
                (Some(generation), Some(observed)) => observed >= generation,
                _ => true,
            }
    })
}

/// `Ready=<status> <reason>: <message>` of the Ready condition, or why there is none.
pub fn readiness_message(object: Option<&Value>) -> String {
    let Some(object) = object else {
        return "not seen".to_owned();
    };
    match condition(object, "Ready") {
        None => "no Ready condition yet".to_owned(),
        Some(c) => {
            let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            format!("Ready={} {}: {}", text("status"), text("reason"), text("message"))
        }
    }
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

/// cert-manager's `Issuing` condition while it is `True`.
fn issuing_condition(certificate: &Value) -> Option<Evidence> {
    let c = condition(certificate, "Issuing")?;
    if c.get("status").and_then(Value::as_str) != Some("True") {
        return None;
    }
    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(Evidence::Issuing {
        reason: Some(text("reason")),
        message: text("message"),
    })
}

/// Checks one Certificate against its archived facts, given the live Certificate, its Secret and the
/// CertificateRequests of its namespace; `since` is the cut-off after which an issuance counts.
pub fn check(
    facts: &CertificateFacts,
    certificate: Option<&Value>,
    secret: Option<&Value>,
    requests: &[Value],
    since: jiff::Timestamp,
) -> CertificateCheck {
    let expected = Expected {
        namespace: &facts.namespace,
        name: &facts.name,
        secret_name: &facts.secret_name,
        fingerprint: Some(&facts.sha256_fingerprint),
    };
    check_expected(&expected, certificate, secret, requests, since)
}

/// [`check`] for a restored Certificate that came without a certificate to compare with (its Secret was not
/// in the input): cert-manager's own signs of an issuance are the only evidence, and whatever leaf its Secret
/// holds is reported, not judged. `expected_fingerprint` stays empty.
pub fn check_unarchived(
    namespace: &str,
    name: &str,
    secret_name: &str,
    certificate: Option<&Value>,
    secret: Option<&Value>,
    requests: &[Value],
    since: jiff::Timestamp,
) -> CertificateCheck {
    let expected = Expected {
        namespace,
        name,
        secret_name,
        fingerprint: None,
    };
    check_expected(&expected, certificate, secret, requests, since)
}

/// What a check compares the live objects with.
struct Expected<'a> {
    namespace: &'a str,
    name: &'a str,
    secret_name: &'a str,
    /// The archived leaf's fingerprint; `None` when nothing was archived.
    fingerprint: Option<&'a str>,
}

fn check_expected(
    expected: &Expected<'_>,
    certificate: Option<&Value>,
    secret: Option<&Value>,
    requests: &[Value],
    since: jiff::Timestamp,
) -> CertificateCheck {
    let mut result = CertificateCheck {
        namespace: expected.namespace.to_owned(),
        name: expected.name.to_owned(),
        secret_name: expected.secret_name.to_owned(),
        verdict: Verdict::Ok,
        ready: readiness_message(certificate),
        expected_fingerprint: expected.fingerprint.unwrap_or_default().to_owned(),
        actual_fingerprint: secret
            .and_then(|s| certinfo::tls_leaf(s).ok())
            .map(|leaf| leaf.sha256_fingerprint),
        new_requests: Vec::new(),
        revision: certificate
            .and_then(|c| c.pointer("/status/revision"))
            .and_then(Value::as_i64),
        evidence: Vec::new(),
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
    result.new_requests = requests
        .iter()
        .filter(|r| owned_by(r, uid) && timestamp(r, "/metadata/creationTimestamp").is_some_and(|t| t >= since))
        .filter_map(|r| r.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    result.new_requests.sort();
    // cert-manager's own reason first: it says *why*; the rest says how we know.
    result.evidence.extend(issuing_condition(certificate));
    let secret = expected.secret_name.to_owned();
    match (&result.actual_fingerprint, expected.fingerprint) {
        (_, None) => {}
        (Some(f), Some(archived)) if f == archived => {}
        (Some(_), Some(_)) => result.evidence.push(Evidence::DifferentCertificate { secret }),
        (None, Some(_)) => result.evidence.push(Evidence::NoCertificate { secret }),
    }
    if !result.new_requests.is_empty() {
        result.evidence.push(Evidence::NewRequests {
            names: result.new_requests.clone(),
            since,
        });
    }
    let restored_since = timestamp(certificate, "/metadata/creationTimestamp").is_some_and(|c| c >= since);
    if restored_since && let Some(revision) = result.revision {
        result.evidence.push(Evidence::RevisionRaised { revision });
    }
    if !result.evidence.is_empty() {
        result.decide_issued();
    } else if !is_ready(certificate) {
        result.verdict = Verdict::NotReady;
        result.reason = Some(result.ready.clone());
    }
    result
}

/// The verification of every archived Certificate.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Issuance after this moment counts as reissuance.
    pub since: jiff::Timestamp,
    /// One entry per archived Certificate with a recorded leaf certificate, by namespace and name.
    pub certificates: Vec<CertificateCheck>,
    /// Number of reissued Certificates.
    pub reissued: usize,
    /// Number renewed because they were due (not counted as reissued).
    pub renewed: usize,
    /// Number reissued as predicted and allowed with `--allow-reissue` (not counted as reissued).
    pub reissued_as_predicted: usize,
    /// Number not Ready (and not reissued).
    pub not_ready: usize,
    /// Number missing.
    pub missing: usize,
}

impl Report {
    /// The report of these checks, sorted and counted.
    pub fn new(since: jiff::Timestamp, mut certificates: Vec<CertificateCheck>) -> Report {
        certificates.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let count = |v: Verdict| certificates.iter().filter(|c| c.verdict == v).count();
        Report {
            since,
            reissued: count(Verdict::Reissued),
            renewed: count(Verdict::Renewed),
            reissued_as_predicted: count(Verdict::ReissuedAsPredicted),
            not_ready: count(Verdict::NotReady),
            missing: count(Verdict::Missing),
            certificates,
        }
    }

    /// The report with every reissue of a Certificate in `predicted` (namespace, name) turned into
    /// [`Verdict::ReissuedAsPredicted`]: the restore said before writing that cert-manager would issue them, and
    /// was allowed to go ahead. A renewal that was due stays a renewal.
    pub fn accept_predicted(self, predicted: &BTreeSet<(String, String)>) -> Report {
        let mut certificates = self.certificates;
        for c in &mut certificates {
            if c.verdict == Verdict::Reissued && predicted.contains(&(c.namespace.clone(), c.name.clone())) {
                c.verdict = Verdict::ReissuedAsPredicted;
            }
        }
        Report::new(self.since, certificates)
    }

    /// What the checks add up to: reissuance outweighs anything missing or not Ready.
    pub fn conclusion(&self) -> Conclusion {
        if self.reissued > 0 {
            Conclusion::Reissued
        } else if self.missing > 0 || self.not_ready > 0 {
            Conclusion::Incomplete
        } else {
            Conclusion::Same
        }
    }
}

/// The outcome of a whole verification, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conclusion {
    /// At least one certificate was reissued.
    Reissued,
    /// Nothing reissued, but a Certificate or its Secret is missing or not Ready.
    Incomplete,
    /// Every certificate is the archived one (or was renewed because it was due).
    Same,
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;
    use sha2::{Digest as _, Sha256};

    fn facts(fingerprint: &str) -> CertificateFacts {
        CertificateFacts {
            namespace: "a".into(),
            name: "web".into(),
            secret_name: "web-tls".into(),
            serial_number: "01".into(),
            not_before: "2026-01-01T00:00:00Z".parse().unwrap(),
            not_after: "2027-01-01T00:00:00Z".parse().unwrap(),
            sha256_fingerprint: fingerprint.into(),
            public_key_algorithm: "RSA-2048".into(),
            ..CertificateFacts::default()
        }
    }

    fn pem_and_fingerprint() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["web.example".into()]).unwrap();
        let fingerprint = hex::encode(Sha256::digest(cert.cert.der()));
        (cert.cert.pem(), fingerprint)
    }

    fn secret(pem: &str) -> Value {
        let encoded = base64::engine::general_purpose::STANDARD.encode(pem);
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "a", "name": "web-tls"},
               "data": {"tls.crt": encoded}})
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
        let result = check(
            &facts(&fingerprint),
            Some(&certificate(json!({}))),
            Some(&secret(&pem)),
            &[],
            since(),
        );
        assert_eq!(result.actual_fingerprint.as_deref(), Some(fingerprint.as_str()));
        assert_eq!(result.verdict, Verdict::Ok, "{result:?}");
        assert!(result.evidence.is_empty());
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
        assert!(matches!(&result.evidence[0], Evidence::Issuing { reason: Some(r), .. } if r == "DoesNotExist"));
        assert!(result.evidence.contains(&Evidence::DifferentCertificate {
            secret: "web-tls".into()
        }));
        assert!(!result.wants_issuing_reason());
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
        let report = Report::new(since(), vec![result]);
        assert_eq!(
            (report.renewed, report.reissued, report.conclusion()),
            (1, 0, Conclusion::Same)
        );
    }

    #[test]
    fn an_issuing_event_found_later_decides_again() {
        let (pem, _) = pem_and_fingerprint();
        // The condition is gone once an issuance completes: only the different leaf says so.
        let mut result = check(
            &facts("00"),
            Some(&certificate(json!({}))),
            Some(&secret(&pem)),
            &[],
            since(),
        );
        assert_eq!(result.verdict, Verdict::Reissued);
        assert!(result.wants_issuing_reason());
        let mut renewed = result.clone();
        result.add_issuing_event("Issuing certificate as Secret does not exist".into());
        assert_eq!(result.verdict, Verdict::Reissued);
        assert!(
            result
                .reason
                .as_deref()
                .unwrap()
                .starts_with("Issuing: Issuing certificate")
        );
        renewed.add_issuing_event("Renewing certificate as renewal was scheduled at 2026-06-01".into());
        assert_eq!(renewed.verdict, Verdict::Renewed);
    }

    #[test]
    fn without_an_archived_leaf_only_issuance_signs_count() {
        let (pem, _) = pem_and_fingerprint();
        // A Secret that was already there and a Ready Certificate: nothing was issued.
        let quiet = check_unarchived(
            "a",
            "web",
            "web-tls",
            Some(&certificate(json!({}))),
            Some(&secret(&pem)),
            &[],
            since(),
        );
        assert_eq!(
            (quiet.verdict, quiet.expected_fingerprint.as_str()),
            (Verdict::Ok, ""),
            "{quiet:?}"
        );
        assert!(quiet.actual_fingerprint.is_some());
        let request = json!({"metadata": {"name": "web-1", "creationTimestamp": "2026-06-01T10:00:01Z",
            "ownerReferences": [{"kind": "Certificate", "name": "web", "uid": "u1"}]}});
        let issued = check_unarchived(
            "a",
            "web",
            "web-tls",
            Some(&certificate(json!({"revision": 1}))),
            Some(&secret(&pem)),
            &[request],
            since(),
        );
        assert_eq!(issued.verdict, Verdict::Reissued, "{issued:?}");
        assert_eq!(issued.new_requests, ["web-1"]);
        let other = check_unarchived("a", "api", "api-tls", None, None, &[], since());
        assert_eq!(other.verdict, Verdict::Missing);

        let report = Report::new(since(), vec![issued, other]);
        assert_eq!((report.reissued, report.conclusion()), (1, Conclusion::Reissued));
        let predicted = BTreeSet::from([("a".to_owned(), "web".to_owned()), ("a".to_owned(), "api".to_owned())]);
        let accepted = report.accept_predicted(&predicted);
        assert_eq!(accepted.certificates[1].verdict, Verdict::ReissuedAsPredicted);
        assert_eq!(
            (accepted.reissued, accepted.reissued_as_predicted, accepted.missing),
            (0, 1, 1),
            "a predicted reissue is accepted, a missing Certificate is not"
        );
        assert_eq!(accepted.conclusion(), Conclusion::Incomplete);
        // Only the predicted ones are accepted.
        let (pem, _) = pem_and_fingerprint();
        let unpredicted = check(
            &facts("00"),
            Some(&certificate(json!({}))),
            Some(&secret(&pem)),
            &[],
            since(),
        );
        let report = Report::new(since(), vec![unpredicted])
            .accept_predicted(&BTreeSet::from([("a".to_owned(), "other".to_owned())]));
        assert_eq!((report.reissued, report.conclusion()), (1, Conclusion::Reissued));
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
        assert_eq!(result.reason.as_deref(), Some("Ready=False Pending: waiting"));
        let report = Report::new(since(), vec![result]);
        assert_eq!(report.conclusion(), Conclusion::Incomplete);
        // A Secret without a certificate is evidence of its own.
        let empty = json!({"metadata": {"namespace": "a", "name": "web-tls"}, "data": {}});
        let result = check(
            &facts(&fingerprint),
            Some(&certificate(json!({}))),
            Some(&empty),
            &[],
            since(),
        );
        assert_eq!(
            result.evidence,
            [Evidence::NoCertificate {
                secret: "web-tls".into()
            }]
        );
    }
}
