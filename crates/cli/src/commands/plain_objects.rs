//! `restore --from-file/--from-dir`: plain objects (what `unpack` prints, a `kubectl get` dump, the guide's
//! `backup.json`) planned by the code `pack` uses and turned, in memory, into the archive `pack` would have
//! written of them, so the restore that follows cannot tell the difference.

use crate::cli::RestoreArgs;
use crate::commands::pack::{Files, collect_files};
use crate::error::{CliError, Result};
use crate::planning::{PlanOptions, plan_objects};
use cmarchive_archive::VerifiedArchive;
use cmarchive_archive::from_plan::archive_from_plan;
use cmarchive_archive::writer::ManifestMeta;
use std::collections::BTreeMap;

/// How many objects left out are named one by one; the rest are counted.
const SHOWN_EXCLUSIONS: usize = 5;

/// Reads and plans the plain objects `args` names.
pub fn open(args: &RestoreArgs) -> Result<VerifiedArchive> {
    let collected = collect_files(&Files {
        files: &args.from_file,
        dirs: &args.from_dir,
        cluster_resource_namespace: args.source_cluster_resource_namespace.as_deref(),
        allow_empty: None,
    })?;
    let meta = ManifestMeta {
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        created: jiff::Timestamp::now(),
        source: collected.source.clone(),
        options: BTreeMap::new(),
    };
    let plan = plan_objects(collected, &PlanOptions::default());
    let name = inputs_named(args);
    if plan.object_count() == 0 {
        return Err(CliError::Input {
            path: name,
            reason: "nothing to restore: no Issuer, ClusterIssuer or Certificate (nor a Secret one references) in it"
                .into(),
        });
    }
    // What `pack` leaves for `inspect` to tell is said here: there is no archive to inspect afterwards.
    for warning in &plan.warnings {
        note!("warning: {}", warning.message);
    }
    for excluded in plan.excluded.iter().take(SHOWN_EXCLUSIONS) {
        note!("left out: {}: {}", excluded.key, excluded.reason);
    }
    if plan.excluded.len() > SHOWN_EXCLUSIONS {
        eprintln!("left out: {} more", plan.excluded.len() - SHOWN_EXCLUSIONS);
    }
    archive_from_plan(meta, plan).map_err(|source| CliError::Archive { path: name, source })
}

/// The inputs as the user named them, for messages.
fn inputs_named(args: &RestoreArgs) -> String {
    let dirs = args.from_dir.iter().map(|d| d.display().to_string());
    args.from_file
        .iter()
        .cloned()
        .chain(dirs)
        .collect::<Vec<_>>()
        .join(", ")
}
