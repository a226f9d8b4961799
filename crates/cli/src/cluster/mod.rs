//! Everything that talks to a live cluster: connecting like kubectl, finding cert-manager's APIs, collecting the
//! objects a backup needs, applying an archive phase by phase, waiting for readiness and verifying that nothing
//! was reissued. The cert-manager rules themselves live in `cmarchive_archive::certmanager`; this module only
//! does the I/O around them.

pub mod access;
pub mod apply;
pub mod client;
pub mod collect;
pub mod controller;
pub mod discovery;
pub mod error;
pub mod raw;
pub mod verify;
pub mod wait;
