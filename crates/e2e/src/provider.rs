//! The seam between scenarios and clusters: a scenario asks a [`Provider`] for a cluster with cert-manager
//! running and never learns whether it got local processes, kind or k3s.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

/// The one poll loop behind every provider's readiness waits: calls `probe` every `every` until it yields a value
/// (`Ok(Ok(v))`). `Ok(Err(why))` means not yet, and `why` is what the timeout error reports; an `Err` ends the wait
/// at once. The clock is tokio's, so tests on a paused clock run the waits without waiting.
pub async fn poll<T, F, Fut>(timeout: Duration, every: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, String>>>,
{
    let start = tokio::time::Instant::now();
    loop {
        let why = match probe().await? {
            Ok(v) => return Ok(v),
            Err(why) => why,
        };
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {timeout:?} waiting for {what} (last: {why})");
        }
        tokio::time::sleep(every).await;
    }
}

/// Boxed future, so providers stay object-safe (`Box<dyn Provider>` chosen at run time from the environment).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a scenario needs from a cluster before it starts.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Short name, used for temp dirs, kind cluster names and logs (`source`, `target`, …).
    pub name: String,
    /// cert-manager version to run, e.g. `v1.21.2`; `None` = the pinned default.
    pub cert_manager_version: Option<String>,
    /// Controller flag `--cluster-resource-namespace`.
    pub cluster_resource_namespace: String,
    /// Controller flag `--enable-certificate-owner-ref`.
    pub enable_certificate_owner_ref: bool,
    /// Controller flag `--enable-gateway-api`; the provider installs the Gateway API CRDs first.
    pub enable_gateway_api: bool,
    /// `host:port` of the only DNS server the controller's DNS-01 self-checks ask
    /// (`--dns01-recursive-nameservers-only`): the suite's own authoritative server, when it runs one.
    pub dns01_nameserver: Option<String>,
    /// Extra controller feature gates, `name=true|false`.
    pub feature_gates: Vec<String>,
}

impl ClusterSpec {
    /// A spec with cert-manager's Helm-chart defaults (cluster resource namespace `cert-manager`).
    pub fn named(name: &str) -> ClusterSpec {
        ClusterSpec {
            name: name.to_owned(),
            cert_manager_version: None,
            cluster_resource_namespace: "cert-manager".to_owned(),
            enable_certificate_owner_ref: false,
            enable_gateway_api: false,
            dns01_nameserver: None,
            feature_gates: Vec::new(),
        }
    }

    /// The controller flags this spec sets, feature gates apart (each provider merges those with its own). Both
    /// providers pass exactly these, so a scenario means the same on the local control plane and on kind.
    pub fn controller_flags(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--cluster-resource-namespace={}", self.cluster_resource_namespace),
            format!("--enable-certificate-owner-ref={}", self.enable_certificate_owner_ref),
        ];
        if self.enable_gateway_api {
            flags.push("--enable-gateway-api=true".to_owned());
        }
        if let Some(ns) = &self.dns01_nameserver {
            flags.push(format!("--dns01-recursive-nameservers={ns}"));
            flags.push("--dns01-recursive-nameservers-only=true".to_owned());
            // The suite's server is local and answers at once; cert-manager's 10 s default only slows the run.
            flags.push("--dns01-check-retry-period=1s".to_owned());
        }
        flags
    }
}

/// A running cluster with cert-manager. Dropping it tears the cluster down.
pub trait Cluster: Send + Sync {
    /// A client with cluster-admin rights.
    fn client(&self) -> kube::Client;
    /// Path of an admin kubeconfig, for running `cmarchive` and `kubectl` against the cluster.
    fn kubeconfig(&self) -> &Path;
    /// The spec the cluster was started with.
    fn spec(&self) -> &ClusterSpec;
    /// The cert-manager version actually running.
    fn cert_manager_version(&self) -> &str;
    /// Stops the cert-manager controller (scale to zero / stop the process) so a test can act without it.
    fn stop_controller(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Starts the cert-manager controller again and waits until it is healthy.
    fn start_controller(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Where process or cluster logs are collected, for printing on failure.
    fn log_dir(&self) -> &Path;
}

/// Creates clusters of one kind.
pub trait Provider: Send + Sync {
    /// `local`, `kind` or `k3s`.
    fn name(&self) -> &'static str;
    /// Starts a cluster and returns once cert-manager is ready to issue.
    fn start<'a>(&'a self, spec: &'a ClusterSpec) -> BoxFuture<'a, anyhow::Result<Box<dyn Cluster>>>;
}

/// Whether the API server reports a CRD `Established` (its resources are served), as kube's own wait condition
/// decides it.
pub fn crd_established(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> bool {
    use kube::runtime::wait::Condition as _;
    kube::runtime::wait::conditions::is_crd_established().matches_object(Some(crd))
}

/// Whether cert-manager's API is usable, decided the way `cmctl check api` does: a server-side dry-run create of
/// an Issuer in `namespace` must pass the admission webhook (which needs the webhook serving and its CA injected
/// into the webhook configurations). `Ok(Err(why))` while it is refused.
pub async fn cert_manager_api_check(client: &kube::Client, namespace: &str) -> anyhow::Result<Result<(), String>> {
    use kube::api::{DynamicObject, PostParams};
    let api = crate::scenarios::objects::api(crate::scenarios::objects::kinds::ISSUER, client, Some(namespace));
    let issuer: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": "cmarchive-e2e-api-check", "namespace": namespace},
        "spec": {"selfSigned": {}},
    }))?;
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    match api.create(&params, &issuer).await {
        Ok(_) => Ok(Ok(())),
        // Admitted; an object of that name exists already.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Ok(())),
        Err(kube::Error::Api(e)) => Ok(Err(e.message)),
        Err(e) => Err(e.into()),
    }
}
