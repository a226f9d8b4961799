//! cmarchive's archive layer: the on-disk format (a tar of JSON objects behind zstd and age), the manifest that
//! orders a restore, and everything cmarchive knows about cert-manager, as pure functions over JSON.
//!
//! Nothing in this crate talks to a cluster, so every rule here can be tested without one.
#![warn(missing_docs)]

mod age_header;
pub mod certmanager;
mod chunks;
pub mod crypto;
pub mod error;
pub mod folder;
pub mod from_plan;
pub mod manifest;
pub mod object;
pub mod paths;
pub mod plan;
mod read_ahead;
pub mod reader;
pub mod signature;
pub mod text;
pub mod writer;

pub use crypto::{Identities, Interaction, Recipients};
pub use error::ArchiveError;
pub use reader::{
    CheckedArchive, ObjectRef, ReadLimits, Replay, VerifiedArchive, VerifiedObject, check_archive, read_archive,
};
pub use writer::{ManifestMeta, WriteOptions, write_archive};
