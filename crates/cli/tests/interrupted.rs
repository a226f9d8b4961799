//! Interrupted and disturbed restores on local clusters: a restore stopped by a signal, killed, or
//! running while the API server or cert-manager is restarted. Each moment is chosen by watching the cluster, never
//! by sleeping, and each case ends the way an operator would end it: the same `restore` run again, then `verify`
//! exits 0, every archived certificate is byte-identical, no CertificateRequest was created, nothing is missing.

pub mod support;

use anyhow::{Context as _, Result};
use cmarchive_e2e::fixtures::{self, Ca, Certificate, IssuerRef};
use cmarchive_e2e::local::LocalCluster;
use cmarchive_e2e::local::components::{self, Component};
use cmarchive_e2e::provider::{Cluster, ClusterSpec};
use cmarchive_e2e::reissuance;
use cmarchive_e2e::scenarios::objects::{self, Kind, kinds};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::wait::await_condition;
use rustix::process::Signal;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{against, cmarchive, finish, pack_dump, run, signal, spawn};

const WAIT: Duration = Duration::from_secs(180);

/// An archive of a CA Issuer and `certificates` Certificates with their issued Secrets in `namespace`, packed
/// offline, and the objects it holds.
struct Packed {
    work: tempfile::TempDir,
    key: PathBuf,
    archive: PathBuf,
    namespace: String,
    objects: Vec<Value>,
}

fn pack(namespace: &str, certificates: usize) -> Result<Packed> {
    let ca = Ca::new("cmarchive interruption test CA")?;
    let mut items = vec![
        fixtures::namespace(namespace),
        ca.secret(namespace, "ca"),
        fixtures::ca_issuer(Some(namespace), "ca", "ca"),
    ];
    let not_before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    for i in 0..certificates {
        let name = format!("app-{i:03}");
        let crt = Certificate::new(
            namespace,
            &name,
            IssuerRef::issuer("ca"),
            &format!("{name}.{namespace}.test"),
        )
        .duration("2160h");
        let leaf = ca.issue(&crt.leaf_spec(not_before, not_before + jiff::SignedDuration::from_hours(2160)))?;
        items.push(crt.issued_secret(&ca, &leaf));
        items.push(crt.to_json());
    }
    pack_objects(namespace, items)
}

/// `items` packed offline (`pack --from-file`) with a fresh key.
fn pack_objects(namespace: &str, items: Vec<Value>) -> Result<Packed> {
    let work = tempfile::tempdir()?;
    let dump = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let (archive, key) = pack_dump(work.path(), "backup", &dump)?;
    Ok(Packed {
        work,
        key,
        archive,
        namespace: namespace.to_owned(),
        objects: items,
    })
}

impl Packed {
    /// `restore ARCHIVE -i KEY --kubeconfig …` plus `extra`, as arguments for a background run.
    fn restore_args(&self, kubeconfig: &Path, extra: &[&str]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "restore".into(),
            self.archive.clone().into(),
            "-i".into(),
            self.key.clone().into(),
            "--kubeconfig".into(),
            kubeconfig.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        args
    }

    fn spawn_restore(&self, kubeconfig: &Path, extra: &[&str]) -> Result<std::process::Child> {
        let args = self.restore_args(kubeconfig, extra);
        spawn(&args.iter().map(OsString::as_os_str).collect::<Vec<_>>())
    }

    /// Runs the same restore again to its end; it must finish cleanly.
    fn rerun(&self, kubeconfig: &Path, extra: &[&str]) -> Result<String> {
        let (code, _, stderr) = run(cmarchive().args(self.restore_args(kubeconfig, extra)));
        anyhow::ensure!(code == 0, "the re-run exited {code}: {stderr}");
        Ok(stderr)
    }

    /// `verify` exits 0; every archived object exists; every archived Secret holds the archived data (the
    /// certificates byte for byte); cert-manager created no CertificateRequest.
    async fn assert_restored(&self, cluster: &LocalCluster) -> Result<()> {
        self.assert_restored_except(cluster, &[]).await
    }

