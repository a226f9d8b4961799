//! `cmarchive pack` from a live cluster: collect what a restore needs.
//!
//! Boundary: this module only *reads* the cluster and returns raw objects (as JSON, never through typed structs)
//! plus facts about the source. Planning (phases, sanitizing), encryption and writing are shared with the
//! offline `--from-file/--from-dir` path in `commands::pack`.

use crate::cli::PackArgs;
use crate::cluster::client::ConnectOptions;
use crate::cluster::collect::Selection;
use crate::cluster::pack::{PackOptions, read_cluster};
use crate::cluster::{self};
use crate::error::{CliError, Result};
use crate::planning::Collected;
use cmarchive_archive::certmanager::Candidate;
use rayon::prelude::*;

/// Reads the cluster chosen by `args.cluster` / `args.namespaces` / `args.selector`.
pub fn collect(args: &PackArgs) -> Result<Collected> {
    let options = PackOptions {
        connect: ConnectOptions {
            kubeconfig: args.cluster.kubeconfig.clone(),
            context: args.cluster.context.clone(),
        },
        selection: Selection {
            namespaces: args.namespaces.clone(),
            selector: args.selector.clone(),
            certificate_requests: args.include_certificaterequests,
        },
        include_crds: args.include_crds,
        cluster_resource_namespace: args.cluster_resource_namespace.clone(),
        strict: args.strict,
    };
    let content = cluster::block_on(read_cluster(&options))
        .map_err(CliError::cluster)?
        .map_err(CliError::cluster)?;
    Ok(Collected {
        objects: content.objects.into_par_iter().map(Candidate::new).collect(),
        source: content.source,
        warnings: content.warnings,
        cert_manager_service_account: content.cert_manager_service_account,
        ..Collected::default()
    })
}
