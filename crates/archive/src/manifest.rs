//! `manifest.json`: the first entry of every archive. It is the restore plan (ordered phases), the integrity
//! record (size and sha256 of every entry) and the evidence `verify` compares a restored cluster against
//! (serial and fingerprint of every certificate). `docs/FORMAT.md` documents every field.

use crate::object::ObjectKey;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Value of [`Manifest::format`]; anything else is not a cmarchive archive.
pub const FORMAT_NAME: &str = "cmarchive";
/// Major format version this build writes and reads. Readers refuse other majors.
pub const FORMAT_MAJOR: u32 = 1;
/// Minor format version this build writes. Minors only add optional fields, so any minor of a known major reads.
pub const FORMAT_MINOR: u32 = 0;
/// Path of the manifest inside the tar; always the first entry.
pub const MANIFEST_PATH: &str = "manifest.json";

/// The whole manifest. Field names are Kubernetes-style camelCase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// `MAJOR.MINOR`, e.g. `1.0`.
    pub format_version: String,
    /// Version of the cmarchive that wrote the archive.
    pub tool_version: String,
    /// When the archive was written (RFC 3339, UTC).
    pub created: jiff::Timestamp,
    /// Where the objects came from.
    pub source: Source,
    /// The options the archive was packed with, as `flag name → value`, for the record.
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    /// Restore phases in the order they must be applied.
    pub phases: Vec<Phase>,
    /// Objects seen but deliberately left out, each with the reason.
    #[serde(default)]
    pub excluded: Vec<Exclusion>,
    /// Things a person should know before restoring (a referenced Secret that does not exist, …).
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// Facts about the leaf certificate of every archived Certificate whose Secret is archived too.
    #[serde(default)]
    pub certificates: Vec<CertificateFacts>,
}

/// Key of [`Manifest::options`] recording `pack --secrets-only`.
pub const SECRETS_ONLY_OPTION: &str = "secretsOnly";

impl Manifest {
    /// Packed with `--secrets-only` (GitOps): the archive holds the Secrets and their Namespaces, while
    /// [`Manifest::certificates`] still describes every Certificate, which Git is expected to re-create.
    pub fn secrets_only(&self) -> bool {
        self.options
            .get(SECRETS_ONLY_OPTION)
            .and_then(serde_json::Value::as_bool)
            == Some(true)
    }
}

/// Facts about the cluster (or dump) an archive was packed from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// `cluster`, `file` or `dir`.
    pub kind: String,
    /// API server URL (cluster sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// kubeconfig context used (cluster sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Kubernetes version reported by the API server, e.g. `v1.36.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// cert-manager version, read from the controller Deployment's image tag when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager_version: Option<String>,
    /// Namespace in which ClusterIssuer Secrets were resolved.
    pub cluster_resource_namespace: String,
    /// Input file or folder names (offline sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
}

/// Restore phases, in restore order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseName {
    /// CustomResourceDefinitions (only with `--include-crds`; restored only when missing).
    Crds,
    /// Namespaces the other objects live in.
    Namespaces,
    /// Secrets: always before anything that could make cert-manager issue.
    Secrets,
    /// Issuers, ClusterIssuers and external issuers.
    Issuers,
    /// Certificates.
    Certificates,
    /// CertificateRequests (opt-in only).
    Certificaterequests,
}

impl PhaseName {
    /// Every phase, in restore order.
    pub const ALL: [PhaseName; 6] = [
        PhaseName::Crds,
        PhaseName::Namespaces,
        PhaseName::Secrets,
        PhaseName::Issuers,
        PhaseName::Certificates,
        PhaseName::Certificaterequests,
    ];

    /// The name as written in the manifest and in tar paths.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Crds => "crds",
            PhaseName::Namespaces => "namespaces",
            PhaseName::Secrets => "secrets",
            PhaseName::Issuers => "issuers",
            PhaseName::Certificates => "certificates",
            PhaseName::Certificaterequests => "certificaterequests",
        }
    }

    /// 1-based position, used to number folders so `ls` shows restore order.
    pub fn ordinal(self) -> usize {
        PhaseName::ALL.iter().position(|p| *p == self).map_or(0, |i| i + 1)
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One restore phase and the objects it applies, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// Which phase.
    pub name: PhaseName,
    /// Objects applied in this phase.
    pub entries: Vec<Entry>,
}

/// One archived object.
///
/// On the wire the identity's fields sit beside the others (`apiVersion`, `kind`, `namespace`, `name`, `path`, …).
/// They are written and read field by field rather than with `#[serde(flatten)]`, which buffers every entry into a
/// generic tree and made reading the manifest of a large backup several times slower.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "EntryFields")]
pub struct Entry {
    /// Identity of the object.
    pub key: ObjectKey,
    /// Path of the object's JSON inside the tar.
    pub path: String,
    /// Size in bytes of that JSON.
    pub size: u64,
    /// Lower-case hex SHA-256 of that JSON.
    pub sha256: String,
    /// Why the object is in the archive, e.g. `referenced by ClusterIssuer/letsencrypt at .spec.acme.privateKeySecretRef`.
    pub reasons: Vec<String>,
}

/// An [`Entry`] as it reads on the wire.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryFields {
    api_version: String,
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
    path: String,
    size: u64,
    sha256: String,
    reasons: Vec<String>,
}