    /// [`Packed::assert_restored`], with Secret data keys cert-manager writes itself left out of the comparison.
    async fn assert_restored_except(&self, cluster: &LocalCluster, owned_by_cert_manager: &[&str]) -> Result<()> {
        let client = cluster.client();
        let (code, stdout, stderr) = run(&mut against("verify", &self.archive, &self.key, cluster.kubeconfig()));
        anyhow::ensure!(code == 0, "verify exited {code}: {stdout}{stderr}");
        for archived in &self.objects {
            let kind = objects::kind_of(archived)?;
            let name = archived["metadata"]["name"].as_str().context("a name")?;
            let namespace = archived["metadata"]["namespace"].as_str();
            let live = objects::get(&client, kind, namespace, name)
                .await?
                .with_context(|| format!("{} {name} was lost", kind.kind))?;
            if kind.kind == "Secret" {
                let data = |secret: &Value| {
                    let mut data = secret["data"].clone();
                    if let Some(map) = data.as_object_mut() {
                        map.retain(|k, _| !owned_by_cert_manager.contains(&k.as_str()));
                    }
                    data
                };
                assert_eq!(data(&live), data(archived), "Secret {name} differs from the archive");
            }
        }
        reissuance::barrier(&client, WAIT).await?;
        let requests = objects::list(&client, kinds::CERTIFICATE_REQUEST, Some(&self.namespace)).await?;
        anyhow::ensure!(
            requests.is_empty(),
            "{} CertificateRequest(s) were created",
            requests.len()
        );
        Ok(())
    }
}

fn deployments(cluster: &LocalCluster) -> Api<Deployment> {
    Api::namespaced(cluster.client(), components::NAMESPACE)
}

/// Waits until the controller Deployment satisfies `condition`, watching it.
async fn controller_deployment(cluster: &LocalCluster, what: &str, condition: fn(&Deployment) -> bool) -> Result<()> {
    let name = Component::Controller.deployment();
    tokio::time::timeout(
        WAIT,
        await_condition(deployments(cluster), name, move |d: Option<&Deployment>| {
            d.is_some_and(condition)
        }),
    )
    .await
    .with_context(|| format!("waiting until the controller Deployment {what}"))??;
    Ok(())
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref()?.replicas
}

fn recorded(d: &Deployment) -> Option<&str> {
    d.metadata
        .annotations
        .as_ref()?
        .get("cmarchive.io/paused-replicas")
        .map(String::as_str)
}

/// Running again: one replica, nothing recorded on the Deployment, and the process up for that spec.
async fn assert_controller_runs(cluster: &LocalCluster) -> Result<()> {
    controller_deployment(cluster, "is scaled back", |d| {
        replicas(d) == Some(1) && recorded(d).is_none()
    })
    .await?;
    cluster.component_runs(Component::Controller).await
}

/// SIGINT while `--pause-controller` has the controller at zero: the restore scales it back before it exits, says
/// what it applied and how to finish, and exits 130; the same command then finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_paused_scales_the_controller_back() -> Result<()> {
    let packed = pack("sigint", 40)?;
    let target = LocalCluster::start(&ClusterSpec::named("sigint-paused")).await?;
    let child = packed.spawn_restore(target.kubeconfig(), &["--pause-controller"])?;
    controller_deployment(&target, "is paused", |d| replicas(d) == Some(0)).await?;
    signal(&child, Signal::INT)?;
    let (code, _, stderr) = finish(child)?;
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("restore interrupted by SIGINT")
            && stderr.contains("the cert-manager controller was scaled back to 1 replica(s)")
            && stderr.contains("not applied: ")
            && stderr.contains("to finish, run the same command again"),
        "{stderr}"
    );
    let command = stderr
        .lines()
        .skip_while(|l| !l.starts_with("to finish"))
        .nth(1)
        .context("the command to finish")?;
    assert!(
        command.contains("restore") && command.ends_with("--pause-controller"),
        "{command}"
    );
    assert_controller_runs(&target).await?;

    packed.rerun(target.kubeconfig(), &["--pause-controller"])?;
    assert_controller_runs(&target).await?;
    packed.assert_restored(&target).await
}

