//! Selective restore (`-n`, `-l`) and `--namespace-mapping`: what `inspect` and `unpack` show of a selection
//! (offline), and on a local cluster a restore of one team of a two-team archive, the same team moved into another
//! namespace, a mapping refused for a name already taken there, and the negative control: a Certificate moved
//! without its Secret is reissued, and the check sees it.

pub mod support;

use anyhow::{Context as _, Result};
use cmarchive_e2e::fixtures::{self, Ca, Certificate, IssuerRef};
use cmarchive_e2e::local::LocalCluster;
use cmarchive_e2e::provider::{Cluster, ClusterSpec};
use cmarchive_e2e::reissuance::{self, Baseline, CertificateId, Snapshot};
use cmarchive_e2e::scenarios::objects::{self, kinds};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{against, cmarchive, pack_dump, run};

const WAIT: Duration = Duration::from_secs(180);

/// An archive of two teams, packed offline: team-a has a namespaced CA Issuer `local` and uses the ClusterIssuer
/// `company-ca`; team-b uses `company-ca` and `other-ca`, which nobody in team-a uses. Every Certificate comes
/// with the Secret its issuer would have written.
struct TwoTeams {
    work: tempfile::TempDir,
    archive: PathBuf,
    key: PathBuf,
    objects: Vec<Value>,
}

fn two_teams() -> Result<TwoTeams> {
    let company = Ca::new("company CA")?;
    let other = Ca::new("other CA")?;
    let local = Ca::new("team-a local CA")?;
    let mut team_a = fixtures::namespace("team-a");
    fixtures::set_path(&mut team_a, &["metadata", "labels", "team"], json!("a"));
    let mut objects = vec![
        team_a,
        fixtures::namespace("team-b"),
        company.secret("cert-manager", "company-ca"),
        fixtures::ca_issuer(None, "company-ca", "company-ca"),
        other.secret("cert-manager", "other-ca"),
        fixtures::ca_issuer(None, "other-ca", "other-ca"),
        local.secret("team-a", "local-ca"),
        fixtures::ca_issuer(Some("team-a"), "local", "local-ca"),
    ];
    let not_before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let not_after = not_before + jiff::SignedDuration::from_hours(2160);
    for (namespace, name, ca, issuer, app) in [
        (
            "team-a",
            "web",
            &company,
            IssuerRef::cluster_issuer("company-ca"),
            "web",
        ),
        ("team-a", "api", &local, IssuerRef::issuer("local"), "api"),
        ("team-b", "db", &company, IssuerRef::cluster_issuer("company-ca"), "db"),
        ("team-b", "shop", &other, IssuerRef::cluster_issuer("other-ca"), "web"),
    ] {
        let crt = Certificate::new(namespace, name, issuer, &format!("{name}.{namespace}.test")).duration("2160h");
        let leaf = ca.issue(&crt.leaf_spec(not_before, not_after))?;
        objects.push(crt.issued_secret(ca, &leaf));
        let mut certificate = crt.to_json();
        fixtures::set_path(&mut certificate, &["metadata", "labels", "app"], json!(app));
        objects.push(certificate);
    }
    let work = tempfile::tempdir()?;
    let dump = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let (archive, key) = pack_dump(work.path(), "two-teams", &dump)?;
    Ok(TwoTeams {
        work,
        archive,
        key,
        objects,
    })
}

