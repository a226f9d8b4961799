//! The kind provider: each cluster is a fresh single-node kind cluster (`kind-configs/single-node.yaml`) with
//! cert-manager installed from its release manifest. Needs the `kind` CLI and a reachable Docker engine; it runs
//! in the nightly workflow, while machines without Docker only build it and test its configuration.

pub mod config;
pub mod install;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, bail};

use crate::provider::{BoxFuture, Cluster, ClusterSpec, Provider};
use config::{
    ENV_KEEP_CLUSTERS, ENV_KIND_CONFIG, ENV_KIND_NODE_IMAGE, ENV_KUBERNETES_VERSION, ENV_LOG_DIR, KIND_VERSION,
};

/// Environment variable: `1` runs `kind export logs` for every cluster when it is deleted, not only after a panic
/// (a test returning `Err` drops its clusters without panicking). The nightly sets it.
pub const ENV_EXPORT_LOGS: &str = "CMARCHIVE_E2E_KIND_EXPORT_LOGS";

/// Fails with what exactly is missing when Docker cannot run containers here: the CLI, or the engine behind it.
pub fn require_docker() -> anyhow::Result<()> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("Docker is missing: no `docker` command on PATH (the kind and k3s providers need a Docker engine)")
        }
        Err(e) => bail!("Docker is missing: running `docker info` failed: {e}"),
        Ok(out) if !out.status.success() => bail!(
            "Docker is missing: `docker info` cannot reach a Docker engine: {}",
            last_lines(&out.stderr, 3)
        ),
        Ok(_) => Ok(()),
    }
}

/// Fails with an install hint when the `kind` CLI is not on PATH.
pub fn require_kind() -> anyhow::Result<()> {
    match Command::new("kind").arg("version").output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "kind is missing: no `kind` command on PATH (install it with `go install sigs.k8s.io/kind@{KIND_VERSION}`)"
        ),
        Err(e) => bail!("kind is missing: running `kind version` failed: {e}"),
        Ok(out) if !out.status.success() => {
            bail!("`kind version` failed: {}", last_lines(&out.stderr, 3))
        }
        Ok(_) => Ok(()),
    }
}

fn last_lines(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Where a cluster's logs go: `$CMARCHIVE_E2E_LOG_DIR/<cluster>` or `target/e2e-logs/<cluster>`.
pub fn log_dir_for(cluster: &str) -> PathBuf {
    let base = config::env_var(ENV_LOG_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| config::workspace_root().join("target/e2e-logs"));
    base.join(cluster)
}

/// A suffix unique within this machine for the life of the process, so parallel tests get distinct clusters.
pub fn unique_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{:x}{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: starting {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, last_lines(&out.stderr, 15));
    }
    Ok(out)
}

/// Creates kind clusters.
#[derive(Clone, Debug, Default)]
pub struct KindProvider {
    /// Node image for every cluster; `None` = from the environment (see `kind-configs/README.md`).
    pub node_image: Option<String>,
    /// kind config file; `None` = `$CMARCHIVE_KIND_CONFIG` or `kind-configs/single-node.yaml`.
    pub config: Option<PathBuf>,
}

impl KindProvider {
    /// A provider configured from the environment.
    pub fn new() -> KindProvider {
        KindProvider::default()
    }

    fn node_image(&self) -> anyhow::Result<String> {
        config::choose_kind_node_image(
            self.node_image
                .as_deref()
                .or(config::env_var(ENV_KIND_NODE_IMAGE).as_deref()),
            config::env_var(ENV_KUBERNETES_VERSION).as_deref(),
            Some(&config::pinned().kubernetes),
        )
    }

