//! `-n` / `-l` for the commands that read an archive (`unpack`, `inspect`, `restore`, `verify`): the selection is computed
//! by the archive crate ([`select_for_restore`]) and applied here to what the command reads, manifest and objects
//! alike, so that each command shows, restores and verifies exactly the selection.

use crate::cli::SelectionArgs;
use crate::commands;
use crate::error::{CliError, Result};
use cmarchive_archive::certmanager::{Kept, RestoreFilter, narrow_manifest, select_for_restore};
use cmarchive_archive::manifest::Manifest;
use cmarchive_archive::object::ObjectKey;
use cmarchive_archive::{CheckedArchive, VerifiedArchive};
use serde_json::Value;

/// What the selection reads of an object: a Secret's data plays no part, so only its identity and metadata are
/// held while the whole archive is looked at.
fn view(key: &ObjectKey, mut object: Value) -> Value {
    if key.kind == "Secret"
        && key.api_version == "v1"
        && let Some(map) = object.as_object_mut()
    {
        map.retain(|field, _| matches!(field.as_str(), "apiVersion" | "kind" | "metadata"));
    }
    object
}

fn select(name: &str, manifest: &Manifest, filter: &RestoreFilter, views: &[(ObjectKey, Value)]) -> Result<Kept> {
    select_for_restore(
        views.iter().map(|(key, object)| (key, object)),
        filter,
        &manifest.source.cluster_resource_namespace,
    )
    .map_err(|e| CliError::Usage(format!("{name}: {e}")))
}

/// The stored `manifest.json` with the selection's phases, certificate facts, warnings and exclusions in place of
/// the archive's; every other field is kept as stored.
fn narrowed_json(stored: &[u8], narrowed: &Manifest) -> Result<Vec<u8>> {
    let render = |e: serde_json::Error| CliError::Usage(format!("cannot render the selected manifest: {e}"));
    let mut manifest: Value = serde_json::from_slice(stored).map_err(render)?;
    let fields = serde_json::to_value(narrowed).map_err(render)?;
    if let (Some(manifest), Some(fields)) = (manifest.as_object_mut(), fields.as_object()) {
        for field in ["phases", "certificates", "warnings", "excluded"] {
            if let Some(value) = fields.get(field) {
                manifest.insert(field.to_owned(), value.clone());
            }
        }
    }
    serde_json::to_vec(&manifest).map_err(render)
}

/// The archive narrowed to the selection (unchanged without `-n`/`-l`).
pub fn narrow(name: &str, archive: VerifiedArchive, selection: &SelectionArgs) -> Result<VerifiedArchive> {
    let filter = selection.filter();
    if filter.is_everything() {
        return Ok(archive);
    }
    let mut views = Vec::with_capacity(archive.objects.len());
    for object in &archive.objects {
        let parsed = object.object().map_err(|source| CliError::Archive {
            path: name.to_owned(),
            source,
        })?;
        views.push((object.entry.key.clone(), view(&object.entry.key, parsed)));
    }
    let kept = select(name, &archive.manifest, &filter, &views)?;
    drop(views);
    let manifest = narrow_manifest(&archive.manifest, &kept, &filter);
    let manifest_json = narrowed_json(&archive.manifest_json, &manifest)?;
    let objects = archive
        .objects
        .into_iter()
        .filter(|object| kept.contains_key(&object.entry.key))
        .collect();
    Ok(VerifiedArchive {
        manifest,
        manifest_json,
        objects,
    })
}

/// For a command that streams the objects: which ones the selection keeps (`None`: all) and the manifest as it
/// reads for the selection. Reads the archive once more to look at every object.
pub fn kept_while_streaming(
    name: &str,
    archive: &CheckedArchive,
    selection: &SelectionArgs,
) -> Result<(Option<Kept>, Vec<u8>)> {
    let filter = selection.filter();
    if filter.is_everything() {
        return Ok((None, archive.manifest_json.clone()));
    }
    let mut views = Vec::new();
    commands::for_each_object(name, archive, |object| {
        let parsed = object.object().map_err(|source| CliError::Archive {
            path: name.to_owned(),
            source,
        })?;
        views.push((object.entry.key.clone(), view(&object.entry.key, parsed)));
        Ok(())
    })?;
    let kept = select(name, &archive.manifest, &filter, &views)?;
    let manifest = narrow_manifest(&archive.manifest, &kept, &filter);
    Ok((Some(kept), narrowed_json(&archive.manifest_json, &manifest)?))
}
