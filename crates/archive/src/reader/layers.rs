//! Naming the real cause of a failure in the stacked readers (armor, age, zstd, tar): each layer records its
//! first error in its own terms, and the first one recorded wins.

use crate::age_header::{self, HeaderFacts};
use crate::crypto::one_line;
use crate::error::ArchiveError;
use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

/// Where in the stack an error happened, and so what it means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Layer {
    Input,
    Armor,
    Age,
    Zstd,
    Tar,
}

/// The first failure seen by any layer, already translated.
pub(super) type Failure = Rc<RefCell<Option<ArchiveError>>>;

/// Where the stacked readers have reached their ends.
#[derive(Default)]
pub(super) struct Ends {
    /// The raw input ended: a failure now may mean the file was cut short.
    pub(super) input: Cell<bool>,
    /// age handed out its last chunk, which authenticated: the encrypted file is complete, so what stops early
    /// inside it was never whole.
    pub(super) age: Cell<bool>,
}

pub(super) fn classify(layer: Layer, error: &io::Error, ends: &Ends) -> ArchiveError {
    let eof = error.kind() == io::ErrorKind::UnexpectedEof;
    let at_end = ends.input.get();
    match layer {
        Layer::Input => ArchiveError::Io {
            context: "reading the archive",
            source: io::Error::new(error.kind(), error.to_string()),
        },
        Layer::Armor if eof || at_end => ArchiveError::Truncated,
        Layer::Armor => ArchiveError::Malformed(format!(
            "the archive's armor is damaged ({}): it was altered, or not written by age; use an intact copy",
            one_line(error)
        )),
        Layer::Age if eof => ArchiveError::Truncated,
        Layer::Age => ArchiveError::AuthenticationFailed { at_end },
        // age authenticated everything up to here, so these bytes are what the writer wrote.
        Layer::Zstd if (eof || error.to_string().contains("incomplete")) && ends.age.get() => {
            ArchiveError::ContentEndsEarly { inner: "zstd stream" }
        }
        Layer::Zstd if eof || error.to_string().contains("incomplete") => ArchiveError::Truncated,
        Layer::Zstd => ArchiveError::NotAnArchive(format!(
            "the decrypted content is not zstd-compressed ({})",
            one_line(error)
        )),
        Layer::Tar if eof && ends.age.get() => ArchiveError::ContentEndsEarly { inner: "tar" },
        Layer::Tar if eof => ArchiveError::Truncated,
        Layer::Tar => ArchiveError::NotAnArchive(format!(
            "the decompressed content is not a valid tar ({})",
            one_line(error)
        )),
    }
}

pub(super) fn layered_error(error: io::Error, failure: &Failure, layer: Layer, ends: &Ends) -> ArchiveError {
    failure
        .borrow_mut()
        .take()
        .unwrap_or_else(|| classify(layer, &error, ends))
}

pub(super) fn header_error(
    error: age::DecryptError,
    failure: &Failure,
    ends: &Ends,
    header: &HeaderFacts,
) -> ArchiveError {
    if let Some(recorded) = failure.borrow_mut().take() {
        return recorded;
    }
    if header.too_large {
        return ArchiveError::HeaderTooLarge {
            limit: age_header::MAX_HEADER,
            lines: age_header::MAX_HEADER_LINES,
        };
    }
    let at_end = ends.input.get();
    match error {
        age::DecryptError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => ArchiveError::Truncated,
        age::DecryptError::Io(e) => classify(Layer::Armor, &e, ends),
        age::DecryptError::InvalidHeader if header.complete => {
            let types = header.stanza_types();
            if types.len() > 1 && types.contains(&"scrypt") {
                ArchiveError::Malformed(format!(
                    "the age header holds a passphrase (scrypt) stanza beside {} other stanza(s), and age allows a \
                     passphrase only alone: the file was not written by age or cmarchive",
                    types.len() - 1
                ))
            } else {
                ArchiveError::Malformed(
                    "the age header is complete but not valid age (a stanza or its MAC line is malformed): the \
                     file was not written by age or cmarchive, or was altered"
                        .into(),
                )
            }
        }
        age::DecryptError::InvalidHeader if at_end => ArchiveError::Truncated,
        age::DecryptError::InvalidHeader => ArchiveError::Malformed(
            "the age header is damaged: the file was not written by age or cmarchive, or was altered".into(),
        ),
        age::DecryptError::UnknownFormat => {
            ArchiveError::NotAnArchive("unknown age format version (written by a newer age?)".into())
        }
        other => decrypt_error(other, failure, ends),
    }
}

pub(super) fn decrypt_error(error: age::DecryptError, failure: &Failure, ends: &Ends) -> ArchiveError {
    if let Some(recorded) = failure.borrow_mut().take() {
        return recorded;
    }
    match error {
        age::DecryptError::NoMatchingKeys => ArchiveError::NoMatchingIdentity,
        age::DecryptError::InvalidMac | age::DecryptError::DecryptionFailed => {
            ArchiveError::AuthenticationFailed { at_end: false }
        }
        age::DecryptError::ExcessiveWork { required, target } => ArchiveError::ExcessiveWork { required, max: target },
        age::DecryptError::KeyDecryptionFailed => ArchiveError::InvalidIdentity {
            file: "identity".into(),
            reason: "could not decrypt the key (wrong passphrase?)".into(),
        },
        age::DecryptError::Io(e) => classify(Layer::Armor, &e, ends),
        age::DecryptError::Plugin(errors) => {
            ArchiveError::Plugin(errors.iter().map(|e| one_line(e)).collect::<Vec<_>>().join("; "))
        }
        age::DecryptError::PluginResolve(e) => ArchiveError::Plugin(one_line(&e)),
        other => ArchiveError::NotAnArchive(one_line(&other)),
    }
}

/// Whether the input starts like an age file (binary or armored).
pub(super) enum Marker {
    Found,
    /// An age marker, but after whitespace (`armored`: the armor line), which age does not accept.
    AfterWhitespace {
        armored: bool,
    },
    /// The whole input is a strict prefix of an age marker: a file cut within its first line.
    CutShort,
    Absent,
}

pub(super) fn age_marker(head: &[u8]) -> Marker {
    const MARKERS: [&[u8]; 2] = [b"age-encryption.org/", b"-----BEGIN AGE ENCRYPTED FILE-----"];
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    let rest = &head[start..];
    if start == 0 && MARKERS.iter().any(|m| rest.starts_with(m)) {
        Marker::Found
    } else if let Some(armored) = MARKERS.iter().position(|m| rest.starts_with(m)) {
        Marker::AfterWhitespace { armored: armored == 1 }
    } else if !rest.is_empty() && MARKERS.iter().any(|m| m.starts_with(rest)) {
        Marker::CutShort
    } else {
        Marker::Absent
    }
}

/// Names what the file looks like instead, so the message helps ("did you pass the unencrypted tar?").
pub(super) fn guess_kind(head: &[u8]) -> String {
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "this is a bare zstd stream, not an age-encrypted archive".into()
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        "this is a plain tar, not an age-encrypted archive".into()
    } else if head.first().is_some_and(|b| *b == b'{' || *b == b'[') {
        "this looks like JSON; pack it with `cmarchive pack --from-file`".into()
    } else {
        "it is not an age-encrypted file".into()
    }
}

/// Keeps `error` in the shared slot unless a failure is there already: the first one seen is the cause.
pub(super) fn record(failure: &Failure, error: impl FnOnce() -> ArchiveError) {
    let mut slot = failure.borrow_mut();
    if slot.is_none() {
        *slot = Some(error());
    }
}
