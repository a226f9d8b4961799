//! Offline prediction of what cert-manager's trigger policy chain (v1.21,
//! `internal/controller/certificates/policies`) decides for each restored Certificate: keep the certificate in
//! its Secret, or issue a new one and why, with cert-manager's own reason names.
//!
//! Like the original, the chain is an ordered list of small named checks and the first one that fires decides.
//! The conditions are those right after a restore: `status` is gone, so there is no current CertificateRequest
//! (the checks that need one are skipped and the weaker certificate-versus-spec comparison applies), no ACME
//! renewal-info window and no back-off.

use super::certinfo::{self, LeafCertificate};
use super::keys::{self, PublicKey};
use super::kinds::{self, CERT_MANAGER_GROUP, Kind};
use crate::object::ObjectKey;
use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What cert-manager will do with one Certificate after the restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// The certificate in the Secret is kept.
    Stays,
    /// A new certificate is issued at once.
    Reissued {
        /// cert-manager's reason, as it appears on the Certificate's `Issuing` condition.
        reason: String,
        /// Why, for a person.
        message: String,
    },
}

/// The prediction for one Certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    /// The Certificate.
    pub certificate: ObjectKey,
    /// What happens to it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What every check looks at.
pub struct Input<'a> {
    /// The Certificate as restored.
    pub certificate: &'a Value,
    /// Its Secret as restored, if there is one.
    pub secret: Option<&'a Value>,
    /// When the controller looks.
    pub at: jiff::Timestamp,
}

/// A check: `Some((reason, message))` when it calls for issuance.
pub type Check = fn(&Input<'_>) -> Option<(&'static str, String)>;

/// cert-manager's trigger chain, in its order (`NewTriggerPolicyChain`).
pub const TRIGGER_CHAIN: &[(&str, Check)] = &[
    ("SecretDoesNotExist", secret_does_not_exist),
    ("SecretIsMissingData", secret_is_missing_data),
    ("SecretPublicKeysDiffer", secret_public_keys_differ),
    ("SecretIssuerAnnotationsMismatch", secret_issuer_annotations_mismatch),
    (
        "SecretCertificateNameAnnotationsMismatch",
        secret_certificate_name_annotations_mismatch,
    ),
    ("SecretPrivateKeyMismatchesSpec", secret_private_key_mismatches_spec),
    (
        "SecretPublicKeyDiffersFromCurrentCertificateRequest",
        secret_public_key_differs_from_current_request,
    ),
    (
        "CurrentCertificateRequestMismatchesSpec",
        current_certificate_request_mismatches_spec,
    ),
    ("CurrentCertificateNearingExpiry", current_certificate_nearing_expiry),
];

/// Predicts every Certificate among `objects` (archived or planned objects: Certificates and their Secrets), as
/// cert-manager would judge them at `at`. Sorted by Certificate.
/// Borrows the objects (any iterator over them that can be walked twice), so a restore of thousands of objects
/// does not copy them to ask.
pub fn predict<'a>(objects: impl IntoIterator<Item = &'a Value> + Clone, at: jiff::Timestamp) -> Vec<Prediction> {
    let secrets = certinfo::SecretIndex::new(objects.clone());
    in_order(
        objects
            .into_iter()
            .filter(|o| kinds::classify(o) == Kind::Certificate)
            .filter_map(|certificate| {
                let key = ObjectKey::of(certificate)?;
                Some(judge(key, certificate, secrets.secret_of(certificate), at))
            }),
    )
}

/// One Certificate with its Secret (if any) judged at `at`.
fn judge(key: ObjectKey, certificate: &Value, secret: Option<&Value>, at: jiff::Timestamp) -> Prediction {
    Prediction {
        certificate: key,
        outcome: evaluate(&Input {
            certificate,
            secret,
            at,
        }),
    }
}

/// Predictions sorted by Certificate, the order every caller prints.
fn in_order(predictions: impl Iterator<Item = Prediction>) -> Vec<Prediction> {
    let mut predictions: Vec<Prediction> = predictions.collect();
    predictions.sort_by(|a, b| a.certificate.cmp(&b.certificate));
    predictions
}

