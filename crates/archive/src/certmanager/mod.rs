//! cert-manager knowledge: which Secrets an object references, what a backup selects, how objects are
//! sanitized, which phase each belongs to, and whether a restore will make cert-manager reissue.
//!
//! Everything here is a pure function over `serde_json::Value`, checked against cert-manager v1.21's API types and
//! controllers. Entry points: [`plan`] (objects → archive content), [`secret_refs`] / [`referenced_secrets`]
//! (which Secrets to fetch), [`prepare_for_restore`] (restore-time transform) and [`predict`] (will a restore
//! reissue).

pub mod candidate;
pub mod certinfo;
pub mod evidence;
pub mod keys;
pub mod keystores;
pub mod kinds;
pub mod label_selector;
pub mod namespace_mapping;
pub mod phases;
pub mod predict;
pub mod regenerated;
pub mod restore_selection;
pub mod sanitize;
pub mod secret_refs;
pub mod select;
pub mod token_rbac;

pub use candidate::{Candidate, JsonObject};
pub use certinfo::{LeafCertificate, certificate_facts, find_secret};
pub use kinds::{DEFAULT_CLUSTER_RESOURCE_NAMESPACE, Kind, classify};
pub use label_selector::LabelSelector;
pub use namespace_mapping::NamespaceMapping;
pub use phases::{phase_of, phase_of_key, plan, plan_candidates};
pub use predict::{Outcome, Prediction, predict, predict_plan, predict_stored};
pub use restore_selection::{Kept, RestoreFilter, narrow_manifest, select_for_restore};
pub use sanitize::{RestoreOptions, prepare_for_restore, sanitize, sanitize_in_place, trim_collected};
pub use secret_refs::{
    FoundBy, REFERENCE_TABLE, RefContext, SecretRef, ServiceAccountRef, referenced_secrets,
    referenced_service_accounts, secret_refs, secret_refs_in, service_account_refs,
};
pub use select::{SelectOptions, Selected, Selection, select};
