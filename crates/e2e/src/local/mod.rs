//! The **local** provider: a real control plane and all of cert-manager (controller, webhook, cainjector) as
//! plain processes on loopback, built from Go modules by `scripts/build-control-plane`. No Docker, no registry,
//! no pods.
//!
//! Start-up order, each step gated on real readiness (polled, never slept on):
//! etcd (`/health`) → kube-apiserver with RBAC (`/readyz`) → kube-controller-manager (its service-account
//! controller has created `default/default`) → namespaces, cert-manager CRDs (`Established`), the webhook
//! configurations and one Deployment per component mirroring its flags → controller (`/healthz`: every informer
//! synced), webhook (`/healthz`: serving certificate ready), cainjector (`/healthz`: caches synced) → cert-manager's
//! API usable (a server-side dry-run Issuer passes the webhook, so cainjector has injected its CA).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cmarchive_e2e::{local::LocalCluster, provider::{Cluster, ClusterSpec}};
//! let cluster = LocalCluster::start(&ClusterSpec::named("source")).await?;
//! let client = cluster.client();
//! # drop(client); Ok(()) }
//! ```

pub mod components;
mod http;
pub mod pki;
pub mod process;

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::FIELD_MANAGER;
use crate::controlplane::ControlPlane;
use crate::provider::{BoxFuture, Cluster, ClusterSpec, Provider};
use components::{Component, Process};
use process::ManagedProcess;

/// Set to `1` to keep a cluster's directory (logs, data, kubeconfig) after it is dropped.
pub const KEEP_ENV: &str = "CMARCHIVE_E2E_KEEP";

/// kube-controller-manager controllers the local cluster runs: enough for garbage collection, namespace
/// deletion, service accounts and their tokens, and the per-namespace root CA ConfigMap a real cluster has.
pub const KCM_CONTROLLERS: &[&str] = &[
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
];

/// How to start a local cluster, beyond the provider-neutral [`ClusterSpec`].
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Binaries and CRDs; `None` = [`ControlPlane::locate`] for the spec's cert-manager version.
    pub control_plane: Option<ControlPlane>,
    /// Directory for data, certificates, kubeconfigs and logs; `None` = a fresh temp dir.
    pub work_dir: Option<PathBuf>,
    /// Keep the directory after drop (default: `CMARCHIVE_E2E_KEEP=1`, or when `work_dir` is given).
    pub keep_work_dir: bool,
    /// Upper bound for each start-up step.
    pub step_timeout: Duration,
    /// Controller `--v` log level.
    pub cert_manager_log_level: u8,
}

impl Default for LocalOptions {
    fn default() -> LocalOptions {
        LocalOptions {
            control_plane: None,
            work_dir: None,
            keep_work_dir: std::env::var(KEEP_ENV).is_ok_and(|v| v == "1"),
            step_timeout: Duration::from_secs(180),
            cert_manager_log_level: 2,
        }
    }
}

/// Loopback ports of one cluster.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// etcd client port.
    pub etcd_client: u16,
    /// etcd peer port.
    pub etcd_peer: u16,
    /// kube-apiserver secure port.
    pub apiserver: u16,
    /// cert-manager controller health endpoint.
    pub cert_manager_health: u16,
    /// cert-manager webhook's HTTPS port (what the webhook configurations call).
    pub webhook: u16,
    /// cert-manager webhook's health endpoint.
    pub webhook_health: u16,
    /// cert-manager cainjector's health endpoint.
    pub cainjector_health: u16,
}

/// A running local cluster. Dropping it stops every process (whole process groups) and removes its directory.
pub struct LocalCluster {
    spec: ClusterSpec,
    plane: ControlPlane,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    log_dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    ports: Ports,
    client: kube::Client,
    /// etcd, kube-apiserver, kube-controller-manager, in start order.
    core: Mutex<Vec<ManagedProcess>>,
    /// What kube-apiserver was started with, to start it again the same way.
    apiserver_args: Vec<String>,
    /// cert-manager's controller, webhook and cainjector, in start order.
    components: Vec<Arc<Process>>,
    reconciler: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("name", &self.spec.name)
            .field("dir", &self.dir)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// Starts a cluster with default options (binaries from `CMARCHIVE_CONTROL_PLANE_DIR` or the cache).
    pub async fn start(spec: &ClusterSpec) -> anyhow::Result<LocalCluster> {
        LocalCluster::start_with(spec, LocalOptions::default()).await
    }

