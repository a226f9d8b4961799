//! The single entry point from "objects" to "archive content": select, sanitize, order into restore phases, and
//! record the leaf-certificate facts `verify` and `inspect` need. Used by `pack --from-file` and by cluster pack.

use super::candidate::Candidate;
use super::certinfo;
use super::kinds::{self, Kind};
use super::select::{SelectOptions, codes, left_to_git, select_candidates};
use crate::manifest::{CertificateFacts, Exclusion, PhaseName, Warning};
use crate::object::ObjectKey;
use crate::plan::{Plan, PlannedObject, PlannedPhase};
use rayon::prelude::*;
use serde_json::Value;

/// Builds the archive plan: phases in restore order (crds, namespaces, secrets, issuers, certificates,
/// certificaterequests), empty phases omitted, objects inside a phase sorted by namespace, name, then kind, so the
/// same input always gives the same archive. With [`SelectOptions::secrets_only`] the issuers and Certificates are
/// judged as usual (their Secrets and certificate facts are kept) and then listed as excluded instead of archived.
pub fn plan(objects: Vec<Value>, options: &SelectOptions) -> Plan {
    plan_candidates(objects.into_par_iter().map(Candidate::new).collect(), options)
}

/// [`plan`] of objects already made [`Candidate`]s, each as it was read.
pub fn plan_candidates(candidates: Vec<Candidate>, options: &SelectOptions) -> Plan {
    let (chosen, mut excluded, mut warnings) = select_candidates(candidates, options);

    // Sized up front: a candidate is large, and growing a phase would move every one staged so far.
    let mut staged: Vec<Vec<Staged>> = PhaseName::ALL
        .iter()
        .map(|name| Vec::with_capacity(chosen.iter().filter(|(_, phase, _)| phase == name).count()))
        .collect();
    for (candidate, phase, reasons) in chosen {
        // The selection keeps only objects with an identity.
        let Some((key, _)) = &candidate.stored else {
            continue;
        };
        if !candidate.undecodable.is_empty() {
            let keys: Vec<String> = candidate.undecodable.iter().map(|k| format!("{k:?}")).collect();
            warnings.push(Warning {
                code: codes::INVALID_SECRET_DATA.to_owned(),
                object: Some(key.clone()),
                message: format!(
                    "{key}: data {} not base64: the API server will refuse this Secret on restore; fix it in the \
                     input (pack --strict refuses it)",
                    if keys.len() == 1 {
                        format!("{} is", keys[0])
                    } else {
                        format!("{} are", keys.join(", "))
                    }
                ),
            });
        }
        let index = PhaseName::ALL
            .iter()
            .position(|p| *p == phase)
            .expect("every phase is listed");
        staged[index].push(Staged { candidate, reasons });
    }
    for phase in &mut staged {
        phase.sort_by(|a, b| sort_key(a.key()).cmp(&sort_key(b.key())));
    }

    let secrets = certinfo::SecretIndex::by(staged.iter().flatten(), |s| &s.candidate.view);
    let staged_certificates: Vec<&Staged> = staged
        .iter()
        .flatten()
        .filter(|staged| kinds::classify_key(staged.key()) == Kind::Certificate)
        .collect();
    // Each Certificate's facts (or why there are none) on every core, kept in phase order.
    let found: Vec<Option<Result<CertificateFacts, Warning>>> = staged_certificates
        .par_iter()
        .map(|staged| {
            let certificate = &staged.candidate.view;
            let leaf = secrets.secret_of(certificate)?.candidate.leaf.as_deref()?;
            Some(match leaf {
                Ok(leaf) => Ok(certinfo::facts_of(certificate, leaf.clone())),
                Err(error) => {
                    let key = staged.key();
                    Err(Warning {
                        code: codes::UNREADABLE_CERTIFICATE.to_owned(),
                        object: Some(key.clone()),
                        message: format!(
                            "the Secret of {key} holds no readable leaf certificate ({error}): cert-manager will \
                             issue anew"
                        ),
                    })
                }
            })
        })
        .collect();
    drop(secrets);
    let mut certificates = Vec::with_capacity(found.len());
    for facts in found.into_iter().flatten() {
        match facts {
            Ok(facts) => certificates.push(facts),
            Err(warning) => warnings.push(warning),
        }
    }

    if options.secrets_only {
        for (name, objects) in PhaseName::ALL.iter().zip(&mut staged) {
            if !left_to_git(*name) {
                continue;
            }
            for staged in objects.drain(..) {
                let reason = if kinds::classify_key(staged.key()) == Kind::Certificate {
                    "secrets-only (GitOps): Git re-creates it; its certificate facts are kept for `cmarchive verify`"
                } else {
                    "secrets-only (GitOps): Git re-creates it"
                };
                excluded.push(Exclusion {
                    key: staged.key().clone(),
                    reason: reason.into(),
                });
            }
        }
        excluded.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    }

    let phases = PhaseName::ALL
        .iter()
        .zip(staged)
        .filter(|(_, objects)| !objects.is_empty())
        .map(|(name, objects)| PlannedPhase {
            name: *name,
            // On every core: the candidates' views are dropped here, and there are as many as objects.
            objects: objects
                .into_par_iter()
                .map(|staged| {
                    let (key, bytes) = staged.candidate.stored.expect("staged objects have an identity");
                    PlannedObject::stored(key, bytes, staged.reasons)
                })
                .collect(),
        })
        .collect();
    Plan {
        phases,
        excluded,
        warnings,
        certificates,
    }
}

/// A chosen candidate in its phase.
struct Staged {
    candidate: Candidate,
    reasons: Vec<String>,
}

impl Staged {
    fn key(&self) -> &ObjectKey {
        &self
            .candidate
            .stored
            .as_ref()
            .expect("staged objects have an identity")
            .0
    }
}

/// Restore phase of an object judged on its own (external issuers need the selection's context and are `None`
/// here, like every kind that is never archived).
pub fn phase_of(object: &Value) -> Option<PhaseName> {
    match kinds::classify(object) {
        Kind::CustomResourceDefinition => Some(PhaseName::Crds),
        Kind::Namespace => Some(PhaseName::Namespaces),
        Kind::Secret | Kind::ServiceAccount | Kind::Role | Kind::RoleBinding => Some(PhaseName::Secrets),
        Kind::Issuer | Kind::ClusterIssuer => Some(PhaseName::Issuers),
        Kind::Certificate => Some(PhaseName::Certificates),
        Kind::CertificateRequest => Some(PhaseName::Certificaterequests),
        _ => None,
    }
}

/// The one phase an archived object may be restored in, judged from its identity alone: what a reader holds an
/// archive's manifest to, so that the restore order comes from the objects and never from the archive. Kinds the
/// selection keeps only as external issuers (any kind it does not know) belong to the issuers; the ServiceAccounts
/// issuers authenticate as, with their token RBAC, to the Secrets (before any issuer); kinds never archived (Orders,
/// Challenges) to none.
pub fn phase_of_key(key: &ObjectKey) -> Option<PhaseName> {
    match kinds::classify_key(key) {
        Kind::CustomResourceDefinition => Some(PhaseName::Crds),
        Kind::Namespace => Some(PhaseName::Namespaces),
        Kind::Secret | Kind::ServiceAccount | Kind::Role | Kind::RoleBinding => Some(PhaseName::Secrets),
        Kind::Issuer | Kind::ClusterIssuer | Kind::Other => Some(PhaseName::Issuers),
        Kind::Certificate => Some(PhaseName::Certificates),
        Kind::CertificateRequest => Some(PhaseName::Certificaterequests),
        Kind::Order | Kind::Challenge => None,
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
