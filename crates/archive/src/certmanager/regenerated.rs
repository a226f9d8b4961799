//! Secret fields cert-manager writes again from the certificate and key it keeps: the keystores of
//! `spec.keystores` (PKCS#12 and JKS carry fresh salts every time cert-manager encodes them) and `ca.crt`. Once
//! cert-manager has written such a field in the target, a restore that applies the archived bytes meets a
//! field-manager conflict nobody can judge by bytes. Judged by what they hold instead: a keystore opened with its
//! Certificate's password that holds the archived leaf and key, a truststore that holds the archived `ca.crt`, and
//! a `ca.crt` with the same certificates are left to cert-manager. Any other difference stays a conflict, and so
//! does a keystore that cannot be opened (no password known, damaged).

use crate::certmanager::certinfo::secret_data;
use crate::certmanager::keys::public_key_of_private_pem;
use crate::certmanager::keystores::{self, KeystoreKey, Passwords};
use serde_json::Value;

/// Data keys cert-manager derives from `tls.crt`, `tls.key` and the issuing CA.
pub const REGENERATED_KEYS: [&str; 5] = [
    "keystore.p12",
    "truststore.p12",
    "keystore.jks",
    "truststore.jks",
    "ca.crt",
];

/// The data keys of `archived` to leave to cert-manager, given the fields a server-side apply conflicted on (as
/// the API server names them, `.data.keystore.p12`), the Secret as stored, and the passwords of its keystores;
/// `None` when any conflict is a real difference (another certificate or key, another CA, a field cert-manager
/// does not derive) or cannot be judged.
pub fn left_to_cert_manager(
    conflicts: &[String],
    archived: &Value,
    stored: &Value,
    passwords: Option<&Passwords>,
) -> Option<Vec<String>> {
    if conflicts.is_empty() {
        return None;
    }
    // The same leaf and key in the Secret itself, first: everything else is derived from them.
    for key in ["tls.crt", "tls.key"] {
        let ours = secret_data(archived, key).filter(|v| !v.is_empty())?;
        if secret_data(stored, key)? != ours {
            return None;
        }
    }
    let leaf = certificates(&secret_data(archived, "tls.crt")?).into_iter().next()?;
    let ca = secret_data(archived, "ca.crt").map(|pem| sorted(certificates(&pem)));
    let mut keys = Vec::new();
    for field in conflicts {
        let key = field.strip_prefix(".data.")?;
        if !REGENERATED_KEYS.contains(&key) {
            return None;
        }
        let same = match KeystoreKey::of(key) {
            // ca.crt is plain PEM: the same certificates, however they are written.
            None => sorted(certificates(&secret_data(stored, key)?)) == *ca.as_ref()?,
            Some(keystore) => {
                let password = passwords?.of(keystore.format)?;
                let held = keystores::open(keystore.format, &secret_data(stored, key)?, password).ok()?;
                if keystore.trust {
                    held.trusted == *ca.as_ref()? && held.key.is_none()
                } else {
                    let archived_key = public_key_of_private_pem(&secret_data(archived, "tls.key")?).ok()?;
                    held.leaf.as_ref() == Some(&leaf) && held.key == Some(archived_key)
                }
            }
        };
        if !same {
            return None;
        }
        keys.push(key.to_owned());
    }
    Some(keys)
}

/// The DER of every PEM certificate in `pem`.
fn certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.contents)
        .collect()
}