    fn config_file(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| config::env_var(ENV_KIND_CONFIG).map(PathBuf::from))
            .unwrap_or_else(|| config::workspace_root().join("kind-configs/single-node.yaml"))
    }

    async fn start_cluster(&self, spec: &ClusterSpec) -> anyhow::Result<KindCluster> {
        require_kind()?;
        require_docker()?;
        let image = self.node_image()?;
        let config_file = self.config_file();
        if !config_file.is_file() {
            bail!("kind config {} does not exist", config_file.display());
        }
        let name = config::cluster_name(&spec.name, &unique_suffix());
        let dir = tempfile::Builder::new().prefix(&format!("{name}-")).tempdir()?;
        let log_dir = log_dir_for(&name);
        std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;

        // From here on the cluster may exist, so it is owned by a value whose Drop deletes it.
        let mut cluster = KindCluster {
            name: name.clone(),
            spec: spec.clone(),
            kubeconfig: dir.path().join("kubeconfig"),
            log_dir,
            client: None,
            version: String::new(),
            _dir: dir,
        };
        let create = Command::new("kind")
            .args([
                "create", "cluster", "--name", &name, "--image", &image, "--wait", "120s", "--config",
            ])
            .arg(&config_file)
            // kind writes a context into this file; keeping it out of ~/.kube/config leaves the user's alone.
            .arg("--kubeconfig")
            .arg(cluster._dir.path().join("kind-create.kubeconfig"))
            .output()
            .context("starting `kind create cluster`")?;
        std::fs::write(
            cluster.log_dir.join("kind-create.log"),
            [&create.stdout[..], &create.stderr[..]].concat(),
        )?;
        if !create.status.success() {
            bail!(
                "`kind create cluster --name {name} --image {image}` failed: {}",
                last_lines(&create.stderr, 15)
            );
        }
        let kubeconfig = run(
            Command::new("kind").args(["get", "kubeconfig", "--name", &name]),
            "kind get kubeconfig",
        )?;
        std::fs::write(&cluster.kubeconfig, &kubeconfig.stdout)?;
        let text = String::from_utf8(kubeconfig.stdout).context("kubeconfig is not UTF-8")?;
        let client = client_from_kubeconfig(&text).await?;
        cluster.client = Some(client.clone());
        cluster.version = install::install_cert_manager(&client, spec)
            .await
            .with_context(|| format!("installing cert-manager into kind cluster {name}"))?;
        Ok(cluster)
    }
}

/// A client for a kubeconfig's current context.
pub async fn client_from_kubeconfig(yaml: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).context("parsing the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

impl Provider for KindProvider {
    fn name(&self) -> &'static str {
        "kind"
    }

    fn start<'a>(&'a self, spec: &'a ClusterSpec) -> BoxFuture<'a, anyhow::Result<Box<dyn Cluster>>> {
        Box::pin(async move { Ok(Box::new(self.start_cluster(spec).await?) as Box<dyn Cluster>) })
    }
}

/// A kind cluster with cert-manager; deleted on drop (unless `CMARCHIVE_E2E_KEEP_CLUSTERS=1`).
pub struct KindCluster {
    name: String,
    spec: ClusterSpec,
    kubeconfig: PathBuf,
    log_dir: PathBuf,
    client: Option<kube::Client>,
    version: String,
    _dir: tempfile::TempDir,
}

impl KindCluster {
    /// The kind cluster name (`kind get clusters`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes kind's node, container and component logs into `log_dir()/kind`.
    pub fn export_logs(&self) -> anyhow::Result<()> {
        let dest = self.log_dir.join("kind");
        run(
            Command::new("kind")
                .args(["export", "logs"])
                .arg(&dest)
                .args(["--name", &self.name]),
            "kind export logs",
        )?;
        Ok(())
    }
}

