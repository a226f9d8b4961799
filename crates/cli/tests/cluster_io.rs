//! `cmarchive pack` / `restore` / `verify` against real local clusters (etcd, kube-apiserver,
//! kube-controller-manager and the cert-manager controller as processes; `scripts/build-control-plane` first).
//!
//! One test drives every case so the source cluster is started once: round trip into a fresh cluster (with a
//! dry run first that must change nothing), the negative control (a restore without the TLS Secrets must make
//! `verify` exit 2), and RBAC (a read-only ServiceAccount packs; without `get secrets` it fails clearly; the
//! manifests under `deploy/` are applied with kubectl, the CronJob's account packs without being able to list
//! Secrets, and the restores run as an account bound to `deploy/rbac/restore-role.yaml`).

pub mod support;

use anyhow::{Context as _, Result, bail};
use cmarchive_e2e::fixtures::{self, Certificate, IssuerRef};
use cmarchive_e2e::local::LocalCluster;
use cmarchive_e2e::provider::{Cluster, ClusterSpec};
use futures::TryStreamExt as _;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Container};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{against, cmarchive, keygen, kubectl, repository, run, service_account_kubeconfig};

const WAIT: Duration = Duration::from_secs(180);

/// Server-side applies fixtures.
async fn apply(client: &kube::Client, objects: &[Value]) -> Result<()> {
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap_or_default());
        let (resource, caps) = pinned_kind(client, &gvk).await?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            _ => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply("cluster-io-test").force(),
            &Patch::Apply(object),
        )
        .await
        .with_context(|| format!("applying {name}"))?;
    }
    Ok(())
}

fn certificates_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = kube::api::ApiResource {
        group: "cert-manager.io".into(),
        version: "v1".into(),
        api_version: "cert-manager.io/v1".into(),
        kind: "Certificate".into(),
        plural: "certificates".into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn requests_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = kube::api::ApiResource {
        group: "cert-manager.io".into(),
        version: "v1".into(),
        api_version: "cert-manager.io/v1".into(),
        kind: "CertificateRequest".into(),
        plural: "certificaterequests".into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Ready=True for the Certificate's current generation: the controller has reconciled it.
fn reconciled_ready(object: &DynamicObject) -> bool {
    let generation = object.metadata.generation;
    object.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Ready"
                && c["status"] == "True"
                && c["observedGeneration"].as_i64().is_some_and(|o| Some(o) >= generation)
        })
}

/// Watches Certificates in `namespace` until every one in `names` is Ready for its current generation.
async fn wait_certificates_ready(
    client: &kube::Client,
    namespace: &str,
    names: &[&str],
) -> Result<BTreeMap<String, DynamicObject>> {
    let mut pending: BTreeSet<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let mut seen = BTreeMap::new();
    let stream = watcher(certificates_api(client, namespace), watcher::Config::default());
    let work = async {
        futures::pin_mut!(stream);
        while !pending.is_empty() {
            let Some(event) = stream.try_next().await? else {
                break;
            };
            if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = event {
                let name = o.metadata.name.clone().unwrap_or_default();
                if reconciled_ready(&o) {
                    pending.remove(&name);
                }
                seen.insert(name, o);
            }
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(WAIT, work).await {
        Ok(result) => result?,
        Err(_) => bail!("Certificates in {namespace} not Ready: {pending:?}; last seen {seen:#?}"),
    }
    Ok(seen)
}

async fn get_secret(client: &kube::Client, namespace: &str, name: &str) -> Result<Option<Value>> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(|s| serde_json::to_value(s).expect("json")))
}