/// `Kind namespace/name` (or `Kind name`) of an object, the way the assertions list them.
fn identity(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn identities<'a>(objects: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    objects.into_iter().map(identity).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// What `-n team-a` must restore: team-a's objects, the ClusterIssuer it uses with its Secret, their Namespaces.
const TEAM_A: [&str; 10] = [
    "Namespace team-a",
    "Namespace cert-manager",
    "Secret cert-manager/company-ca",
    "Secret team-a/local-ca",
    "Secret team-a/web-tls",
    "Secret team-a/api-tls",
    "ClusterIssuer company-ca",
    "Issuer team-a/local",
    "Certificate team-a/web",
    "Certificate team-a/api",
];

fn unpacked(teams: &TwoTeams, selection: &[&str]) -> Result<BTreeSet<String>> {
    let (code, stdout, stderr) = run(cmarchive()
        .arg("unpack")
        .arg(&teams.archive)
        .arg("-i")
        .arg(&teams.key)
        .args(["-o", "json"])
        .args(selection));
    anyhow::ensure!(code == 0, "unpack {selection:?}: {stderr}");
    let list: Value = serde_json::from_str(&stdout)?;
    Ok(identities(list["items"].as_array().context("a List")?))
}

#[test]
fn inspect_and_unpack_show_only_the_selection() -> Result<()> {
    let teams = two_teams()?;
    assert_eq!(unpacked(&teams, &["-n", "team-a"])?, set(&TEAM_A));
    // By label: both Certificates labelled app=web, each with its own issuer and Secrets.
    assert_eq!(
        unpacked(&teams, &["-l", "app in (web)"])?,
        set(&[
            "Namespace team-a",
            "Namespace team-b",
            "Namespace cert-manager",
            "Secret cert-manager/company-ca",
            "Secret cert-manager/other-ca",
            "Secret team-a/web-tls",
            "Secret team-b/shop-tls",
            "ClusterIssuer company-ca",
            "ClusterIssuer other-ca",
            "Certificate team-a/web",
            "Certificate team-b/shop",
        ])
    );

    let (code, stdout, stderr) = run(cmarchive()
        .arg("inspect")
        .arg(&teams.archive)
        .arg("-i")
        .arg(&teams.key)
        .args(["-n", "team-a", "-o", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let manifest: Value = serde_json::from_str(&stdout)?;
    let entries: BTreeSet<String> = manifest["phases"]
        .as_array()
        .context("phases")?
        .iter()
        .flat_map(|p| p["entries"].as_array().into_iter().flatten())
        .map(|e| match e["namespace"].as_str() {
            Some(ns) => format!(
                "{} {ns}/{}",
                e["kind"].as_str().unwrap_or_default(),
                e["name"].as_str().unwrap_or_default()
            ),
            None => format!(
                "{} {}",
                e["kind"].as_str().unwrap_or_default(),
                e["name"].as_str().unwrap_or_default()
            ),
        })
        .collect();
    assert_eq!(entries, set(&TEAM_A));
    let facts: BTreeSet<String> = manifest["certificates"]
        .as_array()
        .context("certificates")?
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["namespace"].as_str().unwrap_or_default(),
                c["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(facts, set(&["team-a/web", "team-a/api"]));
    let predicted = manifest["reissuancePrediction"]["certificates"]
        .as_array()
        .map(Vec::len);
    assert_eq!(predicted, Some(2), "the prediction covers the selection only");

    let (code, stdout, stderr) = run(cmarchive()
        .arg("inspect")
        .arg(&teams.archive)
        .arg("-i")
        .arg(&teams.key)
        .args(["-n", "team-a"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("selection: -n team-a (with what it needs)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("phases (restore order), 10 objects:"), "{stdout}");

    // unpack --dir: the selected objects' files and the selection's manifest.
    let dir = teams.work.path().join("team-a");
    let (code, _, stderr) = run(cmarchive()
        .arg("unpack")
        .arg(&teams.archive)
        .arg("-i")
        .arg(&teams.key)
        .args(["-n", "team-a", "-o", "json", "--dir"])
        .arg(&dir));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("wrote 10 objects"), "{stderr}");
    let written: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json"))?)?;
    assert_eq!(
        written["phases"], manifest["phases"],
        "the manifest inspect shows for the selection"
    );
    assert_eq!(written["certificates"], manifest["certificates"]);

    // A mapping the archive cannot take is a usage error before any cluster is contacted.
    let (code, _, stderr) = run(cmarchive()
        .arg("restore")
        .arg(&teams.archive)
        .arg("-i")
        .arg(&teams.key)
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .args(["--namespace-mapping", "cert-manager:ops,team-x:team-y"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr
            .contains("--namespace-mapping cert-manager:ops: cert-manager is the archive's cluster resource namespace")
            && stderr.contains("no archived (or selected) object lives in namespace team-x")
            && !stderr.contains("kubeconfig"),
        "{stderr}"
    );

    // A selection of nothing is an error that names the flags.
    let (code, _, stderr) = run(cmarchive()
        .arg("inspect")
        .arg(&teams.archive)
        .arg("-i")
        .arg(&teams.key)
        .args(["-n", "team-x"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("-n team-x selects nothing in the archive (its namespaces: cert-manager, team-a, team-b)"),
        "{stderr}"
    );
    Ok(())
}

/// The archived Secrets of `namespace`, by name.
fn archived_secrets<'a>(teams: &'a TwoTeams, namespace: &'a str) -> impl Iterator<Item = &'a Value> {
    teams
        .objects
        .iter()
        .filter(move |o| o["kind"] == "Secret" && o["metadata"]["namespace"] == namespace)
}

/// Waits until team `namespace`'s Certificates are Ready and cert-manager has worked past them, then checks what
/// is independent of `verify`: each archived Secret of `from` is in `namespace` byte for byte, and no
/// CertificateRequest exists there. Returns the snapshot.
async fn settled_and_identical(
    cluster: &LocalCluster,
    teams: &TwoTeams,
    from: &str,
    namespace: &str,
) -> Result<Snapshot> {
    let client = cluster.client();
    let ids: BTreeSet<CertificateId> = ["web", "api"]
        .iter()
        .map(|n| CertificateId::new(namespace, n))
        .collect();
    reissuance::wait_settled(&client, &ids, &BTreeSet::new(), WAIT).await?;
    reissuance::barrier(&client, WAIT).await?;
    for archived in archived_secrets(teams, from) {
        let name = archived["metadata"]["name"].as_str().context("a name")?;
        let live = objects::get(&client, kinds::SECRET, Some(namespace), name)
            .await?
            .with_context(|| format!("Secret {namespace}/{name} is missing"))?;
        assert_eq!(
            live["data"], archived["data"],
            "Secret {namespace}/{name} differs from the archive"
        );
    }
    let requests = objects::list(&client, kinds::CERTIFICATE_REQUEST, Some(namespace)).await?;
    assert!(requests.is_empty(), "CertificateRequests in {namespace}: {requests:#?}");
    reissuance::snapshot(&client, &[namespace.to_owned()]).await
}

/// `snapshot` with every Certificate's namespace renamed, to compare a moved team with the original.
fn renamed(snapshot: &Snapshot, to: &str) -> Snapshot {
    let mut out = Snapshot::default();
    for (id, state) in &snapshot.certificates {
        out.certificates.insert(CertificateId::new(to, &id.name), state.clone());
    }
    out
}

fn verified(report: &Value) -> BTreeSet<String> {
    report["verify"]["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}/{}",
                c["namespace"].as_str().unwrap_or_default(),
                c["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn restore_json(teams: &TwoTeams, kubeconfig: &Path, args: &[&str]) -> Result<(i32, Value, String)> {
    let (code, stdout, stderr) = run(against("restore", &teams.archive, &teams.key, kubeconfig)
        .args(args)
        .args(["-o", "json"]));
    let report = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)?
    };
    Ok((code, report, stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_and_mapped_restores_on_a_local_cluster() -> Result<()> {
    let teams = two_teams()?;
    let target = LocalCluster::start(&ClusterSpec::named("selective")).await?;
    let client = target.client();
    let kubeconfig = target.kubeconfig();

    // --- -n team-a: team-a and the ClusterIssuer it uses arrive, nothing of team-b, and verify covers team-a only.
    let (code, report, stderr) = restore_json(&teams, kubeconfig, &["-n", "team-a"])?;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(verified(&report), set(&["team-a/web", "team-a/api"]));
    assert_eq!(report["verify"]["reissued"], 0);
    assert!(!stderr.contains("prediction: cert-manager will reissue"), "{stderr}");
    let team_a = settled_and_identical(&target, &teams, "team-a", "team-a").await?;
    assert!(
        objects::get(&client, kinds::CLUSTER_ISSUER, None, "company-ca")
            .await?
            .is_some()
            && objects::get(&client, kinds::SECRET, Some("cert-manager"), "company-ca")
                .await?
                .is_some(),
        "the ClusterIssuer team-a uses, with its Secret"
    );
    assert!(
        objects::get(&client, kinds::CLUSTER_ISSUER, None, "other-ca")
            .await?
            .is_none()
            && objects::get(&client, kinds::SECRET, Some("cert-manager"), "other-ca")
                .await?
                .is_none(),
        "a ClusterIssuer only team-b uses stays out"
    );
    assert!(objects::get(&client, kinds::NAMESPACE, None, "team-b").await?.is_none());
    let (code, stdout, _) = run(against("verify", &teams.archive, &teams.key, kubeconfig).args(["-n", "team-a"]));
    assert_eq!(code, 0, "{stdout}");

    // --- a mapping onto a namespace that holds an object of the same name: refused before anything is written,
    // even with --force-conflicts (which would let server-side apply take the Secret over).
    // Someone else's certificate under the name team-a's `web` writes.
    let theirs = Ca::new("someone else's CA")?.issue(&fixtures::LeafSpec::valid_for(
        &["theirs.test"],
        jiff::SignedDuration::from_hours(2160),
    ))?;
    objects::apply(&client, &fixtures::namespace("team-y")).await?;
    objects::apply(
        &client,
        &fixtures::secret(
            "team-y",
            "web-tls",
            "kubernetes.io/tls",
            &[
                ("tls.crt", theirs.cert_pem.as_bytes()),
                ("tls.key", theirs.key_pem.as_bytes()),
            ],
        ),
    )
    .await?;
    let (code, _, stderr) = restore_json(
        &teams,
        kubeconfig,
        &[
            "-n",
            "team-a",
            "--namespace-mapping",
            "team-a:team-y",
            "--force-conflicts",
        ],
    )?;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("preflight: conflict: Secret team-y/web-tls exists in the target"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(
        objects::list(&client, kinds::CERTIFICATE, Some("team-y"))
            .await?
            .is_empty()
    );
    assert!(
        objects::get(&client, kinds::SECRET, Some("team-y"), "api-tls")
            .await?
            .is_none()
    );
    let kept = objects::get(&client, kinds::SECRET, Some("team-y"), "web-tls")
        .await?
        .context("left alone")?;
    assert_eq!(kept["data"]["tls.crt"], json!(base64_of(&theirs.cert_pem)));

    // --- team-a:team-z: the same team in a new namespace, byte for byte, nothing issued; verify looks under team-z.
    // A dry run first: it plans the moved objects and writes nothing.
    let (code, _, stderr) = run(against("restore", &teams.archive, &teams.key, kubeconfig).args([
        "-n",
        "team-a",
        "--namespace-mapping",
        "team-a:team-z",
        "--dry-run",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("would be created Namespace team-z")
            && stderr.contains("would be created Certificate team-z/web"),
        "{stderr}"
    );
    assert!(objects::get(&client, kinds::NAMESPACE, None, "team-z").await?.is_none());
    let (code, report, stderr) = restore_json(
        &teams,
        kubeconfig,
        &["-n", "team-a", "--namespace-mapping", "team-a:team-z"],
    )?;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(verified(&report), set(&["team-z/web", "team-z/api"]));
    assert_eq!(report["verify"]["reissued"], 0);
    assert!(!stderr.contains("prediction: cert-manager will reissue"), "{stderr}");
    let team_z = settled_and_identical(&target, &teams, "team-a", "team-z").await?;
    let comparison = reissuance::compare(&team_a, &renamed(&team_z, "team-a"), Baseline::OtherCluster);
    reissuance::assert_reissued_exactly(&comparison, &BTreeSet::new())?;
    let namespace = objects::get(&client, kinds::NAMESPACE, None, "team-z")
        .await?
        .context("team-z")?;
    assert_eq!(
        namespace["metadata"]["labels"]["team"], "a",
        "the Namespace keeps its labels"
    );
    assert!(
        objects::get(&client, kinds::ISSUER, Some("team-z"), "local")
            .await?
            .is_some()
    );
    // Run again, it resumes: what it wrote itself is no conflict.
    let (code, _, stderr) = restore_json(
        &teams,
        kubeconfig,
        &["-n", "team-a", "--namespace-mapping", "team-a:team-z"],
    )?;
    assert_eq!(code, 0, "the re-run: {stderr}");

    // --- negative control: the mapping done wrong, the Certificate moved to team-x but its Secret left in
    // team-a. cert-manager reissues it, the restore predicts so, and the comparison with team-a catches it.
    let web = teams
        .objects
        .iter()
        .find(|o| identity(o) == "Certificate team-a/web")
        .cloned()
        .context("web")?;
    let mut moved = web.clone();
    fixtures::set_path(&mut moved, &["metadata", "namespace"], json!("team-x"));
    let company = |kind: &str| {
        teams
            .objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == "company-ca")
            .cloned()
    };
    let items = vec![
        fixtures::namespace("team-x"),
        company("ClusterIssuer").context("ClusterIssuer")?,
        company("Secret").context("CA Secret")?,
        moved,
    ];
    let work = tempfile::tempdir()?;
    let (broken, key) = pack_dump(
        work.path(),
        "moved-without-secret",
        &json!({"apiVersion": "v1", "kind": "List", "items": items}),
    )?;
    // The restore says so before writing and stops; --allow-reissue is what a person would add to go ahead.
    let (_, _, stderr) =
        run(against("restore", &broken, &key, kubeconfig).args(["--timeout", "2m", "--allow-reissue"]));
    assert!(
        stderr.contains("prediction: cert-manager will reissue Certificate/team-x/web (DoesNotExist"),
        "{stderr}"
    );
    let web_x = BTreeSet::from([CertificateId::new("team-x", "web")]);
    reissuance::wait_reissued(&client, &web_x, WAIT).await?;
    reissuance::wait_settled(&client, &web_x, &web_x, WAIT).await?;
    let team_x = reissuance::snapshot(&client, &["team-x".to_owned()]).await?;
    let mut only_web = team_a.clone();
    only_web.certificates.retain(|id, _| id.name == "web");
    let comparison = reissuance::compare(&only_web, &renamed(&team_x, "team-a"), Baseline::OtherCluster);
    reissuance::assert_reissued_exactly(&comparison, &BTreeSet::from([CertificateId::new("team-a", "web")]))?;
    Ok(())
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
