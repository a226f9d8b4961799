//! Scenario 10: an ACME Issuer registered with a real ACME server (pebble, see [`super::pebble`]) that issues the
//! Certificates for real through DNS-01: cert-manager's `rfc2136` solver writes each challenge's TXT record into
//! the suite's authoritative DNS server ([`super::dns`], BIND) with a TSIG key, its self-check reads it back there,
//! and pebble validates against the same server. The restore must carry the account key Secret
//! (`spec.acme.privateKeySecretRef`) so the target's cert-manager re-uses the same ACME account instead of
//! registering a new one, the TSIG Secret so the next renewal can solve its challenges, and the TLS Secrets so
//! nothing is ordered again.

use anyhow::Result;
use serde_json::json;

use super::dns::{self, TSIG_KEY_NAME, TSIG_SECRET};
use super::pebble::{CA_BUNDLE_PLACEHOLDER, SERVER_PLACEHOLDER};
use super::{Check, Mistake, Scenario};
use crate::fixtures::{Certificate, IssuerRef, issuer, opaque_secret};

pub(super) fn scenario() -> Result<Scenario> {
    let ns = "s10-acme";
    let mut s = Scenario::new(
        10,
        "acme",
        "ACME issuer (pebble, DNS-01 via rfc2136) re-using its account key",
        &[ns],
    );
    s.needs_acme_server = true;
    s.setup
        .push(opaque_secret(ns, "rfc2136-tsig", &[("secret", TSIG_SECRET)]));
    s.setup.push(issuer(
        Some(ns),
        "pebble",
        json!({"acme": {
            "server": SERVER_PLACEHOLDER,
            "caBundle": CA_BUNDLE_PLACEHOLDER,
            "email": "ops@s10.cmarchive.test",
            "privateKeySecretRef": {"name": "pebble-account"},
            "solvers": [{"dns01": {"rfc2136": {
                "nameserver": dns::SERVER_PLACEHOLDER,
                "tsigKeyName": TSIG_KEY_NAME,
                "tsigAlgorithm": "HMACSHA256",
                "tsigSecretSecretRef": {"name": "rfc2136-tsig", "key": "secret"},
            }}}],
        }}),
    ));
    for name in ["www", "api"] {
        s.certificate(&Certificate::new(
            ns,
            name,
            IssuerRef::issuer("pebble"),
            &format!("{name}.{}", dns::ZONE),
        ));
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
