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

use crate::age_header::{self, HeaderFacts, HeaderGuard};
use crate::chunks::Chunks;
use crate::crypto::{Identities, one_line};
use crate::error::{ArchiveError, Result};
use crate::manifest::{Entry, FORMAT_MAJOR, FORMAT_NAME, MANIFEST_PATH, Manifest, PhaseName};
use crate::object::ObjectKey;
use crate::paths;
use crate::read_ahead::{self, ReadAhead, read_ahead};
use foldhash::{HashSet, HashSetExt as _};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::rc::Rc;
use std::sync::OnceLock;

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
fn parse_object(entry: &Entry, bytes: &[u8]) -> Result<Value> {
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

/// Decrypts, decompresses and verifies a whole archive from `input` (binary or armored, detected), and returns
/// its objects in restore order.
pub fn read_archive<R: Read>(input: R, identities: &Identities, limits: &ReadLimits) -> Result<VerifiedArchive> {
    check_archive(input, identities, limits)?.into_verified()
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
    compressed: Chunks,
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

/// The second reading of a verified tar, for [`CheckedArchive::for_each_object`]: each object to `visit` in restore
/// order; anything that reads differently from the first time is refused.
fn replay<E>(
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

/// The manifest's entries in restore order, with their phases.
fn listed(manifest: &Manifest) -> Vec<(PhaseName, &Entry)> {
    manifest
        .phases
        .iter()
        .flat_map(|p| p.entries.iter().map(move |e| (p.name, e)))
        .collect()
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

/// Where in the stack an error happened, and so what it means.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layer {
    Input,
    Armor,
    Age,
    Zstd,
    Tar,
}

/// The first failure seen by any layer, already translated.
type Failure = Rc<RefCell<Option<ArchiveError>>>;

/// Where the stacked readers have reached their ends.
#[derive(Default)]
struct Ends {
    /// The raw input ended: a failure now may mean the file was cut short.
    input: Cell<bool>,
    /// age handed out its last chunk, which authenticated: the encrypted file is complete, so what stops early
    /// inside it was never whole.
    age: Cell<bool>,
}

fn classify(layer: Layer, error: &io::Error, ends: &Ends) -> ArchiveError {
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

fn layered_error(error: io::Error, failure: &Failure, layer: Layer, ends: &Ends) -> ArchiveError {
    failure
        .borrow_mut()
        .take()
        .unwrap_or_else(|| classify(layer, &error, ends))
}

fn header_error(error: age::DecryptError, failure: &Failure, ends: &Ends, header: &HeaderFacts) -> ArchiveError {
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

fn decrypt_error(error: age::DecryptError, failure: &Failure, ends: &Ends) -> ArchiveError {
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
enum Marker {
    Found,
    /// An age marker, but after whitespace (`armored`: the armor line), which age does not accept.
    AfterWhitespace {
        armored: bool,
    },
    /// The whole input is a strict prefix of an age marker: a file cut within its first line.
    CutShort,
    Absent,
}

fn age_marker(head: &[u8]) -> Marker {
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
fn guess_kind(head: &[u8]) -> String {
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

/// Error inside [`verify_tar`]: either already an archive error, or an I/O error still to be attributed.
#[derive(Debug)]
enum TarFailure {
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
fn verify_tar<R: Read>(input: R, limits: &ReadLimits) -> std::result::Result<(Manifest, Vec<u8>), TarFailure> {
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
fn split_entries<'s, R: Read>(
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
struct Checked {
    /// Its place in the tar (1 is the first entry after the manifest).
    sequence: usize,
    checksum_ok: bool,
    /// The identity its JSON holds (`Err`: not JSON).
    key: std::result::Result<Option<ObjectKey>, String>,
}

/// Entries read but not yet handed to a checking task, back to back in one buffer.
#[derive(Default)]
struct Batch {
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
fn check_entries(
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
struct Buffers {
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
fn digest_matches(bytes: &[u8], hex: &str) -> bool {
    let mut encoded = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(bytes), &mut encoded).is_ok() && encoded == hex.as_bytes()
}

/// Finds a tar entry's place in the manifest: a writer stores entries in manifest order, so the next place is
/// tried first and a path index is built only for an archive in another order.
struct Positions<'a> {
    listed: &'a [(PhaseName, &'a Entry)],
    taken: Vec<bool>,
    next: usize,
    by_path: Option<foldhash::HashMap<&'a str, usize>>,
}

enum Found {
    Index(usize),
    Taken,
    Unlisted,
}

impl<'a> Positions<'a> {
    fn new(listed: &'a [(PhaseName, &'a Entry)]) -> Self {
        Positions {
            listed,
            taken: vec![false; listed.len()],
            next: 0,
            by_path: None,
        }
    }

    fn find(&mut self, path: &str) -> Found {
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

fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String> {
    let raw = entry.path_bytes();
    String::from_utf8(raw.into_owned()).map_err(|e| ArchiveError::UnsafePath {
        path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        reason: "path is not UTF-8",
    })
}

fn check_regular<R: Read>(entry: &tar::Entry<'_, R>, path: &str) -> Result<()> {
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
fn read_entry<R: Read>(entry: &mut R, size: u64) -> std::result::Result<Vec<u8>, TarFailure> {
    let mut bytes = Vec::new();
    let end = read_entry_into(entry, size, &mut bytes, 0)?;
    bytes.truncate(end);
    Ok(bytes)
}

/// [`read_entry`] into `out[start..]` (see [`fill_from`]); returns where the entry's bytes end.
fn read_entry_into<R: Read>(
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

/// Reads `source` to its end into `out[start..]` and returns how many bytes came.
///
/// `out` is a buffer reused from entry to entry, its length a high-water mark: only bytes past that mark are zeroed
/// (std's `read_to_end` zeroes the room for every read, which was a twelfth of an unpack's time). It grows at most
/// [`FILL_STEP`] ahead of the bytes that arrived, so a size field alone never makes it allocate.
fn fill_from<R: Read>(source: &mut R, out: &mut Vec<u8>, start: usize) -> io::Result<usize> {
    let mut end = start;
    loop {
        if end >= out.len() {
            out.resize(end + FILL_STEP, 0);
        }
        match source.read(&mut out[end..]) {
            Ok(0) => return Ok(end - start),
            Ok(n) => end += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How far [`fill_from`] grows its buffer ahead of the data.
const FILL_STEP: usize = 64 * 1024;

/// The format name and major version, the first things a reader must agree with.
fn check_format(format: Option<&str>, version: Option<&str>) -> Result<()> {
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
fn check_derived_place(phase: PhaseName, entry: &Entry) -> Result<()> {
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
fn plain_serde_message(error: &serde_json::Error) -> String {
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

/// Keeps `error` in the shared slot unless a failure is there already: the first one seen is the cause.
fn record(failure: &Failure, error: impl FnOnce() -> ArchiveError) {
    let mut slot = failure.borrow_mut();
    if slot.is_none() {
        *slot = Some(error());
    }
}

/// Passes reads through, recording the first error of its layer in the shared [`Failure`] slot.
struct Tap<R> {
    inner: R,
    layer: Layer,
    failure: Failure,
    ends: Rc<Ends>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|e| record(&self.failure, || classify(self.layer, e, &self.ends)))?;
        if n == 0 && !buf.is_empty() && self.layer == Layer::Age {
            self.ends.age.set(true);
        }
        Ok(n)
    }
}

/// The raw input; remembers whether its end was reached (a failure at the end means "cut short or modified").
struct InputTap<R> {
    inner: R,
    ends: Rc<Ends>,
}

impl<R: Read> Read for InputTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ends.input.set(true);
        }
        Ok(n)
    }
}

/// A forward-only stream the tar reader can skip in: the tar crate skips an entry's padding in a stream that
/// cannot seek by reading it into a 32 KB buffer it zeroes first, once per entry.
struct SkipByReading<R> {
    inner: R,
    /// Bytes read or skipped so far.
    position: u64,
}

impl<R: Read> Read for SkipByReading<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: Read> Seek for SkipByReading<R> {
    /// Skips forward (`SeekFrom::Current` with a non-negative offset, all the tar reader asks); reads the skipped
    /// bytes, so every layer below still sees, and checks, the whole stream.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let offset = read_ahead::forward_offset(to)?;
        let skipped = io::copy(&mut (&mut self.inner).take(offset), &mut io::sink())?;
        self.position += skipped;
        if skipped != offset {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        Ok(self.position)
    }
}

/// Passes the decrypted, still compressed tar through and keeps a copy of it for the second pass; the copy is
/// capped like the decompressed bytes (zstd's skippable frames could otherwise make it grow without output).
struct Keep<R> {
    inner: R,
    kept: Rc<RefCell<Chunks>>,
    limit: u64,
    failure: Failure,
}

impl<R: Read> Read for Keep<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut kept = self.kept.borrow_mut();
        if kept.len() + n as u64 > self.limit {
            record(&self.failure, || ArchiveError::TooLarge { limit: self.limit });
            return Err(io::Error::other("compressed size limit reached"));
        }
        kept.extend(&buf[..n]);
        Ok(n)
    }
}

/// Enforces [`ReadLimits::max_decompressed`].
struct LimitTap<R> {
    inner: R,
    remaining: u64,
    limit: u64,
    failure: Failure,
}

impl<R: Read> Read for LimitTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Allow a read of zero bytes at the exact limit only if the stream really ends here.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            record(&self.failure, || ArchiveError::TooLarge { limit: self.limit });
            return Err(io::Error::other("decompressed size limit reached"));
        }
        let max = buf.len().min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
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

    /// A reused buffer keeps its length (nothing is zeroed again); it grows with the bytes that arrive, never
    /// with what a size field claims.
    #[test]
    fn fill_from_reuses_its_buffer_and_grows_only_with_the_data() {
        let mut buffer = vec![b'x'; 100];
        assert_eq!(fill_from(&mut &b"abc"[..], &mut buffer, 10).unwrap(), 3);
        assert_eq!(&buffer[8..14], b"xxabcx");
        assert_eq!(buffer.len(), 100);

        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let read = fill_from(&mut &big[..], &mut buffer, 50).unwrap();
        assert_eq!(read, big.len());
        assert_eq!(&buffer[50..50 + read], &big[..]);
        assert!(buffer.len() <= 50 + big.len() + FILL_STEP, "{}", buffer.len());

        let mut fresh = Vec::new();
        let claimed_terabyte = read_entry_into(&mut &b"short"[..], 1 << 40, &mut fresh, 0);
        assert!(matches!(claimed_terabyte, Err(TarFailure::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof));
        assert!(fresh.len() <= FILL_STEP, "{}", fresh.len());
    }

    /// The pass-one stream skips forward by reading (so the layers below see every byte) and refuses the rest.
    #[test]
    fn the_archive_stream_skips_forward_only() {
        let data: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        let mut stream = SkipByReading {
            inner: &data[..],
            position: 0,
        };
        let mut head = [0; 10];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(stream.seek(SeekFrom::Current(500)).unwrap(), 510);
        stream.read_exact(&mut head).unwrap();
        assert_eq!(head[0], data[510]);
        assert!(stream.seek(SeekFrom::Current(-1)).is_err());
        assert!(stream.seek(SeekFrom::Start(0)).is_err());
        let past_end = stream.seek(SeekFrom::Current(5000)).unwrap_err();
        assert_eq!(past_end.kind(), io::ErrorKind::UnexpectedEof);
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
