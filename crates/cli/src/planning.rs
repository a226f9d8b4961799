//! From collected objects to the archive plan. The cert-manager knowledge in
//! `cmarchive_archive::certmanager::plan` decides what is archived, how it is sanitized and in which phase;
//! this only feeds it and keeps what the collector itself found (exclusions, warnings).

use cmarchive_archive::certmanager::{self, Candidate, SelectOptions};
use cmarchive_archive::manifest::{Exclusion, Source, Warning};
use cmarchive_archive::plan::Plan;

/// What a collector (files or cluster) hands to the shared planning and writing path.
#[derive(Debug, Default)]
pub struct Collected {
    /// Objects as read (lists already flattened), in any order, each reduced to what planning needs as soon as
    /// it was read.
    pub objects: Vec<Candidate>,
    /// Where they came from.
    pub source: Source,
    /// Objects the collector saw and left out on purpose.
    pub excluded: Vec<Exclusion>,
    /// Problems found while collecting (a referenced Secret that does not exist, …).
    pub warnings: Vec<Warning>,
    /// cert-manager's controller ServiceAccount (namespace, name), when the source shows it.
    pub cert_manager_service_account: Option<(String, String)>,
}

/// What the user asked to include beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// `--include-crds`.
    pub include_crds: bool,
    /// `--include-certificaterequests`.
    pub include_certificaterequests: bool,
    /// `--secrets-only`.
    pub secrets_only: bool,
}

/// Orders collected objects into restore phases.
pub fn plan_objects(collected: Collected, options: &PlanOptions) -> Plan {
    let select = SelectOptions {
        cluster_resource_namespace: collected.source.cluster_resource_namespace.clone(),
        include_certificate_requests: options.include_certificaterequests,
        include_crds: options.include_crds,
        secrets_only: options.secrets_only,
        cert_manager_service_account: collected.cert_manager_service_account.clone(),
    };
    let mut plan = certmanager::plan_candidates(collected.objects, &select);
    plan.excluded.extend(collected.excluded);
    plan.excluded.sort_by(|a, b| a.key.cmp(&b.key));
    plan.warnings.extend(collected.warnings);
    plan
}