/// SIGKILL while paused leaves the controller at zero with its replica count recorded on the Deployment: `verify`
/// says so first, and the next `restore` (even one without `--pause-controller`) says so and scales it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_paused_is_undone_by_the_next_restore() -> Result<()> {
    let packed = pack("sigkill", 40)?;
    let target = LocalCluster::start(&ClusterSpec::named("sigkill-paused")).await?;
    let mut child = packed.spawn_restore(target.kubeconfig(), &["--pause-controller"])?;
    controller_deployment(&target, "is paused", |d| replicas(d) == Some(0)).await?;
    child.kill()?;
    let _ = finish(child)?;
    let paused = deployments(&target).get(Component::Controller.deployment()).await?;
    assert_eq!((replicas(&paused), recorded(&paused)), (Some(0), Some("1")));

    let (_, _, stderr) = run(&mut against(
        "verify",
        &packed.archive,
        &packed.key,
        target.kubeconfig(),
    ));
    assert!(
        stderr.starts_with("warning: the cert-manager controller Deployment cert-manager/cert-manager was left paused"),
        "{stderr}"
    );
    let stderr = packed.rerun(target.kubeconfig(), &[])?;
    assert!(
        stderr.contains("was left paused by an interrupted restore")
            && stderr.contains("this restore scales it back when it ends"),
        "{stderr}"
    );
    assert_controller_runs(&target).await?;
    packed.assert_restored(&target).await
}

/// Waits until `count` objects of `kind` exist in `namespace`, watching them.
async fn until_written(cluster: &LocalCluster, kind: &'static Kind, namespace: &str, count: usize) -> Result<()> {
    objects::watch_until(
        &cluster.client(),
        kind,
        WAIT,
        &format!("{count} {} exist in {namespace}", kind.plural),
        |_, state| (state.keys().filter(|(ns, _)| ns == namespace).count() >= count).then_some(()),
    )
    .await
}

/// SIGKILL (nothing to clean up, no message) right after the first Secrets are written, right after the issuer,
/// and half-way through the Certificates: each time the same command, run again, finishes with nothing lost and
/// nothing reissued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_phase_then_the_same_restore_finishes() -> Result<()> {
    const CERTIFICATES: usize = 200;
    let target = LocalCluster::start(&ClusterSpec::named("sigkill-phases")).await?;
    for (namespace, kind, count) in [
        ("killed-in-secrets", kinds::SECRET, 1),
        ("killed-after-issuers", kinds::ISSUER, 1),
        ("killed-in-certificates", kinds::CERTIFICATE, CERTIFICATES / 2),
    ] {
        let packed = pack(namespace, CERTIFICATES)?;
        let mut child = packed.spawn_restore(target.kubeconfig(), &[])?;
        until_written(&target, kind, namespace, count).await?;
        child.kill()?;
        let (code, ..) = finish(child)?;
        assert_eq!(code, -1, "{namespace}: the restore was killed before it ended");
        let certificates = objects::list(&target.client(), kinds::CERTIFICATE, Some(namespace)).await?;
        assert!(
            certificates.len() < CERTIFICATES,
            "{namespace}: the kill came after the last Certificate"
        );
        packed.rerun(target.kubeconfig(), &[])?;
        packed.assert_restored(&target).await?;
    }
    Ok(())
}

/// kube-apiserver killed and started again while the Certificates are being written: the restore retries what
/// the outage refused, finishes in the same run and says how many requests it retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_during_the_certificates_is_retried() -> Result<()> {
    const CERTIFICATES: usize = 300;
    let packed = pack("apiserver-restart", CERTIFICATES)?;
    let target = LocalCluster::start(&ClusterSpec::named("apiserver-restart")).await?;
    let child = packed.spawn_restore(target.kubeconfig(), &["-v"])?;
    until_written(&target, kinds::CERTIFICATE, "apiserver-restart", 1).await?;
    target.restart_apiserver().await?;
    let (code, stdout, stderr) = finish(child)?;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 reissued"), "{stdout}");
    let retried = stderr
        .lines()
        .find_map(|l| l.strip_prefix("retried ")?.split_once(' ')?.0.parse::<u64>().ok())
        .with_context(|| format!("no retry reported: {stderr}"))?;
    assert!(retried > 0);
    assert!(stderr.contains("transient error, retrying"), "-v logs each retry");
    packed.assert_restored(&target).await
}

