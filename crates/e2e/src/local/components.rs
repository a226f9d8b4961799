//! cert-manager's three processes — controller, webhook, cainjector — each driven by a Deployment of the release
//! manifest's name in `cert-manager`, the way a kubelet would drive its Pod: while the process runs, a Pod object
//! (matching the Deployment's selector, status Running/Ready) stands for it; scaling to zero stops the process
//! first and deletes the Pod after, so "no Pods" really means no process. The Deployment's status is written last,
//! once the process is healthy (or gone).
//!
//! The webhook is registered as the release manifest registers it (same names, rules, `failurePolicy: Fail`,
//! namespace selector and `inject-ca-from-secret` annotation), with `clientConfig.url` on its loopback port
//! instead of a Service; the real cainjector fills `caBundle` from the webhook's own serving CA Secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::process::ManagedProcess;
use super::{http, lock, wait_until};
use crate::FIELD_MANAGER;
use crate::controlplane::ControlPlane;

/// The namespace every component's Deployment lives in (the release manifest's).
pub const NAMESPACE: &str = "cert-manager";
/// The Secret holding the webhook's self-managed serving CA, which cainjector copies into the webhook
/// configurations (the release manifest's name).
pub const WEBHOOK_CA_SECRET: &str = "cert-manager-webhook-ca";
/// Name of both webhook configurations.
pub const WEBHOOK_CONFIGURATION: &str = "cert-manager-webhook";

/// One of cert-manager's processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The controllers (issuance, renewal, ACME, shims).
    Controller,
    /// The admission webhook (validation, CertificateRequest identity and approval).
    Webhook,
    /// The CA injector.
    Cainjector,
}

impl Component {
    /// All three, in start order.
    pub const ALL: [Component; 3] = [Component::Controller, Component::Webhook, Component::Cainjector];

    /// The Deployment's name, as in the release manifest.
    pub fn deployment(self) -> &'static str {
        match self {
            Component::Controller => "cert-manager",
            Component::Webhook => "cert-manager-webhook",
            Component::Cainjector => "cert-manager-cainjector",
        }
    }

    /// The binary `scripts/build-control-plane` builds for it.
    pub fn binary(self) -> &'static str {
        match self {
            Component::Controller => "cert-manager-controller",
            Component::Webhook => "cert-manager-webhook",
            Component::Cainjector => "cert-manager-cainjector",
        }
    }

    /// `app.kubernetes.io/component` and `app.kubernetes.io/name` of its Pods, as in the release manifest.
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Component::Controller => ("controller", "cert-manager"),
            Component::Webhook => ("webhook", "webhook"),
            Component::Cainjector => ("cainjector", "cainjector"),
        }
    }

    /// The Pod object standing for the running process.
    pub fn pod(self) -> String {
        format!("{}-local", self.deployment())
    }

    /// The release's image: named like the binary.
    fn image(self, version: &str) -> String {
        format!("quay.io/jetstack/{}:{version}", self.binary())
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary())
    }
}

/// A component's process, its Pod object and its Deployment's status.
pub(super) struct Process {
    pub(super) component: Component,
    pub(super) plane: ControlPlane,
    pub(super) log_dir: PathBuf,
    pub(super) args: Vec<String>,
    /// Plain-HTTP `/healthz` that answers 200 once the process can do its work.
    pub(super) health: SocketAddr,
    pub(super) client: kube::Client,
    pub(super) process: Mutex<Option<ManagedProcess>>,
    pub(super) timeout: Duration,
}

impl Process {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Whether the process is running (as far as this handle knows).
    pub(super) fn is_running(&self) -> bool {
        lock(&self.process).is_some()
    }

    /// Spawns the process, waits for `/healthz`, then publishes the Pod and the Deployment status.
    pub(super) async fn start(&self, mut others_alive: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let name = self.component.binary();
        let proc = ManagedProcess::spawn(
            name,
            &self.plane.binary(name),
            &self.args,
            &self.log_dir.join(format!("{name}.log")),
        )?;
        *lock(&self.process) = Some(proc);
        let alive = || {
            others_alive()?;
            match lock(&self.process).as_mut() {
                Some(p) => p.check_running(),
                None => bail!("{name} was stopped while starting"),
            }
        };
        let health = self.health;
        let waited = wait_until(&format!("{name} /healthz"), self.timeout, alive, || async move {
            let (status, _) = http::get(health, "/healthz").await?;
            Ok((status == 200).then_some(()))
        })
        .await;
        if let Err(e) = waited {
            // A start that failed leaves no handle behind: the replica driver would take it for a running process
            // and never try again.
            let failed = lock(&self.process).take();
            let tail = failed.as_ref().map(|p| p.tail(40)).unwrap_or_default();
            if let Some(mut p) = failed {
                tokio::task::spawn_blocking(move || p.stop(Duration::from_secs(10))).await?;
            }
            return Err(e.context(tail));
        }
        self.publish(1).await
    }

