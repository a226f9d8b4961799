//! Writing an archive: tar → zstd → age (→ armor), streamed.
//!
//! `manifest.json` must be the first tar entry, yet it records every object's size and sha256. A [`Plan`] holds
//! its objects already serialized, so the writer hashes those bytes for the manifest and then streams the same
//! bytes into the tar: what is hashed is what is stored, and each object is serialized once.

use crate::chunks::Chunks;
use crate::crypto::Recipients;
use crate::error::{ArchiveError, Result};
use crate::manifest::{Entry, FORMAT_MAJOR, FORMAT_MINOR, FORMAT_NAME, MANIFEST_PATH, Manifest, Phase, Source};
use crate::paths;
use crate::plan::Plan;
use foldhash::{HashSet, HashSetExt as _};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;

/// How the archive is encoded.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// zstd level (1–19; 3 is zstd's own default and keeps pace with encryption).
    pub zstd_level: i32,
    /// ASCII-armor the age output (PEM-style text) instead of binary.
    pub armor: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            zstd_level: 3,
            armor: false,
        }
    }
}

/// The manifest fields that do not come from the [`Plan`].
#[derive(Clone, Debug)]
pub struct ManifestMeta {
    /// Version of the writing cmarchive.
    pub tool_version: String,
    /// Creation time (also used as every tar entry's mtime, so archives of the same input differ only by their
    /// encryption).
    pub created: jiff::Timestamp,
    /// Where the objects came from.
    pub source: Source,
    /// Options the archive was packed with, for the record.
    pub options: BTreeMap<String, serde_json::Value>,
}

/// Progress of [`write_archive_with_progress`]: objects written so far of the total.
#[derive(Clone, Copy, Debug)]
pub struct WriteProgress {
    /// Objects already in the tar.
    pub written: usize,
    /// Objects in the plan.
    pub total: usize,
}

/// Builds the manifest of a plan without writing anything (objects are serialized once to hash them).
pub fn build_manifest(meta: ManifestMeta, plan: &Plan) -> Result<Manifest> {
    // Entries are made on every core (hash, path, copies of key and reasons), then checked in plan order, so the
    // first problem in that order is the one reported.
    let phases: Vec<Phase> = plan
        .phases
        .iter()
        .map(|planned| Phase {
            name: planned.name,
            entries: planned
                .objects
                .par_iter()
                .map(|object| Entry {
                    key: object.key().clone(),
                    path: paths::object_path(planned.name, object.key()),
                    size: object.bytes().len() as u64,
                    sha256: hex::encode(Sha256::digest(object.bytes())),
                    reasons: object.reasons.clone(),
                })
                .collect(),
        })
        .collect();
    let count = phases.iter().map(|phase| phase.entries.len()).sum();
    let mut paths_seen = HashSet::with_capacity(count);
    let mut keys_seen = HashSet::with_capacity(count);
    for (index, phase) in phases.iter().enumerate() {
        if let Some(previous) = index.checked_sub(1).map(|i| &phases[i])
            && previous.name >= phase.name
        {
            return Err(ArchiveError::InvalidObject {
                what: format!("phase {}", phase.name),
                reason: format!(
                    "comes after phase {}; phases must be unique and in restore order",
                    previous.name
                ),
            });
        }
        for entry in &phase.entries {
            if !keys_seen.insert(&entry.key) {
                return Err(ArchiveError::InvalidObject {
                    what: entry.key.to_string(),
                    reason: "appears twice in the plan".into(),
                });
            }
            if !paths_seen.insert(entry.path.as_str()) {
                return Err(ArchiveError::DuplicateEntry {
                    path: entry.path.clone(),
                });
            }
        }
    }
    Ok(Manifest {
        format: FORMAT_NAME.to_owned(),
        format_version: format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"),
        tool_version: meta.tool_version,
        created: meta.created,
        source: meta.source,
        options: meta.options,
        phases,
        excluded: plan.excluded.clone(),
        warnings: plan.warnings.clone(),
        certificates: plan.certificates.clone(),
    })
}

