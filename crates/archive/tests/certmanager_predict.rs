//! Each check of the reissuance prediction, against Secrets built with rcgen, plus private-key parsing in every
//! encoding cert-manager accepts.

pub mod fixtures;

use cmarchive_archive::certmanager::certinfo::parse_leaf;
use cmarchive_archive::certmanager::keys::public_key_of_private_pem;
use cmarchive_archive::certmanager::predict::parse_go_duration;
use cmarchive_archive::certmanager::{Outcome, predict, predict_stored};
use cmarchive_archive::object::ObjectKey;
use fixtures::{AT, Ca, EXPIRED, FRESH, Key, NEAR_EXPIRY, Pair, certificate, tls_secret};
use serde_json::{Value, json};

const CM: &str = "cert-manager.io";

fn at() -> jiff::Timestamp {
    AT.parse().unwrap()
}

fn spec(extra: Value) -> Value {
    let mut spec = json!({"secretName": "web-tls", "dnsNames": ["web.example.com"],
        "privateKey": {"algorithm": "ECDSA"}, "issuerRef": {"name": "ca", "kind": "ClusterIssuer", "group": CM}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

fn web(ca: &Ca, key: Key, validity: fixtures::Validity) -> Pair {
    ca.leaf(None, &["web.example.com"], &[], key, validity)
}

fn outcome(crt: Value, secret: Option<Value>) -> Outcome {
    let mut objects = vec![crt];
    objects.extend(secret);
    let predictions = predict(&objects, at());
    assert_eq!(predictions.len(), 1);
    // The byte-level variant (restore, inspect) must judge every case the same way.
    let stored: Vec<(ObjectKey, Vec<u8>)> = objects
        .iter()
        .map(|o| (ObjectKey::of(o).unwrap(), serde_json::to_vec(o).unwrap()))
        .collect();
    let from_bytes = predict_stored(stored.iter().map(|(k, b)| (k, b.as_slice())), at());
    assert_eq!(from_bytes, predictions);
    predictions.into_iter().next().unwrap().outcome
}

fn reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Stays => "Stays",
        Outcome::Reissued { reason, .. } => reason,
    }
}

fn good_secret(pair: &Pair) -> Value {
    tls_secret("shop", "web-tls", pair, Some(("ca", "ClusterIssuer", CM)), Some("web"))
}

#[test]
fn matching_secret_stays() {
    let ca = Ca::new();
    let o = outcome(
        certificate("shop", "web", spec(json!({}))),
        Some(good_secret(&web(&ca, Key::EcdsaP256, FRESH))),
    );
    assert_eq!(o, Outcome::Stays);
}

#[test]
fn missing_secret_is_does_not_exist() {
    assert_eq!(
        reason(&outcome(certificate("shop", "web", spec(json!({}))), None)),
        "DoesNotExist"
    );
}

#[test]
fn missing_data_is_missing_data() {
    let ca = Ca::new();
    let mut secret = good_secret(&web(&ca, Key::EcdsaP256, FRESH));
    secret["data"].as_object_mut().unwrap().remove("tls.key");
    assert_eq!(
        reason(&outcome(certificate("shop", "web", spec(json!({}))), Some(secret))),
        "MissingData"
    );
}

#[test]
fn key_of_another_certificate_is_invalid_key_pair() {
    let ca = Ca::new();
    let a = web(&ca, Key::EcdsaP256, FRESH);
    let b = web(&ca, Key::EcdsaP256, FRESH);
    let mixed = Pair {
        cert_pem: a.cert_pem,
        key_pem: b.key_pem,
    };
    let o = outcome(certificate("shop", "web", spec(json!({}))), Some(good_secret(&mixed)));
    assert_eq!(reason(&o), "InvalidKeyPair");
}

#[test]
fn garbage_certificate_is_invalid_certificate() {
    let ca = Ca::new();
    let pair = web(&ca, Key::EcdsaP256, FRESH);
    let broken = Pair {
        cert_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        ..pair
    };
    let o = outcome(certificate("shop", "web", spec(json!({}))), Some(good_secret(&broken)));
    assert_eq!(reason(&o), "InvalidCertificate");
}

#[test]
fn absent_issuer_annotations_trap_cluster_issuers_only() {
    let ca = Ca::new();
    let pair = web(&ca, Key::EcdsaP256, FRESH);
    let bare = tls_secret("shop", "web-tls", &pair, None, None);
    // ClusterIssuer: absent annotations differ from kind ClusterIssuer.
    let o = outcome(certificate("shop", "web", spec(json!({}))), Some(bare.clone()));
    assert_eq!(reason(&o), "IncorrectIssuer");
    // External group: same trap.
    let external =
        spec(json!({"issuerRef": {"name": "pca", "kind": "AWSPCAIssuer", "group": "awspca.cert-manager.io"}}));
    assert_eq!(
        reason(&outcome(certificate("shop", "web", external), Some(bare.clone()))),
        "IncorrectIssuer"
    );
    // Issuer in cert-manager.io, kind and group defaulted: absent annotations match.
    let plain = spec(json!({"issuerRef": {"name": "ca"}}));
    assert_eq!(outcome(certificate("shop", "web", plain), Some(bare)), Outcome::Stays);
}

#[test]
fn other_issuer_name_is_incorrect_issuer() {
    let ca = Ca::new();
    let secret = tls_secret(
        "shop",
        "web-tls",
        &web(&ca, Key::EcdsaP256, FRESH),
        Some(("old-ca", "ClusterIssuer", CM)),
        Some("web"),
    );
    let o = outcome(certificate("shop", "web", spec(json!({}))), Some(secret));
    assert_eq!(reason(&o), "IncorrectIssuer");
    // Empty kind/group annotations mean the defaults, like an issuerRef that omits them.
    let defaulted = tls_secret(
        "shop",
        "web-tls",
        &web(&ca, Key::EcdsaP256, FRESH),
        Some(("ca", "", "")),
        Some("web"),
    );
    let plain = spec(json!({"issuerRef": {"name": "ca"}}));
    assert_eq!(
        outcome(certificate("shop", "web", plain), Some(defaulted)),
        Outcome::Stays
    );
}

#[test]
fn other_certificate_name_is_incorrect_certificate() {
    let ca = Ca::new();
    let secret = tls_secret(
        "shop",
        "web-tls",
        &web(&ca, Key::EcdsaP256, FRESH),
        Some(("ca", "ClusterIssuer", CM)),
        Some("web-old"),
    );
    let o = outcome(certificate("shop", "web", spec(json!({}))), Some(secret));
    assert_eq!(reason(&o), "IncorrectCertificate");
}

#[test]
fn private_key_against_spec_is_secret_mismatch() {
    let ca = Ca::new();
    // Default spec is RSA 2048: an ECDSA key violates the algorithm.
    let no_key_spec = json!({"secretName": "web-tls", "dnsNames": ["web.example.com"],
        "issuerRef": {"name": "ca", "kind": "ClusterIssuer", "group": CM}});
    let ecdsa = good_secret(&web(&ca, Key::EcdsaP256, FRESH));
    let o = outcome(certificate("shop", "web", no_key_spec.clone()), Some(ecdsa));
    assert_eq!(reason(&o), "SecretMismatch");
    assert!(matches!(&o, Outcome::Reissued { message, .. } if message.contains("spec.privateKey.algorithm")));
    // RSA 3072 violates the default size; RSA 2048 is fine.
    let o = outcome(
        certificate("shop", "web", no_key_spec.clone()),
        Some(good_secret(&web(&ca, Key::Rsa3072, FRESH))),
    );
    assert!(
        matches!(&o, Outcome::Reissued { message, .. } if message.contains("spec.privateKey.size")),
        "{o:?}"
    );
    assert_eq!(
        outcome(
            certificate("shop", "web", no_key_spec),
            Some(good_secret(&web(&ca, Key::Rsa2048, FRESH)))
        ),
        Outcome::Stays
    );
    // ECDSA default size is 256; 384 must be asked for.
    let p384 = good_secret(&web(&ca, Key::EcdsaP384, FRESH));
    assert_eq!(
        reason(&outcome(
            certificate("shop", "web", spec(json!({}))),
            Some(p384.clone())
        )),
        "SecretMismatch"
    );
    let sized = spec(json!({"privateKey": {"algorithm": "ECDSA", "size": 384}}));
    assert_eq!(outcome(certificate("shop", "web", sized), Some(p384)), Outcome::Stays);
}

#[test]
fn names_against_spec_are_compared_loosely() {
    let ca = Ca::new();
    let both = ca.leaf(
        Some("web.example.com"),
        &["web.example.com", "www.example.com"],
        &["192.0.2.1"],
        Key::EcdsaP256,
        FRESH,
    );
    let secret = good_secret(&both);
    // CN may move into dnsNames and back.
    let same =
        spec(json!({"commonName": "www.example.com", "dnsNames": ["web.example.com"], "ipAddresses": ["192.0.2.1"]}));
    assert_eq!(
        outcome(certificate("shop", "web", same), Some(secret.clone())),
        Outcome::Stays
    );
    let ips = spec(json!({"dnsNames": ["web.example.com", "www.example.com"], "ipAddresses": ["192.0.2.2"]}));
    let o = outcome(certificate("shop", "web", ips), Some(secret.clone()));
    assert!(
        matches!(&o, Outcome::Reissued { reason, message } if reason == "SecretMismatch" && message.contains("spec.ipAddresses")),
        "{o:?}"
    );
    let uris = spec(
        json!({"dnsNames": ["web.example.com", "www.example.com"], "ipAddresses": ["192.0.2.1"], "uris": ["spiffe://x/y"]}),
    );
    let o = outcome(certificate("shop", "web", uris), Some(secret.clone()));
    assert!(
        matches!(&o, Outcome::Reissued { message, .. } if message.contains("spec.uris")),
        "{o:?}"
    );
    let emails = spec(
        json!({"dnsNames": ["web.example.com", "www.example.com"], "ipAddresses": ["192.0.2.1"], "emailAddresses": ["a@example.com"]}),
    );
    let o = outcome(certificate("shop", "web", emails), Some(secret.clone()));
    assert!(
        matches!(&o, Outcome::Reissued { message, .. } if message.contains("spec.emailAddresses")),
        "{o:?}"
    );
    // isCA and subject fields are not compared without a CertificateRequest (as after a restore).
    let ca_spec = spec(
        json!({"dnsNames": ["web.example.com", "www.example.com"], "ipAddresses": ["192.0.2.1"],
        "isCA": true, "subject": {"organizations": ["Example"]}}),
    );
    assert_eq!(
        outcome(certificate("shop", "web", ca_spec), Some(secret)),
        Outcome::Stays
    );
}

#[test]
fn renewal_window_and_expiry() {
    let ca = Ca::new();
    let near = good_secret(&web(&ca, Key::EcdsaP256, NEAR_EXPIRY));
    let o = outcome(certificate("shop", "web", spec(json!({}))), Some(near.clone()));
    assert_eq!(reason(&o), "Renewing");
    let expired = good_secret(&web(&ca, Key::EcdsaP256, EXPIRED));
    let o = outcome(certificate("shop", "web", spec(json!({}))), Some(expired.clone()));
    assert!(
        matches!(&o, Outcome::Reissued { reason, message } if reason == "Renewing" && message.contains("expired")),
        "{o:?}"
    );
    // renewBefore shorter than the remaining time moves the renewal after the restore (NEAR_EXPIRY ends 2026-06-03).
    let late = spec(json!({"renewBefore": "24h"}));
    assert_eq!(
        outcome(certificate("shop", "web", late), Some(near.clone())),
        Outcome::Stays
    );
    // renewBefore longer than the lifetime is ignored (default applies).
    let ignored = spec(json!({"renewBefore": "2400h"}));
    assert_eq!(
        reason(&outcome(certificate("shop", "web", ignored), Some(near.clone()))),
        "Renewing"
    );
    // renewBeforePercentage: 1% of 90 days is ~21.6h before 2026-06-03.
    let pct = spec(json!({"renewBeforePercentage": 1}));
    assert_eq!(
        outcome(certificate("shop", "web", pct), Some(near.clone())),
        Outcome::Stays
    );
    // A FRESH certificate (2026-05-01..2026-08-01) with renewBefore 70d is due 2026-05-23.
    let fresh = good_secret(&web(&ca, Key::EcdsaP256, FRESH));
    let early = spec(json!({"renewBefore": "1680h"}));
    assert_eq!(
        reason(&outcome(certificate("shop", "web", early), Some(fresh))),
        "Renewing"
    );
    // Renewal disabled: never.
    let disabled = spec(json!({"renewal": {"policy": "Disabled"}}));
    assert_eq!(
        outcome(certificate("shop", "web", disabled), Some(expired)),
        Outcome::Stays
    );
}

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("720h"), Some(720 * 3600 * 1_000_000_000));
    assert_eq!(parse_go_duration("1h30m"), Some(5400 * 1_000_000_000));
    assert_eq!(parse_go_duration("1.5h"), Some(5400 * 1_000_000_000));
    assert_eq!(parse_go_duration("2160h0m0s"), Some(2160 * 3600 * 1_000_000_000));
    assert_eq!(parse_go_duration("90s"), Some(90 * 1_000_000_000));
    assert_eq!(parse_go_duration("0"), Some(0));
    assert_eq!(parse_go_duration("10d"), None);
    assert_eq!(parse_go_duration(""), None);
}