    /// Stops the process, then removes the Pod and publishes the Deployment status.
    pub(super) async fn stop(&self) -> anyhow::Result<()> {
        let proc = lock(&self.process).take();
        if let Some(mut p) = proc {
            tokio::task::spawn_blocking(move || p.stop(Duration::from_secs(10))).await?;
        }
        self.publish(0).await
    }

    pub(super) async fn publish(&self, replicas: i32) -> anyhow::Result<()> {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let pods = self.pods();
        let deployment_name = self.component.deployment();
        let pod_name = self.component.pod();
        if replicas > 0 {
            let deployment = self.deployments().get(deployment_name).await?;
            let template = deployment.spec.map(|s| s.template).unwrap_or_default();
            let body = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": NAMESPACE, "labels": template.metadata.and_then(|m| m.labels)},
                "spec": template.spec,
            });
            // The ServiceAccount admission plugin reads ServiceAccounts from its informer cache, which may not
            // have seen the one created a moment ago: retry until it has.
            wait_until(
                &format!("the {} Pod to be admitted", self.component),
                self.timeout,
                || Ok(()),
                || async {
                    Ok(pods
                        .patch(&pod_name, &pp, &Patch::Apply(&body))
                        .await
                        .map(|_| ())?
                        .into())
                },
            )
            .await
            .with_context(|| format!("creating the {} Pod", self.component))?;
            let now = jiff::Timestamp::now().to_string();
            let status = json!({
                "apiVersion": "v1", "kind": "Pod",
                "status": {"phase": "Running", "startTime": now, "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                ]},
            });
            pods.patch_status(&pod_name, &pp, &Patch::Apply(&status))
                .await
                .context("Pod status")?;
        }
        let generation = self.deployments().get(deployment_name).await?.metadata.generation;
        let status = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "status": {"observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
                       "availableReplicas": replicas, "updatedReplicas": replicas},
        });
        self.deployments()
            .patch_status(deployment_name, &pp, &Patch::Apply(&status))
            .await
            .context("Deployment status")?;
        // Pod last: once it is gone the process is gone and the status says so.
        if replicas == 0 && pods.get_opt(&pod_name).await?.is_some() {
            pods.delete(&pod_name, &kube::api::DeleteParams::default().grace_period(0))
                .await?;
        }
        Ok(())
    }
}

/// Follows each Deployment's `spec.replicas` (one list every 100 ms) and starts or stops its process to match,
/// then makes the Deployment's status say so. Level-triggered like a real controller: a status write that failed
/// (an API server restarting) or a spec that changed while a process was starting or stopping is caught up with on
/// the next list.
pub(super) async fn reconcile_replicas(processes: Vec<Arc<Process>>) {
    let Some(first) = processes.first() else {
        return;
    };
    let deployments: Api<Deployment> = Api::namespaced(first.client.clone(), NAMESPACE);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(list) = deployments.list(&ListParams::default()).await else {
            continue;
        };
        for p in &processes {
            let Some(d) = list
                .items
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(p.component.deployment()))
            else {
                continue;
            };
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) > 0;
            let replicas = i32::from(want);
            let status = d.status.as_ref();
            let published = status.and_then(|s| s.observed_generation) >= d.metadata.generation
                && status.and_then(|s| s.replicas).unwrap_or(0) == replicas
                && status.and_then(|s| s.ready_replicas).unwrap_or(0) == replicas;
            let result = match (want, p.is_running()) {
                (true, false) => p.start(|| Ok(())).await,
                (false, true) => p.stop().await,
                _ if !published => p.publish(replicas).await,
                _ => continue,
            };
            if let Err(e) = result {
                eprintln!(
                    "local cluster: {} {}: {e:#}",
                    p.component,
                    if want { "start" } else { "stop" }
                );
            }
        }
    }
}

