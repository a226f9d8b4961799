//! The race between Secrets and Certificates (docs/CLUSTER.md), on real clusters: cert-manager reissues a Certificate it sees before its Secret.
//!
//! One archive of many Certificates with their issued Secrets goes into two fresh local clusters:
//! - `cmarchive restore` (Secrets phase, the watch barrier, then issuers and Certificates): nothing is reissued;
//! - the same objects applied by hand with every Secret and its Certificate sent together, as a tool that syncs a
//!   folder in one parallel wave would: cert-manager loses the race for some of them, and `cmarchive verify`
//!   reports them. That twin is what proves the assertion on the first cluster can fail.
//!
//! On these machines a Certificate written only after its Secret's write has returned was never reissued (0 of
//! 1,000 in `scripts/bench`'s raw floor), so the extra margin of the barrier (a watch that has seen every Secret,
//! then a grace) only shows on clusters whose controller lags further behind the API server.

pub mod support;

use anyhow::{Context as _, Result};
use cmarchive_e2e::fixtures::{self, Ca, Certificate, IssuerRef};
use cmarchive_e2e::local::LocalCluster;
use cmarchive_e2e::provider::{Cluster, ClusterSpec};
use cmarchive_e2e::reissuance;
use cmarchive_e2e::scenarios::objects::{self, kinds};
use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde_json::{Value, json};
use std::time::Duration;
use support::{against, cmarchive, pack_dump, run};

const NAMESPACE: &str = "race";
const CERTIFICATES: usize = 200;
const WAIT: Duration = Duration::from_secs(180);

/// A `kubectl get -o json`-shaped dump: a CA Issuer and [`CERTIFICATES`] Certificates whose Secrets hold leaves
/// it issued an hour ago for 90 days, so nothing is due for renewal.
fn dump() -> Result<Value> {
    let ca = Ca::new("cmarchive race CA")?;
    let mut items = vec![
        fixtures::namespace(NAMESPACE),
        ca.secret(NAMESPACE, "race-ca"),
        fixtures::ca_issuer(Some(NAMESPACE), "race-ca", "race-ca"),
    ];
    let now = jiff::Timestamp::now();
    let not_before = now - jiff::SignedDuration::from_hours(1);
    for i in 0..CERTIFICATES {
        let name = format!("app-{i:03}");
        let crt = Certificate::new(
            NAMESPACE,
            &name,
            IssuerRef::issuer("race-ca"),
            &format!("{name}.race.test"),
        )
        .duration("2160h");
        let leaf = ca.issue(&crt.leaf_spec(not_before, not_before + jiff::SignedDuration::from_hours(2160)))?;
        items.push(crt.issued_secret(&ca, &leaf));
        items.push(crt.to_json());
    }
    Ok(json!({"apiVersion": "v1", "kind": "List", "items": items}))
}

async fn certificate_requests(client: &kube::Client) -> Result<usize> {
    Ok(objects::list(client, kinds::CERTIFICATE_REQUEST, Some(NAMESPACE))
        .await?
        .len())
}

/// The hand-made restore: Namespace, the CA Secret and the Issuer first, then each leaf Secret and its
/// Certificate sent at the same moment, 32 pairs in flight.
async fn apply_together(client: &kube::Client, archived: &[Value]) -> Result<()> {
    let is_leaf_secret = |o: &Value| {
        o["kind"] == "Secret" && o["metadata"]["annotations"]["cert-manager.io/certificate-name"].is_string()
    };
    for o in archived
        .iter()
        .filter(|o| o["kind"] != "Certificate" && !is_leaf_secret(o))
    {
        objects::apply(client, o).await?;
    }
    let pairs: Vec<(&Value, &Value)> = archived
        .iter()
        .filter(|o| o["kind"] == "Certificate")
        .map(|crt| {
            let secret = archived
                .iter()
                .find(|o| is_leaf_secret(o) && o["metadata"]["name"] == crt["spec"]["secretName"])
                .context("every archived Certificate has its Secret")?;
            Ok((secret, crt))
        })
        .collect::<Result<_>>()?;
    assert_eq!(pairs.len(), CERTIFICATES);
    stream::iter(pairs)
        .map(|(secret, crt)| async move {
            tokio::try_join!(objects::apply(client, secret), objects::apply(client, crt))?;
            anyhow::Ok(())
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_phase_wins_the_race_that_applying_together_loses() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (archive, key) = pack_dump(work.path(), "race", &dump()?)?;

    let (careful_spec, naive_spec) = (
        ClusterSpec::named("race-cmarchive"),
        ClusterSpec::named("race-together"),
    );
    let (careful, naive) = tokio::try_join!(LocalCluster::start(&careful_spec), LocalCluster::start(&naive_spec))?;

    // cmarchive restore: nothing reissued, by its own verification and by cert-manager's CertificateRequests.
    let (code, stdout, _) = run(&mut against("restore", &archive, &key, careful.kubeconfig()));
    assert_eq!(code, 0, "cmarchive restore");
    assert!(
        stdout.contains(&format!("verified {CERTIFICATES} certificates: 0 reissued")),
        "{stdout}"
    );
    reissuance::barrier(&careful.client(), WAIT).await?;
    assert_eq!(
        certificate_requests(&careful.client()).await?,
        0,
        "cmarchive restore reissued"
    );

    // The twin: the same archived objects, each Secret sent together with its Certificate.
    let (code, unpacked, _) = run(cmarchive()
        .arg("unpack")
        .arg(&archive)
        .arg("-i")
        .arg(&key)
        .args(["-o", "json"]));
    assert_eq!(code, 0, "unpack");
    let unpacked: Value = serde_json::from_str(&unpacked)?;
    let archived = unpacked["items"].as_array().context("unpack -o json prints a List")?;
    apply_together(&naive.client(), archived).await?;
    reissuance::barrier(&naive.client(), WAIT).await?;
    let requests = certificate_requests(&naive.client()).await?;
    eprintln!("applied together: {requests} of {CERTIFICATES} Certificates reissued");
    assert!(
        requests > 0,
        "no Certificate lost the race: this test can no longer fail"
    );
    let (code, stdout, _) = run(&mut against("verify", &archive, &key, naive.kubeconfig()));
    assert_eq!(code, 2, "verify must report the lost race: {stdout}");
    Ok(())
}
