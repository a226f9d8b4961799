//! Signed archives: who wrote an archive.
//!
//! age gives confidentiality, not authorship: anyone who knows a recipient's public key can write an archive that
//! recipient's key opens. A signature says who wrote it. cmarchive signs the archive file, byte for byte as
//! written, with an OpenSSH key in the `sshsig` format of `ssh-keygen -Y sign` (namespace [`NAMESPACE`], SHA-512),
//! and keeps the signature beside the archive (`ARCHIVE.sig`, PEM `-----BEGIN SSH SIGNATURE-----`), so that
//! `ssh-keygen -Y verify -n cmarchive` checks it too. Readers are given the keys they trust in OpenSSH's
//! `allowed_signers` format (`ssh-keygen(1)`, ALLOWED SIGNERS) and check the signature before decrypting anything.

use crate::crypto::Interaction;
use crate::error::{ArchiveError, Result};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

/// The sshsig namespace of cmarchive's signatures: a signature made for another purpose (git commits, files)
/// never passes for an archive's.
pub const NAMESPACE: &str = "cmarchive";

fn signature_error(message: String) -> ArchiveError {
    ArchiveError::Signature(message)
}

/// A private key that signs archives.
pub struct SigningKey(PrivateKey);

impl SigningKey {
    /// Reads an OpenSSH private key file (`file_name` for messages); a passphrase-protected one is decrypted,
    /// asking through `interaction`.
    pub fn from_openssh(file_name: &str, contents: &[u8], interaction: &Interaction) -> Result<SigningKey> {
        let invalid = |reason: String| signature_error(format!("{file_name}: {reason}"));
        let key = PrivateKey::from_openssh(contents).map_err(|e| {
            invalid(format!(
                "not an OpenSSH private key ({e}); sign with the key ssh-keygen made"
            ))
        })?;
        // ssh-key 0.6 builds an RSA private key from the wrong primes and cannot sign with it; RSA signatures that
        // ssh-keygen made still verify.
        if key.algorithm().is_rsa() {
            return Err(invalid(
                "cmarchive signs with ed25519 or ECDSA keys, not RSA; make one with `ssh-keygen -t ed25519`".into(),
            ));
        }
        if !key.is_encrypted() {
            return Ok(SigningKey(key));
        }
        let passphrase = interaction
            .ask_passphrase(&format!("Passphrase for SSH key {file_name}"))
            .ok_or_else(|| {
                invalid(
                    "the key is passphrase-protected and no passphrase can be asked for here (run on a terminal)"
                        .into(),
                )
            })?;
        use age::secrecy::ExposeSecret;
        let key = key
            .decrypt(passphrase.expose_secret().as_bytes())
            .map_err(|_| invalid("wrong passphrase for the SSH key".into()))?;
        Ok(SigningKey(key))
    }

    /// The detached signature of `archive` (the whole file), as PEM text like `ssh-keygen -Y sign` writes.
    pub fn sign(&self, archive: &[u8]) -> Result<String> {
        let signature = self
            .0
            .sign(NAMESPACE, HashAlg::Sha512, archive)
            .map_err(|e| signature_error(format!("cannot sign with this key: {e}")))?;
        signature
            .to_pem(LineEnding::LF)
            .map_err(|e| signature_error(format!("cannot encode the signature: {e}")))
    }

    /// The public key, for an `allowed_signers` line.
    pub fn public_key(&self) -> String {
        self.0.public_key().to_openssh().unwrap_or_default()
    }
}

/// The keys trusted to sign archives, from an `allowed_signers` file.
#[derive(Debug, Default)]
pub struct AllowedSigners {
    signers: Vec<AllowedSigner>,
}

/// One line of an `allowed_signers` file.
#[derive(Debug)]
struct AllowedSigner {
    principals: String,
    key: PublicKey,
    /// `namespaces="…"`: the namespaces (patterns) the key may sign for; any when absent.
    namespaces: Option<Vec<String>>,
    valid_after: Option<jiff::Timestamp>,
    valid_before: Option<jiff::Timestamp>,
    /// `cert-authority`: the key signs certificates, which cmarchive does not take as signers.
    cert_authority: bool,
}

/// Who signed an archive, as the `allowed_signers` file names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    /// The line's principals (`alice@example.com` or a comma-separated list).
    pub principals: String,
    /// The key's SHA-256 fingerprint (`SHA256:…`).
    pub fingerprint: String,
}