/// [`predict`] over objects kept as JSON bytes with their identity (a verified archive, a prepared restore): only
/// Certificates and the Secrets they name are parsed, one pair at a time, so asking costs no more memory than the
/// bytes already take. Objects that do not parse are skipped (the reader has proven archived ones parse).
pub fn predict_stored<'a>(
    objects: impl IntoIterator<Item = (&'a ObjectKey, &'a [u8])>,
    at: jiff::Timestamp,
) -> Vec<Prediction> {
    let mut secrets: std::collections::HashMap<(Option<&str>, &str), &[u8]> = std::collections::HashMap::new();
    let mut certificates: Vec<(&ObjectKey, &[u8])> = Vec::new();
    for (key, bytes) in objects {
        match (key.group(), key.kind.as_str()) {
            ("", "Secret") => {
                secrets
                    .entry((key.namespace.as_deref(), key.name.as_str()))
                    .or_insert(bytes);
            }
            (kinds::CERT_MANAGER_GROUP, "Certificate") => certificates.push((key, bytes)),
            _ => {}
        }
    }
    in_order(certificates.into_iter().filter_map(|(key, bytes)| {
        let certificate: Value = serde_json::from_slice(bytes).ok()?;
        let secret: Option<Value> = kinds::str_at(&certificate, &["spec", "secretName"])
            .and_then(|name| secrets.get(&(key.namespace.as_deref(), name)))
            .and_then(|bytes| serde_json::from_slice(bytes).ok());
        Some(judge(key.clone(), &certificate, secret.as_ref(), at))
    }))
}

/// [`predict`] over the objects of a plan.
pub fn predict_plan(plan: &Plan, at: jiff::Timestamp) -> Vec<Prediction> {
    predict_stored(
        plan.phases
            .iter()
            .flat_map(|p| p.objects.iter().map(|o| (o.key(), o.bytes()))),
        at,
    )
}

/// Runs [`TRIGGER_CHAIN`]; the first check that fires decides.
pub fn evaluate(input: &Input<'_>) -> Outcome {
    TRIGGER_CHAIN
        .iter()
        .find_map(|(_, check)| check(input))
        .map_or(Outcome::Stays, |(reason, message)| Outcome::Reissued {
            reason: reason.to_owned(),
            message,
        })
}

fn secret_does_not_exist(input: &Input<'_>) -> Option<(&'static str, String)> {
    input.secret.is_none().then(|| {
        (
            "DoesNotExist",
            "the Secret named by spec.secretName does not exist".into(),
        )
    })
}

fn secret_is_missing_data(input: &Input<'_>) -> Option<(&'static str, String)> {
    let secret = input.secret?;
    for (key, what) in [("tls.key", "private key"), ("tls.crt", "certificate")] {
        if certinfo::secret_data(secret, key).is_none_or(|d| d.is_empty()) {
            return Some(("MissingData", format!("the Secret holds no {what} ({key})")));
        }
    }
    None
}

fn secret_public_keys_differ(input: &Input<'_>) -> Option<(&'static str, String)> {
    let private = match private_key(input)? {
        Ok(key) => key,
        Err(error) => {
            return Some((
                "InvalidKeyPair",
                format!("tls.key is not a usable private key: {error}"),
            ));
        }
    };
    let leaf = match leaf(input)? {
        Ok(leaf) => leaf,
        Err(error) => {
            return Some((
                "InvalidCertificate",
                format!("tls.crt is not a usable certificate: {error}"),
            ));
        }
    };
    (private != leaf.public_key).then(|| {
        (
            "InvalidKeyPair",
            "the private key in tls.key does not belong to the certificate in tls.crt".into(),
        )
    })
}

/// The annotations cert-manager wrote when it issued must name the Certificate's issuer. Absent annotations only
/// match an issuerRef of the default kind and group (Issuer, cert-manager.io): the trap after a restore by a tool
/// that dropped them.
fn secret_issuer_annotations_mismatch(input: &Input<'_>) -> Option<(&'static str, String)> {
    let secret = input.secret?;
    let name = kinds::annotation(secret, kinds::ISSUER_NAME_ANNOTATION);
    let kind = kinds::annotation(secret, kinds::ISSUER_KIND_ANNOTATION);
    let group = kinds::annotation(secret, kinds::ISSUER_GROUP_ANNOTATION);
    let (ref_name, ref_kind, ref_group) = kinds::issuer_ref(input.certificate);
    let any_present = name.is_some() || kind.is_some() || group.is_some();
    let name_differs = any_present && name.unwrap_or_default() != ref_name;
    let kind_differs = kind.filter(|k| !k.is_empty()).unwrap_or("Issuer") != ref_kind;
    let group_differs = group.filter(|g| !g.is_empty()).unwrap_or(CERT_MANAGER_GROUP) != ref_group;
    (name_differs || kind_differs || group_differs).then(|| {
        let was = if any_present {
            format!(
                "{}.{}/{}",
                kind.unwrap_or_default(),
                group.unwrap_or_default(),
                name.unwrap_or_default()
            )
        } else {
            "an unrecorded issuer (no cert-manager.io/issuer-* annotations)".to_owned()
        };
        (
            "IncorrectIssuer",
            format!("the Secret was issued by {was}, the Certificate names {ref_kind}.{ref_group}/{ref_name}"),
        )
    })
}

