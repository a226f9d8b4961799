//! Stand-in for the cert-manager planner (`cmarchive_archive::certmanager`) until it lands: a plain
//! kind → phase table, minimal sanitizing, and everything else excluded with a reason. `plan_objects` is the only
//! entry point, so switching to the real planner is a one-line change in `commands::pack`.

use crate::commands::pack::Collected;
use cmarchive_archive::manifest::{Exclusion, PhaseName};
use cmarchive_archive::object::ObjectKey;
use cmarchive_archive::plan::{Plan, PlannedObject, PlannedPhase};
use serde_json::Value;
use std::collections::BTreeMap;

/// What the user asked to include beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// `--include-crds`.
    pub include_crds: bool,
    /// `--include-certificaterequests`.
    pub include_certificaterequests: bool,
}

/// Orders collected objects into restore phases.
pub fn plan_objects(collected: Collected, options: &PlanOptions) -> Plan {
    let mut phases: BTreeMap<PhaseName, Vec<(ObjectKey, PlannedObject)>> = BTreeMap::new();
    let mut excluded = collected.excluded;
    for mut object in collected.objects {
        let Some(key) = ObjectKey::of(&object) else {
            continue;
        };
        match phase_of(&key, options) {
            Ok(phase) => {
                sanitize(&mut object);
                let reasons = vec![format!("{} in the input", key.kind)];
                phases
                    .entry(phase)
                    .or_default()
                    .push((key, PlannedObject { object, reasons }));
            }
            Err(reason) => excluded.push(Exclusion {
                key,
                reason: reason.into(),
            }),
        }
    }
    let phases = phases
        .into_iter()
        .map(|(name, mut objects)| {
            objects.sort_by(|a, b| a.0.cmp(&b.0));
            objects.dedup_by(|a, b| a.0 == b.0);
            PlannedPhase {
                name,
                objects: objects.into_iter().map(|(_, o)| o).collect(),
            }
        })
        .collect();
    excluded.sort_by(|a, b| a.key.cmp(&b.key));
    Plan {
        phases,
        excluded,
        warnings: collected.warnings,
        certificates: Vec::new(),
    }
}

fn phase_of(key: &ObjectKey, options: &PlanOptions) -> Result<PhaseName, &'static str> {
    let cert_manager = key.group() == "cert-manager.io";
    match key.kind.as_str() {
        "CustomResourceDefinition" if options.include_crds => Ok(PhaseName::Crds),
        "CustomResourceDefinition" => Err("CRDs are only archived with --include-crds"),
        "Namespace" if key.group().is_empty() => Ok(PhaseName::Namespaces),
        "Secret" if key.group().is_empty() => Ok(PhaseName::Secrets),
        "Issuer" | "ClusterIssuer" if cert_manager => Ok(PhaseName::Issuers),
        "Certificate" if cert_manager => Ok(PhaseName::Certificates),
        "CertificateRequest" if cert_manager && options.include_certificaterequests => {
            Ok(PhaseName::Certificaterequests)
        }
        "CertificateRequest" if cert_manager => {
            Err("CertificateRequests are only archived with --include-certificaterequests")
        }
        "Order" | "Challenge" if key.group() == "acme.cert-manager.io" => {
            Err("point-in-time ACME state, never restored")
        }
        kind if kind.ends_with("Issuer") => Ok(PhaseName::Issuers),
        _ => Err("not something cert-manager needs restored"),
    }
}

/// Drops what only made sense in the source cluster (DESIGN §5).
fn sanitize(object: &mut Value) {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            metadata.remove(field);
        }
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
}
