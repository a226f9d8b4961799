//! Writing an archive: tar → zstd → age (→ armor), streamed.
//!
//! `manifest.json` must be the first tar entry, yet it records every object's size and sha256. A [`Plan`] holds
//! its objects already serialized, so the writer hashes those bytes for the manifest and then streams the same
//! bytes into the tar: what is hashed is what is stored, and each object is serialized once.

use crate::crypto::Recipients;
use crate::error::{ArchiveError, Result};
use crate::manifest::{Entry, FORMAT_MAJOR, FORMAT_MINOR, FORMAT_NAME, MANIFEST_PATH, Manifest, Phase, Source};
use crate::paths;
use crate::plan::Plan;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
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
    let mut phases: Vec<Phase> = Vec::with_capacity(plan.phases.len());
    let mut paths_seen = HashSet::new();
    let mut keys_seen = HashSet::new();
    for planned in &plan.phases {
        if let Some(previous) = phases.last()
            && previous.name >= planned.name
        {
            return Err(ArchiveError::InvalidObject {
                what: format!("phase {}", planned.name),
                reason: format!(
                    "comes after phase {}; phases must be unique and in restore order",
                    previous.name
                ),
            });
        }
        let mut entries = Vec::with_capacity(planned.objects.len());
        let digests: Vec<String> = planned
            .objects
            .par_iter()
            .map(|object| hex::encode(Sha256::digest(object.bytes())))
            .collect();
        for (object, sha256) in planned.objects.iter().zip(digests) {
            let key = object.key().clone();
            if !keys_seen.insert(key.clone()) {
                return Err(ArchiveError::InvalidObject {
                    what: key.to_string(),
                    reason: "appears twice in the plan".into(),
                });
            }
            let path = paths::object_path(planned.name, &key);
            if !paths_seen.insert(path.clone()) {
                return Err(ArchiveError::DuplicateEntry { path });
            }
            entries.push(Entry {
                key,
                path,
                size: object.bytes().len() as u64,
                sha256,
                reasons: object.reasons.clone(),
            });
        }
        phases.push(Phase {
            name: planned.name,
            entries,
        });
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
    let mut manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| ArchiveError::InvalidObject {
        what: MANIFEST_PATH.into(),
        reason: e.to_string(),
    })?;
    manifest_json.push(b'\n');
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
    // Small jobs: zstd's default job for level 3 is several MB per worker, buffered twice over, which at these
    // archive sizes was a third of a pack's heap; 1 MB jobs cost no measurable compression.
    compressed
        .set_parameter(zstd::stream::raw::CParameter::JobSize(1 << 20))
        .map_err(ArchiveError::io("starting zstd"))?;
    let mut tar = tar::Builder::new(compressed);

    append_file(&mut tar, MANIFEST_PATH, &manifest_json, mtime)?;
    let total = plan.object_count();
    let mut written = 0;
    for (planned, phase) in plan.phases.iter().zip(&manifest.phases) {
        for (object, entry) in planned.objects.iter().zip(&phase.entries) {
            append_file(&mut tar, &entry.path, object.bytes(), mtime)?;
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
fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8], mtime: u64) -> Result<()> {
    let io_err = || ArchiveError::io("writing the tar");
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(data.len() as u64);
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

    #[test]
    fn pax_record_length_counts_itself() {
        for value in ["x", &"y".repeat(95), &"z".repeat(994), &"w".repeat(9994)] {
            let record = pax_record("path", value);
            let (len, _) = record.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), record.len());
        }
    }
}