impl From<EntryFields> for Entry {
    fn from(f: EntryFields) -> Entry {
        Entry {
            key: ObjectKey::new(f.api_version, f.kind, f.namespace, f.name),
            path: f.path,
            size: f.size,
            sha256: f.sha256,
            reasons: f.reasons,
        }
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = serializer.serialize_struct("Entry", 8)?;
        key_fields(&self.key, &mut fields)?;
        fields.serialize_field("path", &self.path)?;
        fields.serialize_field("size", &self.size)?;
        fields.serialize_field("sha256", &self.sha256)?;
        fields.serialize_field("reasons", &self.reasons)?;
        fields.end()
    }
}

/// An object seen while packing and left out on purpose (its identity's fields inline, like an [`Entry`]'s).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "ExclusionFields")]
pub struct Exclusion {
    /// The object left out.
    pub key: ObjectKey,
    /// Why.
    pub reason: String,
}

/// An [`Exclusion`] as it reads on the wire.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExclusionFields {
    api_version: String,
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
    reason: String,
}

impl From<ExclusionFields> for Exclusion {
    fn from(f: ExclusionFields) -> Exclusion {
        Exclusion {
            key: ObjectKey::new(f.api_version, f.kind, f.namespace, f.name),
            reason: f.reason,
        }
    }
}

impl Serialize for Exclusion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = serializer.serialize_struct("Exclusion", 5)?;
        key_fields(&self.key, &mut fields)?;
        fields.serialize_field("reason", &self.reason)?;
        fields.end()
    }
}

/// An identity's fields inline, in [`ObjectKey`]'s own order, `namespace` left out for cluster-scoped objects.
fn key_fields<S: SerializeStruct>(key: &ObjectKey, fields: &mut S) -> Result<(), S::Error> {
    fields.serialize_field("apiVersion", &key.api_version)?;
    fields.serialize_field("kind", &key.kind)?;
    match &key.namespace {
        Some(namespace) => fields.serialize_field("namespace", namespace)?,
        None => fields.skip_field("namespace")?,
    }
    fields.serialize_field("name", &key.name)
}

/// Something a person should read before restoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    /// Stable machine-readable code, e.g. `MissingSecret`.
    pub code: String,
    /// The object the warning is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectKey>,
    /// One line for a person, saying what to do.
    pub message: String,
}

/// What the leaf certificate in a Certificate's Secret looked like at pack time: the evidence that `verify`
/// compares after a restore, and the input of the offline reissuance prediction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateFacts {
    /// Namespace of the Certificate.
    pub namespace: String,
    /// Name of the Certificate.
    pub name: String,
    /// `spec.secretName`.
    pub secret_name: String,
    /// Serial number, lower-case hex without separators.
    pub serial_number: String,
    /// Start of validity.
    pub not_before: jiff::Timestamp,
    /// End of validity.
    pub not_after: jiff::Timestamp,
    /// Lower-case hex SHA-256 of the leaf certificate's DER.
    pub sha256_fingerprint: String,
    /// Subject common name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// DNS SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// IP SANs, in canonical text form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// URI SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    /// Email SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    /// Whether basicConstraints says CA.
    #[serde(default)]
    pub is_ca: bool,
    /// Public key algorithm and size, e.g. `RSA-2048`, `ECDSA-P256`, `Ed25519`.
    pub public_key_algorithm: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: Option<&str>) -> ObjectKey {
        ObjectKey {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: namespace.map(str::to_owned),
            name: "tls".into(),
        }
    }

    /// Entries and exclusions carry their identity's fields inline, in one fixed order, `namespace` only when
    /// there is one; reading them back gives the same values, and fields a newer writer adds are ignored.
    #[test]
    fn entries_and_exclusions_keep_their_wire_shape() {
        let entry = Entry {
            key: key(Some("ns")),
            path: "objects/03-secrets/core/secret/ns/tls.json".into(),
            size: 7,
            sha256: "ab".repeat(32),
            reasons: vec!["referenced".into()],
        };
        let text = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"apiVersion":"v1","kind":"Secret","namespace":"ns","name":"tls","path":"{}","size":7,"sha256":"{}","reasons":["referenced"]}}"#,
                entry.path, entry.sha256
            )
        );
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), entry);
        let newer = text.replace(r#""size":7"#, r#""size":7,"compression":"none""#);
        assert_eq!(serde_json::from_str::<Entry>(&newer).unwrap(), entry);
        let missing = text.replace(r#""name":"tls","#, "");
        let error = serde_json::from_str::<Entry>(&missing).unwrap_err().to_string();
        assert!(error.contains("missing field `name`"), "{error}");

        let exclusion = Exclusion {
            key: key(None),
            reason: "not cert-manager".into(),
        };
        let text = serde_json::to_string(&exclusion).unwrap();
        assert_eq!(
            text,
            r#"{"apiVersion":"v1","kind":"Secret","name":"tls","reason":"not cert-manager"}"#
        );
        assert_eq!(serde_json::from_str::<Exclusion>(&text).unwrap(), exclusion);
        let null_namespace = text.replace(r#""name""#, r#""namespace":null,"name""#);
        assert_eq!(serde_json::from_str::<Exclusion>(&null_namespace).unwrap(), exclusion);
    }
}
