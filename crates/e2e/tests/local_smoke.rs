//! Smoke tests of the local provider: the real cert-manager controller issues a CA chain, the real webhook
//! refuses what cert-manager's validation refuses with the CA the real cainjector injected, the real
//! kube-controller-manager collects garbage, two clusters run side by side, and no process outlives its cluster.
//!
//! They need the binaries from `scripts/build-control-plane` and fail (never skip) without them.

use std::time::Duration;

use cmarchive_e2e::local::components::{self, Component};
use cmarchive_e2e::local::{LocalCluster, wait_until};
use cmarchive_e2e::provider::{Cluster, ClusterSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use x509_parser::pem::Pem;

const TIMEOUT: Duration = Duration::from_secs(120);

fn cm_resource(kind: &str) -> ApiResource {
    let plural = format!("{}s", kind.to_lowercase());
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cert-manager.io", "v1", kind), &plural)
}

fn cm_api(cluster: &LocalCluster, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = cm_resource(kind);
    match namespace {
        Some(ns) => Api::namespaced_with(cluster.client(), ns, &ar),
        None => Api::all_with(cluster.client(), &ar),
    }
}

async fn apply(api: &Api<DynamicObject>, body: Value) {
    let name = body["metadata"]["name"].as_str().unwrap().to_owned();
    api.patch(&name, &PatchParams::apply("smoke").force(), &Patch::Apply(&body))
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

async fn create_namespace(cluster: &LocalCluster, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(cluster.client())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// Waits until a cert-manager object has `Ready=True`; on timeout fails with its status and the process logs.
async fn wait_ready(cluster: &LocalCluster, api: &Api<DynamicObject>, name: &str) {
    let api = api.clone();
    let result = wait_until(
        &format!("{name} Ready"),
        TIMEOUT,
        || cluster.check_running(),
        || {
            let api = api.clone();
            async move {
                let obj = api.get(name).await?;
                let ready = obj.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                Ok(ready.then_some(()))
            }
        },
    )
    .await;
    if let Err(e) = result {
        let status = api
            .get(name)
            .await
            .map(|o| o.data["status"].to_string())
            .unwrap_or_default();
        panic!("{e:#}\nstatus of {name}: {status}\n{}", cluster.log_tails(40));
    }
}

fn pem_certs(bytes: &[u8]) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(bytes)
        .map(|p| p.expect("PEM block").contents)
        .collect()
}

fn secret_bytes(secret: &Secret, key: &str) -> Vec<u8> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("Secret has no {key}"))
        .0
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_chain_is_issued_by_the_real_controller() {
    let cluster = LocalCluster::start(&ClusterSpec::named("smoke-chain")).await.unwrap();
    let client = cluster.client();
    create_namespace(&cluster, "smoke").await;

    let cluster_issuers = cm_api(&cluster, "ClusterIssuer", None);
    apply(
        &cluster_issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
               "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
    )
    .await;
    wait_ready(&cluster, &cluster_issuers, "selfsigned").await;

    let certificates = cm_api(&cluster, "Certificate", Some("smoke"));
    apply(
        &certificates,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "smoke-ca", "namespace": "smoke"},
               "spec": {"isCA": true, "commonName": "smoke CA", "secretName": "smoke-ca",
                        "privateKey": {"algorithm": "ECDSA", "size": 256},
                        "issuerRef": {"name": "selfsigned", "kind": "ClusterIssuer", "group": "cert-manager.io"}}}),
    )
    .await;
    wait_ready(&cluster, &certificates, "smoke-ca").await;

    let issuers = cm_api(&cluster, "Issuer", Some("smoke"));
    apply(
        &issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": "smoke-ca", "namespace": "smoke"},
               "spec": {"ca": {"secretName": "smoke-ca"}}}),
    )
    .await;
    wait_ready(&cluster, &issuers, "smoke-ca").await;

    apply(
        &certificates,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "leaf", "namespace": "smoke"},
               "spec": {"dnsNames": ["leaf.smoke.example"], "secretName": "leaf-tls",
                        "issuerRef": {"name": "smoke-ca", "kind": "Issuer"}}}),
    )
    .await;
    wait_ready(&cluster, &certificates, "leaf").await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "smoke");
    let ca_secret = secrets.get("smoke-ca").await.unwrap();
    let leaf_secret = secrets.get("leaf-tls").await.unwrap();
    let ca_der = pem_certs(&secret_bytes(&ca_secret, "tls.crt")).remove(0);
    let leaf_chain = pem_certs(&secret_bytes(&leaf_secret, "tls.crt"));
    assert_eq!(
        pem_certs(&secret_bytes(&leaf_secret, "ca.crt")),
        vec![ca_der.clone()],
        "ca.crt is the CA"
    );
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_chain[0]).unwrap();

    assert!(ca.is_ca(), "the CA certificate has CA:TRUE");
    ca.verify_signature(None).expect("the CA is self-signed");
    leaf.verify_signature(Some(ca.public_key()))
        .expect("the leaf verifies against the CA");
    assert_eq!(leaf.issuer(), ca.subject());
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .expect("leaf has SANs")
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(sans, ["DNSName(leaf.smoke.example)"]);
    // Negative control: the same check rejects a signature by a different key.
    assert!(
        leaf.verify_signature(Some(leaf.public_key())).is_err(),
        "verification can fail"
    );

    // The Deployment object mirrors the controller's flags for `cmarchive pack`.
    let deployment = Api::<Deployment>::namespaced(client, "cert-manager")
        .get("cert-manager")
        .await
        .unwrap();
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.contains(&"--cluster-resource-namespace=cert-manager".to_owned()),
        "{args:?}"
    );
    assert_eq!(
        container.image.as_deref(),
        Some(
            format!(
                "quay.io/jetstack/cert-manager-controller:{}",
                cluster.cert_manager_version()
            )
            .as_str()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_manager_collects_garbage_and_deletes_namespaces() {
    let mut spec = ClusterSpec::named("smoke-gc");
    spec.enable_certificate_owner_ref = true;
    let cluster = LocalCluster::start(&spec).await.unwrap();
    let client = cluster.client();
    create_namespace(&cluster, "gc").await;

    // A plain owner → dependent pair.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gc");
    let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap();
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let dependent: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dependent", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.clone().unwrap()
    }]}}))
    .unwrap();
    cms.create(&PostParams::default(), &dependent).await.unwrap();
    cms.delete("owner", &DeleteParams::background()).await.unwrap();
    let cms2 = cms.clone();
    wait_until(
        "GC deletes the dependent ConfigMap",
        TIMEOUT,
        || cluster.check_running(),
        || {
            let cms = cms2.clone();
            async move { Ok(cms.get_opt("dependent").await?.is_none().then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.log_tails(40)));

    // --enable-certificate-owner-ref: the Certificate owns its Secret, so deleting it deletes the Secret.
    let issuers = cm_api(&cluster, "Issuer", Some("gc"));
    apply(
        &issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": "selfsigned", "namespace": "gc"}, "spec": {"selfSigned": {}}}),
    )
    .await;
    let certificates = cm_api(&cluster, "Certificate", Some("gc"));
    apply(
        &certificates,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "owned", "namespace": "gc"},
               "spec": {"commonName": "owned", "secretName": "owned-tls",
                        "issuerRef": {"name": "selfsigned", "kind": "Issuer"}}}),
    )
    .await;
    wait_ready(&cluster, &certificates, "owned").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "gc");
    let secret = secrets.get("owned-tls").await.unwrap();
    let owners = secret.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owners.iter().map(|o| o.kind.as_str()).collect::<Vec<_>>(),
        ["Certificate"],
        "{owners:?}"
    );
    certificates.delete("owned", &DeleteParams::background()).await.unwrap();
    let secrets2 = secrets.clone();
    wait_until(
        "GC deletes the owned Secret",
        TIMEOUT,
        || cluster.check_running(),
        || {
            let secrets = secrets2.clone();
            async move { Ok(secrets.get_opt("owned-tls").await?.is_none().then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.log_tails(40)));

    // The namespace controller empties and removes a deleted namespace.
    let namespaces: Api<Namespace> = Api::all(client);
    namespaces.delete("gc", &DeleteParams::default()).await.unwrap();
    let namespaces2 = namespaces.clone();
    wait_until(
        "namespace gc is deleted",
        TIMEOUT,
        || cluster.check_running(),
        || {
            let namespaces = namespaces2.clone();
            async move { Ok(namespaces.get_opt("gc").await?.is_none().then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.log_tails(40)));
}

/// Whether `pid` is still one of our control-plane processes (not gone, not a zombie, not reused).
fn still_running(pid: u32) -> bool {
    cmarchive_e2e::local::process::runs_our_binary(pid, &[])
}

async fn assert_all_gone(pids: &[u32]) {
    let gone = wait_until(
        "every process to exit",
        Duration::from_secs(15),
        || Ok(()),
        || async { Ok(pids.iter().all(|p| !still_running(*p)).then_some(())) },
    )
    .await;
    let left: Vec<u32> = pids.iter().copied().filter(|p| still_running(*p)).collect();
    assert!(gone.is_ok() && left.is_empty(), "processes left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_side_by_side_and_nothing_left_after_drop() {
    let (spec_a, spec_b) = (ClusterSpec::named("smoke-source"), ClusterSpec::named("smoke-target"));
    let (a, b) = tokio::join!(LocalCluster::start(&spec_a), LocalCluster::start(&spec_b));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.server(), b.server());
    create_namespace(&a, "only-in-a").await;
    let in_b = Api::<Namespace>::all(b.client()).get_opt("only-in-a").await.unwrap();
    assert!(in_b.is_none(), "the clusters share no state");
    let pids: Vec<u32> = a.pids().into_iter().chain(b.pids()).collect();
    assert_eq!(pids.len(), 12, "six processes per cluster: {pids:?}");
    assert!(pids.iter().all(|p| still_running(*p)));
    let dirs = [a.dir().to_owned(), b.dir().to_owned()];
    drop(a);
    drop(b);
    assert_all_gone(&pids).await;
    assert!(dirs.iter().all(|d| !d.exists()), "temp dirs removed: {dirs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_nothing_behind() {
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let cluster = LocalCluster::start(&ClusterSpec::named("smoke-panic")).await.unwrap();
            tx.send(cluster.pids()).unwrap();
            panic!("deliberate panic with a running cluster");
        })
    })
    .join();
    assert!(joined.is_err(), "the thread panicked");
    let pids = rx.recv().unwrap();
    assert_eq!(pids.len(), 6);
    assert_all_gone(&pids).await;
}

