//! The reissuance prediction agrees with `--namespace-mapping`: a Certificate moved together with its Secret stays
//! (nothing cert-manager compares names a namespace), and one moved without it is predicted to be reissued.

pub mod fixtures;

use cmarchive_archive::certmanager::{NamespaceMapping, Outcome, predict};
use fixtures::{AT, Ca, FRESH, Key, certificate, tls_secret};
use serde_json::{Value, json};

fn at() -> jiff::Timestamp {
    AT.parse().unwrap()
}

/// A Certificate in `shop` issued by a ClusterIssuer, and the Secret cert-manager wrote for it.
fn pair() -> (Value, Value) {
    let leaf = Ca::new().leaf(None, &["web.example.com"], &[], Key::EcdsaP256, FRESH);
    let crt = certificate(
        "shop",
        "web",
        json!({"secretName": "web-tls", "dnsNames": ["web.example.com"], "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}}),
    );
    let secret = tls_secret(
        "shop",
        "web-tls",
        &leaf,
        Some(("ca", "ClusterIssuer", "cert-manager.io")),
        Some("web"),
    );
    (crt, secret)
}

fn mapping() -> NamespaceMapping {
    NamespaceMapping::parse(["shop:store"]).unwrap()
}

#[test]
fn moved_with_its_secret_stays() {
    let (mut crt, mut secret) = pair();
    assert!(mapping().move_object(&mut crt) && mapping().move_object(&mut secret));
    let predictions = predict(&[crt, secret], at());
    assert_eq!(predictions.len(), 1);
    assert_eq!(predictions[0].certificate.to_string(), "Certificate/store/web");
    assert_eq!(predictions[0].outcome, Outcome::Stays);
}

#[test]
fn moved_without_its_secret_is_reissued() {
    let (mut crt, secret) = pair();
    assert!(mapping().move_object(&mut crt));
    let predictions = predict(&[crt, secret], at());
    match &predictions[0].outcome {
        Outcome::Reissued { reason, .. } => assert_eq!(reason, "DoesNotExist"),
        other => panic!("a Certificate without its Secret in its namespace is reissued: {other:?}"),
    }
}
