//! The first reading of the tar: the manifest first, then every entry checked (regular file, listed once, size and
//! sha256) in batches on the thread pool while the next ones are read.

use super::manifest::{listed, parse_manifest};
use super::streams::{SkipByReading, fill_from};
use super::types::ReadLimits;
use crate::error::{ArchiveError, Result};
use crate::manifest::{Entry, MANIFEST_PATH, Manifest, PhaseName};
use crate::object::ObjectKey;
use crate::paths;
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::sync::OnceLock;

/// Error inside [`verify_tar`]: either already an archive error, or an I/O error still to be attributed.
#[derive(Debug)]
pub(super) enum TarFailure {
    Archive(ArchiveError),
    Io(io::Error),
}

impl From<ArchiveError> for TarFailure {
    fn from(e: ArchiveError) -> Self {
        TarFailure::Archive(e)
    }
}

impl From<io::Error> for TarFailure {
    fn from(e: io::Error) -> Self {
        TarFailure::Io(e)
    }
}

/// Checks the tar; returns the manifest (parsed, and as stored). Entry contents are dropped once checked.
pub(super) fn verify_tar<R: Read>(
    input: R,
    limits: &ReadLimits,
) -> std::result::Result<(Manifest, Vec<u8>), TarFailure> {
    let mut archive = tar::Archive::new(SkipByReading {
        inner: input,
        position: 0,
    });
    let mut entries = archive.entries_with_seek()?;

    // 1. manifest.json, first.
    let mut first = match entries.next() {
        Some(entry) => entry?,
        None => return Err(ArchiveError::NotAnArchive("the tar is empty".into()).into()),
    };
    let first_path = entry_path(&first)?;
    if first_path != MANIFEST_PATH {
        return Err(
            ArchiveError::NotAnArchive(format!("the first entry is {first_path:?}, not {MANIFEST_PATH}")).into(),
        );
    }
    check_regular(&first, &first_path)?;
    let manifest_size = first.size();
    if manifest_size > limits.max_decompressed {
        return Err(ArchiveError::EntryTooLarge {
            path: first_path,
            size: manifest_size,
            limit: limits.max_decompressed,
        }
        .into());
    }
    let manifest_json = read_entry(&mut first, manifest_size)?;
    drop(first);
    let manifest = parse_manifest(&manifest_json)?;

    // 2. Everything the manifest promises, nothing else, once each. This thread decrypts, decompresses and splits
    //    the tar; each batch of entries is checked (sha256, and that the object is the one its entry names) on
    //    the other cores meanwhile, so verifying costs little more than reading.
    let listed = listed(&manifest);
    let slots: Vec<OnceLock<Checked>> = std::iter::repeat_with(OnceLock::new).take(listed.len()).collect();
    let buffers = Buffers::default();
    let read = rayon::in_place_scope(|scope| {
        let mut batch = Batch::default();
        let read = split_entries(entries, limits, &listed, &mut batch, scope, &buffers, &slots);
        // Also after a failure: an entry read before it may hold the mismatch that is to be reported.
        batch.check_on(scope, &buffers, &listed, &slots);
        read
    });
    // 3. Read to the real end, so zstd checks its frame checksum and age authenticates the final chunk; only the
    //    tar's zero padding may remain.
    let read = read.and_then(|()| {
        let mut rest = archive.into_inner();
        let mut buf = [0u8; 8192];
        loop {
            let n = rest.read(&mut buf).map_err(|e| (usize::MAX, e.into()))?;
            if n == 0 {
                return Ok(());
            }
            if buf[..n].iter().any(|b| *b != 0) {
                let trailing = ArchiveError::Malformed(
                    "the archive holds data after the end of its tar, which cmarchive never writes: it was altered \
                     before it was encrypted; use another copy"
                        .into(),
                );
                return Err((usize::MAX, trailing.into()));
            }
        }
    });

    // A checksum mismatch counts where its entry stood in the tar: it wins over a failure further on.
    let mismatch = listed
        .iter()
        .zip(&slots)
        .filter_map(|((_, entry), slot)| {
            let checked = slot.get()?;
            (!checked.checksum_ok).then_some((checked.sequence, entry))
        })
        .min_by_key(|(sequence, _)| *sequence);
    let failed_at = read.as_ref().err().map_or(usize::MAX, |(sequence, _)| *sequence);
    if let Some((sequence, entry)) = mismatch
        && sequence < failed_at
    {
        return Err(ArchiveError::ChecksumMismatch {
            path: entry.path.clone(),
        }
        .into());
    }
    read.map_err(|(_, failure)| failure)?;

    // 4. Only now: the first object missing or not the one its entry names, in restore order, is the one
    //    reported.
    for ((_, entry), slot) in listed.iter().zip(slots) {
        let Some(checked) = slot.into_inner() else {
            return Err(ArchiveError::MissingEntry {
                path: entry.path.clone(),
            }
            .into());
        };
        let reason = match checked.key {
            Ok(Some(key)) if key == entry.key => continue,
            Ok(Some(key)) => format!("holds {key} but the manifest lists {}", entry.key),
            Ok(None) => "not a Kubernetes object (apiVersion, kind or metadata.name missing)".into(),
            Err(reason) => reason,
        };
        return Err(ArchiveError::InvalidObject {
            what: entry.path.clone(),
            reason,
        }
        .into());
    }
    Ok((manifest, manifest_json))
}

