//! Installing cert-manager from its release manifest into any cluster a `kube::Client` reaches, and the readiness
//! and scaling helpers around it. Shared by the kind and k3s providers, so both run cert-manager the same way.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::config::{
    self, CERT_MANAGER_NAMESPACE, CONTROLLER_DEPLOYMENT, ENV_CERT_MANAGER_MANIFEST, ENV_CERT_MANAGER_VERSION,
    ManifestSource,
};
use crate::FIELD_MANAGER;
use crate::provider::ClusterSpec;

/// How long image pulls and webhook certificate bootstrap may take on a cold CI runner.
pub const READY_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(2);

/// The cert-manager version this run installs for `spec` (spec, then `CMARCHIVE_CERT_MANAGER_VERSION`, then the pin).
pub fn version_for(spec: &ClusterSpec) -> anyhow::Result<String> {
    config::resolve_cert_manager_version(
        spec.cert_manager_version.as_deref(),
        config::env_var(ENV_CERT_MANAGER_VERSION).as_deref(),
        Some(&config::pinned().cert_manager),
    )
}

/// Reads the manifest: a local file as given, a release downloaded once with `curl` into the cache.
pub async fn load_manifest(source: &ManifestSource) -> anyhow::Result<String> {
    let path = match source {
        ManifestSource::File(path) => path.clone(),
        ManifestSource::Release { version, url } => {
            let path = crate::controlplane::cache_dir()
                .join("cert-manager-manifests")
                .join(version)
                .join("cert-manager.yaml");
            cached_download(url, &path).await.with_context(|| {
                format!("without internet set {ENV_CERT_MANAGER_MANIFEST} to a local cert-manager.yaml")
            })?;
            path
        }
    };
    tokio::fs::read_to_string(&path)
        .await
        .with_context(|| format!("reading the cert-manager manifest {}", path.display()))
}

/// Downloads `url` to `dest` unless an earlier run did.
async fn cached_download(url: &str, dest: &Path) -> anyhow::Result<()> {
    if dest.is_file() {
        return Ok(());
    }
    download(url, dest).await
}