    /// Starts a cluster; returns once cert-manager is ready to issue. On failure every process is stopped and
    /// the error carries the tail of each process log.
    pub async fn start_with(spec: &ClusterSpec, options: LocalOptions) -> anyhow::Result<LocalCluster> {
        let plane = match options.control_plane.clone() {
            Some(p) => p,
            None => ControlPlane::locate(spec.cert_manager_version.as_deref())?,
        };
        let (dir, temp) = match &options.work_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix(&format!("cmarchive-e2e-{}-", spec.name))
                    .tempdir()?;
                (t.path().to_owned(), Some(t))
            }
        };
        let keep = options.keep_work_dir || options.work_dir.is_some();
        // A kept temp dir is released from TempDir so that nothing deletes it.
        let temp = temp.and_then(|t| {
            if keep {
                drop(t.keep());
                None
            } else {
                Some(t)
            }
        });
        let log_dir = dir.join("logs");
        std::fs::create_dir_all(&log_dir)?;

        // Ports are chosen before the processes bind them; another process can take one in between. A start that
        // failed on a bind conflict is retried with fresh ports.
        let mut attempt = 1;
        loop {
            let mut starter = Starter {
                procs: Vec::new(),
                timeout: options.step_timeout,
            };
            let result = starter.run(spec, &plane, &dir, &log_dir, &options).await;
            match result {
                Ok(started) => {
                    return Ok(LocalCluster {
                        spec: spec.clone(),
                        plane,
                        dir,
                        _temp: temp,
                        log_dir,
                        kubeconfig: started.kubeconfig,
                        server: started.server,
                        ports: started.ports,
                        client: started.client,
                        core: Mutex::new(std::mem::take(&mut starter.procs)),
                        apiserver_args: started.apiserver_args,
                        reconciler: tokio::spawn(components::reconcile_replicas(started.components.clone())),
                        components: started.components,
                    });
                }
                Err(e) => {
                    let tails = tails(&starter.procs, 40);
                    drop(starter); // stops the processes before the directory is reused or removed
                    if attempt < 3 && tails.contains("address already in use") {
                        eprintln!(
                            "local cluster {:?}: a port was taken meanwhile; retrying with new ports",
                            spec.name
                        );
                        attempt += 1;
                        for entry in std::fs::read_dir(&dir)?.flatten() {
                            let path = entry.path();
                            if path != log_dir {
                                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                            }
                        }
                        for entry in std::fs::read_dir(&log_dir)?.flatten() {
                            let old = entry.path();
                            let _ = std::fs::rename(&old, old.with_extension(format!("log.attempt{}", attempt - 1)));
                        }
                        continue;
                    }
                    let where_ = if keep {
                        format!("; files kept in {}", dir.display())
                    } else {
                        String::new()
                    };
                    return Err(e.context(format!("starting local cluster {:?}{where_}\n{tails}", spec.name)));
                }
            }
        }
    }

    /// The API server URL (`https://127.0.0.1:<port>`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The cluster's directory (data, certificates, kubeconfigs, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The binaries and CRDs the cluster runs.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.plane
    }

    /// Loopback ports in use.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Exact arguments the cert-manager controller process runs with.
    pub fn cert_manager_args(&self) -> &[String] {
        &self.process(Component::Controller).args
    }

    fn process(&self, component: Component) -> &Process {
        self.components
            .iter()
            .find(|p| p.component == component)
            .expect("every component is started with the cluster")
    }

    /// Process ids of every running child (all of them are process-group leaders): the control plane's in start
    /// order, then cert-manager's running components.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = lock(&self.core).iter().map(ManagedProcess::pid).collect();
        for c in &self.components {
            pids.extend(lock(&c.process).as_ref().map(ManagedProcess::pid));
        }
        pids
    }

    /// The process id of a cert-manager component while it runs.
    pub fn component_pid(&self, component: Component) -> Option<u32> {
        lock(&self.process(component).process).as_ref().map(ManagedProcess::pid)
    }

    /// The last `lines` lines of every process log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = tails(&lock(&self.core), lines);
        for c in &self.components {
            if let Some(p) = lock(&c.process).as_ref() {
                out.push_str(&p.tail(lines));
                out.push('\n');
            }
        }
        out
    }

    /// Fails (with log tails) if any process has exited.
    pub fn check_running(&self) -> anyhow::Result<()> {
        for p in lock(&self.core).iter_mut() {
            p.check_running()?;
        }
        for c in &self.components {
            if let Some(p) = lock(&c.process).as_mut() {
                p.check_running()?;
            }
        }
        Ok(())
    }

    /// Kills kube-apiserver and starts it again with the same flags and port, as a crash and its restart by a
    /// supervisor would; returns once `/readyz` says ok. Clients see refused connections meanwhile.
    pub async fn restart_apiserver(&self) -> anyhow::Result<()> {
        {
            let mut core = lock(&self.core);
            let apiserver = core
                .iter_mut()
                .find(|p| p.name() == "kube-apiserver")
                .context("kube-apiserver is part of every local cluster")?;
            apiserver.stop(Duration::ZERO);
            *apiserver = ManagedProcess::spawn(
                "kube-apiserver",
                &self.plane.binary("kube-apiserver"),
                &self.apiserver_args,
                &self.log_dir.join("kube-apiserver.log"),
            )?;
        }
        let timeout = self.process(Component::Controller).timeout;
        wait_until(
            "kube-apiserver /readyz after its restart",
            timeout,
            || self.check_running(),
            || apiserver_ready(&self.client),
        )
        .await
    }

    /// Pauses the cert-manager controller the way `cmarchive restore --pause-controller` does on a real cluster.
    pub async fn stop_cert_manager(&self) -> anyhow::Result<()> {
        self.stop_component(Component::Controller).await
    }

    /// Scales the controller back to one replica and waits until it runs.
    pub async fn start_cert_manager(&self) -> anyhow::Result<()> {
        self.start_component(Component::Controller).await
    }

    /// Scales a component's Deployment to zero and waits until the process has exited and its Pod object is
    /// gone.
    pub async fn stop_component(&self, component: Component) -> anyhow::Result<()> {
        self.scale(component, 0).await?;
        let c = self.process(component);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), components::NAMESPACE);
        let pod = component.pod();
        wait_until(
            &format!("{component} to stop"),
            c.timeout,
            || Ok(()),
            || async { Ok((!c.is_running() && pods.get_opt(&pod).await?.is_none()).then_some(())) },
        )
        .await
    }

    /// Scales a component's Deployment back to one replica and waits until it runs ([`Self::component_runs`]).
    pub async fn start_component(&self, component: Component) -> anyhow::Result<()> {
        self.scale(component, 1).await?;
        self.component_runs(component).await
    }

    /// Waits until a component's process is healthy and its Deployment's status says so for the current spec
    /// (the last thing the replica driver writes, after the Pod): what follows a scale to one replica, by
    /// whomever.
    pub async fn component_runs(&self, component: Component) -> anyhow::Result<()> {
        let c = self.process(component);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), components::NAMESPACE);
        let waited = wait_until(
            &format!("{component} to start"),
            c.timeout,
            || self.check_running(),
            || async {
                let d = deployments.get(component.deployment()).await?;
                let status = d.status.unwrap_or_default();
                let current =
                    status.observed_generation.is_some() && status.observed_generation == d.metadata.generation;
                Ok((c.is_running() && current && status.ready_replicas == Some(1)).then_some(()))
            },
        )
        .await;
        waited.map_err(|e| e.context(self.log_tails(30)))
    }

    async fn scale(&self, component: Component, replicas: i32) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), components::NAMESPACE);
        let patch = json!({"spec": {"replicas": replicas}});
        api.patch(component.deployment(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "local cluster {:?} ({}) dropped during a panic; process logs:\n{}",
                self.spec.name,
                self.dir.display(),
                self.log_tails(30)
            );
        }
        // Reverse start order: cert-manager first, etcd last.
        self.reconciler.abort();
        for c in self.components.iter().rev() {
            if let Some(mut p) = lock(&c.process).take() {
                p.stop(Duration::from_secs(5));
            }
        }
        let mut core = std::mem::take(&mut *lock(&self.core));
        while let Some(mut p) = core.pop() {
            p.stop(Duration::from_secs(5));
        }
    }
}

