//! The second reading of a verified, still-compressed tar: each object handed out in restore order, and any
//! difference from the first reading refused.

use super::batch::{Found, Positions, entry_path};
use super::streams::fill_from;
use super::types::{ObjectRef, Replay};
use crate::error::ArchiveError;
use crate::manifest::{Entry, MANIFEST_PATH, PhaseName};
use crate::read_ahead::ReadAhead;
use std::collections::HashMap;
use std::io;

/// The second reading of a verified tar, for [`CheckedArchive::for_each_object`]: each object to `visit` in restore
/// order; anything that reads differently from the first time is refused.
pub(super) fn replay<E>(
    tar: &mut ReadAhead,
    listed: &[(PhaseName, &Entry)],
    visit: &mut impl FnMut(ObjectRef<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<(), Replay<E>> {
    let differs = |what: &str| {
        Replay::Archive(ArchiveError::InvalidObject {
            what: what.to_owned(),
            reason: "reads differently the second time; retry, and check this machine's memory".into(),
        })
    };
    let io = |e: io::Error| Replay::Archive(ArchiveError::io("decompressing the verified archive")(e));
    // Seekable: the tar reader skips each entry's padding within the blocks already read.
    let mut archive = tar::Archive::new(tar);
    let mut entries = archive.entries_with_seek().map_err(io)?;
    match entries.next() {
        Some(Ok(first)) if first.path_bytes().as_ref() == MANIFEST_PATH.as_bytes() => {}
        _ => return Err(differs(MANIFEST_PATH)),
    }
    let mut positions = Positions::new(listed);
    let mut next = 0;
    let mut ahead: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut buffer = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(io)?;
        let path = entry_path(&entry).map_err(Replay::Archive)?;
        let Found::Index(index) = positions.find(&path) else {
            return Err(differs(&path));
        };
        if index != next {
            let waiting = ahead.entry(index).or_default();
            let len = fill_from(&mut entry, waiting, 0).map_err(io)?;
            waiting.truncate(len);
            if len as u64 != listed[index].1.size {
                return Err(differs(&path));
            }
            continue;
        }
        // The common case: one object after another, each read into the same buffer.
        let len = fill_from(&mut entry, &mut buffer, 0).map_err(io)?;
        if len as u64 != listed[index].1.size {
            return Err(differs(&path));
        }
        let mut bytes = &buffer[..len];
        let mut waiting;
        loop {
            let (phase, entry) = listed[next];
            visit(ObjectRef { phase, entry, bytes }).map_err(Replay::Visit)?;
            next += 1;
            match ahead.remove(&next) {
                Some(held) => {
                    waiting = held;
                    bytes = &waiting;
                }
                None => break,
            }
        }
    }
    match listed.get(next) {
        Some((_, entry)) => Err(differs(&entry.path)),
        None => Ok(()),
    }
}
