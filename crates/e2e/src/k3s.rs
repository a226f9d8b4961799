//! The k3s provider: one `rancher/k3s` container per cluster through testcontainers, a lighter option than kind
//! where Docker exists (no kind CLI, one container, starts in seconds). cert-manager is installed exactly as on
//! kind (`kind::install`), so the two differ only in where the API server runs.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;
use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};
use testcontainers_modules::testcontainers::runners::AsyncRunner as _;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt as _};

use crate::kind::{config, install, require_docker};
use crate::provider::{BoxFuture, Cluster, ClusterSpec, Provider};

/// k3s server flags: without the bundled ingress and metrics add-ons, which the scenarios never use.
pub fn server_args() -> Vec<String> {
    ["server", "--snapshotter=native", "--disable=traefik,metrics-server"]
        .map(str::to_owned)
        .to_vec()
}

/// The kubeconfig k3s writes points at port 6443 inside the container; clients on the host must use the mapped
/// port. Returns the kubeconfig as JSON (valid YAML for kubectl and kube).
pub fn rewrite_kubeconfig_server(kubeconfig: &str, host_port: u16) -> anyhow::Result<String> {
    let mut doc: Value = serde_saphyr::from_str(kubeconfig).context("parsing the k3s kubeconfig")?;
    let Some(clusters) = doc.get_mut("clusters").and_then(Value::as_array_mut) else {
        bail!("the k3s kubeconfig has no clusters");
    };
    if clusters.is_empty() {
        bail!("the k3s kubeconfig has no clusters");
    }
    for cluster in clusters {
        let Some(c) = cluster.get_mut("cluster").and_then(Value::as_object_mut) else {
            bail!("a cluster entry of the k3s kubeconfig has no `cluster`");
        };
        c.insert(
            "server".to_owned(),
            Value::from(format!("https://127.0.0.1:{host_port}")),
        );
    }
    Ok(serde_json::to_string_pretty(&doc)?)
}

/// Creates k3s clusters.
#[derive(Clone, Debug, Default)]
pub struct K3sProvider {
    /// `rancher/k3s` tag; `None` = `$CMARCHIVE_K3S_TAG`, else from the Kubernetes version.
    pub tag: Option<String>,
}

impl K3sProvider {
    /// A provider configured from the environment.
    pub fn new() -> K3sProvider {
        K3sProvider::default()
    }

    fn tag(&self) -> anyhow::Result<String> {
        let kubernetes = config::env_var(config::ENV_KUBERNETES_VERSION).unwrap_or_else(|| config::pinned().kubernetes);
        config::k3s_tag(
            self.tag.as_deref().or(config::env_var(config::ENV_K3S_TAG).as_deref()),
            Some(&kubernetes),
        )
    }

    async fn start_cluster(&self, spec: &ClusterSpec) -> anyhow::Result<K3sCluster> {
        require_docker()?;
        let tag = self.tag()?;
        let dir = tempfile::Builder::new().prefix("cmarchive-k3s-").tempdir()?;
        let conf = dir.path().join("conf");
        std::fs::create_dir_all(&conf)?;
        let container = K3s::default()
            .with_conf_mount(&conf)
            .with_tag(tag.clone())
            .with_cmd(server_args())
            .with_privileged(true)
            .with_userns_mode("host")
            .start()
            .await
            .with_context(|| format!("starting rancher/k3s:{tag}"))?;
        let name = config::cluster_name(&spec.name, &crate::kind::unique_suffix());
        let log_dir = crate::kind::log_dir_for(&name);
        std::fs::create_dir_all(&log_dir)?;
        let port = container.get_host_port_ipv4(KUBE_SECURE_PORT).await?;
        let raw = container
            .image()
            .read_kube_config()
            .context("reading k3s.yaml from the mounted config dir")?;
        let kubeconfig_text = rewrite_kubeconfig_server(&raw, port)?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, &kubeconfig_text)?;
        let mut cluster = K3sCluster {
            spec: spec.clone(),
            kubeconfig,
            log_dir,
            client: None,
            version: String::new(),
            container,
            _dir: dir,
        };
        let client = crate::kind::client_from_kubeconfig(&kubeconfig_text).await?;
        cluster.client = Some(client.clone());
        cluster.version = install::install_cert_manager(&client, spec)
            .await
            .with_context(|| format!("installing cert-manager into k3s {tag}"))?;
        Ok(cluster)
    }
}

impl Provider for K3sProvider {
    fn name(&self) -> &'static str {
        "k3s"
    }

    fn start<'a>(&'a self, spec: &'a ClusterSpec) -> BoxFuture<'a, anyhow::Result<Box<dyn Cluster>>> {
        Box::pin(async move { Ok(Box::new(self.start_cluster(spec).await?) as Box<dyn Cluster>) })
    }
}

/// A k3s container with cert-manager; testcontainers removes the container when this is dropped.
pub struct K3sCluster {
    spec: ClusterSpec,
    kubeconfig: PathBuf,
    log_dir: PathBuf,
    client: Option<kube::Client>,
    version: String,
    container: ContainerAsync<K3s>,
    _dir: tempfile::TempDir,
}

impl Cluster for K3sCluster {
    fn client(&self) -> kube::Client {
        self.client.clone().expect("a started K3sCluster has a client")
    }

    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    fn cert_manager_version(&self) -> &str {
        &self.version
    }

    fn stop_controller(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { install::scale_controller(&self.client(), 0).await })
    }

    fn start_controller(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { install::scale_controller(&self.client(), 1).await })
    }

    fn log_dir(&self) -> &Path {
        &self.log_dir
    }
}

impl Drop for K3sCluster {
    /// The container's own log (k3s server, kubelet, containerd) is the cluster log; saved before removal.
    fn drop(&mut self) {
        if std::thread::panicking() || config::env_var(crate::kind::ENV_EXPORT_LOGS).is_some_and(|v| v == "1") {
            let out = std::process::Command::new("docker")
                .args(["logs", self.container.id()])
                .output();
            match out {
                Ok(out) => {
                    let _ = std::fs::write(
                        self.log_dir.join("k3s.log"),
                        [&out.stdout[..], &out.stderr[..]].concat(),
                    );
                }
                Err(e) => eprintln!("cmarchive-e2e: saving k3s logs: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S_YAML: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTg==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
";

    #[test]
    fn kubeconfig_points_at_the_mapped_port() {
        let text = rewrite_kubeconfig_server(K3S_YAML, 32771).unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:32771"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("LS0tLS1CRUdJTg=="));
        assert_eq!(kc.current_context.as_deref(), Some("default"));
        assert!(rewrite_kubeconfig_server("apiVersion: v1\nkind: Config\nclusters: []\n", 1).is_err());
        assert!(rewrite_kubeconfig_server("{", 1).is_err());
    }

    #[test]
    fn server_args_keep_the_module_snapshotter_and_drop_addons() {
        let args = server_args();
        assert_eq!(args[0], "server");
        assert!(args.contains(&"--snapshotter=native".to_owned()));
        assert!(
            args.iter()
                .any(|a| a.starts_with("--disable=") && a.contains("traefik"))
        );
    }
}
