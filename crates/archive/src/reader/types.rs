//! What a reader hands out: the limits it enforces, and an archive (with its objects) that passed every check.

use super::manifest::listed;
use super::replay::replay;
use crate::chunks::Chunks;
use crate::error::{ArchiveError, Result};
use crate::manifest::{Entry, Manifest, PhaseName};
use crate::read_ahead::read_ahead;
use serde_json::Value;

/// Bounds on what a reader accepts from an archive.
#[derive(Clone, Debug)]
pub struct ReadLimits {
    /// Cap on decompressed bytes (the whole tar). Default 2 GiB: far above real cert-manager backups, well
    /// below what would exhaust a normal machine's memory.
    pub max_decompressed: u64,
    /// Cap on the number of tar entries.
    pub max_entries: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_decompressed: 2 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// An archive that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedArchive {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// `manifest.json` byte for byte as stored (`inspect -o json` prints it plus the reissuance prediction).
    pub manifest_json: Vec<u8>,
    /// Every object, in restore order (phase by phase, entries in manifest order).
    pub objects: Vec<VerifiedObject>,
}

/// One verified object, kept as the JSON bytes the archive stores: a parsed `serde_json::Value` takes several
/// times their size, and a restore of tens of thousands of objects needs each one parsed only while it is sent.
#[derive(Clone, Debug)]
pub struct VerifiedObject {
    /// Its phase.
    pub phase: PhaseName,
    /// Its manifest entry (identity, path, size, sha256, reasons).
    pub entry: Entry,
    /// The object's JSON, byte for byte as stored (and checksummed); proven to be a JSON object whose identity
    /// matches `entry.key`.
    pub bytes: Vec<u8>,
}

impl VerifiedObject {
    /// The object, parsed.
    pub fn object(&self) -> Result<Value> {
        parse_object(&self.entry, &self.bytes)
    }
}

/// A verified object's bytes, parsed; an error names its entry.
pub(super) fn parse_object(entry: &Entry, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| ArchiveError::InvalidObject {
        what: entry.path.clone(),
        reason: format!("not JSON: {e}"),
    })
}

impl VerifiedArchive {
    /// The objects of one phase, in apply order.
    pub fn objects_in(&self, phase: PhaseName) -> impl Iterator<Item = &VerifiedObject> {
        self.objects.iter().filter(move |o| o.phase == phase)
    }

    /// Phases present, in restore order.
    pub fn phases(&self) -> impl Iterator<Item = PhaseName> + '_ {
        self.manifest.phases.iter().map(|p| p.name)
    }
}

/// An archive that passed every check, its objects not yet taken out: the tar is held as age decrypted it, still
/// compressed (about the archive file's size), and [`CheckedArchive::for_each_object`] decompresses it again,
/// handing out one object at a time.
#[derive(Clone, Debug)]
pub struct CheckedArchive {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// `manifest.json` byte for byte as stored.
    pub manifest_json: Vec<u8>,
    /// The zstd-compressed tar, authenticated by age and verified entry by entry.
    pub(super) compressed: Chunks,
}

/// One verified object lent by [`CheckedArchive::for_each_object`].
#[derive(Clone, Copy, Debug)]
pub struct ObjectRef<'a> {
    /// Its phase.
    pub phase: PhaseName,
    /// Its manifest entry.
    pub entry: &'a Entry,
    /// The object's JSON, byte for byte as stored (and checksummed).
    pub bytes: &'a [u8],
}

impl ObjectRef<'_> {
    /// The object, parsed.
    pub fn object(&self) -> Result<Value> {
        parse_object(self.entry, self.bytes)
    }
}

/// Why [`CheckedArchive::for_each_object`] stopped.
#[derive(Debug)]
pub enum Replay<E> {
    /// The archive's second reading differed from the first (memory corruption; nothing else can cause it).
    Archive(ArchiveError),
    /// The visitor's own error.
    Visit(E),
}

impl CheckedArchive {
    /// Calls `visit` with every object in restore order. Objects are decompressed again from the verified,
    /// still-compressed tar, into one reused buffer; an entry the tar holds ahead of its turn (not in archives
    /// cmarchive writes) waits in memory until its turn.
    pub fn for_each_object<E>(
        &self,
        mut visit: impl FnMut(ObjectRef<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), Replay<E>> {
        let listed = listed(&self.manifest);
        // Decompressed on another core, a few blocks ahead of the tar being split here.
        read_ahead(
            || zstd::stream::read::Decoder::with_buffer(self.compressed.reader()),
            |tar| replay(tar, &listed, &mut visit),
        )
    }

    /// Every object, owned, in restore order (for commands that need them all at once).
    pub fn into_verified(self) -> Result<VerifiedArchive> {
        let mut objects = Vec::with_capacity(self.manifest.phases.iter().map(|p| p.entries.len()).sum());
        self.for_each_object(|object| {
            objects.push(VerifiedObject {
                phase: object.phase,
                entry: object.entry.clone(),
                bytes: object.bytes.to_vec(),
            });
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|e| match e {
            Replay::Archive(e) => e,
            Replay::Visit(never) => match never {},
        })?;
        Ok(VerifiedArchive {
            manifest: self.manifest,
            manifest_json: self.manifest_json,
            objects,
        })
    }
}
