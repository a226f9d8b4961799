//! `cmarchive restore` against a cluster whose cert-manager webhook is not serving (scaled to zero on a local
//! cluster with the real webhook and cainjector): the dry run reports it as one finding and returns at once; a
//! restore writes Namespaces and Secrets, waits for cert-manager's API up to `--timeout`, and then fails with one
//! error naming the cause and the remedy — without waiting for issuers it never created, and without a library's
//! log lines on stderr. With the webhook back, the same command resumes and finishes. (The restore that waits
//! while the webhook comes back is scenario 13 of the suite.)

pub mod support;

use anyhow::Result;
use cmarchive_e2e::fixtures::{self, Ca, Certificate, IssuerRef};
use cmarchive_e2e::local::LocalCluster;
use cmarchive_e2e::local::components::Component;
use cmarchive_e2e::provider::{Cluster, ClusterSpec};
use cmarchive_e2e::scenarios::objects::{self, kinds};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{against, pack_dump, run};

const NAMESPACE: &str = "late";

/// A CA Issuer and two Certificates with their issued Secrets, as a `kubectl get -o json` dump.
fn dump() -> Result<Value> {
    let ca = Ca::new("cmarchive webhook test CA")?;
    let mut items = vec![
        fixtures::namespace(NAMESPACE),
        ca.secret(NAMESPACE, "late-ca"),
        fixtures::ca_issuer(Some(NAMESPACE), "late-ca", "late-ca"),
    ];
    let not_before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    for name in ["one", "two"] {
        let crt = Certificate::new(
            NAMESPACE,
            name,
            IssuerRef::issuer("late-ca"),
            &format!("{name}.late.test"),
        )
        .duration("2160h");
        let leaf = ca.issue(&crt.leaf_spec(not_before, not_before + jiff::SignedDuration::from_hours(2160)))?;
        items.push(crt.issued_secret(&ca, &leaf));
        items.push(crt.to_json());
    }
    Ok(json!({"apiVersion": "v1", "kind": "List", "items": items}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_waits_for_the_webhook_and_names_the_cause() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (archive, key) = pack_dump(dir.path(), "late", &dump()?)?;

    let target = LocalCluster::start(&ClusterSpec::named("webhook-late")).await?;
    let client = target.client();
    // The namespace exists already, so the preflight's dry run of the issuer reaches the webhook.
    objects::apply(&client, &fixtures::namespace(NAMESPACE)).await?;
    target.stop_component(Component::Webhook).await?;

    // --dry-run: one finding, no wait, a non-zero exit, nothing written.
    let started = Instant::now();
    let (code, _, stderr) = run(against("restore", &archive, &key, target.kubeconfig())
        .arg("--dry-run")
        .arg("--timeout")
        .arg("60s"));
    assert_ne!(code, 0, "an unusable webhook is a finding of the dry run: {stderr}");
    assert!(
        stderr.contains("refused 3 object(s) for want of its webhook: the webhook is not running (connection refused)")
            && stderr.contains("a restore would wait up to 60s"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "the dry run does not wait");
    assert!(
        objects::get(&client, kinds::SECRET, Some(NAMESPACE), "late-ca")
            .await?
            .is_none()
    );

    // A restore writes what does not go through the webhook, waits, and fails with the cause and the remedy.
    let started = Instant::now();
    let (code, _, stderr) = run(against("restore", &archive, &key, target.kubeconfig())
        .arg("--timeout")
        .arg("8s"));
    let took = started.elapsed();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("waiting for cert-manager's API")
            && stderr.contains(
                "cert-manager's API is not usable after waiting 8s: the webhook is not running (connection refused)"
            )
            && stderr.contains("cmarchive: hint: check that the cert-manager-webhook Deployment is running"),
        "{stderr}"
    );
    // One wait of --timeout, not one more per phase for objects that were never created.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        !stderr.contains("not seen") && !stderr.contains("not ready:"),
        "{stderr}"
    );
    // kube-client's own log lines stay below -v.
    assert!(
        !stderr.contains("ERROR") && !stderr.contains("failed with status"),
        "{stderr}"
    );
    for secret in ["late-ca", "one-tls", "two-tls"] {
        assert!(
            objects::get(&client, kinds::SECRET, Some(NAMESPACE), secret)
                .await?
                .is_some(),
            "Secrets do not go through the webhook and are restored: {secret}"
        );
    }
    assert!(objects::list(&client, kinds::ISSUER, Some(NAMESPACE)).await?.is_empty());

    // The webhook is back: the same command resumes and finishes, nothing reissued.
    target.start_component(Component::Webhook).await?;
    let (code, stdout, stderr) = run(&mut against("restore", &archive, &key, target.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 reissued"), "{stdout}");
    Ok(())
}
