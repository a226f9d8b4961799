//! What the leaf certificate in a Certificate's Secret says: the evidence `verify` compares after a restore and
//! the input of the reissuance prediction.

use super::keys::{self, PublicKey};
use super::kinds::{self, Kind};
use crate::manifest::CertificateFacts;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// The first certificate of `tls.crt`, decoded into what cert-manager's checks look at.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafCertificate {
    /// Serial number, lower-case hex.
    pub serial_number: String,
    /// Start of validity.
    pub not_before: jiff::Timestamp,
    /// End of validity.
    pub not_after: jiff::Timestamp,
    /// Lower-case hex SHA-256 of the DER.
    pub sha256_fingerprint: String,
    /// Subject common name.
    pub common_name: Option<String>,
    /// DNS SANs in certificate order.
    pub dns_names: Vec<String>,
    /// IP SANs in canonical text form.
    pub ip_addresses: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// Email SANs.
    pub email_addresses: Vec<String>,
    /// basicConstraints CA flag.
    pub is_ca: bool,
    /// Subject public key.
    pub public_key: PublicKey,
}

/// The Secret a Certificate writes to (`spec.secretName` in the Certificate's namespace), among `objects`.
pub fn find_secret<'a>(certificate: &Value, objects: impl IntoIterator<Item = &'a Value>) -> Option<&'a Value> {
    let namespace = kinds::namespace(certificate);
    let name = kinds::str_at(certificate, &["spec", "secretName"])?;
    objects
        .into_iter()
        .find(|o| kinds::classify(o) == Kind::Secret && kinds::name(o) == name && kinds::namespace(o) == namespace)
}

/// Secrets among `objects` by (namespace, name): [`find_secret`] for many Certificates at once without scanning
/// every object per Certificate (quadratic: minutes at tens of thousands of objects). `T` is whatever the caller
/// holds per object (the planner: a candidate with its leaf), seen through a `Value`.
pub struct SecretIndex<'a, T = Value>(foldhash::HashMap<(Option<&'a str>, &'a str), &'a T>);

impl<'a> SecretIndex<'a> {
    /// Indexes the Secrets among `objects` (the first of duplicates wins, as in [`find_secret`]).
    pub fn new(objects: impl IntoIterator<Item = &'a Value>) -> SecretIndex<'a> {
        SecretIndex::by(objects, |o| o)
    }
}

impl<'a, T> SecretIndex<'a, T> {
    /// [`SecretIndex::new`] over items that `view` shows as objects.
    pub fn by(items: impl IntoIterator<Item = &'a T>, view: impl Fn(&'a T) -> &'a Value) -> SecretIndex<'a, T> {
        let mut map = foldhash::HashMap::default();
        for item in items {
            let o = view(item);
            if kinds::classify(o) == Kind::Secret {
                map.entry((kinds::namespace(o), kinds::name(o))).or_insert(item);
            }
        }
        SecretIndex(map)
    }

    /// The Secret `certificate` writes to, like [`find_secret`].
    pub fn secret_of(&self, certificate: &Value) -> Option<&'a T> {
        let name = kinds::str_at(certificate, &["spec", "secretName"])?;
        self.0.get(&(kinds::namespace(certificate), name)).copied()
    }
}

/// The bytes of one Secret data key: base64 `data` as the API returns it, or clear `stringData` as people write.
/// `None` when the key is absent; an undecodable value reads as empty, as it would be useless to cert-manager.
pub fn secret_data(secret: &Value, key: &str) -> Option<Vec<u8>> {
    let at = |field: &str| secret.get(field).and_then(|d| d.get(key)).and_then(Value::as_str);
    data_or_string_data(at("data"), at("stringData"))
}

/// A Secret key's bytes from its `data` value (base64) if there is one, else from its `stringData` value (clear).
fn data_or_string_data(data: Option<&str>, string_data: Option<&str>) -> Option<Vec<u8>> {
    match (data, string_data) {
        (Some(encoded), _) => Some(decode_data(encoded)),
        (None, clear) => clear.map(|clear| clear.as_bytes().to_vec()),
    }
}

