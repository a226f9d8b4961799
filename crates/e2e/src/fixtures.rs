//! Test material for the scenarios: certificate authorities and leaf certificates made with rcgen, and builders
//! for the Kubernetes and cert-manager objects a scenario creates.
//!
//! Objects are plain `serde_json::Value`s, the same shape `kubectl get -o json` prints, so a scenario reads like
//! the YAML a person would write and nothing is lost to a typed struct that lags behind cert-manager's API.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub use cmarchive_archive::certmanager::kinds::CERT_MANAGER_GROUP;

/// A certificate authority that can sign leaf certificates, kept in memory for the length of a test run.
pub struct Ca {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA private key, PKCS#8 PEM.
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A leaf certificate and its key, PEM.
#[derive(Clone, Debug)]
pub struct IssuedLeaf {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM (cert-manager reads PKCS#1, PKCS#8 and SEC1 alike).
    pub key_pem: String,
}

/// What a leaf certificate says about itself; mirrors the fields cert-manager compares with a Certificate's spec.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// Start of validity.
    pub not_before: jiff::Timestamp,
    /// End of validity.
    pub not_after: jiff::Timestamp,
}

impl LeafSpec {
    /// A leaf for `dns_names` valid from an hour ago for `lifetime`, far from any renewal window when the
    /// lifetime is long.
    pub fn valid_for(dns_names: &[&str], lifetime: jiff::SignedDuration) -> LeafSpec {
        let not_before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        LeafSpec {
            common_name: dns_names.first().map(|s| (*s).to_owned()),
            dns_names: dns_names.iter().map(|s| (*s).to_owned()).collect(),
            not_before,
            not_after: not_before + lifetime,
        }
    }
}

impl Ca {
    /// A self-signed ECDSA P-256 CA valid for ten years (ECDSA keeps key generation cheap on shared CI cores).
    pub fn new(common_name: &str) -> Result<Ca> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating a CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = jiff::Timestamp::now();
        params.not_before = to_offset(now - jiff::SignedDuration::from_hours(24))?;
        params.not_after = to_offset(now + jiff::SignedDuration::from_hours(24 * 3650))?;
        params.serial_number = Some(fresh_serial());
        let cert = params.self_signed(&key).context("self-signing the CA")?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Signs a fresh ECDSA P-256 leaf for `spec` (server and client auth, like cert-manager's defaults).
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedLeaf> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating a leaf key")?;
        let mut params = CertificateParams::new(spec.dns_names.clone())?;
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = &spec.common_name {
            params.distinguished_name.push(DnType::CommonName, cn.as_str());
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = to_offset(spec.not_before)?;
        params.not_after = to_offset(spec.not_after)?;
        params.serial_number = Some(fresh_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).context("signing a leaf")?;
        Ok(IssuedLeaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA as the `kubernetes.io/tls` Secret a CA Issuer or ClusterIssuer names in `spec.ca.secretName`.
    pub fn secret(&self, namespace: &str, name: &str) -> Value {
        let mut secret = secret(
            namespace,
            name,
            "kubernetes.io/tls",
            &[
                ("tls.crt", self.cert_pem.as_bytes()),
                ("tls.key", self.key_pem.as_bytes()),
                ("ca.crt", self.cert_pem.as_bytes()),
            ],
        );
        set_path(&mut secret, &["metadata", "labels", "cmarchive.test/role"], json!("ca"));
        secret
    }
}

fn to_offset(ts: jiff::Timestamp) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(ts.as_second()).context("timestamp out of range")
}

/// A serial number unique within this process and unlikely to repeat across runs: 16 bytes of SHA-256 over the
/// clock, the process id and a counter, with the top bit cleared so the DER integer stays positive.
fn fresh_serial() -> SerialNumber {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(jiff::Timestamp::now().as_nanosecond().to_be_bytes());
    hasher.update(std::process::id().to_be_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let digest = hasher.finalize();
    let mut bytes = digest[..16].to_vec();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// An `issuerRef` of a Certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerRef {
    /// Issuer name.
    pub name: String,
    /// `Issuer` or `ClusterIssuer` (or an external issuer's kind).
    pub kind: String,
    /// API group; `cert-manager.io` for the built-in issuers.
    pub group: String,
}

impl IssuerRef {
    /// A namespaced `Issuer` in the Certificate's namespace.
    pub fn issuer(name: &str) -> IssuerRef {
        IssuerRef {
            name: name.to_owned(),
            kind: "Issuer".to_owned(),
            group: CERT_MANAGER_GROUP.to_owned(),
        }
    }

    /// A `ClusterIssuer`.
    pub fn cluster_issuer(name: &str) -> IssuerRef {
        IssuerRef {
            name: name.to_owned(),
            kind: "ClusterIssuer".to_owned(),
            group: CERT_MANAGER_GROUP.to_owned(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"name": self.name, "kind": self.kind, "group": self.group})
    }
}

/// A `v1` Namespace.
pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// A Secret with the given type and raw data (base64-encoded here, as the API expects).
pub fn secret(namespace: &str, name: &str, type_: &str, data: &[(&str, &[u8])]) -> Value {
    let data: Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(BASE64.encode(v))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": type_,
        "data": data,
    })
}

/// An `Opaque` Secret of text values: credentials, keystore passwords.
pub fn opaque_secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let raw: Vec<(&str, &[u8])> = data.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    secret(namespace, name, "Opaque", &raw)
}

/// An Issuer (`namespace = Some`) or ClusterIssuer (`None`) with the given `spec`.
pub fn issuer(namespace: Option<&str>, name: &str, spec: Value) -> Value {
    match namespace {
        Some(ns) => json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }),
        None => json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": name},
            "spec": spec,
        }),
    }
}

