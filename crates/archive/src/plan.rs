//! What the cert-manager knowledge hands to the archive writer: the selected objects, already sanitized and
//! ordered into phases, plus what was left out and why. The writer turns a [`Plan`] into tar entries and the
//! manifest; it never decides what belongs in a backup.

use crate::error::{ArchiveError, Result};
use crate::manifest::{CertificateFacts, Exclusion, PhaseName, Warning};
use crate::object::ObjectKey;
use serde_json::Value;

/// The complete, ordered content of an archive before it is written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Phases in restore order; empty phases are omitted.
    pub phases: Vec<PlannedPhase>,
    /// Objects left out on purpose.
    pub excluded: Vec<Exclusion>,
    /// Things a person should read before restoring.
    pub warnings: Vec<Warning>,
    /// Leaf-certificate facts for Certificates whose Secret is in the plan.
    pub certificates: Vec<CertificateFacts>,
}

/// One phase of a [`Plan`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedPhase {
    /// Which phase.
    pub name: PhaseName,
    /// Objects in apply order (deterministic).
    pub objects: Vec<PlannedObject>,
}

/// One object of a [`PlannedPhase`], sanitized and already serialized as it will be stored: a plan of thousands
/// of Secrets held as parsed values took several times their size, and the writer needs the bytes anyway (to hash
/// them for the manifest, then to store them).
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedObject {
    key: ObjectKey,
    bytes: Vec<u8>,
    /// Why it is in the archive (one line each).
    pub reasons: Vec<String>,
}

impl PlannedObject {
    /// Serializes `object`; fails when it has no identity (`apiVersion`, `kind`, `metadata.name`).
    pub fn new(object: &Value, reasons: Vec<String>) -> Result<PlannedObject> {
        let key = ObjectKey::of(object).ok_or_else(|| ArchiveError::InvalidObject {
            what: describe(object),
            reason: "apiVersion, kind or metadata.name is missing".into(),
        })?;
        Ok(PlannedObject::stored(
            key,
            crate::object::to_json_exact(object),
            reasons,
        ))
    }

    /// For the planner, whose candidates hold their identity and their JSON already.
    pub(crate) fn stored(key: ObjectKey, bytes: Vec<u8>, reasons: Vec<String>) -> PlannedObject {
        PlannedObject { key, bytes, reasons }
    }

    /// The object's identity.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// The JSON the archive stores.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The JSON the archive stores, handed over.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The object parsed again (for tests and callers that inspect a plan; the writer uses the bytes).
    pub fn object(&self) -> Value {
        serde_json::from_slice(&self.bytes).expect("a planned object is serialized JSON")
    }
}

/// `Kind/name` of an object that lacks part of its identity, for error messages (never its content: it may be a
/// Secret).
fn describe(object: &Value) -> String {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("<no kind>");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    format!("{kind}/{name}")
}

impl Plan {
    /// Number of objects across all phases.
    pub fn object_count(&self) -> usize {
        self.phases.iter().map(|p| p.objects.len()).sum()
    }
}
