//! Scenario 14: GitOps. Git holds the Issuers, ClusterIssuers and Certificates; the backup holds only what Git
//! cannot: the Secrets (`pack --secrets-only`). The restore applies the Secrets with cmarchive; then the scenario's
//! own manifests, as Git holds them, are applied with `kubectl apply` the way a GitOps controller syncs them, and
//! `cmarchive verify` must prove every Certificate adopted its restored Secret. Its control is the GitOps sync
//! running first: the Certificates are applied before their Secrets exist, and cert-manager reissues.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::cli::{Cmarchive, Run};
use super::{Check, Mistake, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, ca_issuer, namespace, self_signed_issuer};

pub(super) fn scenario() -> Result<Scenario> {
    let ns = "s14-gitops";
    let mut s = Scenario::new(
        14,
        "gitops",
        "GitOps: Secrets from a --secrets-only archive, issuers and Certificates from Git",
        &[ns],
    );
    s.secrets_only = true;
    let crn = s.source.cluster_resource_namespace.clone();
    let ca = Ca::new("cmarchive scenario 14 CA")?;
    s.setup.push(ca.secret(ns, "gitops-ca"));
    s.setup.push(ca_issuer(Some(ns), "gitops-ca", "gitops-ca"));
    s.certificate(&Certificate::new(
        ns,
        "storefront",
        IssuerRef::issuer("gitops-ca"),
        "storefront.s14.cmarchive.test",
    ));
    s.setup.push(self_signed_issuer(Some(ns), "gitops-bootstrap"));
    s.certificate(&Certificate::new(
        ns,
        "bootstrap",
        IssuerRef::issuer("gitops-bootstrap"),
        "bootstrap.s14.cmarchive.test",
    ));
    // A ClusterIssuer's Secret travels through the cluster resource namespace, Git's ClusterIssuer does not.
    let cluster_issuer = "s14-gitops-ca";
    let keypair = format!("{cluster_issuer}-keypair");
    let cluster_ca = Ca::new("cmarchive scenario 14 cluster CA")?;
    s.setup.insert(0, namespace(&crn));
    s.setup.push(cluster_ca.secret(&crn, &keypair));
    s.setup.push(ca_issuer(None, cluster_issuer, &keypair));
    s.cluster_issuers.push(cluster_issuer.to_owned());
    s.cluster_resource_secrets.push(keypair.clone());
    s.certificate(&Certificate::new(
        ns,
        "api",
        IssuerRef::cluster_issuer(cluster_issuer),
        "api.s14.cmarchive.test",
    ));
    s.checks.push(Check::SecretsIdentical(vec![
        (ns.to_owned(), "gitops-ca".to_owned()),
        (crn, keypair),
    ]));
    s.control_all(Mistake::SecretsAfterCertificates);
    Ok(s)
}

/// What Git holds of a scenario: its issuers and Certificates as written, never a Secret.
pub fn from_git(s: &Scenario) -> Vec<Value> {
    s.setup
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Issuer" | "ClusterIssuer" | "Certificate")))
        .cloned()
        .collect()
}

/// After `cmarchive restore` of a secrets-only archive: the restore must have said that the Certificates come from
/// Git, `cmarchive verify` must say they are not there yet (exit 1, not 0 and not a crash); then the GitOps sync.
/// Returns what went wrong short of an error.
pub async fn sync(
    s: &Scenario,
    archive: &Path,
    kubeconfig: &Path,
    cm: &Cmarchive,
    restore: &Run,
) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    if !restore.stderr.contains("expected from Git") {
        failures.push(format!(
            "restore of a secrets-only archive does not say the Certificates are expected from Git:\n{}",
            restore.stderr
        ));
    }
    if restore.stdout.contains("verified 0 certificates") {
        failures.push(format!(
            "restore of a secrets-only archive printed an empty verification:\n{}",
            restore.stdout
        ));
    }
    let early = cm.verify(archive, kubeconfig, false).await?;
    if early.code != 1 || !early.stderr.contains("not in the cluster yet") {
        failures.push(format!(
            "verify before the GitOps sync exited {} and did not say the Certificates are not in the cluster yet:\n{}{}",
            early.code, early.stdout, early.stderr
        ));
    }
    kubectl_apply(kubeconfig, &from_git(s)).await?;
    Ok(failures)
}

/// `kubectl apply -f -` of `objects` as one List, as a GitOps controller syncs a folder.
async fn kubectl_apply(kubeconfig: &Path, objects: &[Value]) -> Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let mut child = tokio::process::Command::new(super::guide::kubectl())
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running kubectl (install it, or set KUBECTL)")?;
    let mut stdin = child.stdin.take().context("stdin is piped")?;
    stdin.write_all(list.to_string().as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "kubectl apply of the Git manifests failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_holds_issuers_and_certificates_only() {
        let s = scenario().unwrap();
        let git = from_git(&s);
        let kinds: std::collections::BTreeSet<&str> = git.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(kinds, ["Certificate", "ClusterIssuer", "Issuer"].into_iter().collect());
        assert_eq!(
            git.iter().filter(|o| o["kind"] == "Certificate").count(),
            s.certificates.len()
        );
    }
}