impl Cluster for LocalCluster {
    fn client(&self) -> kube::Client {
        self.client.clone()
    }
    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }
    fn cert_manager_version(&self) -> &str {
        &self.plane.versions.cert_manager
    }
    fn stop_controller(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.stop_cert_manager())
    }
    fn start_controller(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.start_cert_manager())
    }
    fn log_dir(&self) -> &Path {
        &self.log_dir
    }
}

/// [`Provider`] for local clusters.
#[derive(Clone, Debug, Default)]
pub struct LocalProvider {
    /// Options applied to every cluster this provider starts.
    pub options: LocalOptions,
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }
    fn start<'a>(&'a self, spec: &'a ClusterSpec) -> BoxFuture<'a, anyhow::Result<Box<dyn Cluster>>> {
        Box::pin(async move {
            let cluster = LocalCluster::start_with(spec, self.options.clone()).await?;
            Ok(Box::new(cluster) as Box<dyn Cluster>)
        })
    }
}

// ----- start-up -------------------------------------------------------------------------------------------

struct Started {
    kubeconfig: PathBuf,
    server: String,
    ports: Ports,
    client: kube::Client,
    components: Vec<Arc<Process>>,
    apiserver_args: Vec<String>,
}

/// Holds the processes started so far, so a failed start stops them (via their Drop) and reports their logs.
struct Starter {
    procs: Vec<ManagedProcess>,
    timeout: Duration,
}