/// The source fixtures: a SelfSigned ClusterIssuer that issues a CA in cert-manager's namespace, a CA
/// ClusterIssuer on top, a namespaced SelfSigned Issuer, and leaf Certificates in two namespaces.
fn source_objects() -> Vec<Value> {
    let mut objects = vec![
        fixtures::namespace("team-a"),
        fixtures::namespace("team-b"),
        fixtures::self_signed_issuer(None, "bootstrap"),
        Certificate::new(
            "cert-manager",
            "root-ca",
            IssuerRef::cluster_issuer("bootstrap"),
            "root-ca.example",
        )
        .secret_name("root-ca")
        .ca()
        .to_json(),
        fixtures::ca_issuer(None, "company-ca", "root-ca"),
        fixtures::self_signed_issuer(Some("team-b"), "local"),
    ];
    for (namespace, name, issuer) in [
        ("team-a", "web", IssuerRef::cluster_issuer("company-ca")),
        ("team-a", "api", IssuerRef::cluster_issuer("company-ca")),
        ("team-b", "db", IssuerRef::issuer("local")),
    ] {
        objects.push(Certificate::new(namespace, name, issuer, &format!("{name}.{namespace}.example")).to_json());
    }
    objects
}

const LEAVES: [(&str, &str); 3] = [("team-a", "web"), ("team-a", "api"), ("team-b", "db")];

fn rbac_objects(account: &str, secrets: bool) -> Vec<Value> {
    let mut rules = vec![json!({
        "apiGroups": ["cert-manager.io"],
        "resources": ["issuers", "clusterissuers", "certificates"],
        "verbs": ["get", "list"],
    })];
    if secrets {
        rules.push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}));
    }
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": "default"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": account}, "rules": rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": account},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": account},
               "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "default"}]}),
    ]
}

/// The manifest `cmarchive inspect -o json` prints, with the reissuance prediction.
fn inspect_json(archive: &Path, key: &Path) -> Result<Value> {
    let (code, manifest, _) = run(cmarchive()
        .arg("inspect")
        .arg(archive)
        .arg("-i")
        .arg(key)
        .args(["-o", "json"]));
    assert_eq!(code, 0, "inspect {}", archive.display());
    Ok(serde_json::from_str(&manifest)?)
}

/// `kubectl apply ARGS…` of the repository's `deploy/` manifests: it must succeed without a warning (the API
/// server warns about Pod templates that break the namespace's Pod Security Standard, "restricted" for cmarchive's).
fn kubectl_apply(kubeconfig: &Path, args: &[&str]) {
    let (code, _, stderr) = run(kubectl(kubeconfig).current_dir(repository()).arg("apply").args(args));
    assert_eq!(code, 0, "kubectl apply {args:?}: {stderr}");
    assert!(!stderr.contains("Warning"), "kubectl apply {args:?}: {stderr}");
}

/// What `kubectl auth can-i VERB secrets --all-namespaces` answers for this kubeconfig's identity.
fn can_i(kubeconfig: &Path, verb: &str) -> String {
    let (_, stdout, _) = run(kubectl(kubeconfig).args(["auth", "can-i", verb, "secrets", "--all-namespaces"]));
    stdout.trim().to_owned()
}