async fn download(url: &str, dest: &Path) -> anyhow::Result<()> {
    let dir = dest.parent().context("manifest path has no parent")?;
    tokio::fs::create_dir_all(dir).await?;
    let partial = dest.with_extension("yaml.partial");
    let out = tokio::process::Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--retry",
            "3",
            "--output",
        ])
        .arg(&partial)
        .arg(url)
        .output()
        .await
        .with_context(|| format!("running curl to download {url} (is curl installed?)"))?;
    if !out.status.success() {
        bail!(
            "downloading {url} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    tokio::fs::rename(&partial, dest).await?;
    Ok(())
}

/// Installs cert-manager for `spec` and waits until it is ready to issue; returns the installed version.
pub async fn install_cert_manager(client: &kube::Client, spec: &ClusterSpec) -> anyhow::Result<String> {
    let version = version_for(spec)?;
    let source = config::manifest_source(&version, config::env_var(ENV_CERT_MANAGER_MANIFEST).as_deref())?;
    let text = load_manifest(&source).await?;
    let mut docs = config::parse_manifest(&text)?;
    if spec.enable_gateway_api {
        install_gateway_api(client).await?;
    }
    config::patch_manifest(&mut docs, spec)?;
    config::apply_order(&mut docs);
    apply_all(client, &docs)
        .await
        .with_context(|| format!("applying cert-manager {version}"))?;
    ensure_namespace(client, &spec.cluster_resource_namespace).await?;
    wait_ready(client, Instant::now() + READY_TIMEOUT)
        .await
        .with_context(|| format!("cert-manager {version}"))?;
    Ok(version)
}

/// Applies the pinned Gateway API release's CRDs and waits until they are Established: the controller started with
/// `--enable-gateway-api` exits when they are not served yet.
async fn install_gateway_api(client: &kube::Client) -> anyhow::Result<()> {
    let version = config::pinned()
        .gateway_api
        .context("no GATEWAY_API_VERSION pinned in crates/e2e/controlplane/versions.env")?;
    let url = config::gateway_api_manifest_url(&version)?;
    let path = crate::controlplane::cache_dir()
        .join("gateway-api-manifests")
        .join(&version)
        .join("standard-install.yaml");
    cached_download(&url, &path).await?;
    let text = tokio::fs::read_to_string(&path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    let mut docs = config::parse_manifest(&text)?;
    config::apply_order(&mut docs);
    apply_all(client, &docs)
        .await
        .with_context(|| format!("applying the Gateway API {version} CRDs"))?;
    let names: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let crds = &Api::<CustomResourceDefinition>::all(client.clone());
    let deadline = Instant::now() + READY_TIMEOUT;
    for name in &names {
        poll_until(deadline, &format!("Gateway API CRD {name}"), move || async move {
            let crd = crds.get(name).await.with_context(|| format!("reading CRD {name}"))?;
            Ok((!crate::provider::crd_established(&crd)).then(|| "not Established".to_owned()))
        })
        .await?;
    }
    Ok(())
}

/// [`crate::provider::poll`] every [`POLL`] until `deadline`, on a check that says what is still pending (`None`
/// when nothing is); its errors end the wait.
async fn poll_until<F, Fut>(deadline: Instant, what: &str, mut pending: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<String>>>,
{
    let timeout = deadline.saturating_duration_since(Instant::now());
    crate::provider::poll(timeout, POLL, what, || {
        let pending = pending();
        async move { Ok(pending.await?.map_or(Ok(()), Err)) }
    })
    .await
}

/// Server-side applies each object, resolving its kind through discovery once per kind.
async fn apply_all(client: &kube::Client, docs: &[Value]) -> anyhow::Result<()> {
    let mut kinds: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)> = HashMap::new();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for doc in docs {
        let obj: DynamicObject = serde_json::from_value(doc.clone()).context("manifest object")?;
        let types = obj.types.as_ref().context("manifest object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(types)?;
        if !kinds.contains_key(&gvk) {
            let found = kube::discovery::pinned_kind(client, &gvk)
                .await
                .with_context(|| format!("discovering {}/{}", types.api_version, types.kind))?;
            kinds.insert(gvk.clone(), found);
        }
        let (resource, caps) = &kinds[&gvk];
        let name = obj.metadata.name.clone().context("manifest object without a name")?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = obj.metadata.namespace.as_deref().unwrap_or("default");
                Api::namespaced_with(client.clone(), ns, resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), resource),
        };
        api.patch(&name, &params, &Patch::Apply(&obj))
            .await
            .with_context(|| format!("applying {} {name}", types.kind))?;
    }
    Ok(())
}

/// The cluster resource namespace must exist before ClusterIssuers can use it.
async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&ns))
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Waits until all cert-manager Deployments are Available and the webhook admits a dry-run Issuer.
pub async fn wait_ready(client: &kube::Client, deadline: Instant) -> anyhow::Result<()> {
    wait_deployments_available(client, deadline).await?;
    wait_webhook(client, deadline).await
}

/// Why a Deployment is not yet rolled out and available, or `None` when it is.
pub fn deployment_not_ready(d: &Deployment) -> Option<String> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return Some(format!("{name}: no status yet"));
    };
    if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return Some(format!("{name}: new generation not observed yet"));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < want || available < want {
        return Some(format!("{name}: {available}/{want} available, {updated} updated"));
    }
    let cond_ok = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Available" && c.status == "True"));
    if want > 0 && !cond_ok {
        return Some(format!("{name}: condition Available is not True"));
    }
    None
}

async fn wait_deployments_available(client: &kube::Client, deadline: Instant) -> anyhow::Result<()> {
    let api = &Api::<Deployment>::namespaced(client.clone(), CERT_MANAGER_NAMESPACE);
    poll_until(deadline, "cert-manager Deployments", move || async move {
        Ok(match api.list(&ListParams::default()).await {
            Ok(list) if list.items.is_empty() => Some("no Deployments yet".to_owned()),
            Ok(list) => {
                let waiting: Vec<String> = list.items.iter().filter_map(deployment_not_ready).collect();
                (!waiting.is_empty()).then(|| waiting.join("; "))
            }
            Err(e) => Some(format!("listing Deployments: {e}")),
        })
    })
    .await
}

