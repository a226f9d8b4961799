//! Scenario 11: Vault and Venafi issuers. No Vault or Venafi server runs here, so nothing is issued by them; the
//! Certificates hold leaves "issued before the backup" (made with rcgen). What the restore must get right is that
//! every credential Secret the issuers name (token, AppRole, CA bundle, TPP credentials, cloud API key) arrives
//! byte for byte, that the ServiceAccount Vault's Kubernetes auth uses arrives with the Role and RoleBinding letting
//! cert-manager create its tokens, and that the Certificates are not reissued although their issuers are not Ready.

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
    // Vault's Kubernetes auth: cert-manager requests a token for this ServiceAccount, which the Role and
    // RoleBinding (found by what they grant, whatever their names) allow it; all three travel with the Secrets.
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "vault-issuer", "namespace": ns}});
    let token_role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "s11-token-creator", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": ["vault-issuer"],
                   "verbs": ["create"]}]});
    let token_binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "s11-cert-manager-tokens", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "s11-token-creator"},
        "subjects": [{"kind": "ServiceAccount", "name": "cert-manager", "namespace": "cert-manager"}]});
    let rbac = vec![account, token_role, token_binding];
    s.setup.extend(rbac.iter().cloned());
    s.setup.push(issuer(
        Some(ns),
        "vault-kubernetes",
        json!({"vault": {"server": vault, "path": "pki/sign/web",
            "auth": {"kubernetes": {"role": "cmarchive", "mountPath": "/v1/auth/kubernetes",
                "serviceAccountRef": {"name": "vault-issuer"}}}}}),
    ));
    s.checks.push(Check::Restored(rbac));
    let now = jiff::Timestamp::now();
    for (name, iss) in [
        ("vault-web", "vault-token"),
        ("approle-web", "vault-approle"),
        ("k8s-auth-web", "vault-kubernetes"),
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