impl Starter {
    fn check(&mut self) -> anyhow::Result<()> {
        self.procs.iter_mut().try_for_each(ManagedProcess::check_running)
    }

    async fn run(
        &mut self,
        spec: &ClusterSpec,
        plane: &ControlPlane,
        dir: &Path,
        log_dir: &Path,
        options: &LocalOptions,
    ) -> anyhow::Result<Started> {
        let ports = Ports {
            etcd_client: free_port()?,
            etcd_peer: free_port()?,
            apiserver: free_port()?,
            cert_manager_health: free_port()?,
            webhook: free_port()?,
            webhook_health: free_port()?,
            cainjector_health: free_port()?,
        };
        let pki_dir = dir.join("pki");
        let service_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let pki = pki::Pki::write(&pki_dir, service_ip)?;
        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        let kubeconfig = dir.join("admin.kubeconfig");
        let admin = pki.client("admin", "cmarchive-admin", &["system:masters"])?;
        pki::write_kubeconfig(
            &kubeconfig,
            &format!("cmarchive-{}", spec.name),
            &server,
            &pki.ca_cert,
            &admin,
        )?;
        let kcm_kubeconfig = dir.join("kube-controller-manager.kubeconfig");
        let kcm = pki.client(
            "kube-controller-manager",
            "kube-controller-manager",
            &["system:masters"],
        )?;
        pki::write_kubeconfig(&kcm_kubeconfig, "local", &server, &pki.ca_cert, &kcm)?;
        let cm_kubeconfig = dir.join("cert-manager.kubeconfig");
        let cm = pki.client("cert-manager", "cert-manager", &["system:masters"])?;
        pki::write_kubeconfig(&cm_kubeconfig, "local", &server, &pki.ca_cert, &cm)?;

        // etcd
        let etcd_url = format!("http://127.0.0.1:{}", ports.etcd_client);
        let peer_url = format!("http://127.0.0.1:{}", ports.etcd_peer);
        let etcd_args = vec![
            format!("--name={}", spec.name),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster={}={peer_url}", spec.name),
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        self.spawn("etcd", plane, log_dir, &etcd_args)?;
        let etcd_addr = loopback(ports.etcd_client);
        self.wait("etcd /health", || async move {
            let (status, body) = http::get(etcd_addr, "/health").await?;
            Ok((status == 200 && body.contains("\"health\":\"true\"")).then_some(()))
        })
        .await?;

        // kube-apiserver
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", ports.apiserver),
            format!("--cert-dir={}", pki_dir.display()),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            "--authorization-mode=RBAC".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            format!("--service-account-issuer={server}"),
            format!("--service-account-key-file={}", pki.sa_pub.display()),
            format!("--service-account-signing-key-file={}", pki.sa_key.display()),
            "--allow-privileged=true".to_owned(),
            // As in controller-runtime's envtest: without a kubelet, Pods (here only the stand-in for the
            // controller process) need no service-account token wiring, and the plugin's lookups of freshly
            // created ServiceAccounts kept failing with "serviceaccount not found".
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            // The `kubernetes` Service would point at 127.0.0.1, which Endpoints reject; nothing here needs it.
            "--endpoint-reconciler-type=none".to_owned(),
            "--profiling=false".to_owned(),
        ];
        self.spawn("kube-apiserver", plane, log_dir, &apiserver_args)?;
        let client = client_for(&kubeconfig).await?;
        self.wait("kube-apiserver /readyz", || apiserver_ready(&client)).await?;

        // kube-controller-manager
        let kcm_args = vec![
            format!("--kubeconfig={}", kcm_kubeconfig.display()),
            format!("--authentication-kubeconfig={}", kcm_kubeconfig.display()),
            format!("--authorization-kubeconfig={}", kcm_kubeconfig.display()),
            format!("--controllers={}", KCM_CONTROLLERS.join(",")),
            "--leader-elect=false".to_owned(),
            "--use-service-account-credentials=false".to_owned(),
            format!("--service-account-private-key-file={}", pki.sa_key.display()),
            format!("--root-ca-file={}", pki.ca_cert.display()),
            // No serving: readiness is observed through what its controllers do.
            "--secure-port=0".to_owned(),
            "--profiling=false".to_owned(),
        ];
        self.spawn("kube-controller-manager", plane, log_dir, &kcm_args)?;
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        self.wait("kube-controller-manager (ServiceAccount default/default)", move || {
            let sas = sas.clone();
            async move { Ok(sas.get_opt("default").await?.map(|_| ())) }
        })
        .await?;

        // Namespaces, CRDs, the Deployment object
        let mut namespaces = vec!["cert-manager".to_owned()];
        if !namespaces.contains(&spec.cluster_resource_namespace) {
            namespaces.push(spec.cluster_resource_namespace.clone());
        }
        let ns_api: Api<Namespace> = Api::all(client.clone());
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        for ns in &namespaces {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            ns_api
                .patch(ns, &pp, &Patch::Apply(&body))
                .await
                .with_context(|| format!("creating namespace {ns}"))?;
        }
        self.apply_crds(&client, "cert-manager", &plane.crd_files()?).await?;
        if spec.enable_gateway_api {
            self.apply_crds(&client, "Gateway API", &plane.gateway_api_crd_files()?)
                .await?;
        }

        let version = &plane.versions.cert_manager;
        let cm_kubeconfig_arg = format!("--kubeconfig={}", cm_kubeconfig.display());
        let mut controller_args = vec![
            cm_kubeconfig_arg.clone(),
            "--leader-elect=false".to_owned(),
            format!(
                "--internal-healthz-listen-address={}",
                loopback(ports.cert_manager_health)
            ),
            format!("--v={}", options.cert_manager_log_level),
            "--controllers=*".to_owned(),
        ];
        controller_args.extend(spec.controller_flags());
        if !spec.feature_gates.is_empty() {
            controller_args.push(format!("--feature-gates={}", spec.feature_gates.join(",")));
        }
        let webhook_args = components::webhook_args(
            &cm_kubeconfig.display().to_string(),
            ports.webhook,
            ports.webhook_health,
            options.cert_manager_log_level,
        );
        let cainjector_args = vec![
            cm_kubeconfig_arg,
            format!("--healthz-listen-address={}", loopback(ports.cainjector_health)),
            format!("--v={}", options.cert_manager_log_level),
        ];
        components::apply_webhook_configurations(&client, ports.webhook).await?;
        let mut started: Vec<Arc<Process>> = Vec::new();
        for (component, args, health) in [
            (Component::Controller, controller_args, ports.cert_manager_health),
            (Component::Webhook, webhook_args, ports.webhook_health),
            (Component::Cainjector, cainjector_args, ports.cainjector_health),
        ] {
            components::apply_deployment(&client, component, version, &args).await?;
            let process = Arc::new(Process {
                component,
                plane: plane.clone(),
                log_dir: log_dir.to_owned(),
                args,
                health: loopback(health),
                client: client.clone(),
                process: Mutex::new(None),
                timeout: self.timeout,
            });
            let procs = &mut self.procs;
            let result = process
                .start(|| procs.iter_mut().try_for_each(ManagedProcess::check_running))
                .await;
            started.push(process);
            if let Err(e) = result {
                // Hand every started process to the Starter, whose drop stops it.
                for p in &started {
                    if let Some(proc) = lock(&p.process).take() {
                        self.procs.push(proc);
                    }
                }
                return Err(e);
            }
        }
        // Ready as an operator's `cmctl check api` would see it: the webhook serves with a CA cainjector injected.
        let checked = self
            .wait("cert-manager's API (a dry-run Issuer admitted by the webhook)", || {
                let client = client.clone();
                async move {
                    // A refusal keeps the wait going and is what a time-out reports.
                    crate::provider::cert_manager_api_check(&client, components::NAMESPACE)
                        .await?
                        .map(Some)
                        .map_err(anyhow::Error::msg)
                }
            })
            .await;
        if let Err(e) = checked {
            for p in &started {
                if let Some(proc) = lock(&p.process).take() {
                    self.procs.push(proc);
                }
            }
            return Err(e);
        }
        Ok(Started {
            kubeconfig,
            server,
            ports,
            client,
            components: started,
            apiserver_args,
        })
    }

