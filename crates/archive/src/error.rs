//! The one error type of the archive layer. Every message is a single line that names the problem and says what
//! to do, because the CLI prints it as is (prefixed with the archive's name).

use std::io;

/// Why an archive could not be written or read, or a key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// None of the given identities can decrypt the archive.
    #[error("no identity matched: the archive was encrypted to other recipients; pass the matching key with -i")]
    NoMatchingIdentity,
    /// The archive is encrypted to keys and no key was given.
    #[error("no identity given: pass the key the archive was encrypted to with -i (or set CMARCHIVE_AGE_KEY_FILE)")]
    NoIdentities,
    /// A passphrase archive and the passphrase does not open it.
    #[error("wrong passphrase: the archive's passphrase did not decrypt it; check the passphrase file or prompt")]
    WrongPassphrase,
    /// A passphrase archive but no passphrase is available.
    #[error(
        "the archive is encrypted with a passphrase: pass --passphrase-file or set CMARCHIVE_PASSPHRASE (or run on a terminal to be asked)"
    )]
    PassphraseRequired,
    /// The input stops before the end of the age stream, the zstd frame or the tar.
    #[error("the archive ends early: it is truncated or was not fully written; use a complete copy")]
    Truncated,
    /// A payload chunk failed to authenticate.
    #[error("{}", auth_failed_message(*.at_end))]
    AuthenticationFailed {
        /// Whether the failing chunk was the last one read (a cut-off file looks exactly like this).
        at_end: bool,
    },
    /// Not an age file, or the age file does not hold a cmarchive tar.
    #[error("not a cmarchive archive: {0}")]
    NotAnArchive(String),
    /// The manifest names a format major version this build does not read.
    #[error(
        "archive format version {found} is not supported: this cmarchive reads {supported}.x; use a newer cmarchive"
    )]
    UnsupportedVersion {
        /// The `formatVersion` found.
        found: String,
        /// The major version this build reads.
        supported: u32,
    },
    /// `manifest.json` does not follow the schema.
    #[error("invalid manifest.json: {0}; the archive was not written by cmarchive or is damaged")]
    InvalidManifest(String),
    /// An entry's content does not hash to the manifest's sha256.
    #[error("checksum mismatch on {path}: the content was altered after packing; use an intact copy")]
    ChecksumMismatch {
        /// The tar path.
        path: String,
    },
    /// An entry's size differs from the manifest's.
    #[error("size mismatch on {path}: manifest says {expected} bytes, archive holds {actual}; use an intact copy")]
    SizeMismatch {
        /// The tar path.
        path: String,
        /// Size in the manifest.
        expected: u64,
        /// Size in the tar.
        actual: u64,
    },
    /// A path that could escape a folder, or a link, device or other non-regular entry.
    #[error("unsafe entry {path:?}: {reason}; refusing to read an archive that was not written by cmarchive")]
    UnsafePath {
        /// The path as found.
        path: String,
        /// What is unsafe about it.
        reason: &'static str,
    },
    /// The same path twice, in the tar or in the manifest.
    #[error("duplicate entry {path}: every path may appear once; the archive was tampered with or is damaged")]
    DuplicateEntry {
        /// The repeated path.
        path: String,
    },
    /// A manifest entry has no tar entry.
    #[error("missing entry {path}: listed in the manifest but not in the archive; the archive is incomplete")]
    MissingEntry {
        /// The missing path.
        path: String,
    },
    /// A tar entry not listed in the manifest.
    #[error("unexpected entry {path}: not listed in the manifest; the archive was tampered with")]
    UnexpectedEntry {
        /// The extra path.
        path: String,
    },
    /// Decompressed content beyond the configured cap.
    #[error(
        "the archive expands to more than {} (--max-size); if you trust it, raise the limit with --max-size",
        format_size(*limit)
    )]
    TooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// A tar header claims a size beyond the decompressed-size cap: no archive within the cap holds such an entry.
    #[error(
        "tar entry {path} claims {} ({size} bytes), more than the whole archive may expand to (--max-size {}); \
         it was not written by cmarchive",
        format_size(*size),
        format_size(*limit)
    )]
    EntryTooLarge {
        /// The tar path.
        path: String,
        /// The size its header claims.
        size: u64,
        /// The cap in bytes.
        limit: u64,
    },
    /// The encrypted file is complete (age authenticated its last chunk), but the zstd stream or the tar inside
    /// stops early: not a cut-off file, but content that was never whole.
    #[error(
        "the archive's {inner} ends early although the encrypted file around it is complete: it was not written \
         (or not finished) by cmarchive; use another copy"
    )]
    ContentEndsEarly {
        /// `zstd stream` or `tar`.
        inner: &'static str,
    },
    /// An age header longer than any real one (see `age_header`).
    #[error(
        "the age header is larger than {} or {lines} lines (age writes a few hundred bytes per recipient): \
         refusing to read it; the file was not written by age or cmarchive",
        format_size(*limit as u64)
    )]
    HeaderTooLarge {
        /// The cap in bytes.
        limit: usize,
        /// The cap in lines.
        lines: usize,
    },
    /// An age file whose structure is wrong in a way that is neither truncation nor tampering; the message says
    /// what and what to do.
    #[error("{0}")]
    Malformed(String),
    /// A passphrase archive asks for more scrypt work than cmarchive accepts.
    #[error(
        "the archive's passphrase asks for scrypt work factor 2^{required} ({} of memory), more than the 2^{max} \
         cmarchive accepts; re-encrypt it with a lower work factor (age uses 2^18)",
        scrypt_memory(*required)
    )]
    ExcessiveWork {
        /// The work factor (log2 N) the archive asks for.
        required: u8,
        /// The largest accepted.
        max: u8,
    },
    /// The memory scrypt needs for this archive cannot be had.
    #[error(
        "the archive's passphrase needs {} of memory for scrypt (work factor 2^{log_n}), and this process cannot \
         get it; raise the memory limit, or re-encrypt the archive with a lower work factor",
        scrypt_memory(*log_n)
    )]
    ScryptMemory {
        /// The work factor (log2 N).
        log_n: u8,
    },
    /// More tar entries than the configured cap.
    #[error("the archive holds more than {limit} entries; refusing it (cmarchive archives hold one file per object)")]
    TooManyEntries {
        /// The cap.
        limit: usize,
    },
    /// An object that cannot be stored or a stored object that is not what the manifest says.
    #[error("invalid object {what}: {reason}")]
    InvalidObject {
        /// The object (or its tar path).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A recipient string that is none of the supported kinds.
    #[error(
        "invalid recipient {0:?}: expected an age public key (age1…), an SSH public key (ssh-ed25519/ssh-rsa) or a plugin recipient"
    )]
    InvalidRecipient(String),
    /// A private key given where a recipient belongs (`-r`, `-R`); none of it is echoed.
    #[error(
        "{}: encrypt to its public key ({hint}) and keep the secret key for -i when opening the archive",
        match location {
            Some(place) => format!("{place} is a secret key, not a recipient"),
            None => "a secret key was given as a recipient".to_owned(),
        }
    )]
    SecretKeyAsRecipient {
        /// `file: line N` for a recipients file; `None` for a recipient given as text.
        location: Option<String>,
        /// Where the public key is found.
        hint: &'static str,
    },
    /// A line of a recipients file that is not a recipient.
    #[error("{file}: line {line} is not a recipient (age1…, ssh-ed25519, ssh-rsa or plugin); fix or comment it with #")]
    InvalidRecipientsFile {
        /// The file.
        file: String,
        /// 1-based line number (the content is not echoed: it could be a secret pasted by mistake).
        line: usize,
    },
    /// A key file that holds no usable identity.
    #[error("{file}: {reason}")]
    InvalidIdentity {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A passphrase mixed with public-key recipients.
    #[error("a passphrase cannot be combined with other recipients; use either -p or -r/-R")]
    MixedPassphrase,
    /// Encrypting to the given recipients failed.
    #[error("cannot encrypt to these recipients: {0}")]
    Encrypt(String),
    /// An age plugin could not be used.
    #[error("age plugin: {0}")]
    Plugin(String),
    /// A signature, signing key or allowed-signers file that does not do; the message says which and why.
    #[error("{0}")]
    Signature(String),
    /// Reading or writing failed below the format.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

fn auth_failed_message(at_end: bool) -> &'static str {
    if at_end {
        "authentication failed at the end of the archive: it is truncated (not fully written) or was modified; use a complete, intact copy"
    } else {
        "authentication failed: the archive was modified after it was written (tampered or damaged); use an intact copy"
    }
}

/// A size the way `--max-size` takes it (`2G`, `10M`, `512K`): the largest suffix that divides it exactly, so a
/// limit reads back in the unit it was given in; plain bytes otherwise.
pub fn format_size(bytes: u64) -> String {
    for (shift, suffix) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// The memory scrypt (r = 8, as age uses it) takes at work factor `2^log_n`.
pub fn scrypt_memory(log_n: u8) -> String {
    format_size(128 * 8 * 1u64.checked_shl(u32::from(log_n)).unwrap_or(u64::MAX >> 10))
}

/// Result with [`ArchiveError`].
pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

impl ArchiveError {
    /// Wraps an I/O error from the layer named by `context`.
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> ArchiveError {
        move |source| ArchiveError::Io { context, source }
    }
}
