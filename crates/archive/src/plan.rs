//! What the cert-manager knowledge hands to the archive writer: the selected objects, already sanitized and
//! ordered into phases, plus what was left out and why. The writer turns a [`Plan`] into tar entries and the
//! manifest; it never decides what belongs in a backup.

use crate::manifest::{CertificateFacts, Exclusion, PhaseName, Warning};
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

/// One object of a [`PlannedPhase`], sanitized and ready to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedObject {
    /// The object as it will be stored and applied.
    pub object: Value,
    /// Why it is in the archive (one line each).
    pub reasons: Vec<String>,
}

impl Plan {
    /// Number of objects across all phases.
    pub fn object_count(&self) -> usize {
        self.phases.iter().map(|p| p.objects.len()).sum()
    }
}