    fn spawn(&mut self, name: &str, plane: &ControlPlane, log_dir: &Path, args: &[String]) -> anyhow::Result<()> {
        let log = log_dir.join(format!("{name}.log"));
        self.procs
            .push(ManagedProcess::spawn(name, &plane.binary(name), args, &log)?);
        Ok(())
    }

    async fn wait<T, F, Fut>(&mut self, what: &str, probe: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let timeout = self.timeout;
        wait_until(what, timeout, || self.check(), probe).await
    }

    /// Applies the CRDs in `files` and waits until every one is Established.
    async fn apply_crds(&mut self, client: &kube::Client, what: &str, files: &[PathBuf]) -> anyhow::Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let mut names = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(file)?;
            let docs: Vec<serde_json::Value> =
                serde_saphyr::from_multiple(&text).map_err(|e| anyhow::anyhow!("parsing {}: {e}", file.display()))?;
            for doc in docs
                .into_iter()
                .filter(|d| d.get("kind").and_then(|k| k.as_str()) == Some("CustomResourceDefinition"))
            {
                let name = doc["metadata"]["name"]
                    .as_str()
                    .context("CRD without a name")?
                    .to_owned();
                api.patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .with_context(|| format!("applying CRD {name}"))?;
                names.push(name);
            }
        }
        if names.is_empty() {
            bail!("no CustomResourceDefinition among the {what} CRD files {files:?}");
        }
        let api2 = api.clone();
        let names2 = names.clone();
        self.wait(&format!("{what} CRDs Established"), move || {
            let api = api2.clone();
            let names = names2.clone();
            async move {
                for name in &names {
                    let crd = api.get(name).await?;
                    if !crate::provider::crd_established(&crd) {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            }
        })
        .await
    }
}