#[test]
fn private_keys_in_every_encoding() {
    let pkcs1 = public_key_of_private_pem(fixtures::RSA2048_PKCS1.as_bytes()).unwrap();
    let pkcs8 = public_key_of_private_pem(fixtures::RSA2048_PKCS8.as_bytes()).unwrap();
    assert_eq!(pkcs1, pkcs8);
    assert_eq!(pkcs1.describe(), "RSA-2048");
    let sec1 = public_key_of_private_pem(fixtures::EC384_SEC1.as_bytes()).unwrap();
    let ec_pkcs8 = public_key_of_private_pem(fixtures::EC384_PKCS8.as_bytes()).unwrap();
    assert_eq!(sec1, ec_pkcs8);
    assert_eq!(sec1.describe(), "ECDSA-P384");
    let ca = Ca::new();
    let leaf = parse_leaf(web(&ca, Key::EcdsaP384, FRESH).cert_pem.as_bytes()).unwrap();
    assert_eq!(
        leaf.public_key, sec1,
        "public key derived from SEC1 equals the certificate's"
    );
    let rsa_leaf = parse_leaf(web(&ca, Key::Rsa2048, FRESH).cert_pem.as_bytes()).unwrap();
    assert_eq!(rsa_leaf.public_key, pkcs1);
    let ed = public_key_of_private_pem(fixtures::ED25519_PKCS8_V1.as_bytes()).unwrap();
    assert_eq!(ed.describe(), "Ed25519");
    let ed_generated = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let derived = public_key_of_private_pem(ed_generated.serialize_pem().as_bytes()).unwrap();
    assert_eq!(
        derived,
        cmarchive_archive::certmanager::keys::PublicKey::Ed25519(ed_generated.public_key_raw().to_vec())
    );
    assert!(
        public_key_of_private_pem(b"-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n").is_err()
    );
}
