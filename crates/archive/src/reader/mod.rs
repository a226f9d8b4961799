//! Reading an archive: (armor) → age → zstd → tar, and verifying all of it before anything is returned.
//!
//! Nothing from an archive reaches the caller until every check passed: format name and major version, manifest
//! schema, every entry's size and sha256, every manifest entry present exactly once and nothing else, only
//! regular files at safe paths, and a cap on decompressed bytes. The price is memory: the first pass keeps the
//! tar as age decrypted it, still compressed, and a second pass decompresses it again to hand out the objects
//! (see `docs/FORMAT.md`).
//!
//! Errors from the stacked readers all arrive as `io::Error` at the tar layer; each layer is wrapped in a
//! [`Tap`] that records the first failure in its own terms, so the reported error names the real cause
//! (truncated file, failed authentication, size cap) instead of a generic tar error.

mod batch;
mod layers;
mod manifest;
mod replay;
mod streams;
mod types;

pub use manifest::parse_manifest;
pub use types::{CheckedArchive, ObjectRef, ReadLimits, Replay, VerifiedArchive, VerifiedObject};

use crate::age_header::HeaderGuard;
use crate::chunks::Chunks;
use crate::crypto::Identities;
use crate::error::{ArchiveError, Result};
use batch::{TarFailure, verify_tar};
use layers::{Ends, Failure, Layer, Marker, age_marker, decrypt_error, guess_kind, header_error, layered_error};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;
use streams::{InputTap, Keep, LimitTap, Tap};

/// Decrypts, decompresses and verifies a whole archive from `input` (binary or armored, detected), and returns
/// its objects in restore order.
pub fn read_archive<R: Read>(input: R, identities: &Identities, limits: &ReadLimits) -> Result<VerifiedArchive> {
    check_archive(input, identities, limits)?.into_verified()
}

/// Decrypts, decompresses and verifies a whole archive from `input` (binary or armored, detected), keeping the
/// decrypted tar compressed for [`CheckedArchive::for_each_object`].
pub fn check_archive<R: Read>(input: R, identities: &Identities, limits: &ReadLimits) -> Result<CheckedArchive> {
    let failure: Failure = Rc::default();
    let ends: Rc<Ends> = Rc::default();
    let raw = Tap {
        inner: InputTap {
            inner: input,
            ends: ends.clone(),
        },
        layer: Layer::Input,
        failure: failure.clone(),
        ends: ends.clone(),
    };
    let mut buffered = BufReader::with_capacity(64 * 1024, raw);
    let head = buffered
        .fill_buf()
        .map_err(ArchiveError::io("reading the archive"))?
        .to_vec();
    if head.is_empty() {
        return Err(ArchiveError::NotAnArchive("the file is empty".into()));
    }
    match age_marker(&head) {
        Marker::Found => {}
        Marker::AfterWhitespace { armored } => {
            return Err(ArchiveError::Malformed(format!(
                "the file starts with whitespace before its {}; age reads neither with anything in front: remove \
                 what comes before it",
                if armored {
                    "`-----BEGIN AGE ENCRYPTED FILE-----` line"
                } else {
                    "age header"
                }
            )));
        }
        Marker::CutShort => return Err(ArchiveError::Truncated),
        Marker::Absent => return Err(ArchiveError::NotAnArchive(guess_kind(&head))),
    }

    let armored = Tap {
        inner: age::armor::ArmoredReader::new(buffered),
        layer: Layer::Armor,
        failure: failure.clone(),
        ends: ends.clone(),
    };
    let (guarded, header) = HeaderGuard::new(armored);
    let decryptor = age::Decryptor::new_buffered(BufReader::new(guarded))
        .map_err(|e| header_error(e, &failure, &ends, &header.borrow()))?;
    let stream = if decryptor.is_scrypt() {
        let work_factor = header.borrow().scrypt_work_factor();
        let identity = identities.passphrase_identity(work_factor)?;
        decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                    ArchiveError::WrongPassphrase
                }
                other => decrypt_error(other, &failure, &ends),
            })?
    } else {
        if identities.key_count() == 0 {
            return Err(ArchiveError::NoIdentities);
        }
        decryptor
            .decrypt(identities.keys())
            .map_err(|e| decrypt_error(e, &failure, &ends))?
    };
    let decrypted = Tap {
        inner: stream,
        layer: Layer::Age,
        failure: failure.clone(),
        ends: ends.clone(),
    };
    let kept = Rc::new(RefCell::new(Chunks::default()));
    let keep = Keep {
        inner: decrypted,
        kept: kept.clone(),
        limit: limits.max_decompressed,
        failure: failure.clone(),
    };
    let decoder = zstd::stream::read::Decoder::new(keep).map_err(|e| layered_error(e, &failure, Layer::Zstd, &ends))?;
    let decompressed = Tap {
        inner: decoder,
        layer: Layer::Zstd,
        failure: failure.clone(),
        ends: ends.clone(),
    };
    let limited = LimitTap {
        inner: decompressed,
        remaining: limits.max_decompressed,
        limit: limits.max_decompressed,
        failure: failure.clone(),
    };

    let (manifest, manifest_json) = verify_tar(limited, limits).map_err(|e| match e {
        TarFailure::Archive(e) => e,
        TarFailure::Io(e) => layered_error(e, &failure, Layer::Tar, &ends),
    })?;
    let compressed = std::mem::take(&mut *kept.borrow_mut());
    Ok(CheckedArchive {
        manifest,
        manifest_json,
        compressed,
    })
}
