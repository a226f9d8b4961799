//! Scenario 10: ACME. Not run yet: it needs an ACME server (pebble, from github.com/letsencrypt/pebble/v2) built
//! and started next to the local cluster, and for real issuance a DNS-01 solver (rfc2136) against a local DNS
//! server — the local provider has neither. What a restore must keep here is the account key Secret
//! (`spec.acme.privateKeySecretRef`): without it cert-manager registers a new ACME account.

use super::Scenario;

pub(super) fn scenario() -> Scenario {
    let mut s = Scenario::new(10, "acme", "ACME issuer reusing its account key", &["s10-acme"]);
    s.not_run = Some("needs pebble and a DNS-01 server next to the local cluster; not built yet");
    s
}