/// Reads the entries after the manifest, checks on the spot what needs no hashing (limits, paths, types, each
/// manifest entry once, sizes) and hands the bytes to `batch`. A failure carries the place of its entry in the tar.
pub(super) fn split_entries<'s, R: Read>(
    entries: tar::Entries<'_, R>,
    limits: &ReadLimits,
    listed: &'s [(PhaseName, &'s Entry)],
    batch: &mut Batch,
    scope: &rayon::Scope<'s>,
    buffers: &'s Buffers,
    slots: &'s [OnceLock<Checked>],
) -> std::result::Result<(), (usize, TarFailure)> {
    let mut positions = Positions::new(listed);
    let mut sequence = 0usize;
    for entry in entries {
        sequence += 1;
        let fail = |e: TarFailure| (sequence, e);
        let mut entry = entry.map_err(|e| fail(e.into()))?;
        if sequence + 1 > limits.max_entries {
            return Err(fail(
                ArchiveError::TooManyEntries {
                    limit: limits.max_entries,
                }
                .into(),
            ));
        }
        let path = entry_path(&entry).map_err(|e| fail(e.into()))?;
        paths::check_entry_path(&path)
            .map_err(|reason| ArchiveError::UnsafePath {
                path: path.clone(),
                reason,
            })
            .map_err(|e| fail(e.into()))?;
        check_regular(&entry, &path).map_err(|e| fail(e.into()))?;
        let index = match positions.find(&path) {
            Found::Index(index) => index,
            Found::Taken => return Err(fail(ArchiveError::DuplicateEntry { path }.into())),
            Found::Unlisted if path == MANIFEST_PATH => {
                return Err(fail(ArchiveError::DuplicateEntry { path }.into()));
            }
            Found::Unlisted => return Err(fail(ArchiveError::UnexpectedEntry { path }.into())),
        };
        let listed_size = listed[index].1.size;
        let size = entry.size();
        if size != listed_size {
            return Err(fail(
                ArchiveError::SizeMismatch {
                    path,
                    expected: listed_size,
                    actual: size,
                }
                .into(),
            ));
        }
        if size > limits.max_decompressed {
            let limit = limits.max_decompressed;
            return Err(fail(ArchiveError::EntryTooLarge { path, size, limit }.into()));
        }
        if batch.read(&mut entry, size, sequence, index).map_err(fail)? {
            batch.check_on(scope, buffers, listed, slots);
        }
    }
    Ok(())
}

/// What the checks found in one entry, filed under its place in the manifest.
pub(super) struct Checked {
    /// Its place in the tar (1 is the first entry after the manifest).
    sequence: usize,
    checksum_ok: bool,
    /// The identity its JSON holds (`Err`: not JSON).
    key: std::result::Result<Option<ObjectKey>, String>,
}

/// Entries read but not yet handed to a checking task, back to back in one buffer.
#[derive(Default)]
pub(super) struct Batch {
    /// The entries in `data[..filled]`; what lies beyond is left from earlier batches, kept so that the buffer is
    /// not zeroed again.
    data: Vec<u8>,
    filled: usize,
    /// (place in the tar, place in the manifest, end of its bytes in `data`)
    entries: Vec<(usize, usize, usize)>,
}

impl Batch {
    /// Small enough to keep the other cores busy from the first entries on, large enough that spawning is cheap.
    const BYTES: usize = 256 * 1024;

    /// Reads the next entry's `size` bytes into the batch; `Ok(true)` when the batch is full.
    fn read<R: Read>(
        &mut self,
        entry: &mut R,
        size: u64,
        sequence: usize,
        index: usize,
    ) -> std::result::Result<bool, TarFailure> {
        self.filled = read_entry_into(entry, size, &mut self.data, self.filled)?;
        self.entries.push((sequence, index, self.filled));
        Ok(self.filled >= Self::BYTES)
    }

