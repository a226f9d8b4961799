//! End-to-end harness for cmarchive: cluster providers (local processes, kind, k3s), fixtures, scenarios,
//! and the assertion that a restore reissued nothing.

/// Field manager of everything the harness applies, so its writes are told apart from cmarchive's and
/// cert-manager's.
pub const FIELD_MANAGER: &str = "cmarchive-e2e";

pub mod controlplane;
pub mod fixtures;
pub mod k3s;
pub mod kind;
pub mod local;
pub mod provider;
pub mod reissuance;
pub mod scenarios;
pub mod select;