impl Cluster for KindCluster {
    fn client(&self) -> kube::Client {
        self.client.clone().expect("a started KindCluster has a client")
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

impl Drop for KindCluster {
    fn drop(&mut self) {
        let export = std::thread::panicking() || config::env_var(ENV_EXPORT_LOGS).is_some_and(|v| v == "1");
        if export && let Err(e) = self.export_logs() {
            eprintln!("cmarchive-e2e: exporting logs of kind cluster {}: {e:#}", self.name);
        }
        if config::env_var(ENV_KEEP_CLUSTERS).is_some_and(|v| v == "1") {
            eprintln!(
                "cmarchive-e2e: keeping kind cluster {} ({ENV_KEEP_CLUSTERS}=1)",
                self.name
            );
            return;
        }
        if let Err(e) = run(
            Command::new("kind").args(["delete", "cluster", "--name", &self.name]),
            "kind delete cluster",
        ) {
            eprintln!("cmarchive-e2e: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_suffixes_differ_and_fit_in_a_cluster_name() {
        let (a, b) = (unique_suffix(), unique_suffix());
        assert_ne!(a, b);
        let name = config::cluster_name("restore-target", &a);
        assert!(name.len() <= config::MAX_CLUSTER_NAME && name.ends_with(&a), "{name}");
    }

    #[test]
    fn log_dirs_are_per_cluster() {
        let dir = log_dir_for("cmarchive-source-1");
        assert!(dir.ends_with("cmarchive-source-1"));
    }

    #[test]
    fn default_config_file_is_in_the_repo() {
        assert!(KindProvider::new().config_file().is_file());
        let custom = KindProvider {
            config: Some("/x/y.yaml".into()),
            node_image: None,
        };
        assert_eq!(custom.config_file(), PathBuf::from("/x/y.yaml"));
    }

    fn resolve_script(args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write as _;
        use std::process::Stdio;
        let script = config::workspace_root().join("scripts/resolve-cert-manager-versions");
        let mut child = Command::new(script)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn json_versions(out: &std::process::Output) -> Vec<String> {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The nightly matrix: newest patch of each of the two newest minors, pre-releases ignored, numeric order.
    #[test]
    fn resolve_script_picks_newest_patch_of_newest_minors() {
        let list = "v1.9.1 v1.10.0 v1.19.3\nv1.20.0 v1.20.11\tv1.20.2 v1.21.0-alpha.1 v1.21.0-beta.0.0.2026-abc\n";
        let out = resolve_script(&["--stdin"], Some(list));
        assert_eq!(json_versions(&out), ["v1.20.11", "v1.19.3"]);
        let out = resolve_script(&["--stdin", "--minors", "4"], Some(list));
        assert_eq!(json_versions(&out), ["v1.20.11", "v1.19.3", "v1.10.0", "v1.9.1"]);
        let out = resolve_script(&["--stdin", "--minors", "0"], Some(list));
        assert_eq!(out.status.code(), Some(2));
        let out = resolve_script(&["--stdin"], Some("v1.22.0-rc.1\n"));
        assert!(!out.status.success());
    }

    /// Against the Go module proxy, as the nightly runs it: at least the newest release, which is no older than
    /// the version the project pins. (A proxy may list fewer minors than exist; the script warns then.)
    #[test]
    fn resolve_script_asks_the_module_proxy() {
        let versions = json_versions(&resolve_script(&[], None));
        assert!(!versions.is_empty() && versions.len() <= 2, "{versions:?}");
        let parsed: Vec<config::Version> = versions.iter().map(|v| config::Version::parse(v).unwrap()).collect();
        assert!(parsed.iter().all(|v| v.pre.is_none()), "{versions:?}");
        assert!(
            parsed
                .windows(2)
                .all(|w| (w[0].numbers.0, w[0].numbers.1) > (w[1].numbers.0, w[1].numbers.1))
        );
        let pinned = config::Version::parse(&config::pinned().cert_manager).unwrap();
        assert!(
            parsed[0].numbers >= pinned.numbers,
            "{versions:?} older than the pin {}",
            pinned.tag()
        );
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines(b"a\n\nb\nc\n", 2), "b | c");
        assert_eq!(last_lines(b"", 2), "");
    }
}
