//! The cert-manager controller Deployment: where its version and cluster resource namespace are read from, and
//! what `--pause-controller` scales to zero and back.

use crate::cluster::raw::Resource;
use crate::cluster::retry;
use anyhow::{Context as _, Result, bail};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;

/// Labels the Helm chart and the static manifests put on the controller Deployment.
pub const CONTROLLER_SELECTOR: &str = "app.kubernetes.io/name=cert-manager,app.kubernetes.io/component=controller";
/// Annotation that remembers the replica count while paused, so a crashed restore can still be resumed.
pub const PAUSED_REPLICAS_ANNOTATION: &str = "cmarchive.io/paused-replicas";
/// The controller binary's own default for `--cluster-resource-namespace`.
pub const BINARY_DEFAULT_CRN: &str = "kube-system";
/// What cmarchive assumes without a Deployment to read: the Helm chart's usual install namespace.
pub const FALLBACK_CRN: &str = "cert-manager";

/// The controller Deployment, as found.
#[derive(Clone, Debug)]
pub struct ControllerDeployment {
    /// The Deployment object.
    pub object: Value,
}

impl ControllerDeployment {
    /// Namespace of the Deployment.
    pub fn namespace(&self) -> &str {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Name of the Deployment.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The controller's ServiceAccount (namespace, name): the subject token RoleBindings name.
    pub fn service_account(&self) -> (String, String) {
        let spec = self.object.pointer("/spec/template/spec");
        let name = ["serviceAccountName", "serviceAccount"]
            .iter()
            .find_map(|field| spec?.get(*field)?.as_str().filter(|n| !n.is_empty()))
            .unwrap_or("default");
        (self.namespace().to_owned(), name.to_owned())
    }

    fn container(&self) -> Option<&Value> {
        let containers = self.object.pointer("/spec/template/spec/containers")?.as_array()?;
        containers
            .iter()
            .find(|c| {
                c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.contains("controller"))
            })
            .or_else(|| containers.first())
    }

