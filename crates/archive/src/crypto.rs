//! Who can open an archive: parsing age recipients and identities from the strings and files people pass, and
//! generating new keys. The age crate does the cryptography; this module only turns text into its types and its
//! failures into [`ArchiveError`]s a person can act on.
//!
//! Supported: X25519 (`age1…`), SSH (`ssh-ed25519`, `ssh-rsa`; private keys plain or passphrase-protected),
//! passphrases (scrypt), passphrase-encrypted age identity files, and age plugins (`age1<name>1…`, resolved as
//! `age-plugin-<name>` on `PATH`).

use crate::error::{ArchiveError, Result};
use age::secrecy::{ExposeSecret, SecretString};
use std::io::{BufRead, BufReader};
use std::sync::Arc;

/// How age may talk to the person at the keyboard: asking for a passphrase (encrypted SSH keys, encrypted
/// identity files, passphrase archives) and showing plugin messages. The library never touches the terminal
/// itself; the CLI plugs in prompts, tests plug in fixed answers.
#[derive(Clone, Default)]
pub struct Interaction {
    passphrase: Option<Arc<PassphrasePrompt>>,
    message: Option<Arc<MessageSink>>,
}

/// Asks for a passphrase, given what it is for; `None` when nobody can answer.
type PassphrasePrompt = dyn Fn(&str) -> Option<SecretString> + Send + Sync;
/// Shows a message to the person.
type MessageSink = dyn Fn(&str) + Send + Sync;

impl Interaction {
    /// No interaction: every passphrase request fails, messages are dropped.
    pub fn none() -> Self {
        Interaction::default()
    }

    /// Answers passphrase requests with `ask(description)`; `None` means "cannot ask".
    pub fn with_passphrase_prompt(
        mut self,
        ask: impl Fn(&str) -> Option<SecretString> + Send + Sync + 'static,
    ) -> Self {
        self.passphrase = Some(Arc::new(ask));
        self
    }

    /// Shows plugin messages ("touch your YubiKey") with `show`.
    pub fn with_messages(mut self, show: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.message = Some(Arc::new(show));
        self
    }

    pub(crate) fn ask_passphrase(&self, description: &str) -> Option<SecretString> {
        self.passphrase.as_ref().and_then(|ask| ask(description))
    }
}

impl age::Callbacks for Interaction {
    fn display_message(&self, message: &str) {
        if let Some(show) = &self.message {
            show(message);
        }
    }

    fn confirm(&self, _message: &str, _yes: &str, _no: Option<&str>) -> Option<bool> {
        None
    }

    fn request_public_string(&self, _description: &str) -> Option<String> {
        None
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        self.ask_passphrase(description)
    }
}

/// The recipients an archive is encrypted to. Either public keys (any mix of kinds) or one passphrase.
#[derive(Default)]
pub struct Recipients {
    keys: Vec<Box<dyn age::Recipient + Send>>,
    plugins: Vec<age::plugin::Recipient>,
    plugin_defaults: Vec<age::plugin::Identity>,
    passphrase: Option<age::scrypt::Recipient>,
    interaction: Interaction,
}

impl Recipients {
    /// No recipients yet; `interaction` is what plugins may use to talk to the person.
    pub fn new(interaction: Interaction) -> Self {
        Recipients {
            interaction,
            ..Recipients::default()
        }
    }

    /// A passphrase recipient (scrypt with age's default work factor, about one second on this machine: 2^20, the
    /// readers' [`MAX_SCRYPT_WORK_FACTOR`], takes several seconds even on fast machines).
    pub fn passphrase(passphrase: SecretString) -> Self {
        Recipients {
            passphrase: Some(age::scrypt::Recipient::new(passphrase)),
            ..Recipients::default()
        }
    }

