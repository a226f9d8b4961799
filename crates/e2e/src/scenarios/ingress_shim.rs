//! Scenario 7: ingress-shim. An Ingress annotated `cert-manager.io/cluster-issuer` makes cert-manager generate a
//! Certificate owned by the Ingress. That Certificate is not restored (its owner reference would name the old
//! Ingress UID); its TLS Secret is. When the application re-deploys the Ingress in the target, ingress-shim
//! generates the Certificate again and it adopts the restored Secret without reissuing.

use super::{Check, Mistake, Scenario};
use crate::fixtures::{IssuerRef, ingress, self_signed_issuer};
use crate::reissuance::CertificateId;

pub(super) fn scenario() -> Scenario {
    let ns = "s07-ingress-shim";
    let mut s = Scenario::new(
        7,
        "ingress-shim",
        "ingress-shim: annotated networking.k8s.io/v1 Ingress",
        &[ns],
    );
    s.setup.push(self_signed_issuer(None, "s07-shim-selfsigned"));
    s.cluster_issuers.push("s07-shim-selfsigned".into());
    let issuer = IssuerRef::cluster_issuer("s07-shim-selfsigned");
    for (name, host) in [
        ("storefront", "shop.s07.cmarchive.test"),
        ("admin", "admin.s07.cmarchive.test"),
    ] {
        let secret = format!("{name}-tls");
        let ing = ingress(ns, name, host, &secret, &issuer);
        s.setup.push(ing.clone());
        s.redeploy.push(ing);
        // ingress-shim names the Certificate after the Secret.
        let id = CertificateId::new(ns, &secret);
        s.certificates.insert(id.clone());
        s.checks.push(Check::GeneratedBy(id, "Ingress"));
    }
    s.control_all(Mistake::RedeployedBeforeSecret);
    s
}