/// `Some` once kube-apiserver's `/readyz` says ok.
async fn apiserver_ready(client: &kube::Client) -> anyhow::Result<Option<()>> {
    let req = ::http::Request::get("/readyz").body(Vec::new())?;
    let body = client.request_text(req).await?;
    Ok((body.trim() == "ok").then_some(()))
}

/// A kube client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Polls `probe` every 100 ms until it yields a value; fails early when `alive` fails (a process died) and
/// after `timeout` with the probe's last error.
pub async fn wait_until<T, A, F, Fut>(what: &str, timeout: Duration, mut alive: A, mut probe: F) -> anyhow::Result<T>
where
    A: FnMut() -> anyhow::Result<()>,
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    crate::provider::poll(timeout, Duration::from_millis(100), what, || {
        // The probe only starts once the processes are known to be alive.
        let next = alive()
            .with_context(|| format!("while waiting for {what}"))
            .map(|()| probe());
        async move {
            Ok(match tokio::time::timeout(Duration::from_secs(10), next?).await {
                Ok(Ok(Some(v))) => Ok(v),
                Ok(Ok(None)) => Err("not ready".to_owned()),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err("probe timed out".to_owned()),
            })
        }
    })
    .await
}

fn tails(procs: &[ManagedProcess], lines: usize) -> String {
    procs.iter().map(|p| p.tail(lines) + "\n").collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A free loopback port, chosen at random below the kernel's ephemeral range so that outgoing connections
/// (which take ephemeral ports) cannot grab it before the process binds it. Ports handed out earlier in this
/// process are never handed out again, so clusters started side by side cannot collide with each other.
pub fn free_port() -> anyhow::Result<u16> {
    use std::hash::{BuildHasher as _, RandomState};
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low > 12_000 {
        (ephemeral_low - 10_000, ephemeral_low)
    } else {
        (1024, 65535)
    };
    let random = RandomState::new();
    for i in 0..1000u32 {
        let port = low + (random.hash_one(i) % u64::from(high - low)) as u16;
        if TcpListener::bind(loopback(port)).is_ok() && lock(&GIVEN).get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    bail!("no free loopback port found in {low}..{high}")
}