    /// A passphrase recipient with scrypt work factor `2^log_n`; low values are for tests only.
    pub fn passphrase_with_work_factor(passphrase: SecretString, log_n: u8) -> Self {
        let mut recipient = age::scrypt::Recipient::new(passphrase);
        recipient.set_work_factor(log_n);
        Recipients {
            passphrase: Some(recipient),
            ..Recipients::default()
        }
    }

    /// Adds one recipient given as text: `age1…`, `ssh-ed25519 …`, `ssh-rsa …` or a plugin recipient.
    pub fn add(&mut self, text: &str) -> Result<()> {
        let text = text.trim();
        if let Ok(key) = text.parse::<age::x25519::Recipient>() {
            self.keys.push(Box::new(key));
            return Ok(());
        }
        match text.parse::<age::ssh::Recipient>() {
            Ok(key) => {
                self.keys.push(Box::new(key));
                return Ok(());
            }
            Err(age::ssh::ParseRecipientKeyError::RsaModulusTooSmall) => {
                return Err(ArchiveError::Encrypt(
                    "RSA keys shorter than 2048 bits are not accepted".into(),
                ));
            }
            Err(age::ssh::ParseRecipientKeyError::RsaModulusTooLarge) => {
                return Err(ArchiveError::Encrypt(
                    "RSA keys longer than 4096 bits are not accepted".into(),
                ));
            }
            Err(age::ssh::ParseRecipientKeyError::Unsupported(kind)) => {
                return Err(ArchiveError::Encrypt(format!(
                    "SSH key type {kind} is not supported by age; use ssh-ed25519 or ssh-rsa"
                )));
            }
            Err(_) => {}
        }
        if let Ok(plugin) = text.parse::<age::plugin::Recipient>() {
            self.plugins.push(plugin);
            return Ok(());
        }
        match key_shape(text) {
            Some(shape @ (KeyShape::SecretKey | KeyShape::SshPrivateKey)) => Err(secret_as_recipient(shape)),
            _ => Err(ArchiveError::InvalidRecipient(shorten(text))),
        }
    }

    /// Adds every recipient of a recipients file (one per line; blank lines and `#` comments are skipped).
    pub fn add_file(&mut self, file_name: &str, contents: &[u8]) -> Result<()> {
        for (index, line) in BufReader::new(contents).lines().enumerate() {
            let line = line.map_err(|_| ArchiveError::InvalidRecipientsFile {
                file: file_name.into(),
                line: index + 1,
            })?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.add(line).map_err(|error| match error {
                ArchiveError::SecretKeyAsRecipient { hint, .. } => ArchiveError::SecretKeyAsRecipient {
                    location: Some(format!("{file_name}: line {}", index + 1)),
                    hint,
                },
                _ => ArchiveError::InvalidRecipientsFile {
                    file: file_name.into(),
                    line: index + 1,
                },
            })?;
        }
        Ok(())
    }

    /// Adds the default recipient of the plugin `age-plugin-<name>` (e.g. a hardware key the plugin knows).
    pub fn add_plugin_default(&mut self, name: &str) -> Result<()> {
        let identity =
            age::plugin::Identity::default_for_plugin(name).map_err(|e| ArchiveError::Plugin(one_line(&e)))?;
        self.plugin_defaults.push(identity);
        Ok(())
    }