/// Writes a complete archive of `plan` to `out` and returns its manifest.
///
/// `out` receives nothing useful until the end: on error, discard what was written (the CLI writes to a
/// temporary file and renames it only on success).
pub fn write_archive<W: Write>(
    out: W,
    recipients: &Recipients,
    options: &WriteOptions,
    meta: ManifestMeta,
    plan: &Plan,
) -> Result<Manifest> {
    write_archive_with_progress(out, recipients, options, meta, plan, &mut |_| {})
}

/// [`write_archive`], calling `progress` after every object (for progress bars).
pub fn write_archive_with_progress<W: Write>(
    out: W,
    recipients: &Recipients,
    options: &WriteOptions,
    meta: ManifestMeta,
    plan: &Plan,
    progress: &mut dyn FnMut(WriteProgress),
) -> Result<Manifest> {
    let manifest = build_manifest(meta, plan)?;
    // In chunks: megabytes of JSON, grown by doubling, touched twice their size in fresh memory.
    // serde_json writes a token at a time; the buffer in front takes those writes at memcpy speed.
    let mut manifest_json = Chunks::default();
    let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, &mut manifest_json);
    serde_json::to_writer_pretty(&mut buffered, &manifest)
        .and_then(|()| buffered.write_all(b"\n").map_err(serde_json::Error::io))
        .and_then(|()| buffered.flush().map_err(serde_json::Error::io))
        .map_err(|e| ArchiveError::InvalidObject {
            what: MANIFEST_PATH.into(),
            reason: e.to_string(),
        })?;
    drop(buffered);
    let encryptor = recipients.encryptor()?;
    let mtime = manifest.created.as_second().max(0) as u64;
    let io_err = ArchiveError::io("writing the archive");

    let format = if options.armor {
        age::armor::Format::AsciiArmor
    } else {
        age::armor::Format::Binary
    };
    let armored = age::armor::ArmoredWriter::wrap_output(out, format).map_err(io_err)?;
    let encrypted = encryptor
        .wrap_output(armored)
        .map_err(ArchiveError::io("writing the archive"))?;
    let mut compressed =
        zstd::stream::write::Encoder::new(encrypted, options.zstd_level).map_err(ArchiveError::io("starting zstd"))?;
    compressed
        .include_checksum(true)
        .map_err(ArchiveError::io("starting zstd"))?;
    // Compression on worker threads, overlapping the tar and encryption on this one (zstd is otherwise a fifth
    // of a pack's time). The frame stays a plain zstd frame any `zstd -d` reads.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) as u32;
    compressed
        .multithread(workers)
        .map_err(ArchiveError::io("starting zstd"))?;
    // Small jobs: zstd's default job for level 3 is several MB per worker, buffered twice over, a large share of
    // a pack's heap at cert-manager archive sizes; 1 MB jobs do not compress measurably worse.
    compressed
        .set_parameter(zstd::stream::raw::CParameter::JobSize(1 << 20))
        .map_err(ArchiveError::io("starting zstd"))?;
    let mut tar = tar::Builder::new(compressed);

    append_file(
        &mut tar,
        MANIFEST_PATH,
        manifest_json.len(),
        manifest_json.reader(),
        mtime,
    )?;
    drop(manifest_json);
    let total = plan.object_count();
    let mut written = 0;
    for (planned, phase) in plan.phases.iter().zip(&manifest.phases) {
        for (object, entry) in planned.objects.iter().zip(&phase.entries) {
            append_file(&mut tar, &entry.path, entry.size, object.bytes(), mtime)?;
            written += 1;
            progress(WriteProgress { written, total });
        }
    }

    // Innermost layer first, or the outer layers never see the inner layers' last bytes.
    let compressed = tar.into_inner().map_err(ArchiveError::io("finishing the tar"))?;
    let encrypted = compressed.finish().map_err(ArchiveError::io("finishing zstd"))?;
    let armored = encrypted.finish().map_err(ArchiveError::io("finishing encryption"))?;
    let mut out = armored.finish().map_err(ArchiveError::io("finishing the armor"))?;
    out.flush().map_err(ArchiveError::io("writing the archive"))?;
    Ok(manifest)
}