/// kube-apiserver killed and started again while the Secrets are being written, before the race barrier has seen
/// them: the barrier's watches come back with the server, and the restore finishes in the same run without a
/// reissued certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_during_the_secrets_keeps_the_race_barrier() -> Result<()> {
    const CERTIFICATES: usize = 300;
    let packed = pack("barrier-restart", CERTIFICATES)?;
    let target = LocalCluster::start(&ClusterSpec::named("barrier-restart")).await?;
    let child = packed.spawn_restore(target.kubeconfig(), &["-v"])?;
    until_written(&target, kinds::SECRET, "barrier-restart", 1).await?;
    target.restart_apiserver().await?;
    let (code, stdout, stderr) = finish(child)?;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 reissued"), "{stdout}");
    // The watch either broke mid-stream or ended with the server, and was opened again while it was away.
    assert!(
        stderr.contains("race barrier: watch")
            || stderr.contains("watching Secrets in barrier-restart: transient error, retrying"),
        "the barrier's watch broke and came back: {stderr}"
    );
    packed.assert_restored(&target).await
}

/// The cert-manager controller stopped and started again by its replica driver while the restore writes the
/// Certificates: it comes back to Certificates whose Secrets are all there, and reissues none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restart_during_the_restore_reissues_nothing() -> Result<()> {
    const CERTIFICATES: usize = 200;
    let packed = pack("controller-restart", CERTIFICATES)?;
    let target = LocalCluster::start(&ClusterSpec::named("controller-restart")).await?;
    let child = packed.spawn_restore(target.kubeconfig(), &[])?;
    until_written(&target, kinds::CERTIFICATE, "controller-restart", 1).await?;
    target.stop_component(Component::Controller).await?;
    target.start_component(Component::Controller).await?;
    let (code, stdout, stderr) = finish(child)?;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 reissued"), "{stdout}");
    packed.rerun(target.kubeconfig(), &[])?;
    packed.assert_restored(&target).await
}

/// A restore run again after cert-manager has re-encoded a Certificate's keystores (PKCS#12 and JKS carry fresh
/// salts each time) is not stopped by a conflict on them: opened with the Certificate's password, they hold the
/// archived certificate, key and CA, and are left to cert-manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystores_re_encoded_by_cert_manager_are_not_a_conflict() -> Result<()> {
    use base64::Engine as _;
    const KEYSTORES: [&str; 4] = ["keystore.p12", "truststore.p12", "keystore.jks", "truststore.jks"];
    const NAMESPACE: &str = "keystores";
    let ca = Ca::new("cmarchive keystore test CA")?;
    let not_before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let crt = Certificate::new(
        NAMESPACE,
        "keystore",
        IssuerRef::issuer("ca"),
        "keystore.keystores.test",
    )
    .duration("2160h")
    .with(
        "keystores",
        json!({"pkcs12": {"create": true, "passwordSecretRef": {"name": "keystore-password", "key": "password"}},
               "jks": {"create": true, "passwordSecretRef": {"name": "keystore-password", "key": "password"}}}),
    );
    let leaf = ca.issue(&crt.leaf_spec(not_before, not_before + jiff::SignedDuration::from_hours(2160)))?;
    let mut secret = crt.issued_secret(&ca, &leaf);
    // What the source cluster's cert-manager encoded; its bytes are never the target's.
    let archived_keystore = base64::engine::general_purpose::STANDARD.encode(b"keystore encoded in the source");
    for key in KEYSTORES {
        fixtures::set_path(&mut secret, &["data", key], json!(archived_keystore));
    }
    let items = vec![
        fixtures::namespace(NAMESPACE),
        ca.secret(NAMESPACE, "ca"),
        fixtures::ca_issuer(Some(NAMESPACE), "ca", "ca"),
        fixtures::opaque_secret(NAMESPACE, "keystore-password", &[("password", "changeit")]),
        secret,
        crt.to_json(),
    ];
    let packed = pack_objects(NAMESPACE, items)?;

    let target = LocalCluster::start(&ClusterSpec::named("keystores")).await?;
    packed.rerun(target.kubeconfig(), &[])?;
    objects::watch_until(
        &target.client(),
        kinds::SECRET,
        WAIT,
        "cert-manager has re-encoded the keystore",
        |_, state| {
            let stored = state.get(&(NAMESPACE.to_owned(), "keystore-tls".to_owned()))?;
            KEYSTORES
                .iter()
                .all(|key| stored["data"][key].as_str().is_some_and(|v| v != archived_keystore))
                .then_some(())
        },
    )
    .await?;
    let stderr = packed.rerun(target.kubeconfig(), &[])?;
    assert!(!stderr.contains("CONFLICT"), "{stderr}");
    packed.assert_restored_except(&target, &KEYSTORES).await
}