    /// Whether nobody could open an archive encrypted to this set.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.plugins.is_empty() && self.plugin_defaults.is_empty() && self.passphrase.is_none()
    }

    /// Whether this set is a passphrase.
    pub fn is_passphrase(&self) -> bool {
        self.passphrase.is_some()
    }

    /// Builds the age encryptor (resolving plugins on `PATH`).
    pub(crate) fn encryptor(&self) -> Result<age::Encryptor> {
        if let Some(passphrase) = &self.passphrase {
            if !self.keys.is_empty() || !self.plugins.is_empty() || !self.plugin_defaults.is_empty() {
                return Err(ArchiveError::MixedPassphrase);
            }
            return age::Encryptor::with_recipients(std::iter::once(passphrase as &dyn age::Recipient))
                .map_err(|e| ArchiveError::Encrypt(one_line(&e)));
        }
        let mut plugins: Vec<age::plugin::RecipientPluginV1<Interaction>> = Vec::new();
        let mut names: Vec<&str> = self.plugins.iter().map(|p| p.plugin()).collect();
        names.extend(self.plugin_defaults.iter().map(|p| p.plugin()));
        names.sort_unstable();
        names.dedup();
        for name in names {
            let plugin = age::plugin::RecipientPluginV1::new(
                name,
                &self.plugins,
                &self.plugin_defaults,
                self.interaction.clone(),
            )
            .map_err(|e| ArchiveError::Plugin(one_line(&e)))?;
            plugins.push(plugin);
        }
        if self.keys.is_empty() && plugins.is_empty() {
            return Err(ArchiveError::Encrypt("no recipients".into()));
        }
        let all = self
            .keys
            .iter()
            .map(|k| k.as_ref() as &dyn age::Recipient)
            .chain(plugins.iter().map(|p| p as &dyn age::Recipient));
        age::Encryptor::with_recipients(all).map_err(|e| match e {
            age::EncryptError::MixedRecipientAndPassphrase => ArchiveError::MixedPassphrase,
            other => ArchiveError::Encrypt(one_line(&other)),
        })
    }
}

/// The largest scrypt work factor (log2 N) a reader accepts unless told otherwise: 2^20 takes 1 GiB of memory and a
/// few seconds, room for archives other age tools wrote with a measured factor. A hostile file could otherwise ask
/// for many gigabytes and minutes before its passphrase is even checked.
pub const MAX_SCRYPT_WORK_FACTOR: u8 = 20;

/// The keys that may open an archive, plus where a passphrase comes from if the archive turns out to be
/// passphrase-encrypted.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity>>,
    passphrase: Option<SecretString>,
    interaction: Interaction,
    max_scrypt_work_factor: u8,
}

impl Default for Identities {
    fn default() -> Self {
        Identities {
            keys: Vec::new(),
            passphrase: None,
            interaction: Interaction::default(),
            max_scrypt_work_factor: MAX_SCRYPT_WORK_FACTOR,
        }
    }
}

impl Identities {
    /// No keys yet; `interaction` answers passphrase questions (encrypted keys, passphrase archives).
    pub fn new(interaction: Interaction) -> Self {
        Identities {
            interaction,
            ..Identities::default()
        }
    }

