//! `restore --from-file` against local clusters: plain objects are planned like `pack --from-file` plans them and
//! restored like an archive. A cluster is packed; what `unpack` prints, piped into `restore --from-file -`, lands in
//! a fresh cluster with every certificate byte-identical and none reissued. The cert-manager guide's own backup
//! (`kubectl get -o json issuer,clusterissuer,cert`: no Secrets) is refused before anything is written, and with
//! `--allow-reissue` restored: cert-manager issues every Certificate anew, and the restore's verification must
//! see each of those issuances (the negative control of the first half) and report it as the one it predicted.

pub mod support;

use anyhow::{Context as _, Result};
use cmarchive_e2e::fixtures::{self, Ca, Certificate, IssuerRef};
use cmarchive_e2e::local::LocalCluster;
use cmarchive_e2e::provider::{Cluster, ClusterSpec};
use cmarchive_e2e::reissuance;
use cmarchive_e2e::scenarios::guide;
use cmarchive_e2e::scenarios::objects::{self, kinds};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use support::{against, cmarchive, keygen, run};

const WAIT: Duration = Duration::from_secs(180);
const NAMESPACE: &str = "shop";
const LEAVES: [&str; 3] = ["web", "api", "admin"];

/// A SelfSigned Issuer (it issues again without any Secret, as the guide's restore needs) and leaf Certificates
/// with the TLS Secrets cert-manager would have written, in [`NAMESPACE`].
fn source_objects() -> Result<Vec<Value>> {
    let ca = Ca::new("cmarchive from-file test CA")?;
    let mut items = vec![
        fixtures::namespace(NAMESPACE),
        fixtures::self_signed_issuer(Some(NAMESPACE), "selfsigned"),
    ];
    let not_before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    for name in LEAVES {
        let crt = Certificate::new(
            NAMESPACE,
            name,
            IssuerRef::issuer("selfsigned"),
            &format!("{name}.{NAMESPACE}.test"),
        )
        .duration("2160h");
        let leaf = ca.issue(&crt.leaf_spec(not_before, not_before + jiff::SignedDuration::from_hours(2160)))?;
        items.push(crt.issued_secret(&ca, &leaf));
        items.push(crt.to_json());
    }
    Ok(items)
}

