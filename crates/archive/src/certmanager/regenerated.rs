//! Secret fields cert-manager writes again from the certificate and key it keeps: the keystores of
//! `spec.keystores` (PKCS#12 and JKS carry fresh salts every time cert-manager encodes them) and `ca.crt`. Once
//! cert-manager has written such a field in the target, a restore that applies the archived bytes meets a
//! field-manager conflict nobody can judge. When the Secret holds the archived certificate and key, those fields
//! hold them too, whatever their bytes: they are left to cert-manager. Any other difference stays a conflict.

use crate::certmanager::certinfo::secret_data;
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
/// the API server names them, `.data.keystore.p12`) and the Secret as stored; `None` when any conflict is a real
/// difference (another certificate or key, another CA, a field cert-manager does not derive).
pub fn left_to_cert_manager(conflicts: &[String], archived: &Value, stored: &Value) -> Option<Vec<String>> {
    if conflicts.is_empty() {
        return None;
    }
    // The same leaf and key: every keystore cert-manager encoded from them holds them.
    for key in ["tls.crt", "tls.key"] {
        let ours = secret_data(archived, key).filter(|v| !v.is_empty())?;
        if secret_data(stored, key)? != ours {
            return None;
        }
    }
    let mut keys = Vec::new();
    for field in conflicts {
        let key = field.strip_prefix(".data.")?;
        if !REGENERATED_KEYS.contains(&key) {
            return None;
        }
        // ca.crt is plain PEM: the same certificates, however they are written.
        if key == "ca.crt" && certificates(&secret_data(archived, key)?) != certificates(&secret_data(stored, key)?) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn secret(crt: &str, key: &str, extra: &[(&str, &[u8])]) -> Value {
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        let mut data = json!({"tls.crt": b64(crt.as_bytes()), "tls.key": b64(key.as_bytes())});
        for (k, v) in extra {
            data[*k] = json!(b64(v));
        }
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data})
    }

    fn pem(der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn re_encoded_keystores_of_the_same_leaf_and_key_are_left_to_cert_manager() {
        let archived = secret(
            "LEAF",
            "KEY",
            &[("keystore.p12", b"salt-1"), ("truststore.p12", b"salt-1")],
        );
        let stored = secret(
            "LEAF",
            "KEY",
            &[("keystore.p12", b"salt-2"), ("truststore.p12", b"salt-2")],
        );
        let conflicts = vec![".data.keystore.p12".to_owned(), ".data.truststore.p12".to_owned()];
        assert_eq!(
            left_to_cert_manager(&conflicts, &archived, &stored),
            Some(vec!["keystore.p12".to_owned(), "truststore.p12".to_owned()])
        );
    }

    #[test]
    fn another_certificate_or_key_or_field_stays_a_conflict() {
        let archived = secret("LEAF", "KEY", &[("keystore.p12", b"a")]);
        let conflicts = vec![".data.keystore.p12".to_owned()];
        let other_leaf = secret("OTHER", "KEY", &[("keystore.p12", b"b")]);
        assert_eq!(left_to_cert_manager(&conflicts, &archived, &other_leaf), None);
        let other_key = secret("LEAF", "OTHER", &[("keystore.p12", b"b")]);
        assert_eq!(left_to_cert_manager(&conflicts, &archived, &other_key), None);
        let stored = secret("LEAF", "KEY", &[("keystore.p12", b"b")]);
        let label = vec![".data.keystore.p12".to_owned(), ".metadata.labels.team".to_owned()];
        assert_eq!(left_to_cert_manager(&label, &archived, &stored), None);
        let tls_crt = vec![".data.tls.crt".to_owned()];
        assert_eq!(left_to_cert_manager(&tls_crt, &archived, &stored), None);
        assert_eq!(left_to_cert_manager(&[], &archived, &stored), None);
    }

    #[test]
    fn ca_crt_is_compared_by_the_certificates_it_holds() {
        let ca = pem(b"the CA");
        let archived = secret("LEAF", "KEY", &[("ca.crt", ca.as_bytes())]);
        let rewritten = secret("LEAF", "KEY", &[("ca.crt", format!("\n{ca}").as_bytes())]);
        let conflicts = vec![".data.ca.crt".to_owned()];
        assert_eq!(
            left_to_cert_manager(&conflicts, &archived, &rewritten),
            Some(vec!["ca.crt".to_owned()])
        );
        let other_ca = secret("LEAF", "KEY", &[("ca.crt", pem(b"another CA").as_bytes())]);
        assert_eq!(left_to_cert_manager(&conflicts, &archived, &other_ca), None);
    }
}