    /// Adds every identity in a key file: an age identity file (several `AGE-SECRET-KEY-1…` and plugin lines,
    /// `#` comments), an OpenSSH private key (a passphrase-protected one is decrypted now, asking through the
    /// [`Interaction`]) or a passphrase-encrypted age identity file. Returns how many keys were added.
    pub fn add_file(&mut self, file_name: &str, contents: &[u8]) -> Result<usize> {
        let invalid = |reason: String| ArchiveError::InvalidIdentity {
            file: file_name.into(),
            reason,
        };
        let head = String::from_utf8_lossy(&contents[..contents.len().min(64)]).into_owned();
        let head = head.trim_start();

        if head.starts_with("age-encryption.org/") || head.starts_with("-----BEGIN AGE ENCRYPTED FILE-----") {
            let identity = age::encrypted::Identity::from_buffer(
                age::armor::ArmoredReader::new(std::io::Cursor::new(contents.to_vec())),
                Some(file_name.to_owned()),
                self.interaction.clone(),
                Some(self.max_scrypt_work_factor),
            )
            .map_err(|e| invalid(format!("cannot read the encrypted identity file: {}", one_line(&e))))?
            .ok_or_else(|| {
                invalid("the identity file is encrypted to keys, not a passphrase; decrypt it first".into())
            })?;
            self.keys.push(Box::new(identity));
            return Ok(1);
        }

        if head.starts_with("-----BEGIN") {
            let key = age::ssh::Identity::from_buffer(contents, Some(file_name.to_owned()))
                .map_err(|e| invalid(format!("not an SSH private key age can use: {e}")))?;
            let key = match key {
                age::ssh::Identity::Unencrypted(_) => key,
                age::ssh::Identity::Encrypted(encrypted) => {
                    let passphrase = self
                        .interaction
                        .ask_passphrase(&format!("Passphrase for SSH key {file_name}"))
                        .ok_or_else(|| {
                            invalid("the SSH key is passphrase-protected and no passphrase can be asked for here (run on a terminal)".into())
                        })?;
                    let decrypted = encrypted
                        .decrypt(passphrase)
                        .map_err(|_| invalid("wrong passphrase for the SSH key".into()))?;
                    age::ssh::Identity::from(decrypted)
                }
                age::ssh::Identity::Unsupported(unsupported) => {
                    return Err(invalid(format!(
                        "unsupported SSH key: {unsupported:?}; use an ed25519 or RSA key"
                    )));
                }
            };
            self.keys.push(Box::new(key));
            return Ok(1);
        }

        let file = age::IdentityFile::from_buffer(contents)
            .map_err(|e| match public_key_line(contents) {
                Some(line) => invalid(format!(
                    "line {line} is a public key (a recipient), which can encrypt but not open an archive; pass the \
                     secret key it belongs to (the AGE-SECRET-KEY-1… file `cmarchive keygen` wrote, or the SSH \
                     private key, not its .pub)"
                )),
                None => invalid(format!("{e}; expected AGE-SECRET-KEY-1… lines or an SSH private key")),
            })?
            .with_callbacks(self.interaction.clone());
        let keys = file.into_identities().map_err(|e| ArchiveError::Plugin(one_line(&e)))?;
        if keys.is_empty() {
            return Err(invalid("no identities in the file".into()));
        }
        let count = keys.len();
        self.keys.extend(keys.into_iter().map(|k| k as Box<dyn age::Identity>));
        Ok(count)
    }

    /// Adds one identity given as text (an `AGE-SECRET-KEY-1…` line).
    pub fn add_key(&mut self, text: &str) -> Result<()> {
        let key = text
            .trim()
            .parse::<age::x25519::Identity>()
            .map_err(|_| ArchiveError::InvalidIdentity {
                file: "key".into(),
                reason: "not an age secret key".into(),
            })?;
        self.keys.push(Box::new(key));
        Ok(())
    }

    /// Adds the default identity of the plugin `age-plugin-<name>`.
    pub fn add_plugin_default(&mut self, name: &str) -> Result<()> {
        let identity =
            age::plugin::Identity::default_for_plugin(name).map_err(|e| ArchiveError::Plugin(one_line(&e)))?;
        let plugin = age::plugin::IdentityPluginV1::new(name, &[identity], self.interaction.clone())
            .map_err(|e| ArchiveError::Plugin(one_line(&e)))?;
        self.keys.push(Box::new(plugin));
        Ok(())
    }

    /// The passphrase to use if the archive is passphrase-encrypted (otherwise the [`Interaction`] is asked).
    pub fn set_passphrase(&mut self, passphrase: SecretString) {
        self.passphrase = Some(passphrase);
    }

    /// Caps the scrypt work factor (log2 N) accepted from passphrase archives and passphrase-encrypted identity
    /// files; the default is [`MAX_SCRYPT_WORK_FACTOR`]. A file asking for more is refused before any work is done.
    pub fn set_max_scrypt_work_factor(&mut self, log_n: u8) {
        self.max_scrypt_work_factor = log_n;
    }

