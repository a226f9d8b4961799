//! Scenario 10: an ACME Issuer registered with a real ACME server (pebble, see [`super::pebble`]). The restore
//! must carry the account key Secret (`spec.acme.privateKeySecretRef`) so the target's cert-manager re-uses the
//! same ACME account instead of registering a new one, and the DNS-01 solver's TSIG Secret, so the next renewal
//! can solve challenges. The Certificates hold leaves issued before the backup (made with rcgen): real issuance
//! through pebble would need cert-manager's HTTP-01 or DNS-01 self-check to pass, and no solver pod or DNS zone
//! runs here.

use anyhow::Result;
use serde_json::json;

use super::pebble::{CA_BUNDLE_PLACEHOLDER, SERVER_PLACEHOLDER};
use super::{Check, Mistake, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, issuer, opaque_secret};

pub(super) fn scenario() -> Result<Scenario> {
    let ns = "s10-acme";
    let mut s = Scenario::new(10, "acme", "ACME issuer (pebble) re-using its account key", &[ns]);
    s.needs_acme_server = true;
    s.setup.push(opaque_secret(
        ns,
        "rfc2136-tsig",
        &[("secret", "c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw==")],
    ));
    s.setup.push(issuer(
        Some(ns),
        "pebble",
        json!({"acme": {
            "server": SERVER_PLACEHOLDER,
            "caBundle": CA_BUNDLE_PLACEHOLDER,
            "email": "ops@s10.cmarchive.test",
            "privateKeySecretRef": {"name": "pebble-account"},
            "solvers": [{"dns01": {"rfc2136": {
                "nameserver": "127.0.0.1:53",
                "tsigKeyName": "cmarchive.",
                "tsigAlgorithm": "HMACSHA256",
                "tsigSecretSecretRef": {"name": "rfc2136-tsig", "key": "secret"},
            }}}],
        }}),
    ));
    let pki = Ca::new("stand-in for the ACME CA")?;
    let now = jiff::Timestamp::now();
    for name in ["www", "api"] {
        let crt = Certificate::new(
            ns,
            name,
            IssuerRef::issuer("pebble"),
            &format!("{name}.s10.cmarchive.test"),
        );
        let leaf = pki.issue(&crt.leaf_spec(
            now - jiff::SignedDuration::from_hours(1),
            now + jiff::SignedDuration::from_hours(2000),
        ))?;
        s.setup.push(crt.issued_secret(&pki, &leaf));
        s.certificate(&crt);
    }
    s.checks.push(Check::AcmeAccountReused {
        namespace: ns.to_owned(),
        issuer: "pebble".to_owned(),
    });
    s.checks.push(Check::SecretsIdentical(vec![(
        ns.to_owned(),
        "rfc2136-tsig".to_owned(),
    )]));
    s.control_all(Mistake::NoSecrets);
    Ok(s)
}
