//! Scenario 13: the restore starts while cert-manager's webhook is not serving (a fresh install, an upgrade): the
//! target's `cert-manager-webhook` Deployment is at zero replicas and comes back only once the restore has written
//! the Secrets and has to wait. cmarchive must wait for cert-manager's API and finish with nothing reissued.
//!
//! Its negative control is the refusal itself: at the same moment, on the control cluster whose webhook is down
//! too, `cmarchive unpack … | kubectl apply -f -` is refused by the API server for want of the webhook, and none
//! of the scenario's Certificates exists there afterwards.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::cli::{Cmarchive, Run};
use super::objects::{self, kinds};
use super::{Control, Disturbance, Mistake, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, ca_issuer};
use crate::provider::{Cluster, cert_manager_api_check};

/// Namespace and name of the webhook's Deployment in every provider (the release manifest's).
const WEBHOOK: (&str, &str) = ("cert-manager", "cert-manager-webhook");
const NAMESPACE: &str = "s13-webhook-late";
/// The start of the status line `cmarchive restore` shows while it waits for the webhook.
const WAITING_LINE: &str = "waiting for cert-manager's API";

pub(super) fn scenario() -> Result<Scenario> {
    let mut s = Scenario::new(
        13,
        "webhook-late",
        "restore starts while cert-manager's webhook is down",
        &[NAMESPACE],
    );
    let ca = Ca::new("cmarchive scenario 13 CA")?;
    s.setup.push(ca.secret(NAMESPACE, "late-ca"));
    s.setup.push(ca_issuer(Some(NAMESPACE), "late-ca", "late-ca"));
    for name in ["portal", "billing"] {
        s.certificate(&Certificate::new(
            NAMESPACE,
            name,
            IssuerRef::issuer("late-ca"),
            &format!("{name}.s13.cmarchive.test"),
        ));
    }
    s.disturbance = Some(Disturbance::WebhookLate);
    s.control = Some(Control {
        mistake: Mistake::AppliedWhileWebhookDown,
        must_reissue: BTreeSet::new(),
    });
    Ok(s)
}

/// Scales the webhook and waits, by asking the API server, until cert-manager's API is refused (0) or admitted
/// again (1).
async fn scale_webhook(cluster: &dyn Cluster, replicas: i32, timeout: Duration) -> Result<()> {
    let client = cluster.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), WEBHOOK.0);
    api.patch(
        WEBHOOK.1,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
    )
    .await
    .with_context(|| format!("scaling {}/{} to {replicas}", WEBHOOK.0, WEBHOOK.1))?;
    let want_up = replicas > 0;
    let what = if want_up {
        "cert-manager's API admits a dry-run Issuer again"
    } else {
        "cert-manager's API refuses a dry-run Issuer"
    };
    crate::provider::poll(timeout, Duration::from_millis(200), what, || {
        let client = client.clone();
        async move {
            Ok(match cert_manager_api_check(&client, "default").await? {
                Ok(()) if want_up => Ok(()),
                Err(why) if !want_up => {
                    if why.contains("failed calling webhook") {
                        Ok(())
                    } else {
                        Err(format!("refused, but not for want of the webhook: {why}"))
                    }
                }
                Ok(()) => Err("still admitted".to_owned()),
                Err(why) => Err(why),
            })
        }
    })
    .await
}

/// What the scenario's restore did, for the runner's usual checks.
pub(super) struct Outcome {
    /// The `cmarchive restore` run.
    pub restore: Run,
    /// The control's result for the report, when it ran; its failures are in `failures`.
    pub control: Option<String>,
    /// Everything the control got wrong.
    pub failures: Vec<String>,
}

