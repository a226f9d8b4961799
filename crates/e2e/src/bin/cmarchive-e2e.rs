//! `cmarchive-e2e up|down|env`: a local cluster with cert-manager for a person to try cmarchive against.
//!
//! `up` starts a detached supervisor process that owns the cluster (etcd, kube-apiserver,
//! kube-controller-manager, cert-manager controller), waits until everything is ready and prints
//! `export KUBECONFIG=…`. `down` stops the supervisor, which stops every process, and removes the state.
//! State lives in `${CMARCHIVE_CACHE:-$HOME/.cache/cmarchive}/clusters/<name>/`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use cmarchive_e2e::controlplane::cache_dir;
use cmarchive_e2e::local::{LocalCluster, LocalOptions};
use cmarchive_e2e::provider::{Cluster as _, ClusterSpec};
use rustix::process::{Pid, Signal, kill_process, test_kill_process};

#[derive(Parser)]
#[command(
    name = "cmarchive-e2e",
    version,
    about = "Local Kubernetes + cert-manager clusters for trying cmarchive"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a local cluster in the background and print `export KUBECONFIG=…`.
    Up(UpArgs),
    /// Stop a cluster started with `up` and delete its files.
    Down(NameArg),
    /// Print `export KUBECONFIG=…` for a running cluster.
    Env(NameArg),
}

#[derive(Args)]
struct NameArg {
    /// Cluster name (several can run side by side).
    #[arg(long, default_value = "demo")]
    name: String,
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    name: NameArg,
    /// cert-manager version (built by `scripts/build-control-plane --cert-manager V`); default: the pinned one.
    #[arg(long)]
    cert_manager: Option<String>,
    /// Controller flag --cluster-resource-namespace.
    #[arg(long, default_value = "cert-manager")]
    cluster_resource_namespace: String,
    /// Controller flag --enable-certificate-owner-ref.
    #[arg(long)]
    enable_certificate_owner_ref: bool,
    /// Controller flag --enable-gateway-api, with the Gateway API CRDs installed first.
    #[arg(long)]
    enable_gateway_api: bool,
    /// Controller feature gate, `Name=true|false` (repeatable).
    #[arg(long = "feature-gate")]
    feature_gates: Vec<String>,
    /// Run the cluster in this process until SIGINT/SIGTERM instead of detaching.
    #[arg(long)]
    foreground: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up(args) if args.foreground => serve(&args),
        Cmd::Up(args) => up(&args),
        Cmd::Down(n) => down(&n.name),
        Cmd::Env(n) => print_env(&n.name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmarchive-e2e: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn state_dir(name: &str) -> anyhow::Result<PathBuf> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("cluster name must be letters, digits, '-' or '_': {name:?}");
    }
    Ok(cache_dir().join("clusters").join(name))
}

fn read_pid(state: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(state.join("supervisor.pid")).ok()?;
    Pid::from_raw(text.trim().parse().ok()?)
}

fn alive(pid: Pid) -> bool {
    test_kill_process(pid).is_ok() && !is_zombie(pid)
}

fn is_zombie(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn export_line(state: &Path) -> String {
    format!(
        "export KUBECONFIG={}",
        state.join("cluster").join("admin.kubeconfig").display()
    )
}

/// Re-runs this binary as `up --foreground` in its own session-less process group, detached from the
/// terminal, then waits for it to report readiness (or die).
fn up(args: &UpArgs) -> anyhow::Result<()> {
    let state = state_dir(&args.name.name)?;
    if let Some(pid) = read_pid(&state)
        && alive(pid)
    {
        bail!(
            "cluster {:?} is already up (pid {}); `cmarchive-e2e down --name {}` first",
            args.name.name,
            pid.as_raw_nonzero(),
            args.name.name
        );
    }
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| format!("removing stale {}", state.display()))?;
    }
    std::fs::create_dir_all(&state)?;
    let log_path = state.join("supervisor.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["up", "--foreground", "--name", &args.name.name])
        .args(["--cluster-resource-namespace", &args.cluster_resource_namespace]);
    if let Some(v) = &args.cert_manager {
        cmd.args(["--cert-manager", v]);
    }
    if args.enable_certificate_owner_ref {
        cmd.arg("--enable-certificate-owner-ref");
    }
    if args.enable_gateway_api {
        cmd.arg("--enable-gateway-api");
    }
    for g in &args.feature_gates {
        cmd.args(["--feature-gate", g]);
    }
    use std::os::unix::process::CommandExt as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the supervisor")?;
    eprintln!(
        "cmarchive-e2e: starting cluster {:?} (log: {})",
        args.name.name,
        log_path.display()
    );
    let start = Instant::now();
    loop {
        if state.join("ready").exists() {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the cluster did not start ({status}); supervisor log:\n{}",
                cmarchive_e2e::local::process::tail_file(&log_path, 60)
            );
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("the cluster is not ready after 10 minutes; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "cmarchive-e2e: cluster {:?} is up in {:.1?}; stop it with `cmarchive-e2e down --name {}`",
        args.name.name,
        start.elapsed(),
        args.name.name
    );
    println!("{}", export_line(&state));
    Ok(())
}

/// The supervisor: owns the cluster until SIGINT or SIGTERM, then tears it down and removes the state.
fn serve(args: &UpArgs) -> anyhow::Result<()> {
    let state = state_dir(&args.name.name)?;
    std::fs::create_dir_all(&state)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut spec = ClusterSpec::named(&args.name.name);
        spec.cert_manager_version = args.cert_manager.clone();
        spec.cluster_resource_namespace = args.cluster_resource_namespace.clone();
        spec.enable_certificate_owner_ref = args.enable_certificate_owner_ref;
        spec.enable_gateway_api = args.enable_gateway_api;
        spec.feature_gates = args.feature_gates.clone();
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        std::fs::write(state.join("supervisor.pid"), std::process::id().to_string())?;
        let options = LocalOptions {
            work_dir: Some(state.join("cluster")),
            ..LocalOptions::default()
        };
        let cluster = tokio::select! {
            c = LocalCluster::start_with(&spec, options) => c?,
            _ = sigterm.recv() => bail!("stopped while starting"),
            _ = tokio::signal::ctrl_c() => bail!("interrupted while starting"),
        };
        std::fs::write(state.join("ready"), cluster.kubeconfig().display().to_string())?;
        println!("{}", export_line(&state));
        println!("pids: {:?}", cluster.pids());
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        println!("stopping");
        drop(cluster);
        anyhow::Ok(())
    })?;
    std::fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))?;
    Ok(())
}

fn down(name: &str) -> anyhow::Result<()> {
    let state = state_dir(name)?;
    if !state.exists() {
        eprintln!("cmarchive-e2e: no cluster {name:?}");
        return Ok(());
    }
    if let Some(pid) = read_pid(&state).filter(|p| alive(*p)) {
        kill_process(pid, Signal::TERM).context("signalling the supervisor")?;
        let start = Instant::now();
        while alive(pid) {
            if start.elapsed() > Duration::from_secs(30) {
                // Its children die with it (parent-death signal).
                let _ = kill_process(pid, Signal::KILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))?;
    }
    eprintln!("cmarchive-e2e: cluster {name:?} is down");
    Ok(())
}

fn print_env(name: &str) -> anyhow::Result<()> {
    let state = state_dir(name)?;
    match read_pid(&state) {
        Some(pid) if alive(pid) && state.join("ready").exists() => {
            println!("{}", export_line(&state));
            Ok(())
        }
        _ => bail!("cluster {name:?} is not running; start it with `cmarchive-e2e up --name {name}`"),
    }
}
