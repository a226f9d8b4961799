//! `manifest.json`: format name and major version, schema, and the invariants the rest of the reader relies on.

use crate::error::{ArchiveError, Result};
use crate::manifest::{Entry, FORMAT_MAJOR, FORMAT_NAME, MANIFEST_PATH, Manifest, PhaseName};
use crate::paths;
use foldhash::{HashSet, HashSetExt as _};
use serde_json::Value;

/// The format name and major version, the first things a reader must agree with.
pub(super) fn check_format(format: Option<&str>, version: Option<&str>) -> Result<()> {
    match format {
        Some(FORMAT_NAME) => {}
        Some(other) => {
            return Err(ArchiveError::NotAnArchive(format!(
                "the manifest's format is {other:?}"
            )));
        }
        None => {
            return Err(ArchiveError::NotAnArchive(format!(
                "{MANIFEST_PATH} has no format field"
            )));
        }
    }
    let version = version.ok_or_else(|| ArchiveError::InvalidManifest("formatVersion is missing".into()))?;
    let major = version
        .split_once('.')
        .and_then(|(major, minor)| minor.parse::<u32>().ok().and(major.parse::<u32>().ok()))
        .ok_or_else(|| ArchiveError::InvalidManifest(format!("formatVersion {version:?} is not MAJOR.MINOR")))?;
    if major != FORMAT_MAJOR {
        return Err(ArchiveError::UnsupportedVersion {
            found: version.to_owned(),
            supported: FORMAT_MAJOR,
        });
    }
    Ok(())
}

/// Parses and checks `manifest.json`: format name, major version, schema, and the invariants the rest relies on.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    // A manifest this version reads is parsed once. Only a refused one is read again, into a small header, to say
    // whether it is another format or another major version rather than a broken manifest (the whole manifest of
    // a large backup as a `Value` would cost several times its size just to look at two fields).
    let manifest = match serde_json::from_slice::<Manifest>(bytes) {
        Ok(manifest) => {
            check_format(Some(&manifest.format), Some(&manifest.format_version))?;
            manifest
        }
        Err(parse_error) => {
            #[derive(serde::Deserialize)]
            struct Head {
                format: Option<Value>,
                #[serde(rename = "formatVersion")]
                format_version: Option<Value>,
            }
            let head: Head = match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(_)) => serde_json::from_slice(bytes).unwrap_or(Head {
                    format: None,
                    format_version: None,
                }),
                Ok(_) => {
                    return Err(ArchiveError::NotAnArchive(format!(
                        "{MANIFEST_PATH} is not a JSON object"
                    )));
                }
                Err(e) => return Err(ArchiveError::NotAnArchive(format!("{MANIFEST_PATH} is not JSON ({e})"))),
            };
            check_format(
                head.format.as_ref().and_then(Value::as_str),
                head.format_version.as_ref().and_then(Value::as_str),
            )?;
            return Err(ArchiveError::InvalidManifest(plain_serde_message(&parse_error)));
        }
    };
    // Fields this version does not know were skipped unread: the manifest must still be JSON a `Value` accepts,
    // since `inspect -o json` and `unpack --dir` pass it on.
    serde_json::from_slice::<crate::object::AnyJson>(bytes)
        .map_err(|e| ArchiveError::InvalidManifest(format!("not valid JSON: {e}")))?;

    let mut previous: Option<PhaseName> = None;
    let count = manifest.phases.iter().map(|phase| phase.entries.len()).sum();
    let mut seen_paths = HashSet::with_capacity(count);
    let mut seen_keys = HashSet::with_capacity(count);
    for phase in &manifest.phases {
        if previous.is_some_and(|p| p >= phase.name) {
            return Err(ArchiveError::InvalidManifest(format!(
                "phase {} is repeated or out of order",
                phase.name
            )));
        }
        previous = Some(phase.name);
        for entry in &phase.entries {
            paths::check_object_path(&entry.path).map_err(|reason| ArchiveError::UnsafePath {
                path: entry.path.clone(),
                reason,
            })?;
            check_derived_place(phase.name, entry)?;
            if !seen_paths.insert(entry.path.as_str()) {
                return Err(ArchiveError::DuplicateEntry {
                    path: entry.path.clone(),
                });
            }
            if !seen_keys.insert(&entry.key) {
                return Err(ArchiveError::InvalidManifest(format!("{} is listed twice", entry.key)));
            }
            if entry.sha256.len() != 64
                || !entry
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(ArchiveError::InvalidManifest(format!(
                    "sha256 of {} is not 64 lower-case hex digits",
                    entry.path
                )));
            }
        }
    }
    Ok(manifest)
}

/// An entry's phase and path are what cmarchive derives from its identity: the restore order comes from the
/// objects themselves (a Secret listed among the Certificates would be applied after them, and cert-manager would
/// reissue), and every path is one `unpack --dir` can write (no `objects/manifest.json`, no file where another
/// entry needs a folder, no component longer than a file name may be).
pub(super) fn check_derived_place(phase: PhaseName, entry: &Entry) -> Result<()> {
    let key = &entry.key;
    match crate::certmanager::phase_of_key(key) {
        Some(derived) if derived == phase => {}
        Some(derived) => {
            return Err(ArchiveError::InvalidManifest(format!(
                "{key} is listed in phase {phase}, but a {} belongs to phase {derived}",
                crate::text::escape_controls(&key.kind)
            )));
        }
        None => {
            return Err(ArchiveError::InvalidManifest(format!(
                "{key} is listed in phase {phase}, but cmarchive never archives a {}",
                crate::text::escape_controls(&key.kind)
            )));
        }
    }
    let derived = paths::object_path(phase, key);
    if entry.path != derived {
        return Err(ArchiveError::InvalidManifest(format!(
            "{key} is listed at {}, but its path is {derived}",
            entry.path
        )));
    }
    Ok(())
}

/// serde's message for a manifest that does not fit the schema, in the words of JSON rather than of Rust types
/// (`expected struct EntryFields` says nothing to the person reading it).
pub(super) fn plain_serde_message(error: &serde_json::Error) -> String {
    let mut message = error.to_string();
    for (rust, json) in [
        ("u64", "a non-negative integer"),
        ("u32", "a non-negative integer"),
        ("i64", "an integer"),
        ("a sequence", "an array"),
        ("a map", "an object"),
    ] {
        message = message.replace(&format!("expected {rust}"), &format!("expected {json}"));
    }
    while let Some(at) = message.find("expected struct ") {
        let name_start = at + "expected struct ".len();
        let name_end = message[name_start..]
            .find(|c: char| !c.is_alphanumeric())
            .map_or(message.len(), |i| name_start + i);
        message.replace_range(at..name_end, "expected an object");
    }
    message
}

/// The manifest's entries in restore order, with their phases.
pub(super) fn listed(manifest: &Manifest) -> Vec<(PhaseName, &Entry)> {
    manifest
        .phases
        .iter()
        .flat_map(|p| p.entries.iter().map(move |e| (p.name, e)))
        .collect()
}