    /// Checks the batch on the pool, filing each result in its manifest slot. With [`Buffers::MAX_IN_FLIGHT`]
    /// batches already waiting, this thread checks it itself: what is read but unchecked stays bounded, and
    /// nothing ever waits for a pool that may be busy (or be this very thread).
    fn check_on<'s>(
        &mut self,
        scope: &rayon::Scope<'s>,
        buffers: &'s Buffers,
        listed: &'s [(PhaseName, &'s Entry)],
        slots: &'s [OnceLock<Checked>],
    ) {
        if self.entries.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut self.entries);
        let Some(fresh) = buffers.lend() else {
            check_entries(&self.data, &entries, listed, slots);
            self.filled = 0;
            return;
        };
        let data = std::mem::replace(&mut self.data, fresh);
        self.filled = 0;
        scope.spawn(move |_| {
            check_entries(&data, &entries, listed, slots);
            buffers.give_back(data);
        });
    }
}

/// Checks entries read back to back into `data`: sha256 against the manifest, and the identity the JSON holds.
pub(super) fn check_entries(
    data: &[u8],
    entries: &[(usize, usize, usize)],
    listed: &[(PhaseName, &Entry)],
    slots: &[OnceLock<Checked>],
) {
    let mut start = 0;
    for &(sequence, index, end) in entries {
        let bytes = &data[start..end];
        start = end;
        let entry = listed[index].1;
        // Each index is handed out once (`Positions` refuses a second entry with the same path).
        let _ = slots[index].set(Checked {
            sequence,
            checksum_ok: digest_matches(bytes, &entry.sha256),
            key: ObjectKey::from_json(bytes),
        });
    }
}

/// Batch buffers going back and forth between the reading thread and the checking tasks, reused so that reading
/// a large archive does not touch fresh memory for every batch.
#[derive(Default)]
pub(super) struct Buffers {
    /// Buffers ready for reuse, and how many batches are out being checked.
    state: std::sync::Mutex<(Vec<Vec<u8>>, usize)>,
}

impl Buffers {
    /// Batches read ahead of the checks at most (4 MB at [`Batch::BYTES`]).
    const MAX_IN_FLIGHT: usize = 16;

    /// A buffer for the next batch while the current one goes out, or `None` when enough batches are out.
    fn lend(&self) -> Option<Vec<u8>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.1 >= Self::MAX_IN_FLIGHT {
            return None;
        }
        state.1 += 1;
        Some(state.0.pop().unwrap_or_default())
    }

    /// Takes a buffer back as it is: its old bytes are overwritten by the next batch, not zeroed first.
    fn give_back(&self, buffer: Vec<u8>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.push(buffer);
        state.1 -= 1;
    }
}

/// Whether the SHA-256 of `bytes` is `hex` (the manifest's lower-case form).
pub(super) fn digest_matches(bytes: &[u8], hex: &str) -> bool {
    let mut encoded = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(bytes), &mut encoded).is_ok() && encoded == hex.as_bytes()
}

/// Finds a tar entry's place in the manifest: a writer stores entries in manifest order, so the next place is
/// tried first and a path index is built only for an archive in another order.
pub(super) struct Positions<'a> {
    listed: &'a [(PhaseName, &'a Entry)],
    taken: Vec<bool>,
    next: usize,
    by_path: Option<foldhash::HashMap<&'a str, usize>>,
}

pub(super) enum Found {
    Index(usize),
    Taken,
    Unlisted,
}

impl<'a> Positions<'a> {
    pub(super) fn new(listed: &'a [(PhaseName, &'a Entry)]) -> Self {
        Positions {
            listed,
            taken: vec![false; listed.len()],
            next: 0,
            by_path: None,
        }
    }

    pub(super) fn find(&mut self, path: &str) -> Found {
        let index = match self.listed.get(self.next) {
            Some((_, entry)) if entry.path == path => Some(self.next),
            _ => {
                let listed = self.listed;
                let by_path = self.by_path.get_or_insert_with(|| {
                    listed
                        .iter()
                        .enumerate()
                        .map(|(index, (_, entry))| (entry.path.as_str(), index))
                        .collect()
                });
                by_path.get(path).copied()
            }
        };
        let Some(index) = index else {
            return Found::Unlisted;
        };
        if std::mem::replace(&mut self.taken[index], true) {
            return Found::Taken;
        }
        self.next = index + 1;
        Found::Index(index)
    }
}

