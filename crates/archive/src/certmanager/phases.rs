//! The single entry point from "objects" to "archive content": select, sanitize, order into restore phases, and
//! record the leaf-certificate facts `verify` and `inspect` need. Used by `pack --from-file` and by cluster pack.

use super::certinfo;
use super::kinds::{self, Kind};
use super::sanitize::sanitize;
use super::select::{SelectOptions, codes, select};
use crate::manifest::{PhaseName, Warning};
use crate::object::ObjectKey;
use crate::plan::{Plan, PlannedObject, PlannedPhase};
use serde_json::Value;

/// Builds the archive plan: phases in restore order (crds, namespaces, secrets, issuers, certificates,
/// certificaterequests), empty phases omitted, objects inside a phase sorted by namespace, name, then kind, so the
/// same input always gives the same archive.
pub fn plan(objects: Vec<Value>, options: &SelectOptions) -> Plan {
    let selection = select(&objects, options);
    let mut warnings = selection.warnings;

    let mut phases: Vec<PlannedPhase> = PhaseName::ALL
        .iter()
        .map(|name| PlannedPhase {
            name: *name,
            objects: Vec::new(),
        })
        .collect();
    for selected in selection.selected {
        let object = sanitize(&selected.object);
        let index = phases
            .iter()
            .position(|p| p.name == selected.phase)
            .expect("every phase is listed");
        phases[index].objects.push(PlannedObject {
            object,
            reasons: selected.reasons,
        });
    }
    for phase in &mut phases {
        phase.objects.sort_by_cached_key(|planned| sort_key(&planned.object));
    }
    phases.retain(|phase| !phase.objects.is_empty());

    let mut certificates = Vec::new();
    let archived: Vec<&Value> = phases
        .iter()
        .flat_map(|p| p.objects.iter().map(|o| &o.object))
        .collect();
    let secrets = certinfo::SecretIndex::new(archived.iter().copied());
    for certificate in archived.iter().filter(|o| kinds::classify(o) == Kind::Certificate) {
        let Some(secret) = secrets.secret_of(certificate) else {
            continue;
        };
        match certinfo::certificate_facts(certificate, secret) {
            Ok(facts) => certificates.push(facts),
            Err(error) => warnings.push(Warning {
                code: codes::UNREADABLE_CERTIFICATE.to_owned(),
                object: ObjectKey::of(certificate),
                message: format!(
                    "the Secret of {} holds no readable leaf certificate ({error}): cert-manager will issue anew",
                    ObjectKey::of(certificate).map(|k| k.to_string()).unwrap_or_default()
                ),
            }),
        }
    }
    Plan {
        phases,
        excluded: selection.excluded,
        warnings,
        certificates,
    }
}

/// Restore phase of an object judged on its own (external issuers need the selection's context and are `None`
/// here, like every kind that is never archived).
pub fn phase_of(object: &Value) -> Option<PhaseName> {
    match kinds::classify(object) {
        Kind::CustomResourceDefinition => Some(PhaseName::Crds),
        Kind::Namespace => Some(PhaseName::Namespaces),
        Kind::Secret => Some(PhaseName::Secrets),
        Kind::Issuer | Kind::ClusterIssuer => Some(PhaseName::Issuers),
        Kind::Certificate => Some(PhaseName::Certificates),
        Kind::CertificateRequest => Some(PhaseName::Certificaterequests),
        _ => None,
    }
}

fn sort_key(object: &Value) -> (String, String, String, String) {
    let key = ObjectKey::of(object);
    (
        key.as_ref().and_then(|k| k.namespace.clone()).unwrap_or_default(),
        key.as_ref().map(|k| k.name.clone()).unwrap_or_default(),
        key.as_ref().map(|k| k.kind.clone()).unwrap_or_default(),
        key.map(|k| k.api_version).unwrap_or_default(),
    )
}