impl AllowedSigners {
    /// Parses an `allowed_signers` file: per line, principals, optional options (`namespaces="…"`,
    /// `valid-after=…`, `valid-before=…`, `cert-authority`), then the public key; blank lines and `#` comments
    /// skipped.
    pub fn parse(file_name: &str, contents: &[u8]) -> Result<AllowedSigners> {
        let text = std::str::from_utf8(contents)
            .map_err(|_| signature_error(format!("{file_name}: not a text file of allowed signers")))?;
        let mut signers = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |reason: &str| {
                signature_error(format!(
                    "{file_name}: line {} is not an allowed signer ({reason}); expected `PRINCIPALS [OPTIONS] KEYTYPE KEY`",
                    index + 1
                ))
            };
            let (principals, rest) = split_principals(line).ok_or_else(|| invalid("no key after the principals"))?;
            let entry: ssh_key::authorized_keys::Entry = rest
                .trim_start()
                .parse()
                .map_err(|_| invalid("the options or the key do not parse"))?;
            let mut signer = AllowedSigner {
                principals: principals.to_owned(),
                key: entry.public_key().clone(),
                namespaces: None,
                valid_after: None,
                valid_before: None,
                cert_authority: false,
            };
            for option in entry.config_opts().iter() {
                let (name, value) = option.split_once('=').unwrap_or((option, ""));
                let value = value.trim_matches('"');
                match name.to_ascii_lowercase().as_str() {
                    "cert-authority" => signer.cert_authority = true,
                    "namespaces" => signer.namespaces = Some(value.split(',').map(str::to_owned).collect()),
                    "valid-after" => {
                        signer.valid_after = Some(parse_time(value).ok_or_else(|| invalid("valid-after is no time"))?)
                    }
                    "valid-before" => {
                        signer.valid_before = Some(parse_time(value).ok_or_else(|| invalid("valid-before is no time"))?)
                    }
                    _ => return Err(invalid("unknown option")),
                }
            }
            signers.push(signer);
        }
        Ok(AllowedSigners { signers })
    }

    /// Checks `signature` (PEM text) over `archive` (the whole file) at time `now`: the signing key must be on a
    /// line that allows namespace `cmarchive` at `now`, and the signature must verify.
    pub fn verify(&self, archive: &[u8], signature: &[u8], now: jiff::Timestamp) -> Result<Signer> {
        let signature = SshSig::from_pem(signature).map_err(|e| {
            signature_error(format!(
                "the signature is not an SSH signature ({e}); expected what `pack --sign` writes"
            ))
        })?;
        let fingerprint = signature.public_key().fingerprint(HashAlg::Sha256).to_string();
        if signature.namespace() != NAMESPACE {
            return Err(signature_error(format!(
                "the signature was made for namespace {:?}, not {NAMESPACE:?}: it does not sign a cmarchive archive",
                crate::text::escape_controls(signature.namespace())
            )));
        }
        let signer = self
            .signers
            .iter()
            .find(|s| !s.cert_authority && s.key.key_data() == signature.public_key() && s.allows(now))
            .ok_or_else(|| {
                signature_error(format!(
                    "the archive is signed by key {fingerprint}, which the allowed signers do not allow to sign \
                     cmarchive archives now; add it to the file if you trust it"
                ))
            })?;
        signer.key.verify(NAMESPACE, archive, &signature).map_err(|_| {
            signature_error(format!(
                "the signature by {} ({fingerprint}) does not match the archive: the archive or its signature was \
                 changed after signing, or they do not belong together",
                crate::text::escape_controls(&signer.principals)
            ))
        })?;
        Ok(Signer {
            principals: signer.principals.clone(),
            fingerprint,
        })
    }
}

impl AllowedSigner {
    /// Whether this line lets its key sign cmarchive archives at `now`.
    fn allows(&self, now: jiff::Timestamp) -> bool {
        let namespace_ok = match &self.namespaces {
            Some(patterns) => patterns.iter().any(|p| matches_pattern(p, NAMESPACE)),
            None => true,
        };
        namespace_ok && self.valid_after.is_none_or(|t| now >= t) && self.valid_before.is_none_or(|t| now < t)
    }
}

/// The principals field (quoted when it holds spaces) and the rest of the line.
fn split_principals(line: &str) -> Option<(&str, &str)> {
    if let Some(quoted) = line.strip_prefix('"') {
        let end = quoted.find('"')?;
        return Some((&quoted[..end], &quoted[end + 1..]));
    }
    line.split_once(char::is_whitespace)
}

/// OpenSSH's pattern match: `*` any run of characters, `?` one, a leading `!` negates.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    if let Some(negated) = pattern.strip_prefix('!') {
        return !matches_pattern(negated, text);
    }
    fn glob(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
            Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
            Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
        }
    }
    glob(pattern.as_bytes(), text.as_bytes())
}