fn sorted(mut ders: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    ders.sort();
    ders
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    /// A CA, a leaf it signed, and the leaf's key: what cert-manager encodes keystores from.
    struct Issued {
        ca: rcgen::Certificate,
        leaf: rcgen::Certificate,
        key: rcgen::KeyPair,
    }

    fn issue(name: &str) -> Issued {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        Issued { ca, leaf, key }
    }

    const PASSWORD: &str = "changeit";

    fn pkcs12(issued: &Issued, trust: bool) -> Vec<u8> {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let mut store = KeyStore::new();
        let ca = Certificate::from_der(issued.ca.der()).unwrap();
        let entry = if trust {
            KeyStoreEntry::Certificate(ca)
        } else {
            let key = PrivateKey::from_der(&issued.key.serialize_der()).unwrap();
            let leaf = Certificate::from_der(issued.leaf.der()).unwrap();
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(vec![1], key, [leaf, ca]))
        };
        store.add_entry("certificate", entry);
        store.writer(PASSWORD).write().unwrap()
    }

    fn jks(issued: &Issued, trust: bool) -> Vec<u8> {
        let mut store = jks::KeyStore::new();
        let certificate = |der: &[u8]| jks::Certificate {
            cert_type: "X509".into(),
            content: der.to_vec(),
        };
        if trust {
            let entry = jks::TrustedCertificateEntry {
                creation_time: std::time::SystemTime::now(),
                certificate: certificate(issued.ca.der()),
            };
            store.set_trusted_certificate_entry("ca", entry).unwrap();
        } else {
            let entry = jks::PrivateKeyEntry {
                creation_time: std::time::SystemTime::now(),
                private_key: issued.key.serialize_der(),
                certificate_chain: vec![certificate(issued.leaf.der()), certificate(issued.ca.der())],
            };
            store
                .set_private_key_entry("certificate", entry, PASSWORD.as_bytes())
                .unwrap();
        }
        let mut out = Vec::new();
        store.store(&mut out, PASSWORD.as_bytes()).unwrap();
        out
    }

    /// The TLS Secret of `issued` with keystores made by `stores` (called anew for every Secret: new salts).
    fn secret(issued: &Issued, stores: &[(&str, Vec<u8>)]) -> Value {
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        let mut data = json!({
            "tls.crt": b64(issued.leaf.pem().as_bytes()),
            "tls.key": b64(issued.key.serialize_pem().as_bytes()),
            "ca.crt": b64(issued.ca.pem().as_bytes()),
        });
        for (k, v) in stores {
            data[*k] = json!(b64(v));
        }
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data})
    }

    fn all_four(issued: &Issued) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("keystore.p12", pkcs12(issued, false)),
            ("truststore.p12", pkcs12(issued, true)),
            ("keystore.jks", jks(issued, false)),
            ("truststore.jks", jks(issued, true)),
        ]
    }

    fn conflicts(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| format!(".data.{k}")).collect()
    }

    fn passwords() -> Passwords {
        Passwords {
            pkcs12: Some(PASSWORD.into()),
            jks: Some(PASSWORD.into()),
        }
    }

    #[test]
    fn keystores_encoded_again_from_the_same_leaf_key_and_ca_are_left_to_cert_manager() {
        let issued = issue("a.example");
        let archived = secret(&issued, &all_four(&issued));
        let stored = secret(&issued, &all_four(&issued));
        assert_ne!(
            archived["data"]["keystore.p12"], stored["data"]["keystore.p12"],
            "fresh salts"
        );
        let keys = ["keystore.p12", "truststore.p12", "keystore.jks", "truststore.jks"];
        assert_eq!(
            left_to_cert_manager(&conflicts(&keys), &archived, &stored, Some(&passwords())),
            Some(keys.iter().map(|k| k.to_string()).collect())
        );
    }

    #[test]
    fn a_keystore_holding_another_certificate_stays_a_conflict() {
        let issued = issue("a.example");
        let other = issue("b.example");
        let archived = secret(&issued, &all_four(&issued));
        // The Secret's own leaf and key are the archived ones; the keystores were made from another certificate.
        let stored = secret(&issued, &all_four(&other));
        for key in ["keystore.p12", "truststore.p12", "keystore.jks", "truststore.jks"] {
            assert_eq!(
                left_to_cert_manager(&conflicts(&[key]), &archived, &stored, Some(&passwords())),
                None,
                "{key}"
            );
        }
    }

    #[test]
    fn a_keystore_that_cannot_be_opened_stays_a_conflict() {
        let issued = issue("a.example");
        let archived = secret(&issued, &all_four(&issued));
        let stored = secret(&issued, &all_four(&issued));
        let keys = conflicts(&["keystore.p12"]);
        assert_eq!(
            left_to_cert_manager(&keys, &archived, &stored, None),
            None,
            "no password known"
        );
        let wrong = Passwords {
            pkcs12: Some(b"wrong".to_vec()),
            jks: None,
        };
        assert_eq!(left_to_cert_manager(&keys, &archived, &stored, Some(&wrong)), None);
        let garbage = secret(&issued, &[("keystore.p12", b"garbage".to_vec())]);
        assert_eq!(
            left_to_cert_manager(&keys, &archived, &garbage, Some(&passwords())),
            None
        );
    }

    #[test]
    fn another_secret_or_field_stays_a_conflict() {
        let issued = issue("a.example");
        let archived = secret(&issued, &all_four(&issued));
        let other = secret(&issue("a.example"), &all_four(&issued));
        let p12 = conflicts(&["keystore.p12"]);
        assert_eq!(left_to_cert_manager(&p12, &archived, &other, Some(&passwords())), None);
        let stored = secret(&issued, &all_four(&issued));
        let label = vec![".data.keystore.p12".to_owned(), ".metadata.labels.team".to_owned()];
        assert_eq!(
            left_to_cert_manager(&label, &archived, &stored, Some(&passwords())),
            None
        );
        let tls_crt = conflicts(&["tls.crt"]);
        assert_eq!(
            left_to_cert_manager(&tls_crt, &archived, &stored, Some(&passwords())),
            None
        );
        assert_eq!(left_to_cert_manager(&[], &archived, &stored, Some(&passwords())), None);
    }

    #[test]
    fn ca_crt_is_compared_by_the_certificates_it_holds() {
        let issued = issue("a.example");
        let archived = secret(&issued, &[]);
        let mut rewritten = archived.clone();
        let pem = format!("\n{}", issued.ca.pem());
        rewritten["data"]["ca.crt"] = json!(base64::engine::general_purpose::STANDARD.encode(pem));
        let keys = conflicts(&["ca.crt"]);
        assert_eq!(
            left_to_cert_manager(&keys, &archived, &rewritten, None),
            Some(vec!["ca.crt".to_owned()])
        );
        let mut other_ca = archived.clone();
        other_ca["data"]["ca.crt"] = json!(base64::engine::general_purpose::STANDARD.encode(issue("x").ca.pem()));
        assert_eq!(left_to_cert_manager(&keys, &archived, &other_ca, None), None);
    }
}