/// A SelfSigned Issuer or ClusterIssuer.
pub fn self_signed_issuer(namespace: Option<&str>, name: &str) -> Value {
    issuer(namespace, name, json!({"selfSigned": {}}))
}

/// A CA Issuer or ClusterIssuer signing with the key pair in `secret_name`.
pub fn ca_issuer(namespace: Option<&str>, name: &str, secret_name: &str) -> Value {
    issuer(namespace, name, json!({"ca": {"secretName": secret_name}}))
}

/// A cert-manager Certificate, built field by field.
#[derive(Clone, Debug)]
pub struct Certificate {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.secretName`.
    pub secret_name: String,
    /// `spec.issuerRef`.
    pub issuer_ref: IssuerRef,
    /// `spec.commonName`.
    pub common_name: Option<String>,
    /// `spec.dnsNames`.
    pub dns_names: Vec<String>,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// `spec.duration`, e.g. `2160h`.
    pub duration: Option<String>,
    /// Further `spec` fields merged over the ones above (keystores, secretTemplate, …).
    pub extra_spec: Map<String, Value>,
}

impl Certificate {
    /// A Certificate for `dns_name` with an ECDSA P-256 key in PKCS#8, issued by `issuer_ref`.
    pub fn new(namespace: &str, name: &str, issuer_ref: IssuerRef, dns_name: &str) -> Certificate {
        Certificate {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            secret_name: format!("{name}-tls"),
            issuer_ref,
            common_name: Some(dns_name.to_owned()),
            dns_names: vec![dns_name.to_owned()],
            is_ca: false,
            duration: None,
            extra_spec: Map::new(),
        }
    }

    /// Sets `spec.secretName`.
    pub fn secret_name(mut self, name: &str) -> Certificate {
        self.secret_name = name.to_owned();
        self
    }

    /// Makes it a CA certificate (for a SelfSigned → CA chain).
    pub fn ca(mut self) -> Certificate {
        self.is_ca = true;
        self
    }

    /// Sets `spec.duration`.
    pub fn duration(mut self, duration: &str) -> Certificate {
        self.duration = Some(duration.to_owned());
        self
    }

    /// Merges one more `spec` field.
    pub fn with(mut self, field: &str, value: Value) -> Certificate {
        self.extra_spec.insert(field.to_owned(), value);
        self
    }

    /// The object, ready to apply.
    pub fn to_json(&self) -> Value {
        let mut spec = Map::new();
        spec.insert("secretName".into(), json!(self.secret_name));
        spec.insert("issuerRef".into(), self.issuer_ref.to_json());
        if let Some(cn) = &self.common_name {
            spec.insert("commonName".into(), json!(cn));
        }
        spec.insert("dnsNames".into(), json!(self.dns_names));
        if self.is_ca {
            spec.insert("isCA".into(), json!(true));
        }
        if let Some(d) = &self.duration {
            spec.insert("duration".into(), json!(d));
        }
        spec.insert(
            "privateKey".into(),
            json!({"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8"}),
        );
        for (k, v) in &self.extra_spec {
            spec.insert(k.clone(), v.clone());
        }
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        })
    }

    /// The leaf this Certificate asks for, valid from `not_before` to `not_after`.
    pub fn leaf_spec(&self, not_before: jiff::Timestamp, not_after: jiff::Timestamp) -> LeafSpec {
        LeafSpec {
            common_name: self.common_name.clone(),
            dns_names: self.dns_names.clone(),
            not_before,
            not_after,
        }
    }

    /// The TLS Secret exactly as cert-manager would have written it after issuing `leaf` from `ca`: data,
    /// issuer and certificate annotations, detail annotations and the `controller.cert-manager.io/fao` label.
    /// Used for certificates that were "issued before the backup" without running an issuer, e.g. by a Vault
    /// server that does not exist here, or already inside their renewal window.
    pub fn issued_secret(&self, ca: &Ca, leaf: &IssuedLeaf) -> Value {
        let mut s = secret(
            &self.namespace,
            &self.secret_name,
            "kubernetes.io/tls",
            &[
                ("tls.crt", leaf.cert_pem.as_bytes()),
                ("tls.key", leaf.key_pem.as_bytes()),
                ("ca.crt", ca.cert_pem.as_bytes()),
            ],
        );
        let annotations = json!({
            "cert-manager.io/certificate-name": self.name,
            "cert-manager.io/issuer-name": self.issuer_ref.name,
            "cert-manager.io/issuer-kind": self.issuer_ref.kind,
            "cert-manager.io/issuer-group": self.issuer_ref.group,
            "cert-manager.io/common-name": self.common_name.clone().unwrap_or_default(),
            "cert-manager.io/alt-names": self.dns_names.join(","),
            "cert-manager.io/ip-sans": "",
            "cert-manager.io/uri-sans": "",
        });
        set_path(&mut s, &["metadata", "annotations"], annotations);
        set_path(
            &mut s,
            &["metadata", "labels", "controller.cert-manager.io/fao"],
            json!("true"),
        );
        s
    }
}

/// A `networking.k8s.io/v1` Ingress with one TLS host, annotated for ingress-shim with the given issuer.
pub fn ingress(namespace: &str, name: &str, host: &str, secret_name: &str, issuer: &IssuerRef) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {shim_annotation(issuer): issuer.name},
        },
        "spec": {
            "tls": [{"hosts": [host], "secretName": secret_name}],
            "rules": [{
                "host": host,
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                }]},
            }],
        },
    })
}

/// A `gateway.networking.k8s.io/v1` Gateway with one HTTPS listener terminating TLS with `secret_name`, annotated
/// for gateway-shim with the given issuer. No GatewayClass or gateway controller is needed: gateway-shim reads only
/// the spec.
pub fn gateway(namespace: &str, name: &str, host: &str, secret_name: &str, issuer: &IssuerRef) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {shim_annotation(issuer): issuer.name},
        },
        "spec": {
            "gatewayClassName": "cmarchive-test",
            "listeners": [{
                "name": "https",
                "hostname": host,
                "port": 443,
                "protocol": "HTTPS",
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": secret_name}]},
            }],
        },
    })
}

/// The annotation through which ingress-shim and gateway-shim learn the issuer.
fn shim_annotation(issuer: &IssuerRef) -> &'static str {
    match issuer.kind.as_str() {
        "ClusterIssuer" => "cert-manager.io/cluster-issuer",
        _ => "cert-manager.io/issuer",
    }
}

/// Sets `value` at `path` in `obj`, creating intermediate objects.
pub fn set_path(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("just made an object");
        if i + 1 == path.len() {
            map.insert((*key).to_owned(), value);
            return;
        }
        cur = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Decodes one base64 value of a Secret's `data`.
pub fn secret_data(secret: &Value, key: &str) -> Option<Vec<u8>> {
    let encoded = secret.pointer(&format!("/data/{}", key.replace('~', "~0").replace('/', "~1")))?;
    BASE64.decode(encoded.as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, p) = parse_x509_pem(pem.as_bytes()).expect("PEM");
        p.contents
    }

    #[test]
    fn leaf_verifies_against_its_ca_and_carries_the_requested_names() {
        let ca = Ca::new("fixture CA").unwrap();
        let leaf = ca
            .issue(&LeafSpec::valid_for(
                &["a.example.com", "b.example.com"],
                jiff::SignedDuration::from_hours(2160),
            ))
            .unwrap();
        let ca_der = parse(&ca.cert_pem);
        let leaf_der = parse(&leaf.cert_pem);
        let (_, ca_x) = X509Certificate::from_der(&ca_der).unwrap();
        let (_, leaf_x) = X509Certificate::from_der(&leaf_der).unwrap();
        assert!(ca_x.is_ca());
        assert!(!leaf_x.is_ca());
        leaf_x
            .verify_signature(Some(ca_x.public_key()))
            .expect("leaf signed by the CA");
        assert_eq!(leaf_x.issuer(), ca_x.subject());
        let sans: Vec<String> = leaf_x
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(sans, ["a.example.com", "b.example.com"]);
    }

    #[test]
    fn leaf_key_matches_its_certificate() {
        let ca = Ca::new("fixture CA").unwrap();
        let leaf = ca
            .issue(&LeafSpec::valid_for(
                &["x.example.com"],
                jiff::SignedDuration::from_hours(24),
            ))
            .unwrap();
        let key = KeyPair::from_pem(&leaf.key_pem).unwrap();
        let der = parse(&leaf.cert_pem);
        let (_, x) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(x.public_key().subject_public_key.data.as_ref(), key.public_key_raw());
    }

    #[test]
    fn validity_window_is_the_requested_one() {
        let ca = Ca::new("fixture CA").unwrap();
        let nb = jiff::Timestamp::from_second(1_900_000_000).unwrap();
        let na = jiff::Timestamp::from_second(1_900_003_600).unwrap();
        let spec = LeafSpec {
            common_name: None,
            dns_names: vec!["w.example.com".into()],
            not_before: nb,
            not_after: na,
        };
        let der = parse(&ca.issue(&spec).unwrap().cert_pem);
        let (_, x) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(x.validity().not_before.timestamp(), 1_900_000_000);
        assert_eq!(x.validity().not_after.timestamp(), 1_900_003_600);
    }

    #[test]
    fn serials_differ_between_leaves() {
        let ca = Ca::new("fixture CA").unwrap();
        let spec = LeafSpec::valid_for(&["s.example.com"], jiff::SignedDuration::from_hours(24));
        let a = parse(&ca.issue(&spec).unwrap().cert_pem);
        let b = parse(&ca.issue(&spec).unwrap().cert_pem);
        let (_, a) = X509Certificate::from_der(&a).unwrap();
        let (_, b) = X509Certificate::from_der(&b).unwrap();
        assert_ne!(a.raw_serial(), b.raw_serial());
    }

    #[test]
    fn issued_secret_carries_what_cert_manager_compares() {
        let ca = Ca::new("fixture CA").unwrap();
        let crt = Certificate::new("ns1", "web", IssuerRef::cluster_issuer("corp-ca"), "web.example.com");
        let leaf = ca
            .issue(&crt.leaf_spec(
                jiff::Timestamp::now(),
                jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
            ))
            .unwrap();
        let s = crt.issued_secret(&ca, &leaf);
        assert_eq!(s["metadata"]["name"], "web-tls");
        assert_eq!(s["type"], "kubernetes.io/tls");
        let a = &s["metadata"]["annotations"];
        assert_eq!(a["cert-manager.io/issuer-kind"], "ClusterIssuer");
        assert_eq!(a["cert-manager.io/issuer-name"], "corp-ca");
        assert_eq!(a["cert-manager.io/issuer-group"], "cert-manager.io");
        assert_eq!(a["cert-manager.io/certificate-name"], "web");
        assert_eq!(s["metadata"]["labels"]["controller.cert-manager.io/fao"], "true");
        assert_eq!(secret_data(&s, "tls.crt").unwrap(), leaf.cert_pem.as_bytes());
        assert_eq!(secret_data(&s, "ca.crt").unwrap(), ca.cert_pem.as_bytes());
    }

    #[test]
    fn certificate_json_has_the_fields_the_spec_needs() {
        let crt = Certificate::new("ns1", "web", IssuerRef::issuer("ca"), "web.example.com")
            .duration("2160h")
            .with("secretTemplate", json!({"labels": {"team": "a"}}));
        let v = crt.to_json();
        assert_eq!(v["kind"], "Certificate");
        assert_eq!(v["spec"]["secretName"], "web-tls");
        assert_eq!(v["spec"]["issuerRef"]["kind"], "Issuer");
        assert_eq!(v["spec"]["dnsNames"][0], "web.example.com");
        assert_eq!(v["spec"]["privateKey"]["algorithm"], "ECDSA");
        assert_eq!(v["spec"]["secretTemplate"]["labels"]["team"], "a");
    }

    #[test]
    fn ingress_annotation_follows_the_issuer_kind() {
        let v = ingress(
            "ns",
            "web",
            "web.example.com",
            "web-tls",
            &IssuerRef::cluster_issuer("corp"),
        );
        assert_eq!(v["metadata"]["annotations"]["cert-manager.io/cluster-issuer"], "corp");
        let v = ingress("ns", "web", "web.example.com", "web-tls", &IssuerRef::issuer("local"));
        assert_eq!(v["metadata"]["annotations"]["cert-manager.io/issuer"], "local");
    }
}
