//! The single entry point from "objects" to "archive content": select, sanitize, order into restore phases, and
//! record the leaf-certificate facts `verify` and `inspect` need. Used by `pack --from-file` and by cluster pack.

use super::certinfo;
use super::kinds::{self, Kind};
use super::sanitize::sanitize_in_place;
use super::select::{SelectOptions, codes, select_owned};
use crate::manifest::{PhaseName, Warning};
use crate::object::ObjectKey;
use crate::plan::{Plan, PlannedObject, PlannedPhase};
use rayon::prelude::*;
use serde_json::Value;

/// Builds the archive plan: phases in restore order (crds, namespaces, secrets, issuers, certificates,
/// certificaterequests), empty phases omitted, objects inside a phase sorted by namespace, name, then kind, so the
/// same input always gives the same archive.
pub fn plan(objects: Vec<Value>, options: &SelectOptions) -> Plan {
    let selection = select_owned(objects, options);
    let mut warnings = selection.warnings;

    let mut staged: Vec<Vec<(ObjectKey, Value, Vec<String>)>> = PhaseName::ALL.iter().map(|_| Vec::new()).collect();
    for selected in selection.selected {
        let mut object = selected.object;
        sanitize_in_place(&mut object);
        // The selection keeps only objects with an identity, and sanitizing leaves it alone.
        let Some(key) = ObjectKey::of(&object) else {
            continue;
        };
        let index = PhaseName::ALL
            .iter()
            .position(|p| *p == selected.phase)
            .expect("every phase is listed");
        staged[index].push((key, object, selected.reasons));
    }
    for phase in &mut staged {
        phase.sort_by(|a, b| sort_key(&a.0).cmp(&sort_key(&b.0)));
    }

    let mut certificates = Vec::new();
    let archived = || staged.iter().flatten().map(|(_, object, _)| object);
    let secrets = certinfo::SecretIndex::new(archived());
    for (key, certificate, _) in staged
        .iter()
        .flatten()
        .filter(|(_, o, _)| kinds::classify(o) == Kind::Certificate)
    {
        let Some(secret) = secrets.secret_of(certificate) else {
            continue;
        };
        match certinfo::certificate_facts(certificate, secret) {
            Ok(facts) => certificates.push(facts),
            Err(error) => warnings.push(Warning {
                code: codes::UNREADABLE_CERTIFICATE.to_owned(),
                object: Some(key.clone()),
                message: format!(
                    "the Secret of {key} holds no readable leaf certificate ({error}): cert-manager will issue anew"
                ),
            }),
        }
    }
    drop(secrets);

    // Objects become the bytes the archive stores (on every core), each parsed value freed once serialized.
    let phases = PhaseName::ALL
        .iter()
        .zip(staged)
        .filter(|(_, objects)| !objects.is_empty())
        .map(|(name, objects)| PlannedPhase {
            name: *name,
            objects: objects
                .into_par_iter()
                .map(|(key, object, reasons)| PlannedObject::serialized(key, &object, reasons))
                .collect(),
        })
        .collect();
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

/// Order inside a phase: namespace, name, kind, apiVersion.
fn sort_key(key: &ObjectKey) -> (&str, &str, &str, &str) {
    (
        key.namespace.as_deref().unwrap_or_default(),
        &key.name,
        &key.kind,
        &key.api_version,
    )
}