/// Restores `archive` into `target` with the webhook down at the start; once the restore has written the
/// scenario's Secrets (so it must now be waiting), runs the control on `control` (webhook down there too) and
/// brings the target's webhook back.
pub(super) async fn restore(
    target: &dyn Cluster,
    control: Option<&dyn Cluster>,
    s: &Scenario,
    archive: &Path,
    cm: &Cmarchive,
    timeout: Duration,
) -> Result<Outcome> {
    scale_webhook(target, 0, timeout)
        .await
        .context("the target's webhook")?;
    if let Some(c) = control {
        scale_webhook(c, 0, timeout).await.context("the control's webhook")?;
    }
    let secrets: BTreeSet<(String, String)> = s
        .setup
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .map(|o| {
            (
                o["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
                o["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let restore_timeout = format!("{}s", (timeout * 3).as_secs());
    let restore_args = ["--timeout", restore_timeout.as_str()];
    let (waiting_tx, waiting) = tokio::sync::oneshot::channel();
    let restore = cm.restore_noticing(
        archive,
        target.kubeconfig(),
        &restore_args,
        Some((WAITING_LINE, waiting_tx)),
    );
    let disturb = async {
        let client = target.client();
        objects::watch_until(
            &client,
            kinds::SECRET,
            timeout,
            "the restore has written the scenario's Secrets",
            |_, all| secrets.iter().all(|k| all.contains_key(k)).then_some(()),
        )
        .await?;
        tokio::time::timeout(timeout, waiting)
            .await
            .context("the restore did not start waiting for cert-manager's API")?
            .context("the restore ended without waiting for cert-manager's API")?;
        // Secrets written, status line up: the restore waits for the webhook. The moment the hand-made restore
        // is tried.
        let control_result = match control {
            Some(c) => Some(naive_apply(c, s, archive, cm).await),
            None => None,
        };
        scale_webhook(target, 1, timeout)
            .await
            .context("the target's webhook")?;
        anyhow::Ok(control_result)
    };
    let (restore, disturbed) = tokio::join!(restore, disturb);
    // Whatever happened, the clusters serve the next scenarios with their webhooks up.
    let up_again = scale_webhook(target, 1, timeout).await.context("the target's webhook");
    if let Some(c) = control {
        scale_webhook(c, 1, timeout).await.context("the control's webhook")?;
    }
    up_again?;
    let restore = restore?;
    let control_result = disturbed?;
    if !restore.stderr.contains(WAITING_LINE) {
        bail!(
            "the restore never said it waited for cert-manager's API:\n{}",
            restore.stderr
        );
    }
    let mut outcome = Outcome {
        restore,
        control: None,
        failures: Vec::new(),
    };
    match control_result {
        Some(Ok(summary)) => outcome.control = Some(summary),
        Some(Err(e)) => {
            outcome.control = Some("not refused".to_owned());
            outcome.failures.push(format!("negative control: {e:#}"));
        }
        None => {}
    }
    Ok(outcome)
}

/// `cmarchive unpack ARCHIVE | kubectl apply -f -` into `cluster`: must be refused by the API server for want of
/// the webhook, and leave none of the scenario's Certificates behind.
async fn naive_apply(cluster: &dyn Cluster, s: &Scenario, archive: &Path, cm: &Cmarchive) -> Result<String> {
    let kubectl = std::env::var(super::guide::ENV_KUBECTL).unwrap_or_else(|_| "kubectl".to_owned());
    let script = r#"set -o pipefail; "$1" unpack "$2" -i "$3" | "$4" apply -f -"#;
    let out = tokio::process::Command::new("bash")
        .args(["-c", script, "naive-restore"])
        .arg(cm.binary())
        .arg(archive)
        .arg(&cm.identity)
        .arg(&kubectl)
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdin(Stdio::null())
        .output()
        .await
        .context("running bash, cmarchive and kubectl (install kubectl, or set KUBECTL)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        bail!("`cmarchive unpack | kubectl apply -f -` succeeded with the webhook down");
    }
    let refusals = stderr.matches("failed calling webhook").count();
    if refusals == 0 {
        bail!("`cmarchive unpack | kubectl apply -f -` failed, but not for want of the webhook:\n{stderr}");
    }
    let client = cluster.client();
    for id in &s.certificates {
        if objects::get(&client, kinds::CERTIFICATE, Some(&id.namespace), &id.name)
            .await?
            .is_some()
        {
            bail!("{id} exists on the control cluster although kubectl's apply was refused");
        }
    }
    Ok(format!(
        "kubectl apply refused {refusals} object(s): failed calling webhook"
    ))
}