fn secret_certificate_name_annotations_mismatch(input: &Input<'_>) -> Option<(&'static str, String)> {
    let recorded = kinds::annotation(input.secret?, kinds::CERTIFICATE_NAME_ANNOTATION)?;
    let name = kinds::name(input.certificate);
    (recorded != name).then(|| {
        (
            "IncorrectCertificate",
            format!("the Secret was issued for Certificate {recorded:?}, not {name:?}"),
        )
    })
}

/// `spec.privateKey` against the key in the Secret: algorithm (default RSA) and size (default 2048 for RSA, 256
/// for ECDSA), as `pki.PrivateKeyMatchesSpec` does.
fn secret_private_key_mismatches_spec(input: &Input<'_>) -> Option<(&'static str, String)> {
    let key = match private_key(input)? {
        Ok(key) => key,
        Err(error) => {
            return Some((
                "InvalidKeyPair",
                format!("tls.key is not a usable private key: {error}"),
            ));
        }
    };
    let algorithm = kinds::str_at(input.certificate, &["spec", "privateKey", "algorithm"]).unwrap_or("RSA");
    let size = input
        .certificate
        .pointer("/spec/privateKey/size")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0);
    let expected_size = match algorithm {
        "RSA" => size.unwrap_or(2048) as usize,
        "ECDSA" => size.unwrap_or(256) as usize,
        "Ed25519" => 0,
        other => {
            return Some((
                "SecretMismatch",
                format!("spec.privateKey.algorithm {other:?} is not known"),
            ));
        }
    };
    let violation = if key.algorithm() != algorithm {
        "spec.privateKey.algorithm"
    } else if key.size() != expected_size {
        "spec.privateKey.size"
    } else {
        return None;
    };
    Some((
        "SecretMismatch",
        format!(
            "the private key ({}) does not satisfy {violation} ({algorithm} {expected_size})",
            key.describe()
        ),
    ))
}

/// Needs the current CertificateRequest, which a restore never has (`status.revision` is dropped).
fn secret_public_key_differs_from_current_request(_input: &Input<'_>) -> Option<(&'static str, String)> {
    None
}

/// Without a current CertificateRequest cert-manager falls back to comparing the certificate with the spec,
/// loosely: DNS names and common name as one set, then IPs, URIs and emails. Subject fields, isCA, usages and
/// duration are not compared on this path.
fn current_certificate_request_mismatches_spec(input: &Input<'_>) -> Option<(&'static str, String)> {
    let leaf = match leaf(input)? {
        Ok(leaf) => leaf,
        Err(error) => {
            return Some((
                "InvalidCertificate",
                format!("tls.crt is not a usable certificate: {error}"),
            ));
        }
    };
    let violations = alt_names_violations(&leaf, input.certificate);
    (!violations.is_empty()).then(|| {
        (
            "SecretMismatch",
            format!("the certificate does not match the spec: {}", violations.join(", ")),
        )
    })
}

fn current_certificate_nearing_expiry(input: &Input<'_>) -> Option<(&'static str, String)> {
    let leaf = match leaf(input)? {
        Ok(leaf) => leaf,
        Err(error) => {
            return Some((
                "InvalidCertificate",
                format!("tls.crt is not a usable certificate: {error}"),
            ));
        }
    };
    if kinds::str_at(input.certificate, &["spec", "renewal", "policy"]) == Some("Disabled") {
        return None;
    }
    let due = renewal_time(input.certificate, &leaf);
    if input.at < due {
        return None;
    }
    let mut message = format!("renewal was due at {due}");
    if input.at >= leaf.not_after {
        message.push_str(&format!("; the certificate expired at {}", leaf.not_after));
    }
    let has_windows = input
        .certificate
        .pointer("/spec/renewal/windows")
        .and_then(Value::as_array)
        .is_some_and(|w| !w.is_empty());
    if has_windows {
        message.push_str("; spec.renewal.windows may move the renewal to the next window");
    }
    Some(("Renewing", message))
}