pub(super) fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String> {
    let raw = entry.path_bytes();
    String::from_utf8(raw.into_owned()).map_err(|e| ArchiveError::UnsafePath {
        path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        reason: "path is not UTF-8",
    })
}

pub(super) fn check_regular<R: Read>(entry: &tar::Entry<'_, R>, path: &str) -> Result<()> {
    use tar::EntryType as T;
    let reason = match entry.header().entry_type() {
        T::Regular | T::Continuous => return Ok(()),
        T::Symlink | T::Link => "a link",
        T::Char | T::Block | T::Fifo => "a device or special file",
        T::Directory => "a directory (cmarchive archives hold files only)",
        _ => "not a regular file",
    };
    Err(ArchiveError::UnsafePath {
        path: path.to_owned(),
        reason,
    })
}

/// Reads exactly `size` bytes of an entry (the caller bounded `size`; the decompressed-size cap bounds the rest).
pub(super) fn read_entry<R: Read>(entry: &mut R, size: u64) -> std::result::Result<Vec<u8>, TarFailure> {
    let mut bytes = Vec::new();
    let end = read_entry_into(entry, size, &mut bytes, 0)?;
    bytes.truncate(end);
    Ok(bytes)
}

/// [`read_entry`] into `out[start..]` (see [`fill_from`]); returns where the entry's bytes end.
pub(super) fn read_entry_into<R: Read>(
    entry: &mut R,
    size: u64,
    out: &mut Vec<u8>,
    start: usize,
) -> std::result::Result<usize, TarFailure> {
    let read = fill_from(&mut entry.take(size), out, start)?;
    if read as u64 != size {
        return Err(TarFailure::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "entry cut short",
        )));
    }
    Ok(start + read)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once enough batches are out, the reading thread checks the next one itself, and the results land in the
    /// same slots either way.
    #[test]
    fn a_saturated_pool_means_checking_inline() {
        let objects: Vec<Vec<u8>> = (0..40)
            .map(|i| format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"s{i}"}}}}"#).into_bytes())
            .collect();
        let entries: Vec<Entry> = objects
            .iter()
            .enumerate()
            .map(|(i, bytes)| Entry {
                key: ObjectKey::from_json(bytes).unwrap().unwrap(),
                path: format!("objects/03-secrets/core/secret/_cluster/s{i}.json"),
                size: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(bytes)),
                reasons: Vec::new(),
            })
            .collect();
        let listed: Vec<(PhaseName, &Entry)> = entries.iter().map(|e| (PhaseName::Secrets, e)).collect();
        let slots: Vec<OnceLock<Checked>> = std::iter::repeat_with(OnceLock::new).take(listed.len()).collect();
        let buffers = Buffers::default();
        let lent: Vec<Vec<u8>> = (0..Buffers::MAX_IN_FLIGHT).map_while(|_| buffers.lend()).collect();
        assert_eq!(lent.len(), Buffers::MAX_IN_FLIGHT);
        assert!(buffers.lend().is_none(), "no more than MAX_IN_FLIGHT batches go out");
        rayon::in_place_scope(|scope| {
            let mut batch = Batch::default();
            for (i, bytes) in objects.iter().enumerate() {
                // The second half carries a wrong byte: its checksum must fail.
                let mut bytes = bytes.clone();
                if i >= 20 {
                    bytes[2] = b'X';
                }
                batch.read(&mut bytes.as_slice(), bytes.len() as u64, i + 1, i).unwrap();
                if i % 7 == 6 {
                    batch.check_on(scope, &buffers, &listed, &slots);
                    // Checked on this thread: every slot so far is filled when `check_on` returns.
                    assert!(slots[..=i].iter().all(|slot| slot.get().is_some()), "entry {i}");
                }
            }
            batch.check_on(scope, &buffers, &listed, &slots);
        });
        for (i, slot) in slots.iter().enumerate() {
            let checked = slot.get().expect("every entry checked");
            assert_eq!(checked.sequence, i + 1);
            assert_eq!(checked.checksum_ok, i < 20, "entry {i}");
        }
        for buffer in lent {
            buffers.give_back(buffer);
        }
        assert!(buffers.lend().is_some(), "buffers given back are lent again");
    }

    #[test]
    fn a_short_entry_is_cut_short() {
        let mut batch = Batch::default();
        let short: &[u8] = b"{}";
        let err = batch.read(&mut &*short, 10, 1, 0).expect_err("two bytes are not ten");
        assert!(matches!(err, TarFailure::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof));
        // Left as it was: nothing filled, no entry recorded (the buffer itself may have grown).
        assert!(batch.filled == 0 && batch.entries.is_empty());
    }
}
