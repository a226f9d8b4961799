//! What the keystores of `spec.keystores` hold, opened with the password their Certificate names: cert-manager
//! encodes them again (fresh salts, so new bytes) from the same `tls.key`, `tls.crt` and `ca.crt`, so whether two
//! keystores are "the same" is a question of their contents, never of their bytes.
//!
//! cert-manager writes `keystore.p12` / `keystore.jks` with one private key and its chain (the leaf first) and
//! `truststore.p12` / `truststore.jks` with the CA certificates of `ca.crt`; PKCS#12 in any of its profiles
//! (LegacyRC2, LegacyDES, Modern2023), JKS as keystore-go writes it.

use crate::certmanager::keys::{PublicKey, public_key_of_pkcs8};
use crate::certmanager::kinds::{Kind, classify_key};
use crate::object::ObjectKey;
use foldhash::{HashMap, HashMapExt as _};
use serde_json::Value;

/// The two container formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `keystore.p12`, `truststore.p12`.
    Pkcs12,
    /// `keystore.jks`, `truststore.jks`.
    Jks,
}

/// One of the four keystore data keys of a Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeystoreKey {
    /// Its format.
    pub format: Format,
    /// A truststore (CA certificates only) rather than a keystore (key and chain).
    pub trust: bool,
}

impl KeystoreKey {
    /// The keystore a Secret data key names, if it is one of the four cert-manager writes.
    pub fn of(data_key: &str) -> Option<KeystoreKey> {
        let (format, trust) = match data_key {
            "keystore.p12" => (Format::Pkcs12, false),
            "truststore.p12" => (Format::Pkcs12, true),
            "keystore.jks" => (Format::Jks, false),
            "truststore.jks" => (Format::Jks, true),
            _ => return None,
        };
        Some(KeystoreKey { format, trust })
    }
}

/// What a keystore holds, in comparable form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// The DER of the certificate the private key belongs to (the chain's first), if there is a key entry.
    pub leaf: Option<Vec<u8>>,
    /// The public half of the private key, if there is one.
    pub key: Option<PublicKey>,
    /// The DER of every trusted (CA) certificate, sorted.
    pub trusted: Vec<Vec<u8>>,
}

/// Opens `bytes` as `format` with `password`; an error says why (wrong password, damaged, unsupported).
pub fn open(format: Format, bytes: &[u8], password: &[u8]) -> Result<Contents, String> {
    let mut contents = match format {
        Format::Pkcs12 => open_pkcs12(bytes, password)?,
        Format::Jks => open_jks(bytes, password)?,
    };
    contents.trusted.sort();
    Ok(contents)
}

fn open_pkcs12(bytes: &[u8], password: &[u8]) -> Result<Contents, String> {
    let password = std::str::from_utf8(password).map_err(|_| "the password is not UTF-8".to_owned())?;
    // Relaxed: a truststore's certificates carry no key to link to and must not be dropped for it.
    let store = p12_keystore::KeyStore::from_pkcs12(bytes, password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
        .map_err(|e| format!("PKCS#12: {e}"))?;
    let mut contents = Contents::default();
    for (_, entry) in store.entries() {
        match entry {
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                contents.leaf = chain.certs().first().map(|c| c.as_der().to_vec());
                contents.key = Some(public_key_of_pkcs8(chain.key().as_der())?);
            }
            p12_keystore::KeyStoreEntry::Certificate(certificate) => {
                contents.trusted.push(certificate.as_der().to_vec())
            }
            p12_keystore::KeyStoreEntry::Secret(_) => {}
        }
    }
    Ok(contents)
}

fn open_jks(bytes: &[u8], password: &[u8]) -> Result<Contents, String> {
    let mut store = jks::KeyStore::new();
    store.load(bytes, password).map_err(|e| format!("JKS: {e}"))?;
    let mut contents = Contents::default();
    for alias in store.aliases() {
        if store.is_private_key_entry(&alias) {
            let entry = store
                .get_private_key_entry(&alias, password)
                .map_err(|e| format!("JKS key {alias:?}: {e}"))?;
            contents.leaf = entry.certificate_chain.first().map(|c| c.content.clone());
            contents.key = Some(public_key_of_pkcs8(&entry.private_key)?);
        } else if store.is_trusted_certificate_entry(&alias) {
            let entry = store
                .get_trusted_certificate_entry(&alias)
                .map_err(|e| format!("JKS certificate {alias:?}: {e}"))?;
            contents.trusted.push(entry.certificate.content);
        }
    }
    Ok(contents)
}

/// The passwords one TLS Secret's keystores are encrypted with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Passwords {
    /// `spec.keystores.pkcs12`'s.
    pub pkcs12: Option<Vec<u8>>,
    /// `spec.keystores.jks`'s.
    pub jks: Option<Vec<u8>>,
}

impl Passwords {
    /// The password of `format`, if known.
    pub fn of(&self, format: Format) -> Option<&[u8]> {
        match format {
            Format::Pkcs12 => self.pkcs12.as_deref(),
            Format::Jks => self.jks.as_deref(),
        }
    }
}

/// A password Secret's use, found from `(namespace, name)`: the TLS Secret whose keystore it opens, the data key
/// holding the password, and the keystore's format.
type PasswordUse = (String, String, Format);

