//! Scenario 2: CA Issuers — one whose key pair was made outside the cluster (the CA Secret must travel, or the
//! Issuer is never Ready), one whose CA certificate cert-manager itself issued from a SelfSigned Issuer (a reissue
//! of that CA would silently re-key every leaf below it).

use anyhow::Result;

use super::{Check, Mistake, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, ca_issuer, self_signed_issuer};

pub(super) fn scenario() -> Result<Scenario> {
    let ns = "s02-ca";
    let mut s = Scenario::new(2, "ca", "CA Issuer and its CA Secret", &[ns]);
    let ca = Ca::new("cmarchive scenario 2 corporate CA")?;
    s.setup.push(ca.secret(ns, "corp-ca"));
    s.setup.push(ca_issuer(Some(ns), "corp-ca", "corp-ca"));
    s.certificate(&Certificate::new(
        ns,
        "shop",
        IssuerRef::issuer("corp-ca"),
        "shop.s02.cmarchive.test",
    ));
    s.certificate(&Certificate::new(
        ns,
        "mail",
        IssuerRef::issuer("corp-ca"),
        "mail.s02.cmarchive.test",
    ));

    s.setup.push(self_signed_issuer(Some(ns), "bootstrap"));
    s.certificate(
        &Certificate::new(
            ns,
            "intermediate",
            IssuerRef::issuer("bootstrap"),
            "intermediate.s02.cmarchive.test",
        )
        .secret_name("intermediate-ca")
        .ca(),
    );
    s.setup.push(ca_issuer(Some(ns), "intermediate", "intermediate-ca"));
    s.certificate(&Certificate::new(
        ns,
        "internal",
        IssuerRef::issuer("intermediate"),
        "internal.s02.cmarchive.test",
    ));

    s.checks
        .push(Check::SecretsIdentical(vec![(ns.to_owned(), "corp-ca".to_owned())]));
    s.control_all(Mistake::SecretsAfterCertificates);
    Ok(s)
}