/// The Deployment a release manifest would have for `component`, with the process's real flags as container
/// args. No Pods run from it (there is no deployment controller or kubelet); it lets `cmarchive` find the
/// controller's flags and `kubectl scale` drive the process.
pub(super) async fn apply_deployment(
    client: &kube::Client,
    component: Component,
    version: &str,
    args: &[String],
) -> anyhow::Result<()> {
    // Flags that only make sense for a process outside the cluster stay out of the Deployment.
    let local_only = [
        "--kubeconfig=",
        "--internal-healthz-listen-address=",
        "--healthz-listen-address=",
        "--healthz-port=",
        "--leader-elect=",
    ];
    let container_args: Vec<&String> = args
        .iter()
        .filter(|a| !local_only.iter().any(|p| a.starts_with(p)))
        .collect();
    let (role, name_label) = component.labels();
    let labels = json!({
        "app": name_label,
        "app.kubernetes.io/name": name_label,
        "app.kubernetes.io/instance": "cert-manager",
        "app.kubernetes.io/component": role,
        "app.kubernetes.io/version": version,
    });
    let selector = json!({
        "app.kubernetes.io/name": name_label,
        "app.kubernetes.io/instance": "cert-manager",
        "app.kubernetes.io/component": role,
    });
    let name = component.deployment();
    let body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "containers": [{
                        "name": component.binary(),
                        "image": component.image(version),
                        "args": container_args,
                    }],
                },
            },
        },
    });
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .with_context(|| format!("creating Deployment {NAMESPACE}/{name}"))?;
    Ok(())
}

/// The webhook's arguments: serving on `secure_port` with a certificate from its own CA in
/// [`WEBHOOK_CA_SECRET`], for the names the API server may call it by.
pub(super) fn webhook_args(kubeconfig: &str, secure_port: u16, healthz_port: u16, log_level: u8) -> Vec<String> {
    let service = Component::Webhook.deployment();
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--v={log_level}"),
        format!("--secure-port={secure_port}"),
        format!("--healthz-port={healthz_port}"),
        // Its default metrics address is a fixed port on every interface: two clusters would collide.
        "--metrics-listen-address=0".to_owned(),
        format!("--dynamic-serving-ca-secret-namespace={NAMESPACE}"),
        format!("--dynamic-serving-ca-secret-name={WEBHOOK_CA_SECRET}"),
        // `localhost` is the name the webhook configurations call it by; the Service names are the release's.
        format!("--dynamic-serving-dns-names=localhost,{service},{service}.{NAMESPACE},{service}.{NAMESPACE}.svc"),
    ]
}

/// Registers the webhook the way the release manifest does, pointed at `https://localhost:<port>`.
pub(super) async fn apply_webhook_configurations(client: &kube::Client, port: u16) -> anyhow::Result<()> {
    let annotations = json!({"cert-manager.io/inject-ca-from-secret": format!("{NAMESPACE}/{WEBHOOK_CA_SECRET}")});
    let labels = json!({
        "app": "webhook",
        "app.kubernetes.io/name": "webhook",
        "app.kubernetes.io/instance": "cert-manager",
        "app.kubernetes.io/component": "webhook",
    });
    let webhook = |path: &str, rules: Value, namespace_selector: Value| {
        json!({
            "name": "webhook.cert-manager.io",
            "namespaceSelector": namespace_selector,
            "rules": rules,
            "admissionReviewVersions": ["v1"],
            "matchPolicy": "Equivalent",
            "timeoutSeconds": 30,
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "clientConfig": {"url": format!("https://localhost:{port}{path}")},
        })
    };
    let validating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION, "labels": labels, "annotations": annotations},
        "webhooks": [webhook(
            "/validate",
            json!([{"apiGroups": ["cert-manager.io", "acme.cert-manager.io"], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["*/*"]}]),
            json!({"matchExpressions": [{"key": "cert-manager.io/disable-validation", "operator": "NotIn",
                                          "values": ["true"]}]}),
        )],
    });
    let mutating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION, "labels": labels, "annotations": annotations},
        "webhooks": [webhook(
            "/mutate",
            json!([{"apiGroups": ["cert-manager.io"], "apiVersions": ["v1"], "operations": ["CREATE"],
                    "resources": ["certificaterequests"]}]),
            json!({}),
        )],
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for (kind, plural, body) in [
        (
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            &validating,
        ),
        (
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            &mutating,
        ),
    ] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &admission_resource(kind, plural));
        api.patch(WEBHOOK_CONFIGURATION, &pp, &Patch::Apply(body))
            .await
            .with_context(|| format!("creating {kind} {WEBHOOK_CONFIGURATION}"))?;
    }
    Ok(())
}

fn admission_resource(kind: &str, plural: &str) -> kube::api::ApiResource {
    let gvk = kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    kube::api::ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// The CA bundle the webhook configuration of `kind` carries (`None` while cainjector has not filled it).
pub async fn injected_ca_bundle(client: &kube::Client, kind: &str) -> anyhow::Result<Option<String>> {
    let plural = format!("{}s", kind.to_lowercase());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &admission_resource(kind, &plural));
    let config = api.get(WEBHOOK_CONFIGURATION).await?;
    Ok(config.data["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .filter(|b| !b.is_empty())
        .map(str::to_owned))
}
