//! Scenario 11: Vault and Venafi issuers. No Vault or Venafi server runs here, so nothing is issued by them; the
//! Certificates hold leaves "issued before the backup" (made with rcgen). What the restore must get right is that
//! every credential Secret the issuers name (token, AppRole, CA bundle, TPP credentials, cloud API key) arrives
//! byte for byte, and that the Certificates are not reissued although their issuers are not Ready.

use anyhow::Result;
use serde_json::json;

use super::{Check, Mistake, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, issuer, opaque_secret};

pub(super) fn scenario() -> Result<Scenario> {
    let ns = "s11-external-ca";
    let mut s = Scenario::new(
        11,
        "vault-venafi",
        "Vault and Venafi issuers with their credential Secrets",
        &[ns],
    );
    let pki = Ca::new("stand-in for an external PKI")?;
    let creds = [
        opaque_secret(ns, "vault-token", &[("token", "hvs.cmarchive-test-token")]),
        opaque_secret(ns, "vault-approle", &[("secretId", "0f6c5e7e-approle-secret")]),
        opaque_secret(ns, "vault-ca-bundle", &[("ca.crt", &pki.cert_pem)]),
        opaque_secret(
            ns,
            "tpp-credentials",
            &[("username", "svc-cmarchive"), ("password", "tpp-password")],
        ),
        opaque_secret(ns, "venafi-cloud", &[("api-key", "venafi-cloud-api-key")]),
    ];
    s.setup.extend(creds.iter().cloned());
    let vault = "https://vault.s11.cmarchive.invalid:8200";
    s.setup.push(issuer(
        Some(ns),
        "vault-token",
        json!({"vault": {"server": vault, "path": "pki/sign/web",
            "caBundleSecretRef": {"name": "vault-ca-bundle", "key": "ca.crt"},
            "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}),
    ));
    s.setup.push(issuer(
        Some(ns),
        "vault-approle",
        json!({"vault": {"server": vault, "path": "pki/sign/web",
            "auth": {"appRole": {"path": "approle", "roleId": "cmarchive-role",
                "secretRef": {"name": "vault-approle", "key": "secretId"}}}}}),
    ));
    s.setup.push(issuer(
        Some(ns),
        "venafi-tpp",
        json!({"venafi": {"zone": "Certificates\\cmarchive",
            "tpp": {"url": "https://tpp.s11.cmarchive.invalid/vedsdk", "credentialsRef": {"name": "tpp-credentials"}}}}),
    ));
    s.setup.push(issuer(
        Some(ns),
        "venafi-cloud",
        json!({"venafi": {"zone": "cmarchive\\default",
            "cloud": {"apiTokenSecretRef": {"name": "venafi-cloud", "key": "api-key"}}}}),
    ));
    let now = jiff::Timestamp::now();
    for (name, iss) in [
        ("vault-web", "vault-token"),
        ("approle-web", "vault-approle"),
        ("tpp-web", "venafi-tpp"),
    ] {
        let crt = Certificate::new(ns, name, IssuerRef::issuer(iss), &format!("{name}.s11.cmarchive.test"));
        let leaf = pki.issue(&crt.leaf_spec(
            now - jiff::SignedDuration::from_hours(1),
            now + jiff::SignedDuration::from_hours(2000),
        ))?;
        s.setup.push(crt.issued_secret(&pki, &leaf));
        s.certificate(&crt);
    }
    s.checks.push(Check::SecretsIdentical(
        creds
            .iter()
            .map(|c| {
                (
                    ns.to_owned(),
                    c["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    ));
    s.unreachable_issuers = true;
    s.control_all(Mistake::NoSecrets);
    Ok(s)
}