    /// cert-manager's version from the controller image tag (`…/cert-manager-controller:v1.21.1[@sha256:…]`),
    /// else from the `app.kubernetes.io/version` label.
    pub fn version(&self) -> Option<String> {
        let image = self.container()?.get("image")?.as_str()?;
        image_tag(image).or_else(|| {
            self.object
                .pointer("/metadata/labels/app.kubernetes.io~1version")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    }

    /// The controller's `--cluster-resource-namespace`, with `$(VAR)` references resolved from the container's
    /// environment; the binary default when the flag is absent.
    pub fn cluster_resource_namespace(&self) -> String {
        let Some(container) = self.container() else {
            return BINARY_DEFAULT_CRN.to_owned();
        };
        let args: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| container.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut value = None;
        for (i, arg) in args.iter().enumerate() {
            if let Some(v) = arg.strip_prefix("--cluster-resource-namespace=") {
                value = Some(v.to_owned());
            } else if *arg == "--cluster-resource-namespace" {
                value = args.get(i + 1).map(|v| (*v).to_owned());
            }
        }
        match value {
            Some(v) => self.expand(container, &v),
            None => BINARY_DEFAULT_CRN.to_owned(),
        }
    }

    /// Expands `$(NAME)` the way the kubelet does, for env vars with a literal value or the Pod's namespace.
    fn expand(&self, container: &Value, text: &str) -> String {
        let mut out = text.to_owned();
        for env in container.get("env").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = env.get("name").and_then(Value::as_str) else {
                continue;
            };
            let value = if let Some(v) = env.get("value").and_then(Value::as_str) {
                v.to_owned()
            } else if env.pointer("/valueFrom/fieldRef/fieldPath").and_then(Value::as_str) == Some("metadata.namespace")
            {
                self.namespace().to_owned()
            } else {
                continue;
            };
            out = out.replace(&format!("$({name})"), &value);
        }
        out
    }
}

/// The cluster resource namespace in effect: the one given on the command line, else the found controller's own
/// flag, else [`FALLBACK_CRN`]. One rule for pack, restore and verify, so that the namespace a backup records and
/// the one a restore maps it to are read the same way.
pub fn effective_crn(given: Option<&str>, deployment: Option<&ControllerDeployment>) -> String {
    given
        .map(str::to_owned)
        .or_else(|| deployment.map(ControllerDeployment::cluster_resource_namespace))
        .unwrap_or_else(|| FALLBACK_CRN.to_owned())
}

/// The tag of an image reference, without a digest; `None` for digest-only references.
pub fn image_tag(image: &str) -> Option<String> {
    let without_digest = image.split('@').next()?;
    let last = without_digest.rsplit('/').next()?;
    last.split_once(':')
        .map(|(_, tag)| tag.to_owned())
        .filter(|t| !t.is_empty())
}

/// Finds the cert-manager controller Deployment: by its standard labels anywhere, else `cert-manager/cert-manager`.
/// Returns `None` when there is none or it may not be read (a backup identity need not read Deployments).
pub async fn find(client: &kube::Client) -> Option<ControllerDeployment> {
    let deployments = Resource::deployments();
    match deployments.list(client, None, Some(CONTROLLER_SELECTOR)).await {
        Ok(found) if !found.is_empty() => {
            if found.len() > 1 {
                tracing::warn!(
                    count = found.len(),
                    "several cert-manager controller Deployments; using the first"
                );
            }
            return found.into_iter().next().map(|object| ControllerDeployment { object });
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "cannot list Deployments"),
    }
    match deployments.get(client, Some("cert-manager"), "cert-manager").await {
        Ok(found) => found.map(|object| ControllerDeployment { object }),
        Err(e) => {
            tracing::debug!(error = %e, "cannot get Deployment cert-manager/cert-manager");
            None
        }
    }
}

impl ControllerDeployment {
    /// The replica count an earlier `--pause-controller` recorded and did not get to restore (the run was killed).
    pub fn left_paused(&self) -> Option<i64> {
        self.object
            .pointer(&format!(
                "/metadata/annotations/{}",
                PAUSED_REPLICAS_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<i64>().ok())
    }

    /// The replica count to scale back to after a pause: the recorded one if an earlier run left it paused, else
    /// the current one.
    pub fn replicas_to_restore(&self) -> i64 {
        self.left_paused().unwrap_or_else(|| {
            self.object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        })
    }

    /// One line saying that an earlier restore left this controller paused, for `restore` and `verify` to say
    /// before anything else.
    pub fn left_paused_warning(&self) -> Option<String> {
        let replicas = self.left_paused()?;
        Some(format!(
            "the cert-manager controller Deployment {}/{} was left paused by an interrupted restore ({replicas} replica(s) recorded in its annotation {PAUSED_REPLICAS_ANNOTATION}); no certificate renews until it runs again",
            self.namespace(),
            self.name()
        ))
    }

    /// The command that scales it back by hand.
    pub fn scale_command(&self, replicas: i64) -> String {
        format!(
            "kubectl -n {} scale deployment {} --replicas={replicas} && kubectl -n {} annotate deployment {} {PAUSED_REPLICAS_ANNOTATION}-",
            self.namespace(),
            self.name(),
            self.namespace(),
            self.name()
        )
    }
}

/// Scales the controller to zero, recording `replicas` (from [`ControllerDeployment::replicas_to_restore`]) in an
/// annotation in the same write, so that a run killed from here on is found out and undone by the next one; then
/// waits until its Pods are gone.
pub async fn pause(
    client: &kube::Client,
    deployment: &ControllerDeployment,
    replicas: i64,
    timeout: Duration,
) -> Result<()> {
    let (namespace, name) = (deployment.namespace(), deployment.name());
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "metadata": {"annotations": {PAUSED_REPLICAS_ANNOTATION: replicas.to_string()}},
        "spec": {"replicas": 0}
    });
    patch_deployment(&api, name, &patch).await.with_context(|| {
        format!("cannot scale Deployment {namespace}/{name} to 0 (needs `patch` on deployments.apps)")
    })?;
    note!("paused the cert-manager controller ({namespace}/{name}: {replicas} → 0 replicas)");
    let selector = deployment
        .object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let params = ListParams::default().labels(&selector);
        let remaining =
            retry::transient(&format!("Pods of {namespace}/{name}"), || pods.list_metadata(&params)).await?;
        if remaining.items.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the cert-manager controller Pods in {namespace} did not stop within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One merge patch of the Deployment (its replicas and the annotation), retried while the API server is away.
async fn patch_deployment(
    api: &Api<k8s_openapi::api::apps::v1::Deployment>,
    name: &str,
    patch: &Value,
) -> Result<k8s_openapi::api::apps::v1::Deployment, kube::Error> {
    let params = PatchParams::default();
    let patch = Patch::Merge(patch);
    retry::transient(&format!("Deployment {name}"), || api.patch(name, &params, &patch)).await
}

/// Scales the controller back to the remembered replica count and forgets it.
pub async fn resume(client: &kube::Client, deployment: &ControllerDeployment, replicas: i64) -> Result<()> {
    let (namespace, name) = (deployment.namespace(), deployment.name());
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "metadata": {"annotations": {PAUSED_REPLICAS_ANNOTATION: null}},
        "spec": {"replicas": replicas}
    });
    patch_deployment(&api, name, &patch).await.with_context(|| {
        format!(
            "cannot scale Deployment {namespace}/{name} back to {replicas}: do it by hand: {}",
            deployment.scale_command(replicas)
        )
    })?;
    crate::interrupt::say(&cmarchive_archive::text::escape_controls(&format!(
        "resumed the cert-manager controller ({namespace}/{name}: {replicas} replicas)"
    )));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(args: Value, env: Value) -> ControllerDeployment {
        ControllerDeployment {
            object: json!({
                "metadata": {"name": "cert-manager", "namespace": "cm"},
                "spec": {"template": {"spec": {"containers": [{
                    "name": "cert-manager-controller",
                    "image": "quay.io/jetstack/cert-manager-controller:v1.21.1@sha256:abc",
                    "args": args, "env": env}]}}}
            }),
        }
    }

    #[test]
    fn a_recorded_replica_count_wins_over_the_current_one() {
        let mut d = deployment(json!([]), json!([]));
        d.object["spec"]["replicas"] = json!(3);
        assert_eq!(d.left_paused(), None);
        assert_eq!(d.left_paused_warning(), None);
        assert_eq!(d.replicas_to_restore(), 3);
        d.object["spec"]["replicas"] = json!(0);
        d.object["metadata"]["annotations"] = json!({PAUSED_REPLICAS_ANNOTATION: "2"});
        assert_eq!(d.left_paused(), Some(2));
        assert_eq!(d.replicas_to_restore(), 2);
        let warning = d.left_paused_warning().unwrap();
        assert!(warning.contains("cm/cert-manager was left paused"), "{warning}");
        assert!(warning.contains("2 replica(s)"), "{warning}");
    }

    #[test]
    fn version_from_image_tag() {
        assert_eq!(deployment(json!([]), json!([])).version().as_deref(), Some("v1.21.1"));
        assert_eq!(image_tag("localhost:5000/cm"), None);
        assert_eq!(image_tag("localhost:5000/cm:v1"), Some("v1".into()));
    }

    #[test]
    fn cluster_resource_namespace_from_args() {
        let helm = deployment(
            json!(["--v=2", "--cluster-resource-namespace=$(POD_NAMESPACE)"]),
            json!([{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]),
        );
        assert_eq!(helm.cluster_resource_namespace(), "cm");
        let split = deployment(json!(["--cluster-resource-namespace", "infra"]), json!([]));
        assert_eq!(split.cluster_resource_namespace(), "infra");
        // The command line wins over the Deployment, which wins over the fallback.
        assert_eq!(effective_crn(Some("given"), Some(&split)), "given");
        assert_eq!(effective_crn(None, Some(&split)), "infra");
        assert_eq!(effective_crn(None, None), FALLBACK_CRN);
        let absent = deployment(json!(["--v=2"]), json!([]));
        assert_eq!(absent.cluster_resource_namespace(), BINARY_DEFAULT_CRN);
    }
}