/// A kubeconfig for the ServiceAccount `default/restorer` with cluster-admin: the admin kubeconfig's group
/// `system:masters` is exempt from API Priority and Fairness, a ServiceAccount is not.
async fn restorer_kubeconfig(cluster: &LocalCluster, path: &Path) -> Result<()> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let client = cluster.client();
    objects::apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "restorer", "namespace": "default"}}),
    )
    .await?;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "restorer-cluster-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "restorer", "namespace": "default"}]
    });
    apply_cluster_scoped(&client, "rbac.authorization.k8s.io", "clusterrolebindings", &binding).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request("restorer", &kube::api::PostParams::default(), &request)
        .await?
        .status
        .and_then(|s| s.token)
        .context("a token")?;
    let admin = kube::config::Kubeconfig::read_from(cluster.kubeconfig())?;
    let named = admin.clusters.first().context("a cluster")?;
    let c = named.cluster.as_ref().context("a cluster")?;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: \"{}\"\n    certificate-authority: \"{}\"\n\
         users:\n- name: restorer\n  user:\n    token: \"{token}\"\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: restorer\n\
         current-context: local\n",
        c.server.as_deref().unwrap_or_default(),
        c.certificate_authority.as_deref().unwrap_or_default(),
    );
    std::fs::write(path, text)?;
    Ok(())
}

/// Server-side applies one cluster-scoped object of `group/v1`.
async fn apply_cluster_scoped(client: &kube::Client, group: &str, plural: &str, object: &Value) -> Result<()> {
    let resource = kube::api::ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: object["kind"].as_str().unwrap_or_default().into(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &resource);
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    api.patch(
        &name,
        &kube::api::PatchParams::apply("cmarchive-test").force(),
        &kube::api::Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// API Priority and Fairness with a priority level of a few seats (5 of about 250 shares) that rejects what does not fit, for every request
/// of the ServiceAccount `default/restorer` into `namespace`.
async fn throttle(client: &kube::Client, namespace: &str) -> Result<()> {
    let level = json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": {"name": "cmarchive-tiny"},
        "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 5, "lendablePercent": 0, "limitResponse": {"type": "Reject"}}}
    });
    let schema = json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": {"name": "cmarchive-throttled"},
        "spec": {
            "matchingPrecedence": 100,
            "priorityLevelConfiguration": {"name": "cmarchive-tiny"},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": "restorer", "namespace": "default"}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": [namespace]}]
            }]
        }
    });
    for (object, plural) in [(level, "prioritylevelconfigurations"), (schema, "flowschemas")] {
        apply_cluster_scoped(client, "flowcontrol.apiserver.k8s.io", plural, &object).await?;
    }
    Ok(())
}
/// How many requests API Priority and Fairness rejected at the `cmarchive-tiny` level so far.
async fn rejected(client: &kube::Client) -> Result<u64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let metrics = client.request_text(request).await?;
    Ok(metrics
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_flowcontrol_rejected_requests_total{")
                && l.contains("priority_level=\"cmarchive-tiny\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// An API server that answers 429 to whatever does not fit a tiny concurrency share: a restore of a few hundred
/// Certificates still completes, nothing reissued, and reports the retries that got it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_writes_are_retried_until_the_restore_completes() -> Result<()> {
    const CERTIFICATES: usize = 200;
    let packed = pack("throttled", CERTIFICATES)?;
    let target = LocalCluster::start(&ClusterSpec::named("throttled")).await?;
    let kubeconfig = packed.work.path().join("restorer.kubeconfig");
    restorer_kubeconfig(&target, &kubeconfig).await?;
    throttle(&target.client(), "throttled").await?;
    let (code, stdout, stderr) = run(cmarchive().args(packed.restore_args(&kubeconfig, &[])));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("verified {CERTIFICATES} certificates: 0 reissued")),
        "{stdout}"
    );
    let rejected = rejected(&target.client()).await?;
    eprintln!("API Priority and Fairness rejected {rejected} request(s)");
    assert!(rejected > 0, "nothing was throttled: this test can no longer fail");
    // cmarchive's own retries carried it through, and say so.
    let retried = stderr
        .lines()
        .find_map(|l| l.strip_prefix("retried ")?.split_once(' ')?.0.parse::<u64>().ok())
        .with_context(|| format!("no retry reported: {stderr}"))?;
    assert!(retried > 0);
    packed.assert_restored(&target).await
}
