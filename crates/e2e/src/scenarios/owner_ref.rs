//! Scenario 6: the controller runs with `--enable-certificate-owner-ref`, so every TLS Secret is owned by its
//! Certificate. Restored as is, that owner reference names a UID that does not exist in the target and the garbage
//! collector deletes the Secret — then cert-manager reissues. cmarchive drops it; cert-manager sets it again.

use super::{Check, ClusterVariant, Mistake, Scenario};
use crate::fixtures::{Certificate, IssuerRef, self_signed_issuer};
use crate::reissuance::CertificateId;

pub(super) fn scenario() -> Scenario {
    let ns = "s06-owner-ref";
    let mut s = Scenario::new(
        6,
        "owner-ref",
        "--enable-certificate-owner-ref (garbage-collector hazard)",
        &[ns],
    );
    let variant = ClusterVariant {
        enable_certificate_owner_ref: true,
        ..ClusterVariant::default()
    };
    s.source = variant.clone();
    s.target = variant;
    s.setup.push(self_signed_issuer(Some(ns), "selfsigned"));
    let issuer = IssuerRef::issuer("selfsigned");
    s.certificate(&Certificate::new(
        ns,
        "orders",
        issuer.clone(),
        "orders.s06.cmarchive.test",
    ));
    s.certificate(&Certificate::new(ns, "payments", issuer, "payments.s06.cmarchive.test"));
    for name in ["orders", "payments"] {
        s.checks
            .push(Check::NoStaleOwnerReference(CertificateId::new(ns, name)));
    }
    s.control_all(Mistake::StaleOwnerReferenceKept);
    s
}