/// `YYYYMMDD[HHMM[SS]]`, UTC with a trailing `Z`, else this machine's time zone (as ssh-keygen reads it).
fn parse_time(text: &str) -> Option<jiff::Timestamp> {
    let (digits, utc) = match text.strip_suffix(['Z', 'z']) {
        Some(digits) => (digits, true),
        None => (text, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = match digits.len() {
        8 => format!("{digits}000000"),
        12 => format!("{digits}00"),
        14 => digits.to_owned(),
        _ => return None,
    };
    let civil = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", &padded).ok()?;
    let zone = if utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    civil.to_zoned(zone).ok().map(|zoned| zoned.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../tests/testkeys/ed25519");
    const PUBLIC: &str = include_str!("../tests/testkeys/ed25519.pub");
    const OTHER: &str = include_str!("../tests/testkeys/rsa.pub");

    fn signed() -> (Vec<u8>, String) {
        let key = SigningKey::from_openssh("ed25519", KEY.as_bytes(), &Interaction::none()).unwrap();
        let archive = b"age-encryption.org/v1\n... an archive ...".to_vec();
        let signature = key.sign(&archive).unwrap();
        (archive, signature)
    }

    fn allowed(text: &str) -> AllowedSigners {
        AllowedSigners::parse("allowed_signers", text.as_bytes()).unwrap()
    }

    #[test]
    fn a_signature_verifies_for_an_allowed_key_only() {
        let (archive, signature) = signed();
        assert!(signature.starts_with("-----BEGIN SSH SIGNATURE-----"));
        let now = jiff::Timestamp::now();
        let good = allowed(&format!("# team\n\nalice@example.com {PUBLIC}"));
        let signer = good.verify(&archive, signature.as_bytes(), now).unwrap();
        assert_eq!(signer.principals, "alice@example.com");
        assert!(signer.fingerprint.starts_with("SHA256:"));

        let mut changed = archive.clone();
        changed[3] ^= 1;
        let err = good.verify(&changed, signature.as_bytes(), now).unwrap_err();
        assert!(err.to_string().contains("does not match the archive"), "{err}");

        for text in [
            format!("bob@example.com {OTHER}"),
            format!("alice@example.com namespaces=\"git,file\" {PUBLIC}"),
            format!("alice@example.com cert-authority {PUBLIC}"),
            format!("alice@example.com valid-before=\"20200101\" {PUBLIC}"),
            format!("alice@example.com valid-after=\"29991231Z\" {PUBLIC}"),
        ] {
            let err = allowed(&text).verify(&archive, signature.as_bytes(), now).unwrap_err();
            assert!(err.to_string().contains("do not allow"), "{text}: {err}");
        }
        for text in [
            format!("\"alice smith\" namespaces=\"cm*,git\",valid-after=20200101 {PUBLIC}"),
            format!("a,b namespaces=\"!git,cmarchive\" {PUBLIC}"),
        ] {
            allowed(&text).verify(&archive, signature.as_bytes(), now).unwrap();
        }
    }

    #[test]
    fn signatures_for_another_namespace_or_not_ssh_are_refused() {
        let (archive, _) = signed();
        let key = PrivateKey::from_openssh(KEY).unwrap();
        let git = key
            .sign("git", HashAlg::Sha512, &archive)
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap();
        let good = allowed(&format!("alice {PUBLIC}"));
        let err = good
            .verify(&archive, git.as_bytes(), jiff::Timestamp::now())
            .unwrap_err();
        assert!(err.to_string().contains("namespace \"git\""), "{err}");
        let err = good.verify(&archive, b"junk", jiff::Timestamp::now()).unwrap_err();
        assert!(err.to_string().contains("not an SSH signature"), "{err}");
    }

    #[test]
    fn rsa_keys_are_refused_for_signing_with_a_remedy() {
        let rsa = include_str!("../tests/testkeys/rsa");
        let err = SigningKey::from_openssh("rsa", rsa.as_bytes(), &Interaction::none())
            .err()
            .unwrap();
        assert!(err.to_string().contains("ssh-keygen -t ed25519"), "{err}");
    }

    #[test]
    fn broken_lines_are_named() {
        for text in ["alice", "alice ssh-ed25519 !!!", "alice bogus-option {PUBLIC}"] {
            let text = text.replace("{PUBLIC}", PUBLIC.trim());
            let err = AllowedSigners::parse("signers", format!("# c\n{text}\n").as_bytes()).unwrap_err();
            assert!(
                err.to_string().starts_with("signers: line 2 is not an allowed signer"),
                "{err}"
            );
        }
    }
}
