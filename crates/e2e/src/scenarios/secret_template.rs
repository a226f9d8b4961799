//! Scenario 5: `secretTemplate` labels and annotations and `additionalOutputFormats` (combined PEM, DER key):
//! extra Secret content cert-manager only re-applies after a restore, never reissues for.

use anyhow::Result;
use serde_json::json;

use super::{Check, Mistake, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, ca_issuer};
use crate::reissuance::CertificateId;

pub(super) fn scenario() -> Result<Scenario> {
    let ns = "s05-secret-template";
    let mut s = Scenario::new(
        5,
        "secret-template",
        "secretTemplate and additionalOutputFormats",
        &[ns],
    );
    let ca = Ca::new("cmarchive scenario 5 CA")?;
    s.setup.push(ca.secret(ns, "template-ca"));
    s.setup.push(ca_issuer(Some(ns), "template-ca", "template-ca"));
    s.certificate(
        &Certificate::new(
            ns,
            "payments",
            IssuerRef::issuer("template-ca"),
            "payments.s05.cmarchive.test",
        )
        .with(
            "secretTemplate",
            json!({
                "labels": {"team": "payments", "app.kubernetes.io/part-of": "shop"},
                "annotations": {"example.com/rotation-contact": "payments-oncall"},
            }),
        )
        .with(
            "additionalOutputFormats",
            json!([{"type": "CombinedPEM"}, {"type": "DER"}]),
        ),
    );
    let id = CertificateId::new(ns, "payments");
    s.checks.push(Check::SecretMetadata {
        certificate: id.clone(),
        field: "labels",
        key: "team".into(),
        value: "payments".into(),
    });
    s.checks.push(Check::SecretMetadata {
        certificate: id,
        field: "annotations",
        key: "example.com/rotation-contact".into(),
        value: "payments-oncall".into(),
    });
    s.control_all(Mistake::NoSecrets);
    Ok(s)
}