    /// Number of keys (not counting a passphrase).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The keys, as age wants them.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity)
    }

    /// The scrypt identity for a passphrase archive whose header asks for work factor `work_factor` (when it could
    /// be read): the given passphrase, else one asked for. A work factor over the cap, or one whose memory this
    /// process cannot get, is an error before anything is asked or computed (scrypt's allocation failing would
    /// abort the process).
    pub(crate) fn passphrase_identity(&self, work_factor: Option<u8>) -> Result<age::scrypt::Identity> {
        if let Some(log_n) = work_factor {
            if log_n > self.max_scrypt_work_factor {
                return Err(ArchiveError::ExcessiveWork {
                    required: log_n,
                    max: self.max_scrypt_work_factor,
                });
            }
            // scrypt with r = 8 takes 128 * 8 * 2^log_n bytes.
            let bytes = usize::try_from(1u128 << (10 + u32::from(log_n.min(100)))).ok();
            if bytes.is_none_or(|bytes| Vec::<u8>::new().try_reserve_exact(bytes).is_err()) {
                return Err(ArchiveError::ScryptMemory { log_n });
            }
        }
        let passphrase = match &self.passphrase {
            Some(p) => p.clone(),
            None => self
                .interaction
                .ask_passphrase("Passphrase of the archive")
                .ok_or(ArchiveError::PassphraseRequired)?,
        };
        let mut identity = age::scrypt::Identity::new(passphrase);
        identity.set_max_work_factor(self.max_scrypt_work_factor);
        Ok(identity)
    }
}

/// A freshly generated X25519 key pair.
pub struct GeneratedKey {
    /// The identity file's full text, in age-keygen's layout (comment lines, then the secret key).
    pub identity_file: SecretString,
    /// The public key (`age1…`) to pass to `-r`.
    pub recipient: String,
}

/// Generates a new X25519 identity, formatted like age-keygen's output.
pub fn generate_key(created: jiff::Timestamp) -> GeneratedKey {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = format!(
        "# created: {}\n# public key: {recipient}\n{}\n",
        created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        identity.to_string().expose_secret()
    );
    GeneratedKey {
        identity_file: SecretString::from(text),
        recipient,
    }
}

/// The public key of every X25519 identity in an identity file (age-keygen -y).
pub fn recipients_of_identity_file(contents: &[u8]) -> Vec<String> {
    BufReader::new(contents)
        .lines()
        .map_while(std::result::Result::ok)
        .filter_map(|line| line.trim().parse::<age::x25519::Identity>().ok())
        .map(|identity| identity.to_public().to_string())
        .collect()
}

/// What a key given in the wrong place is, recognized only to say so (never to use it): a secret key where a
/// recipient belongs, or a public key where an identity does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyShape {
    /// An age secret key (`AGE-SECRET-KEY-1…`) or a plugin identity (`AGE-PLUGIN-…`).
    SecretKey,
    /// A PEM private key (`-----BEGIN OPENSSH PRIVATE KEY-----` and the like).
    SshPrivateKey,
    /// Something `-r` accepts: `age1…`, `ssh-ed25519 …`, `ssh-rsa …` or a plugin recipient.
    PublicKey,
}

/// The shape of `text` (a flag's value, one line of a file, or a whole file pasted as a value), if it is a key at
/// all. Blank and `#` lines are skipped, and a secret key on any line wins: an identity file pasted where its name
/// belongs starts with comments, and its key must be recognized so that it is never echoed. age reads bech32 in
/// either case, so the secret-key prefix is matched in either case too (the post-quantum `AGE-SECRET-KEY-PQ-1…`
/// included).
pub fn key_shape(text: &str) -> Option<KeyShape> {
    let lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first = lines.clone().next()?;
    for line in lines {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("AGE-SECRET-KEY-") || line.starts_with("AGE-PLUGIN-") {
            return Some(KeyShape::SecretKey);
        }
        if upper.starts_with("-----BEGIN") && upper.contains("PRIVATE KEY") {
            return Some(KeyShape::SshPrivateKey);
        }
    }
    let public = first.parse::<age::x25519::Recipient>().is_ok()
        || first.parse::<age::ssh::Recipient>().is_ok()
        || first.parse::<age::plugin::Recipient>().is_ok();
    public.then_some(KeyShape::PublicKey)
}