fn tls_crt(secret: &Value) -> &Value {
    &secret["data"]["tls.crt"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpacked_archives_and_guide_backups_restore_from_plain_objects() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (recipient, key) = keygen(work.path())?;
    let items = source_objects()?;

    // --- the source: pack it, and take the guide's backup of it
    let archive = work.path().join("source.cmar");
    let backup = work.path().join("backup.json");
    {
        let source = LocalCluster::start(&ClusterSpec::named("from-file-source")).await?;
        objects::apply_all(&source.client(), &items).await?;
        let (code, _, stderr) = run(cmarchive()
            .arg("pack")
            .arg(&archive)
            .arg("-r")
            .arg(&recipient)
            .arg("--kubeconfig")
            .arg(source.kubeconfig()));
        anyhow::ensure!(code == 0, "pack exited {code}: {stderr}");
        guide::backup(source.kubeconfig(), &backup).await?;
    }
    let guide_backup: Value = serde_json::from_slice(&std::fs::read(&backup)?)?;
    let kinds_in_backup: BTreeSet<&str> = guide_backup["items"]
        .as_array()
        .context("a List")?
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert_eq!(
        kinds_in_backup,
        BTreeSet::from(["Certificate", "Issuer"]),
        "no Secrets in the guide's backup"
    );

    // --- (a) `unpack | restore --from-file -` into a fresh cluster: nothing predicted, nothing reissued
    let unpacked = cmarchive().arg("unpack").arg(&archive).arg("-i").arg(&key).output()?;
    anyhow::ensure!(unpacked.status.success(), "unpack failed");
    {
        let target = LocalCluster::start(&ClusterSpec::named("from-file-unpacked")).await?;
        let (code, stdout, stderr) = run(cmarchive()
            .args(["restore", "--from-file", "-", "--timeout", "2m", "--kubeconfig"])
            .arg(target.kubeconfig())
            .write_stdin(unpacked.stdout));
        assert_eq!(code, 0, "{stderr}");
        assert!(!stderr.contains("prediction:"), "{stderr}");
        assert!(
            stdout.contains(&format!("verified {} certificates: 0 reissued", LEAVES.len())),
            "the restore verifies every Certificate of the plain objects: {stdout}"
        );
        // The archive's own facts agree: the same certificates, byte for byte, and not one CertificateRequest.
        let (code, stdout, _) = run(&mut against("verify", &archive, &key, target.kubeconfig()));
        assert_eq!(code, 0, "{stdout}");
        let client = target.client();
        for secret in items.iter().filter(|o| o["kind"] == "Secret") {
            let name = secret["metadata"]["name"].as_str().context("a name")?;
            let live = objects::get(&client, kinds::SECRET, Some(NAMESPACE), name)
                .await?
                .with_context(|| format!("Secret {name} restored"))?;
            assert_eq!(
                tls_crt(&live),
                tls_crt(secret),
                "Secret {name} holds the packed certificate"
            );
        }
        reissuance::barrier(&client, WAIT).await?;
        let requests = objects::list(&client, kinds::CERTIFICATE_REQUEST, Some(NAMESPACE)).await?;
        assert!(requests.is_empty(), "{} CertificateRequest(s) created", requests.len());
    }

    // --- (b) the guide's backup: refused before writing; with --allow-reissue, restored and every issuance seen
    let target = LocalCluster::start(&ClusterSpec::named("from-file-guide")).await?;
    let client = target.client();
    let restore = |extra: &[&str]| {
        run(cmarchive()
            .arg("restore")
            .arg("--from-file")
            .arg(&backup)
            .args(["--timeout", "2m", "--kubeconfig"])
            .arg(target.kubeconfig())
            .args(extra))
    };
    let (code, _, stderr) = restore(&[]);
    assert_eq!(code, 1, "{stderr}");
    for name in LEAVES {
        assert!(
            stderr.contains(&format!(
                "prediction: cert-manager will reissue Certificate/{NAMESPACE}/{name} (DoesNotExist:"
            )),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("{} Certificate(s) would be reissued", LEAVES.len()))
            && stderr.contains("--allow-reissue"),
        "{stderr}"
    );
    assert!(
        objects::get(&client, kinds::NAMESPACE, None, NAMESPACE)
            .await?
            .is_none(),
        "nothing may be written when the restore is refused: not even the Namespace"
    );
    assert!(objects::list(&client, kinds::CERTIFICATE, None).await?.is_empty());
    assert!(objects::list(&client, kinds::ISSUER, None).await?.is_empty());

    let (code, stdout, stderr) = restore(&["--allow-reissue", "-o", "json"]);
    assert_eq!(
        code, 0,
        "a reissue that was predicted and allowed is no failure: {stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).context("restore -o json")?;
    let predicted: BTreeSet<&str> = report["predictedReissuance"]
        .as_array()
        .context("the prediction is in the report")?
        .iter()
        .filter(|p| p["reason"] == "DoesNotExist")
        .filter_map(|p| p["certificate"]["name"].as_str())
        .collect();
    assert_eq!(predicted, BTreeSet::from(LEAVES), "{report:#}");
    let verify = &report["verify"];
    assert_eq!(
        (verify["reissued"].as_u64(), verify["reissuedAsPredicted"].as_u64()),
        (Some(0), Some(3)),
        "{verify:#}"
    );
    let requests = objects::list(&client, kinds::CERTIFICATE_REQUEST, Some(NAMESPACE)).await?;
    for name in LEAVES {
        let check = verify["certificates"]
            .as_array()
            .context("checks")?
            .iter()
            .find(|c| c["name"] == name)
            .with_context(|| format!("{name} verified: {verify:#}"))?;
        assert_eq!(check["verdict"], "reissuedAsPredicted", "{check:#}");
        // The verdict rests on evidence found in the cluster, and the cluster agrees: cert-manager issued it.
        assert!(check["evidence"].as_array().is_some_and(|e| !e.is_empty()), "{check:#}");
        let issued_for = |r: &&Value| {
            r["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["kind"] == "Certificate" && o["name"] == name))
        };
        assert!(
            requests.iter().any(|r| issued_for(&r)),
            "no CertificateRequest for {name}"
        );
        let secret = objects::get(&client, kinds::SECRET, Some(NAMESPACE), &format!("{name}-tls"))
            .await?
            .with_context(|| format!("{name}-tls issued"))?;
        let packed = items
            .iter()
            .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == format!("{name}-tls"))
            .context("the packed Secret")?;
        assert_ne!(tls_crt(&secret), tls_crt(packed), "{name} holds a new certificate");
    }
    Ok(())
}