/// Keystore passwords by TLS Secret `(namespace, name)`, from the Certificates that ask for keystores and the
/// Secrets their `passwordSecretRef`s name (or the literal `password` of v1.17 and later).
#[derive(Clone, Debug, Default)]
pub struct PasswordBook(HashMap<(String, String), Passwords>);

impl PasswordBook {
    /// Reads the objects as stored (JSON bytes by identity); only Certificates and Secrets are parsed.
    pub fn from_stored<'a>(objects: impl IntoIterator<Item = (&'a ObjectKey, &'a [u8])> + Clone) -> PasswordBook {
        let mut wanted: HashMap<(String, String), Vec<PasswordUse>> = HashMap::new();
        let mut book = PasswordBook::default();
        for (key, bytes) in objects.clone() {
            // Most Certificates ask for no keystore: they are not parsed at all.
            if classify_key(key) != Kind::Certificate || memchr::memmem::find(bytes, b"\"keystores\"").is_none() {
                continue;
            }
            let Ok(certificate) = serde_json::from_slice::<Value>(bytes) else {
                continue;
            };
            let namespace = key.namespace.clone().unwrap_or_default();
            let Some(secret) = certificate.pointer("/spec/secretName").and_then(Value::as_str) else {
                continue;
            };
            for (field, format) in [("pkcs12", Format::Pkcs12), ("jks", Format::Jks)] {
                let Some(keystore) = certificate.pointer(&format!("/spec/keystores/{field}")) else {
                    continue;
                };
                let tls = (namespace.clone(), secret.to_owned());
                if let Some(literal) = keystore.get("password").and_then(Value::as_str) {
                    book.set(tls, format, literal.as_bytes().to_vec());
                } else if let (Some(name), Some(data_key)) = (
                    keystore.pointer("/passwordSecretRef/name").and_then(Value::as_str),
                    keystore.pointer("/passwordSecretRef/key").and_then(Value::as_str),
                ) {
                    wanted.entry((namespace.clone(), name.to_owned())).or_default().push((
                        tls.1,
                        data_key.to_owned(),
                        format,
                    ));
                }
            }
        }
        if wanted.is_empty() {
            return book;
        }
        for (key, bytes) in objects {
            if classify_key(key) != Kind::Secret {
                continue;
            }
            let namespace = key.namespace.clone().unwrap_or_default();
            let Some(uses) = wanted.get(&(namespace.clone(), key.name.clone())) else {
                continue;
            };
            let Ok(secret) = serde_json::from_slice::<Value>(bytes) else {
                continue;
            };
            for (tls, data_key, format) in uses {
                if let Some(password) = crate::certmanager::certinfo::secret_data(&secret, data_key) {
                    book.set((namespace.clone(), tls.clone()), *format, password);
                }
            }
        }
        book
    }

    fn set(&mut self, tls: (String, String), format: Format, password: Vec<u8>) {
        let passwords = self.0.entry(tls).or_default();
        match format {
            Format::Pkcs12 => passwords.pkcs12 = Some(password),
            Format::Jks => passwords.jks = Some(password),
        }
    }

    /// The passwords of the keystores in TLS Secret `namespace/name`.
    pub fn of(&self, namespace: &str, name: &str) -> Option<&Passwords> {
        self.0.get(&(namespace.to_owned(), name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(objects: &[Value]) -> Vec<(ObjectKey, Vec<u8>)> {
        objects
            .iter()
            .map(|o| (ObjectKey::of(o).unwrap(), serde_json::to_vec(o).unwrap()))
            .collect()
    }

    #[test]
    fn passwords_come_from_the_named_secret_or_the_literal() {
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        let objects = stored(&[
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                   "metadata": {"namespace": "team-b", "name": "keystore"},
                   "spec": {"secretName": "keystore-tls", "keystores": {
                       "pkcs12": {"create": true, "passwordSecretRef": {"name": "pw", "key": "p12"}},
                       "jks": {"create": true, "password": "literal"}}}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "team-b", "name": "pw"},
                   "data": {"p12": b64("from-secret")}}),
            // The same name in another namespace is another Secret.
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "team-c", "name": "pw"},
                   "data": {"p12": b64("wrong")}}),
        ]);
        let book = PasswordBook::from_stored(objects.iter().map(|(k, b)| (k, b.as_slice())));
        let passwords = book.of("team-b", "keystore-tls").expect("found");
        assert_eq!(passwords.of(Format::Pkcs12), Some(&b"from-secret"[..]));
        assert_eq!(passwords.of(Format::Jks), Some(&b"literal"[..]));
        assert!(book.of("team-c", "keystore-tls").is_none());
    }

    #[test]
    fn the_four_data_keys() {
        assert_eq!(
            KeystoreKey::of("truststore.jks"),
            Some(KeystoreKey {
                format: Format::Jks,
                trust: true
            })
        );
        assert_eq!(KeystoreKey::of("tls.crt"), None);
    }

    #[test]
    fn garbage_and_a_wrong_password_are_errors() {
        assert!(open(Format::Pkcs12, b"not a keystore", b"pw").is_err());
        assert!(open(Format::Jks, b"not a keystore", b"pw").is_err());
    }
}