/// deploy/cronjob on a real API server (`kubectl apply -k`), then its Pod's two steps run here the way the Pod
/// would run them, since the local provider has no kubelet: the `pack` init container's arguments with a token of
/// the CronJob's ServiceAccount, then the `rotate` container's script, each with the volumes' mount paths replaced
/// by local folders. Returns the archive that the run kept.
async fn cronjob_backup(source: &LocalCluster, work: &Path, recipient: &str) -> Result<PathBuf> {
    kubectl_apply(source.kubeconfig(), &["-k", "deploy/cronjob"]);
    kubectl_apply(
        source.kubeconfig(),
        &["-k", "deploy/cronjob-object-storage", "--dry-run=server"],
    );
    let account = work.join("cronjob.kubeconfig");
    service_account_kubeconfig(source, "cmarchive", "cmarchive", &account).await?;
    assert_eq!(
        can_i(&account, "get"),
        "yes",
        "the CronJob's account reads Secrets by name"
    );
    for verb in ["list", "watch"] {
        assert_eq!(can_i(&account, verb), "no", "the CronJob's account may {verb} Secrets");
    }

    let client = source.client();
    let cronjob: CronJob = Api::namespaced(client.clone(), "cmarchive").get("cmarchive").await?;
    let pod = cronjob
        .spec
        .job_template
        .spec
        .and_then(|s| s.template.spec)
        .context("the CronJob's Pod template")?;
    let container = |containers: &[Container], name: &str| {
        containers
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .with_context(|| format!("container {name}"))
    };
    let pack = container(pod.init_containers.as_deref().unwrap_or_default(), "pack")?;
    let rotate = container(&pod.containers, "rotate")?;
    let image = pack.image.clone().unwrap_or_default();
    assert!(
        image.ends_with(&format!(":v{}", env!("CARGO_PKG_VERSION"))),
        "the kustomization's image tag is this version's: {image}"
    );

    // Each volume becomes a folder: the PersistentVolumeClaim an empty one, the ConfigMap one holding its keys
    // (recipients.txt, comments only in the repository; this test's recipient added).
    let mut folders: BTreeMap<String, PathBuf> = BTreeMap::new();
    for volume in pod.volumes.iter().flatten() {
        let folder = work.join("cronjob").join(&volume.name);
        std::fs::create_dir_all(&folder)?;
        if let Some(config_map) = &volume.config_map {
            let found: ConfigMap = Api::namespaced(client.clone(), "cmarchive")
                .get(&config_map.name)
                .await?;
            for (key, value) in found.data.unwrap_or_default() {
                std::fs::write(folder.join(key), format!("{value}{recipient}\n"))?;
            }
        }
        folders.insert(volume.name.clone(), folder);
    }
    let local = |container: &Container, text: &str| {
        container
            .volume_mounts
            .iter()
            .flatten()
            .fold(text.to_owned(), |text, mount| {
                text.replace(&mount.mount_path, &folders[&mount.name].to_string_lossy())
            })
    };
    let backups = &folders["backups"];
    let keep: usize = rotate
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "KEEP")
        .and_then(|e| e.value.as_deref()?.parse().ok())
        .context("KEEP in the rotate container")?;
    // KEEP archives of earlier runs (with this run's, one too many: the oldest goes) and a killed pack's leftover.
    for day in 1..=keep {
        std::fs::write(backups.join(format!("cmarchive-202001{day:02}T031700Z.cmar")), "")?;
    }
    std::fs::write(backups.join(".incoming.cmar.partial-7"), "a pack killed half-way")?;

    let args: Vec<String> = pack.args.iter().flatten().map(|a| local(&pack, a)).collect();
    let (code, _, stderr) = run(cmarchive().args(&args).arg("--kubeconfig").arg(&account));
    assert_eq!(code, 0, "the CronJob's pack: {stderr}");
    assert!(
        !stderr.contains("warning"),
        "the ServiceAccount reads all it needs: {stderr}"
    );

    let command: Vec<String> = rotate.command.iter().flatten().cloned().collect();
    let script: Vec<String> = rotate.args.iter().flatten().map(|a| local(&rotate, a)).collect();
    let (code, stdout, stderr) = run(assert_cmd::Command::new(&command[0])
        .args(&command[1..])
        .args(&script)
        .env("KEEP", keep.to_string()));
    assert_eq!(code, 0, "the CronJob's rotate: {stderr}");
    let mut left: Vec<String> = std::fs::read_dir(backups)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    left.sort();
    let newest = left.last().cloned().unwrap_or_default();
    assert!(stdout.contains(&format!("wrote {newest}")), "{stdout}");
    assert_eq!(left.len(), keep, "the newest {keep} archives are kept: {left:?}");
    assert!(stdout.contains("removed cmarchive-20200101T031700Z.cmar"), "{stdout}");
    assert!(left.iter().all(|name| name.starts_with("cmarchive-")), "{left:?}");
    Ok(backups.join(newest))
}

/// A ServiceAccount `default/restorer` bound to deploy/rbac/restore-role.yaml's roles the way its header says:
/// the restore role cluster-wide, the pause role in cert-manager's namespace only.
fn restorer_objects() -> Vec<Value> {
    let subject = json!([{"kind": "ServiceAccount", "name": "restorer", "namespace": "default"}]);
    let role = |name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name});
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "restorer", "namespace": "default"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "restorer"}, "roleRef": role("cmarchive-restore"), "subjects": subject}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "restorer", "namespace": "cert-manager"},
               "roleRef": role("cmarchive-restore-pause-controller"), "subjects": subject}),
    ]
}

