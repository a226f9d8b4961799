//! Scenario 4: JKS and PKCS#12 keystores protected by passwords in their own Secrets. The password Secrets must be
//! restored too (cert-manager fails to write the keystores without them); the keystore bytes themselves are
//! re-encoded by cert-manager after any restore (a fresh salt), which is not a reissue.

use anyhow::Result;
use serde_json::json;

use super::{Check, Mistake, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, ca_issuer, opaque_secret};

pub(super) fn scenario() -> Result<Scenario> {
    let ns = "s04-keystores";
    let mut s = Scenario::new(4, "keystores", "JKS and PKCS#12 keystores with password Secrets", &[ns]);
    let ca = Ca::new("cmarchive scenario 4 CA")?;
    s.setup.push(ca.secret(ns, "keystore-ca"));
    s.setup.push(ca_issuer(Some(ns), "keystore-ca", "keystore-ca"));
    s.setup
        .push(opaque_secret(ns, "jks-password", &[("password", "changeit-jks")]));
    s.setup
        .push(opaque_secret(ns, "p12-password", &[("password", "changeit-p12")]));
    let issuer = IssuerRef::issuer("keystore-ca");
    s.certificate(
        &Certificate::new(ns, "java-app", issuer.clone(), "java.s04.cmarchive.test").with(
            "keystores",
            json!({
                "jks": {"create": true, "passwordSecretRef": {"name": "jks-password", "key": "password"}},
                "pkcs12": {"create": true, "passwordSecretRef": {"name": "p12-password", "key": "password"}},
            }),
        ),
    );
    s.certificate(
        &Certificate::new(ns, "windows-app", issuer, "win.s04.cmarchive.test").with(
            "keystores",
            json!({"pkcs12": {"create": true, "passwordSecretRef": {"name": "p12-password", "key": "password"}}}),
        ),
    );
    s.checks.push(Check::SecretsIdentical(vec![
        (ns.to_owned(), "jks-password".to_owned()),
        (ns.to_owned(), "p12-password".to_owned()),
    ]));
    s.control_all(Mistake::SecretsAfterCertificates);
    Ok(s)
}