/// Appends one regular file with a fixed, reproducible header (mode 0600, owner 0:0, the archive's mtime).
/// Paths that do not fit a ustar header get a POSIX (pax) `path` record, which GNU tar, bsdtar and the tar crate
/// all honour.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl std::io::Read,
    mtime: u64,
) -> Result<()> {
    let io_err = || ArchiveError::io("writing the tar");
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(size);
    if header.set_path(path).is_err() {
        let record = pax_record("path", path);
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_mode(0o600);
        pax.set_mtime(mtime);
        pax.set_size(record.len() as u64);
        pax.set_path("PaxHeaders/entry").map_err(io_err())?;
        pax.set_cksum();
        tar.append(&pax, record.as_bytes()).map_err(io_err())?;
        // The ustar name field still gets a readable (cut) name for tools that ignore pax.
        let name = &mut header.as_old_mut().name;
        let cut = floor_char_boundary(path, name.len());
        name.fill(0);
        name[..cut].copy_from_slice(&path.as_bytes()[..cut]);
    }
    header.set_cksum();
    tar.append(&header, data).map_err(io_err())
}

/// One pax extended-header record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including
/// its own digits.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len != body.len() + len.to_string().len() {
        len = body.len() + len.to_string().len();
    }
    format!("{len}{body}")
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::PhaseName;
    use crate::plan::{PlannedObject, PlannedPhase};
    use serde_json::json;

    fn meta() -> ManifestMeta {
        ManifestMeta {
            tool_version: "test".into(),
            created: jiff::Timestamp::UNIX_EPOCH,
            source: Source::default(),
            options: BTreeMap::new(),
        }
    }

    fn phase(name: PhaseName, objects: &[serde_json::Value]) -> PlannedPhase {
        PlannedPhase {
            name,
            objects: objects
                .iter()
                .map(|object| PlannedObject::new(object, vec!["test".into()]).unwrap())
                .collect(),
        }
    }

    fn secret(api_version: &str, name: &str) -> serde_json::Value {
        json!({"apiVersion": api_version, "kind": "Secret", "metadata": {"name": name, "namespace": "ns"}})
    }

    /// The manifest is built on every core; what it refuses, and which problem it names first, is still decided
    /// in plan order.
    #[test]
    fn manifests_refuse_bad_plans_naming_the_first_problem_in_plan_order() {
        let build = |phases: Vec<PlannedPhase>| {
            build_manifest(
                meta(),
                &Plan {
                    phases,
                    ..Plan::default()
                },
            )
        };
        let a = secret("v1", "a");
        let b = secret("v1", "b");
        let ok = build(vec![phase(PhaseName::Secrets, &[a.clone(), b.clone()])]).unwrap();
        let entries = &ok.phases[0].entries;
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].key.name, "a");
        assert_eq!(entries[1].path, paths::object_path(PhaseName::Secrets, &entries[1].key));
        let bytes = crate::object::to_json_exact(&b);
        assert_eq!(entries[1].sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(entries[1].size, bytes.len() as u64);

        let twice = build(vec![phase(PhaseName::Secrets, &[a.clone(), b.clone(), a.clone()])]).unwrap_err();
        assert!(twice.to_string().contains("appears twice"), "{twice}");
        // Another version of the same Secret is another key, but the same path.
        let same_path = build(vec![phase(PhaseName::Secrets, &[a.clone(), secret("v2", "a")])]).unwrap_err();
        assert!(matches!(same_path, ArchiveError::DuplicateEntry { .. }), "{same_path}");
        let disordered = vec![
            phase(PhaseName::Certificates, &[a.clone(), a.clone()]),
            phase(PhaseName::Secrets, std::slice::from_ref(&b)),
        ];
        // The first phase's duplicate comes before the second phase's place in the order.
        assert!(build(disordered).unwrap_err().to_string().contains("appears twice"));
        let disordered = vec![
            phase(PhaseName::Certificates, std::slice::from_ref(&a)),
            phase(PhaseName::Secrets, &[b.clone(), b.clone()]),
        ];
        let error = build(disordered).unwrap_err().to_string();
        assert!(error.contains("comes after phase"), "{error}");
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for value in ["x", &"y".repeat(95), &"z".repeat(994), &"w".repeat(9994)] {
            let record = pax_record("path", value);
            let (len, _) = record.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), record.len());
        }
    }
}
