//! The cert-manager guide's own backup recipe, run literally with kubectl and jq, so `scripts/compare-guide` can
//! measure it on the same scenarios as cmarchive.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};

/// Env var naming the kubectl to use (default: `kubectl` on `PATH`).
pub const ENV_KUBECTL: &str = "KUBECTL";

/// The guide's jq program: delete `uid` and `resourceVersion` from every `metadata`, keep everything else
/// (owner references included).
pub const JQ_WALK: &str =
    r#"walk(if type == "object" and has("metadata") then .metadata |= (del(.uid) | del(.resourceVersion)) else . end)"#;

pub(super) fn kubectl() -> String {
    std::env::var(ENV_KUBECTL).unwrap_or_else(|_| "kubectl".to_owned())
}

/// `kubectl get --all-namespaces -ojson issuer,clusterissuer,cert > backup`.
pub async fn backup(source_kubeconfig: &Path, backup: &Path) -> Result<()> {
    let out = tokio::process::Command::new(kubectl())
        .args(["get", "--all-namespaces", "-ojson", "issuer,clusterissuer,cert"])
        .env("KUBECONFIG", source_kubeconfig)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running kubectl (install it, or set KUBECTL)")?;
    if !out.status.success() {
        bail!("kubectl get failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(backup, &out.stdout).with_context(|| format!("writing {}", backup.display()))
}

/// `jq '<walk>' backup | kubectl apply -f -`, exactly the guide's restore.
pub async fn restore(target_kubeconfig: &Path, backup: &Path) -> Result<String> {
    let script = format!("set -o pipefail; jq '{JQ_WALK}' \"$1\" | \"$2\" apply -f -",);
    let out = tokio::process::Command::new("bash")
        .args(["-c", &script, "guide-restore"])
        .arg(backup)
        .arg(kubectl())
        .env("KUBECONFIG", target_kubeconfig)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running bash, jq and kubectl")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("the guide's restore failed:\n{text}");
    }
    Ok(text)
}
