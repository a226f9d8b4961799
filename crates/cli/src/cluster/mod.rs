//! Everything that talks to a live cluster: connecting like kubectl, finding cert-manager's APIs, collecting the
//! objects a backup needs, applying an archive phase by phase, waiting for readiness and verifying that nothing
//! was reissued. The cert-manager rules themselves live in `cmarchive_archive::certmanager`; this module only
//! does the I/O around them.

pub mod access;
pub mod api_ready;
pub mod apply;
pub mod client;
pub mod collect;
pub mod controller;
pub mod discovery;
pub mod error;
pub mod pack;
pub mod progress;
pub mod raw;
pub mod restore;
pub mod retry;
pub mod verify;
pub mod wait;

/// Runs cluster code from the synchronous command layer. Two worker threads are plenty: the work is waiting on
/// the API server.
pub fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}