/// Decodes the first PEM certificate of a `tls.crt` value.
pub fn parse_leaf(pem: &[u8]) -> Result<LeafCertificate, String> {
    let block = x509_parser::pem::Pem::iter_from_buffer(pem)
        .find(|b| b.as_ref().map_or(true, |b| b.label == "CERTIFICATE"))
        .ok_or("no PEM certificate")?
        .map_err(|e| format!("PEM: {e}"))?;
    let certificate = block.parse_x509().map_err(|e| format!("X.509: {e}"))?;
    leaf_from(&certificate, &block.contents)
}

fn leaf_from(certificate: &X509Certificate<'_>, der: &[u8]) -> Result<LeafCertificate, String> {
    let timestamp = |t: x509_parser::time::ASN1Time| {
        jiff::Timestamp::from_second(t.timestamp()).map_err(|e| format!("validity out of range: {e}"))
    };
    let mut leaf = LeafCertificate {
        serial_number: certificate.serial.to_str_radix(16),
        not_before: timestamp(certificate.validity().not_before)?,
        not_after: timestamp(certificate.validity().not_after)?,
        sha256_fingerprint: hex::encode(Sha256::digest(der)),
        common_name: certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        uris: Vec::new(),
        email_addresses: Vec::new(),
        is_ca: certificate
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca),
        public_key: keys::public_key_of_certificate(certificate)?,
    };
    if let Ok(Some(san)) = certificate.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => leaf.dns_names.push((*dns).to_owned()),
                GeneralName::RFC822Name(email) => leaf.email_addresses.push((*email).to_owned()),
                GeneralName::URI(uri) => leaf.uris.push((*uri).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        leaf.ip_addresses.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(leaf)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// The manifest's record of a Certificate's current leaf certificate, read from its Secret's `tls.crt`.
pub fn certificate_facts(certificate: &Value, secret: &Value) -> Result<CertificateFacts, String> {
    Ok(facts_of(certificate, tls_leaf(secret)?))
}

/// The first certificate of a Secret's `tls.crt`, or why there is none.
pub fn tls_leaf(secret: &Value) -> Result<LeafCertificate, String> {
    leaf_of(secret_data(secret, TLS_CRT))
}

/// The Secret key holding the certificate chain.
pub const TLS_CRT: &str = "tls.crt";

/// [`tls_leaf`] from the two places a `tls.crt` can be: `data` (base64) or `stringData` (clear).
pub fn tls_leaf_of(data: Option<&str>, string_data: Option<&str>) -> Result<LeafCertificate, String> {
    leaf_of(data_or_string_data(data, string_data))
}

fn leaf_of(pem: Option<Vec<u8>>) -> Result<LeafCertificate, String> {
    let pem = pem.filter(|d| !d.is_empty()).ok_or("no tls.crt")?;
    parse_leaf(&pem)
}

/// A `data` value's bytes; an undecodable value reads as empty, as it would be useless to cert-manager.
fn decode_data(encoded: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap_or_default()
}

/// [`certificate_facts`] from a leaf already read out of the Secret.
pub fn facts_of(certificate: &Value, leaf: LeafCertificate) -> CertificateFacts {
    CertificateFacts {
        namespace: kinds::namespace(certificate).unwrap_or_default().to_owned(),
        name: kinds::name(certificate).to_owned(),
        secret_name: kinds::str_at(certificate, &["spec", "secretName"])
            .unwrap_or_default()
            .to_owned(),
        serial_number: leaf.serial_number,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        sha256_fingerprint: leaf.sha256_fingerprint,
        common_name: leaf.common_name,
        dns_names: leaf.dns_names,
        ip_addresses: leaf.ip_addresses,
        uris: leaf.uris,
        email_addresses: leaf.email_addresses,
        is_ca: leaf.is_ca,
        public_key_algorithm: leaf.public_key.describe(),
    }
}
