//! End-to-end harness for cmarchive: cluster providers (local processes, kind, k3s), fixtures, scenarios,
//! and the assertion that a restore reissued nothing.

pub mod controlplane;
pub mod fixtures;
pub mod k3s;
pub mod kind;
pub mod local;
pub mod provider;
pub mod reissuance;
pub mod scenarios;
pub mod select;
