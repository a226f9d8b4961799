//! Scenario 8: gateway-shim. The controller runs with `--enable-gateway-api` and the Gateway API CRDs installed; a
//! Gateway annotated `cert-manager.io/issuer` makes cert-manager generate a Certificate per listener Secret, owned by
//! the Gateway. As with ingress-shim, that Certificate is not restored (its owner reference would name the source's
//! Gateway UID) and its TLS Secret is; when the application re-deploys the Gateway in the target, gateway-shim
//! generates the Certificate again and it adopts the restored Secret without reissuing.

use super::{Check, ClusterVariant, Mistake, Scenario};
use crate::fixtures::{IssuerRef, gateway, self_signed_issuer};
use crate::reissuance::CertificateId;

pub(super) fn scenario() -> Scenario {
    let ns = "s08-gateway-shim";
    let mut s = Scenario::new(
        8,
        "gateway-shim",
        "gateway-shim: annotated gateway.networking.k8s.io/v1 Gateway",
        &[ns],
    );
    let variant = ClusterVariant {
        enable_gateway_api: true,
        ..ClusterVariant::default()
    };
    s.source = variant.clone();
    s.target = variant;
    s.setup.push(self_signed_issuer(Some(ns), "selfsigned"));
    let issuer = IssuerRef::issuer("selfsigned");
    for (name, host) in [
        ("edge", "edge.s08.cmarchive.test"),
        ("partners", "partners.s08.cmarchive.test"),
    ] {
        let secret = format!("{name}-tls");
        let gw = gateway(ns, name, host, &secret, &issuer);
        s.setup.push(gw.clone());
        s.redeploy.push(gw);
        // gateway-shim names the Certificate after the Secret.
        let id = CertificateId::new(ns, &secret);
        s.certificates.insert(id.clone());
        s.checks.push(Check::GeneratedBy(id, "Gateway"));
    }
    s.control_all(Mistake::RedeployedBeforeSecret);
    s
}