/// A Deployment being Available does not mean the API server can reach the webhook yet (its serving certificate
/// is bootstrapped after start, and the CA is injected into the webhook configurations afterwards), so poll a
/// server-side dry-run create of an Issuer, which goes through the validating and mutating webhooks.
async fn wait_webhook(client: &kube::Client, deadline: Instant) -> anyhow::Result<()> {
    poll_until(
        deadline,
        "the cert-manager webhook (dry-run create of an Issuer)",
        move || async move { Ok(crate::provider::cert_manager_api_check(client, "default").await?.err()) },
    )
    .await
}

/// Scales the controller Deployment and waits: at 0 until no controller Pod is left (not even a terminating one,
/// which could still act), at 1 and more until the rollout is available.
pub async fn scale_controller(client: &kube::Client, replicas: i32) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), CERT_MANAGER_NAMESPACE);
    let patch = json!({ "spec": { "replicas": replicas } });
    let d = api
        .patch(CONTROLLER_DEPLOYMENT, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("scaling {CERT_MANAGER_NAMESPACE}/{CONTROLLER_DEPLOYMENT} to {replicas}"))?;
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .context("controller Deployment without matchLabels")?;
    let pods = &Api::<Pod>::namespaced(client.clone(), CERT_MANAGER_NAMESPACE);
    let (api, selector) = (&api, &selector);
    let what = format!("controller scaled to {replicas}");
    poll_until(Instant::now() + READY_TIMEOUT, &what, move || async move {
        Ok(if replicas == 0 {
            let left = pods.list(&ListParams::default().labels(selector)).await?.items.len();
            (left > 0).then(|| format!("{left} controller Pod(s) left"))
        } else {
            deployment_not_ready(&api.get(CONTROLLER_DEPLOYMENT).await?)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn polls_until_nothing_is_pending() {
        let calls = &Cell::new(0);
        let start = Instant::now();
        poll_until(start + READY_TIMEOUT, "test", move || async move {
            calls.set(calls.get() + 1);
            Ok((calls.get() < 3).then(|| "not yet".to_owned()))
        })
        .await
        .unwrap();
        assert_eq!(calls.get(), 3);
        assert_eq!(start.elapsed(), 2 * POLL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_past_its_deadline_names_what_is_still_pending() {
        let calls = &Cell::new(0);
        let start = Instant::now();
        let err = poll_until(start + 5 * POLL / 2, "cert-manager Deployments", move || async move {
            calls.set(calls.get() + 1);
            Ok(Some(format!("cert-manager: {}/1 available", calls.get() - 1)))
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timed out after 5s waiting for cert-manager Deployments (last: cert-manager: 3/1 available)"
        );
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_poll_ends_the_wait_at_once() {
        let calls = &Cell::new(0);
        let err = poll_until(Instant::now() + READY_TIMEOUT, "test", move || async move {
            calls.set(calls.get() + 1);
            anyhow::bail!("forbidden")
        })
        .await
        .unwrap_err();
        assert_eq!((err.to_string().as_str(), calls.get()), ("forbidden", 1));
    }

    fn deployment(v: Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deployment_readiness() {
        let ready = deployment(json!({
            "metadata": { "name": "cert-manager", "generation": 2 },
            "spec": { "replicas": 1, "selector": {}, "template": {} },
            "status": { "observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 1,
                        "conditions": [{ "type": "Available", "status": "True" }] }
        }));
        assert_eq!(deployment_not_ready(&ready), None);

        let mut stale = ready.clone();
        stale.metadata.generation = Some(3);
        assert!(deployment_not_ready(&stale).unwrap().contains("generation"));

        let mut unavailable = ready.clone();
        unavailable.status.as_mut().unwrap().available_replicas = Some(0);
        assert!(deployment_not_ready(&unavailable).unwrap().contains("0/1 available"));

        let mut no_condition = ready.clone();
        no_condition.status.as_mut().unwrap().conditions = None;
        assert!(deployment_not_ready(&no_condition).is_some());

        let mut no_status = ready;
        no_status.status = None;
        assert!(deployment_not_ready(&no_status).is_some());
    }

    #[test]
    fn a_local_manifest_file_needs_no_network() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cm.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: cert-manager}\n",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let text = rt.block_on(load_manifest(&ManifestSource::File(file))).unwrap();
        assert!(text.contains("Namespace"));
        let missing = rt.block_on(load_manifest(&ManifestSource::File(dir.path().join("nope.yaml"))));
        assert!(missing.unwrap_err().to_string().contains("nope.yaml"));
    }
}