/// The error for a private key given as a recipient, naming no part of the key.
fn secret_as_recipient(shape: KeyShape) -> ArchiveError {
    ArchiveError::SecretKeyAsRecipient {
        location: None,
        hint: match shape {
            KeyShape::SshPrivateKey => "the .pub file next to it",
            _ => "`cmarchive keygen` printed it, `age-keygen -y KEY_FILE` prints it again",
        },
    }
}

/// The 1-based number of the first line of an identity file that is a public key, if one is.
fn public_key_line(contents: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(contents)
        .lines()
        .position(|line| key_shape(line) == Some(KeyShape::PublicKey))
        .map(|index| index + 1)
}

/// age's messages can span lines (error + hint) and wrap names in Unicode isolation marks (U+2068, U+2069: its
/// localization does, and terminals and logs show them as stray bytes); cmarchive prints one plain line per error.
pub(crate) fn one_line(error: &dyn std::fmt::Display) -> String {
    error
        .to_string()
        .replace(['\u{2068}', '\u{2069}'], "")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Echoes at most the start of something that may be a secret pasted into the wrong flag.
fn shorten(text: &str) -> String {
    if text.chars().count() > 24 {
        text.chars().take(20).collect::<String>() + "…"
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_back() {
        let key = generate_key(jiff::Timestamp::UNIX_EPOCH);
        let mut ids = Identities::new(Interaction::none());
        assert_eq!(
            ids.add_file("key.txt", key.identity_file.expose_secret().as_bytes())
                .unwrap(),
            1
        );
        let publics = recipients_of_identity_file(key.identity_file.expose_secret().as_bytes());
        assert_eq!(publics, vec![key.recipient.clone()]);
        let mut r = Recipients::new(Interaction::none());
        r.add(&key.recipient).unwrap();
        assert!(!r.is_empty());
    }

    #[test]
    fn recipients_file_skips_comments_and_reports_line_numbers() {
        let a = generate_key(jiff::Timestamp::UNIX_EPOCH).recipient;
        let text = format!("# team\n\n{a}\n  # indented comment\nnot-a-key\n");
        let mut r = Recipients::new(Interaction::none());
        let err = r.add_file("team.txt", text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::InvalidRecipientsFile { line: 5, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("not-a-key"));
    }

    #[test]
    fn passphrase_cannot_mix_with_keys() {
        let mut r = Recipients::passphrase_with_work_factor(SecretString::from("pw".to_owned()), 2);
        r.add(&generate_key(jiff::Timestamp::UNIX_EPOCH).recipient).unwrap();
        assert!(matches!(r.encryptor(), Err(ArchiveError::MixedPassphrase)));
    }

    #[test]
    fn key_shapes_are_told_apart() {
        let key = generate_key(jiff::Timestamp::UNIX_EPOCH);
        let secret = secret_line(&key);
        assert_eq!(key_shape(&secret), Some(KeyShape::SecretKey));
        assert_eq!(key_shape("AGE-PLUGIN-YUBIKEY-1QQQQQQ"), Some(KeyShape::SecretKey));
        assert_eq!(
            key_shape("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n"),
            Some(KeyShape::SshPrivateKey)
        );
        assert_eq!(key_shape(&format!("  {}\n", key.recipient)), Some(KeyShape::PublicKey));
        // An OpenSSH ed25519 public key line: the key type and a curve point (here the base point: 0x58, then
        // 31 times 0x66), each length-prefixed.
        let mut point = [0x66u8; 32];
        point[0] = 0x58;
        let mut blob = Vec::new();
        for part in [&b"ssh-ed25519"[..], &point[..]] {
            blob.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
            blob.extend_from_slice(part);
        }
        use base64::Engine;
        let ssh = format!(
            "ssh-ed25519 {} alice",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        assert_eq!(key_shape(&ssh), Some(KeyShape::PublicKey));
        // Forms a secret key is still recognized in (and so withheld from error messages): lower case, which
        // age accepts, the post-quantum prefix, and a whole identity file pasted as a value, comments first.
        let pasted_file = key.identity_file.expose_secret().to_owned();
        let pq = format!("AGE-SECRET-KEY-PQ-1{}", &secret["AGE-SECRET-KEY-1".len()..]);
        for secret in [secret.to_lowercase(), pq, pasted_file] {
            assert_eq!(key_shape(&secret), Some(KeyShape::SecretKey), "{secret}");
        }
        for other in [
            "",
            "bogus",
            "-----BEGIN CERTIFICATE-----",
            "# public key: age1",
            "age-plugin-yubikey",
        ] {
            assert_eq!(key_shape(other), None, "{other}");
        }
    }

    /// The `AGE-SECRET-KEY-1…` line of a generated identity file.
    fn secret_line(key: &GeneratedKey) -> String {
        let file = key.identity_file.expose_secret();
        file.lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .unwrap()
            .to_owned()
    }

    #[test]
    fn secret_keys_given_as_recipients_are_named_but_never_echoed() {
        let key = generate_key(jiff::Timestamp::UNIX_EPOCH);
        let secret = secret_line(&key);
        let body = &secret["AGE-SECRET-KEY-1".len()..][..8];
        let mut r = Recipients::new(Interaction::none());
        let err = r.add(&secret).unwrap_err();
        assert!(
            matches!(err, ArchiveError::SecretKeyAsRecipient { location: None, .. }),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("a secret key was given as a recipient"),
            "{err}"
        );
        assert!(!err.to_string().contains(body), "{err}");
        // The identity file itself passed as a recipients file: its comments are skipped, the key's line named.
        let err = r
            .add_file("key.txt", key.identity_file.expose_secret().as_bytes())
            .unwrap_err();
        assert!(err.to_string().starts_with("key.txt: line 3 is a secret key"), "{err}");
        assert!(!err.to_string().contains(body), "{err}");
        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        let err = r.add_file("id_ed25519", ssh.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("id_ed25519: line 1 is a secret key"), "{err}");
        assert!(err.to_string().contains(".pub"), "{err}");
        assert!(r.is_empty());
    }

    #[test]
    fn a_recipients_file_given_as_identities_names_the_public_key_line() {
        let key = generate_key(jiff::Timestamp::UNIX_EPOCH);
        let text = format!("# team\n{}\n", key.recipient);
        let mut ids = Identities::new(Interaction::none());
        let err = ids.add_file("team.txt", text.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("team.txt: line 2 is a public key (a recipient)"),
            "{err}"
        );
        // Other junk keeps age's own message.
        let err = ids.add_file("junk.txt", b"bogus\n").unwrap_err();
        assert!(err.to_string().contains("expected AGE-SECRET-KEY-1"), "{err}");
    }

    #[test]
    fn one_line_drops_line_breaks_and_isolation_marks() {
        let message = "Could not find '\u{2068}age-plugin-x\u{2069}' on the PATH.\n  Have you installed it?\n";
        assert_eq!(
            one_line(&message),
            "Could not find 'age-plugin-x' on the PATH. Have you installed it?"
        );
    }

    #[test]
    fn missing_plugin_is_a_clear_error() {
        // A syntactically valid plugin recipient for a plugin that is not installed.
        let mut r = Recipients::new(Interaction::none());
        r.add_plugin_default("cmarchivetest").unwrap();
        let err = r.encryptor().err().expect("plugin must not resolve");
        assert!(matches!(err, ArchiveError::Plugin(_)), "{err}");
        assert!(err.to_string().contains("'age-plugin-cmarchivetest'"), "{err}");
    }
}