async fn count_objects(client: &kube::Client, namespaces: &[&str]) -> Result<usize> {
    let mut count = 0;
    for ns in namespaces {
        count += certificates_api(client, ns)
            .list(&ListParams::default())
            .await?
            .items
            .len();
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
        count += secrets
            .list_metadata(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|s| s.metadata.name.as_deref() != Some("kube-root-ca.crt"))
            .count();
    }
    Ok(count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pack_restore_verify_against_local_clusters() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (recipient, key) = keygen(work.path())?;
    let source = LocalCluster::start(&ClusterSpec::named("source")).await?;
    let source_client = source.client();
    apply(&source_client, &source_objects()).await?;
    wait_certificates_ready(&source_client, "cert-manager", &["root-ca"]).await?;
    wait_certificates_ready(&source_client, "team-a", &["web", "api"]).await?;
    wait_certificates_ready(&source_client, "team-b", &["db"]).await?;

    // --- pack with the admin kubeconfig
    let archive = work.path().join("backup.cmar");
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(&archive)
        .arg("-r")
        .arg(&recipient)
        .arg("--kubeconfig")
        .arg(source.kubeconfig()));
    assert_eq!(code, 0, "pack failed");
    assert!(stderr.contains("packed"), "summary line: {stderr}");
    let manifest = inspect_json(&archive, &key)?;
    assert_eq!(manifest["source"]["kind"], "cluster");
    assert!(
        manifest["source"]["kubernetesVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.")),
        "{}",
        manifest["source"]
    );
    assert_eq!(manifest["source"]["clusterResourceNamespace"], "cert-manager");
    assert!(
        manifest["source"]["certManagerVersion"].as_str().is_some(),
        "{}",
        manifest["source"]
    );
    assert_eq!(
        manifest["certificates"].as_array().map(Vec::len),
        Some(4),
        "facts for every Certificate"
    );

    // --- deploy/cronjob: its ServiceAccount packs everything without being able to list a Secret
    let scheduled = cronjob_backup(&source, work.path(), &recipient).await?;
    let scheduled = inspect_json(&scheduled, &key)?;
    assert_eq!(
        scheduled["certificates"], manifest["certificates"],
        "the scheduled backup holds what the admin's did"
    );
    assert_eq!(
        scheduled["source"]["certManagerVersion"],
        manifest["source"]["certManagerVersion"]
    );
    assert_eq!(scheduled["warnings"], json!([]), "{}", scheduled["warnings"]);

    // --- --include-crds archives cert-manager's CRDs (GET by name)
    let with_crds = work.path().join("with-crds.cmar");
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(&with_crds)
        .arg("-r")
        .arg(&recipient)
        .arg("--include-crds")
        .arg("--kubeconfig")
        .arg(source.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    let crd_manifest = inspect_json(&with_crds, &key)?;
    let crds = crd_manifest["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "crds"))
        .and_then(|p| p["entries"].as_array())
        .map(Vec::len);
    assert_eq!(crds, Some(6), "cert-manager's six CRDs");

    // --- a referenced Secret that does not exist: a warning, or with --strict an error (and -n scoping)
    apply(
        &source_client,
        &[
            fixtures::namespace("team-c"),
            fixtures::ca_issuer(Some("team-c"), "broken", "no-such-ca"),
        ],
    )
    .await?;
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(work.path().join("team-c.cmar"))
        .arg("-r")
        .arg(&recipient)
        .arg("-n")
        .arg("team-c")
        .arg("--kubeconfig")
        .arg(source.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("Secret team-c/no-such-ca referenced by Issuer/team-c/broken"),
        "{stderr}"
    );
    assert!(
        stderr.contains("packed 2 objects (1 namespaces, 1 issuers)"),
        "only team-c: {stderr}"
    );
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(work.path().join("team-c-strict.cmar"))
        .arg("-r")
        .arg(&recipient)
        .arg("-n")
        .arg("team-c")
        .arg("--strict")
        .arg("--kubeconfig")
        .arg(source.kubeconfig()));
    assert_eq!(code, 1, "--strict: {stderr}");
    assert!(stderr.contains("no-such-ca"), "{stderr}");

    // --- RBAC: get/list on cert-manager resources + get on Secrets is enough; without get on Secrets it fails
    apply(&source_client, &rbac_objects("backup-reader", true)).await?;
    apply(&source_client, &rbac_objects("no-secrets", false)).await?;
    let reader_config = work.path().join("reader.kubeconfig");
    service_account_kubeconfig(&source, "default", "backup-reader", &reader_config).await?;
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(work.path().join("reader.cmar"))
        .arg("-r")
        .arg(&recipient)
        .arg("--kubeconfig")
        .arg(&reader_config));
    assert_eq!(code, 0, "a read-only ServiceAccount must be able to pack: {stderr}");
    assert!(
        stderr.contains("cannot read Namespace team-a (forbidden): archived with its name only"),
        "{stderr}"
    );
    // With --strict, what could not be read is an error.
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(work.path().join("reader-strict.cmar"))
        .arg("-r")
        .arg(&recipient)
        .arg("-n")
        .arg("team-a")
        .arg("--strict")
        .arg("--kubeconfig")
        .arg(&reader_config));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--strict: 2 object(s) could not be read"), "{stderr}");
    assert!(stderr.contains("Namespace team-a"), "{stderr}");
    let limited_config = work.path().join("limited.kubeconfig");
    service_account_kubeconfig(&source, "default", "no-secrets", &limited_config).await?;
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(work.path().join("limited.cmar"))
        .arg("-r")
        .arg(&recipient)
        .arg("--kubeconfig")
        .arg(&limited_config));
    assert_eq!(code, 1);
    assert!(stderr.contains("forbidden to get Secret"), "names the Secret: {stderr}");
    assert!(stderr.contains("`get` on `secrets`"), "names the permission: {stderr}");
    assert!(!work.path().join("limited.cmar").exists(), "no archive on failure");

    // --- back into the source itself (--same-cluster): nothing changes, and issuance from before the restore
    // (the CertificateRequests and revisions of the original issuance) is not mistaken for reissuance.
    let (code, stdout, stderr) = run(against("restore", &archive, &key, source.kubeconfig()).arg("--same-cluster"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("verified 4 certificates: 0 reissued"), "{stdout}");
    assert!(!stderr.contains(" created") && !stderr.contains(" changed"), "{stderr}");
    let (code, stdout, _) = run(&mut against("verify", &archive, &key, source.kubeconfig()));
    assert_eq!(code, 0, "the source still holds the archived certificates: {stdout}");
    // … but counting from before the original issuance, its CertificateRequests are issuance: verify can fail.
    let (code, stdout, _) = run(against("verify", &archive, &key, source.kubeconfig())
        .arg("--since")
        .arg("2000-01-01T00:00:00Z"));
    assert_eq!(code, 2, "{stdout}");

    // --- fresh target: dry run changes nothing, restore, verify
    let target = LocalCluster::start(&ClusterSpec::named("target")).await?;
    let target_client = target.client();
    let before = count_objects(&target_client, &["cert-manager", "default"]).await?;
    // The preflight asks the API server (SelfSubjectAccessReview) before writing anything: a read-only identity
    // is refused with the list of what it lacks, and nothing is created.
    apply(&target_client, &rbac_objects("backup-reader", true)).await?;
    let target_reader = work.path().join("target-reader.kubeconfig");
    service_account_kubeconfig(&target, "default", "backup-reader", &target_reader).await?;
    let (code, _, stderr) = run(cmarchive()
        .arg("restore")
        .arg(&archive)
        .arg("-i")
        .arg(&key)
        .arg("--kubeconfig")
        .arg(&target_reader));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("lacks permissions"), "{stderr}");
    assert!(stderr.contains("create secrets in namespace team-a"), "{stderr}");
    let (code, _, stderr) = run(against("restore", &archive, &key, target.kubeconfig()).arg("--dry-run"));
    assert_eq!(code, 0, "dry run: {stderr}");
    assert!(stderr.contains("would be created"), "dry run prints the plan: {stderr}");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(target_client.clone());
    assert!(
        namespaces.get_opt("team-a").await?.is_none(),
        "dry run created a Namespace"
    );
    assert_eq!(
        count_objects(&target_client, &["cert-manager", "default"]).await?,
        before,
        "dry run changed something"
    );

    // The restore itself runs as a ServiceAccount bound to deploy/rbac/restore-role.yaml: its preflight asks the
    // API server for every permission it will use, so a rule missing there fails here.
    kubectl_apply(target.kubeconfig(), &["-f", "deploy/rbac/restore-role.yaml"]);
    apply(&target_client, &restorer_objects()).await?;
    let restorer = work.path().join("restorer.kubeconfig");
    service_account_kubeconfig(&target, "default", "restorer", &restorer).await?;
    assert_eq!(can_i(&restorer, "list"), "no", "the restore role may list Secrets");
    let (code, stdout, stderr) = run(against("restore", &archive, &key, &restorer).arg("--timeout").arg("3m"));
    assert_eq!(code, 0, "restore: {stderr}");
    assert!(stdout.contains("0 reissued"), "{stdout}");

    // Raw facts, checked here rather than trusted from verify: same Secret bytes, every Certificate reconciled,
    // and no CertificateRequest anywhere.
    for (namespace, names) in [
        ("cert-manager", vec!["root-ca"]),
        ("team-a", vec!["web", "api"]),
        ("team-b", vec!["db"]),
    ] {
        let reconciled = wait_certificates_ready(&target_client, namespace, &names).await?;
        for name in &names {
            let secret_name = reconciled[*name].data["spec"]["secretName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let a = get_secret(&source_client, namespace, &secret_name)
                .await?
                .context("source Secret")?;
            let b = get_secret(&target_client, namespace, &secret_name)
                .await?
                .context("target Secret")?;
            assert_eq!(
                a["data"]["tls.crt"], b["data"]["tls.crt"],
                "{namespace}/{secret_name} tls.crt"
            );
            assert_eq!(
                a["data"]["tls.key"], b["data"]["tls.key"],
                "{namespace}/{secret_name} tls.key"
            );
            assert!(
                reconciled[*name].data["status"].get("revision").is_none(),
                "{namespace}/{name} was issued"
            );
        }
        let requests = requests_api(&target_client, namespace)
            .list(&ListParams::default())
            .await?;
        assert!(
            requests.items.is_empty(),
            "CertificateRequests in {namespace}: {:?}",
            requests.items
        );
    }
    // Standalone verify, reaching the cluster through a KUBECONFIG list (missing files skipped, like kubectl).
    let list = std::env::join_paths([work.path().join("missing.kubeconfig"), target.kubeconfig().to_owned()])?;
    let (code, stdout, _) = run(cmarchive()
        .env("KUBECONFIG", &list)
        .arg("verify")
        .arg(&archive)
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg("json"));
    assert_eq!(code, 0);
    let (code, _, stderr) = run(cmarchive()
        .env("KUBECONFIG", &list)
        .arg("verify")
        .arg(&archive)
        .arg("-i")
        .arg(&key)
        .arg("--context")
        .arg("no-such-context"));
    assert_eq!(code, 1);
    assert!(stderr.contains("context \"no-such-context\" not found"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout)?;
    assert_eq!(report["reissued"], 0);
    assert_eq!(report["certificates"].as_array().map(Vec::len), Some(4));

    // Re-running the restore is idempotent: nothing created, nothing reissued. With --pause-controller the
    // controller Deployment is scaled to 0 for the writes and back afterwards (the local provider stops and
    // starts the controller process with it); the restorer may do that through the pause role.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(target_client.clone(), "cert-manager");
    let replicas_before = deployments.get("cert-manager").await?.spec.and_then(|s| s.replicas);
    let (code, stdout, stderr) = run(against("restore", &archive, &key, &restorer)
        .arg("--pause-controller")
        .arg("-o")
        .arg("json"));
    assert_eq!(code, 0, "second restore: {stderr}");
    assert!(!stderr.contains(" created"), "second restore created objects: {stderr}");
    let second: Value = serde_json::from_str(&stdout)?;
    assert_eq!(second["verify"]["reissued"], 0);
    for (phase, applied) in second["phases"].as_object().context("phases")? {
        for a in applied.as_array().context("applied")? {
            assert_eq!(a["outcome"]["result"], "unchanged", "{phase}: {a}");
        }
    }
    assert!(stderr.contains("paused the cert-manager controller"), "{stderr}");
    let after = deployments.get("cert-manager").await?;
    assert_eq!(
        after.spec.and_then(|s| s.replicas),
        replicas_before,
        "replicas restored"
    );
    assert!(
        !after
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("cmarchive.io/paused-replicas"),
        "pause annotation removed"
    );

    // A field another manager set to another value is a conflict: reported and left alone (exit 1) …
    let issuers = kube::api::ApiResource {
        group: "cert-manager.io".into(),
        version: "v1".into(),
        api_version: "cert-manager.io/v1".into(),
        kind: "ClusterIssuer".into(),
        plural: "clusterissuers".into(),
    };
    let issuers: Api<DynamicObject> = Api::all_with(target_client.clone(), &issuers);
    let intruder = json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
        "metadata": {"name": "company-ca"}, "spec": {"ca": {"secretName": "someone-elses-ca"}}});
    issuers
        .patch(
            "company-ca",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(&intruder),
        )
        .await?;
    let (code, _, stderr) = run(against("restore", &archive, &key, target.kubeconfig())
        .arg("--timeout")
        .arg("15s"));
    assert_eq!(code, 1, "a conflict is not a clean restore: {stderr}");
    assert!(
        stderr.contains("CONFLICT") && stderr.contains("ClusterIssuer company-ca"),
        "{stderr}"
    );
    let left = issuers.get("company-ca").await?;
    assert_eq!(
        left.data["spec"]["ca"]["secretName"], "someone-elses-ca",
        "conflict left alone"
    );
    // … and taken over with --force-conflicts.
    let (code, stdout, stderr) = run(against("restore", &archive, &key, target.kubeconfig()).arg("--force-conflicts"));
    assert_eq!(code, 0, "--force-conflicts: {stderr}");
    assert!(stdout.contains("0 reissued"), "{stdout}");
    let taken = issuers.get("company-ca").await?;
    assert_eq!(taken.data["spec"]["ca"]["secretName"], "root-ca");
    drop(target);

    // --- negative control: the same objects without the leaves' TLS Secrets → cert-manager reissues, and
    // verify against the original archive must say so (exit 2, naming each reissued Certificate).
    let (code, dump, _) = run(cmarchive()
        .arg("unpack")
        .arg(&archive)
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg("json"));
    assert_eq!(code, 0);
    let mut dump: Value = serde_json::from_str(&dump)?;
    let leaf_secrets: BTreeSet<(String, String)> = LEAVES
        .iter()
        .map(|(ns, name)| ((*ns).to_owned(), format!("{name}-tls")))
        .collect();
    let items = dump["items"].as_array_mut().context("a List")?;
    let before_len = items.len();
    items.retain(|o| {
        !(o["kind"] == "Secret"
            && leaf_secrets.contains(&(
                o["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
                o["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            )))
    });
    assert_eq!(
        items.len() + LEAVES.len(),
        before_len,
        "the fixture's leaf Secrets are named <name>-tls"
    );
    let dump_file = work.path().join("without-tls.json");
    std::fs::write(&dump_file, serde_json::to_string(&dump)?)?;
    let broken = work.path().join("without-tls.cmar");
    let (code, _, _) = run(cmarchive()
        .arg("pack")
        .arg(&broken)
        .arg("--from-file")
        .arg(&dump_file)
        .arg("-r")
        .arg(&recipient));
    assert_eq!(code, 0);
    // This target's cert-manager keeps ClusterIssuer Secrets in kube-system (the binary's default), so the
    // restore also moves the CA (Certificate and Secret) there; the reissued leaves are signed by that CA.
    let mut control_spec = ClusterSpec::named("control");
    control_spec.cluster_resource_namespace = "kube-system".into();
    let control = LocalCluster::start(&control_spec).await?;
    let restore_broken = |extra: &[&str]| {
        run(cmarchive()
            .arg("restore")
            .arg(&broken)
            .arg("-i")
            .arg(&key)
            .arg("--timeout")
            .arg("2m")
            .arg("--kubeconfig")
            .arg(control.kubeconfig())
            .args(extra))
    };
    // The prediction stops the restore before its first write, unless the reissue is allowed.
    let (code, _, stderr) = restore_broken(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("3 Certificate(s) would be reissued"), "{stderr}");
    assert!(
        get_secret(&control.client(), "kube-system", "root-ca").await?.is_none(),
        "a refused restore writes nothing"
    );
    let (code, _, stderr) = restore_broken(&["--allow-reissue"]);
    assert!(
        stderr.contains("cluster resource namespace: cert-manager (archive) → kube-system (target)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 not ready") || !stderr.contains("not ready:"),
        "{stderr}"
    );
    let moved = get_secret(&control.client(), "kube-system", "root-ca")
        .await?
        .context("CA moved to kube-system")?;
    let original = get_secret(&source_client, "cert-manager", "root-ca")
        .await?
        .context("source CA")?;
    assert_eq!(moved["data"]["tls.crt"], original["data"]["tls.crt"]);
    assert_eq!(
        code, 0,
        "reissues that were predicted and allowed are no failure: {stderr}"
    );
    for (namespace, name) in LEAVES {
        assert!(
            stderr.contains(&format!(
                "prediction: cert-manager will reissue Certificate/{namespace}/{name} (DoesNotExist"
            )),
            "the restore warns before applying: {stderr}"
        );
    }
    let (code, stdout, _) = run(&mut against("verify", &archive, &key, control.kubeconfig()));
    assert_eq!(code, 2, "verify must report reissuance: {stdout}");
    for (namespace, name) in LEAVES {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{namespace}/{name}:")))
            .unwrap_or_default();
        assert!(!line.is_empty(), "verify names {namespace}/{name}: {stdout}");
    }
    assert!(stdout.contains("3 reissued"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("kube-system") && l.contains("root-ca") && l.ends_with("ok")),
        "the moved CA is the archived one: {stdout}"
    );
    assert!(
        stdout.contains("Secret does not exist"),
        "cert-manager's reason is given: {stdout}"
    );

    // --- a cluster without cert-manager's CRDs: one clear error
    let crd_api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(control.client());
    for name in [
        "certificaterequests.cert-manager.io",
        "certificates.cert-manager.io",
        "clusterissuers.cert-manager.io",
        "issuers.cert-manager.io",
        "challenges.acme.cert-manager.io",
        "orders.acme.cert-manager.io",
    ] {
        crd_api.delete(name, &Default::default()).await?;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while control
        .client()
        .list_api_groups()
        .await?
        .groups
        .iter()
        .any(|g| g.name == "cert-manager.io")
    {
        assert!(tokio::time::Instant::now() < deadline, "CRDs not gone");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(work.path().join("none.cmar"))
        .arg("-r")
        .arg(&recipient)
        .arg("--kubeconfig")
        .arg(control.kubeconfig()));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cert-manager CRDs not found in cluster") && stderr.contains("is cert-manager installed?"),
        "{stderr}"
    );
    // An archive that carries the CRDs can still be planned there: the dry run shows them being created. (The
    // reissued Secrets now belong to cert-manager's field manager: without --force-conflicts they conflict.)
    let (code, _, stderr) = run(cmarchive()
        .arg("restore")
        .arg(&with_crds)
        .arg("-i")
        .arg(&key)
        .arg("--dry-run")
        .arg("--force-conflicts")
        .arg("--kubeconfig")
        .arg(control.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("would be created CustomResourceDefinition certificates.cert-manager.io"),
        "{stderr}"
    );
    assert!(stderr.contains("their CRDs do not exist yet"), "{stderr}");
    // For real and without --force-conflicts, those Secret conflicts stop the restore before its first write.
    let (code, _, stderr) = run(cmarchive()
        .arg("restore")
        .arg(&with_crds)
        .arg("-i")
        .arg(&key)
        .arg("--kubeconfig")
        .arg(control.kubeconfig()));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("3 Secret(s) would not be applied"), "{stderr}");
    assert!(
        crd_api.get_opt("certificates.cert-manager.io").await?.is_none(),
        "nothing may be written when the preflight fails"
    );
    Ok(())
}