async fn controller_pods(cluster: &LocalCluster) -> usize {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(cluster.client(), "cert-manager");
    let selector = "app.kubernetes.io/name=cert-manager,app.kubernetes.io/component=controller";
    pods.list(&kube::api::ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_the_deployment_pauses_and_resumes_the_controller() {
    let cluster = LocalCluster::start(&ClusterSpec::named("smoke-restart")).await.unwrap();
    let before = cluster.pids();
    assert_eq!(
        controller_pods(&cluster).await,
        1,
        "a Pod stands for the running controller"
    );

    // What `cmarchive restore --pause-controller` does: scale to zero, wait until no controller Pod is left.
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), "cert-manager");
    deployments
        .patch(
            "cert-manager",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    wait_until(
        "no controller Pod",
        TIMEOUT,
        || Ok(()),
        || async { Ok((controller_pods(&cluster).await == 0).then_some(())) },
    )
    .await
    .unwrap();
    assert!(
        !still_running(before[3]),
        "the Pod disappears only after the process has exited"
    );
    assert_eq!(cluster.pids().len(), 5);
    let status = deployments.get("cert-manager").await.unwrap().status.unwrap();
    assert_eq!(status.replicas.unwrap_or(0), 0, "{status:?}");

    // The provider trait's own switch goes through the same Deployment.
    cluster.start_controller().await.unwrap();
    assert_eq!(cluster.pids().len(), 6);
    assert_eq!(controller_pods(&cluster).await, 1);
    assert_eq!(
        deployments
            .get("cert-manager")
            .await
            .unwrap()
            .status
            .unwrap()
            .ready_replicas,
        Some(1)
    );
    cluster.stop_controller().await.unwrap();
    assert_eq!(cluster.pids().len(), 5);
    cluster.start_controller().await.unwrap();
    cluster.check_running().unwrap();
}

/// A Certificate whose RSA key has `size` bits.
fn rsa_certificate(name: &str, size: u32) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": name, "namespace": "cert-manager"},
        "spec": {"commonName": name, "secretName": name,
                 "privateKey": {"algorithm": "RSA", "size": size},
                 "issuerRef": {"name": "selfsigned", "kind": "Issuer"}}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_webhook_validates_with_the_ca_the_real_cainjector_injected() {
    let cluster = LocalCluster::start(&ClusterSpec::named("smoke-webhook")).await.unwrap();
    let client = cluster.client();
    let certificates = cm_api(&cluster, "Certificate", Some("cert-manager"));
    let dry_run = PostParams {
        dry_run: true,
        field_manager: None,
    };

    // cert-manager's validation refuses an RSA key under 2048 bits; only the webhook can say so (the CRD's
    // schema has no minimum).
    let refused = certificates
        .create(&dry_run, &rsa_certificate("rsa-1024", 1024))
        .await
        .expect_err("the webhook refuses a 1024-bit RSA key");
    let message = refused.to_string();
    assert!(
        message.contains("admission webhook \"webhook.cert-manager.io\" denied the request")
            && message.contains("2048"),
        "{message}"
    );
    certificates
        .create(&dry_run, &rsa_certificate("rsa-2048", 2048))
        .await
        .expect("the same Certificate with 2048 bits is admitted");

    // Both webhook configurations carry the CA of the webhook's own serving CA Secret, put there by cainjector
    // (the harness never writes a caBundle).
    let ca_secret: Secret = Api::namespaced(client.clone(), components::NAMESPACE)
        .get(components::WEBHOOK_CA_SECRET)
        .await
        .unwrap();
    let ca = base64_of(&secret_bytes(&ca_secret, "ca.crt"));
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        let bundle = components::injected_ca_bundle(&client, kind).await.unwrap();
        assert_eq!(
            bundle.as_deref(),
            Some(ca.as_str()),
            "{kind}'s caBundle is the webhook's CA"
        );
    }

    // failurePolicy: Fail — without the webhook nothing of cert-manager's is admitted; with it back, it is.
    cluster.stop_component(Component::Webhook).await.unwrap();
    let down = cmarchive_e2e::provider::cert_manager_api_check(&client, "cert-manager")
        .await
        .unwrap();
    let reason = down.expect_err("no webhook, no Issuer");
    assert!(reason.contains("failed calling webhook"), "{reason}");
    cluster.start_component(Component::Webhook).await.unwrap();
    let up = wait_until(
        "the webhook to admit a dry-run Issuer again",
        TIMEOUT,
        || cluster.check_running(),
        || {
            let client = client.clone();
            async move {
                Ok(cmarchive_e2e::provider::cert_manager_api_check(&client, "cert-manager")
                    .await?
                    .ok())
            }
        },
    )
    .await;
    up.unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.log_tails(40)));

    // Every component sits behind its Deployment of the release manifest's name, with a ready status.
    let deployments: Api<Deployment> = Api::namespaced(client, components::NAMESPACE);
    for component in Component::ALL {
        let d = deployments.get(component.deployment()).await.unwrap();
        assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(1), "{component}");
        assert!(
            cluster.component_pid(component).is_some_and(still_running),
            "{component}"
        );
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
