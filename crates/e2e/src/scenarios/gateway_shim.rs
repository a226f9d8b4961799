//! Scenario 8: gateway-shim. Not run: the local cert-manager build (crates/e2e/controlplane/cert-manager) registers
//! ingress-shim only — the gateway-shim controller needs the Gateway API CRDs installed and the controller's
//! `--enable-gateway-api`, neither of which the local control plane provides yet. The scenario would mirror
//! scenario 7 with a `gateway.networking.k8s.io/v1` Gateway whose listener names the TLS Secret.

use super::Scenario;

pub(super) fn scenario() -> Scenario {
    let mut s = Scenario::new(
        8,
        "gateway-shim",
        "gateway-shim: annotated Gateway",
        &["s08-gateway-shim"],
    );
    s.not_run = Some(
        "the local cert-manager build registers ingress-shim only; gateway-shim needs the Gateway API CRDs \
         (sigs.k8s.io/gateway-api) and --enable-gateway-api, not provided by the local control plane",
    );
    s
}