/// When cert-manager renews (`pki.RenewalTime` without windows or ACME renewal info): `notAfter` minus
/// `renewBefore` if shorter than the lifetime, else minus `renewBeforePercentage` of the lifetime if in (0, 100),
/// else minus a third of the lifetime; truncated to the second.
pub fn renewal_time(certificate: &Value, leaf: &LeafCertificate) -> jiff::Timestamp {
    let lifetime = leaf.not_after.as_nanosecond() - leaf.not_before.as_nanosecond();
    let renew_before = kinds::str_at(certificate, &["spec", "renewBefore"]).and_then(parse_go_duration);
    let percentage = certificate
        .pointer("/spec/renewBeforePercentage")
        .and_then(Value::as_i64);
    let before = match (renew_before, percentage) {
        (Some(before), _) if before > 0 && before < lifetime => before,
        (_, Some(pct)) if pct > 0 && pct < 100 => (lifetime as f64 * pct as f64 / 100.0) as i128,
        _ => lifetime / 3,
    };
    let nanos = leaf.not_after.as_nanosecond() - before;
    let seconds = nanos.div_euclid(1_000_000_000) as i64;
    jiff::Timestamp::from_second(seconds).unwrap_or(leaf.not_after)
}

/// Parses a Go `time.Duration` string (`720h`, `1h30m`, `1.5h`, `90s`) into nanoseconds.
pub fn parse_go_duration(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    let nanos = total.round() as i128;
    Some(if negative { -nanos } else { nanos })
}

/// `pki.FuzzyX509AltNamesMatchSpec`, field by field.
fn alt_names_violations(leaf: &LeafCertificate, certificate: &Value) -> Vec<&'static str> {
    let strings = |field: &str| -> Vec<String> {
        certificate
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let spec_cn = kinds::str_at(certificate, &["spec", "commonName"]);
    let spec_dns = strings("dnsNames");
    let expected: BTreeSet<&str> = spec_dns.iter().map(String::as_str).chain(spec_cn).collect();
    let actual: BTreeSet<&str> = leaf
        .dns_names
        .iter()
        .map(String::as_str)
        .chain(leaf.common_name.as_deref().filter(|c| !c.is_empty()))
        .collect();
    let mut violations = Vec::new();
    if expected != actual {
        let cert_cn = leaf.common_name.as_deref().filter(|c| !c.is_empty());
        if spec_cn.is_some_and(|cn| !actual.contains(cn)) || cert_cn.is_some_and(|cn| !expected.contains(cn)) {
            violations.push("spec.commonName");
        }
        let spec_missing = spec_dns.iter().any(|d| !actual.contains(d.as_str()));
        let cert_extra = leaf.dns_names.iter().any(|d| !expected.contains(d.as_str()));
        if spec_missing || cert_extra {
            violations.push("spec.dnsNames");
        }
    }
    let normalize = |ip: &str| {
        ip.parse::<IpAddr>().ok().map(|ip| match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        })
    };
    let mut spec_ips: Vec<_> = strings("ipAddresses").iter().map(|ip| normalize(ip)).collect();
    let mut cert_ips: Vec<_> = leaf.ip_addresses.iter().map(|ip| normalize(ip)).collect();
    spec_ips.sort();
    cert_ips.sort();
    if spec_ips != cert_ips {
        violations.push("spec.ipAddresses");
    }
    if !same_unsorted(&strings("uris"), &leaf.uris) {
        violations.push("spec.uris");
    }
    if !same_unsorted(&strings("emailAddresses"), &leaf.email_addresses) {
        violations.push("spec.emailAddresses");
    }
    violations
}

fn same_unsorted(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

fn private_key(input: &Input<'_>) -> Option<Result<PublicKey, String>> {
    let pem = certinfo::secret_data(input.secret?, "tls.key")?;
    Some(keys::public_key_of_private_pem(&pem))
}

fn leaf(input: &Input<'_>) -> Option<Result<LeafCertificate, String>> {
    let pem = certinfo::secret_data(input.secret?, "tls.crt")?;
    Some(certinfo::parse_leaf(&pem))
}
