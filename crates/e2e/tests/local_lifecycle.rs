//! `cmarchive-e2e up`/`down`, and the guarantee that killing the process that owns a cluster (SIGKILL, as when
//! a CI job or a test run is killed) leaves no etcd, kube-apiserver, controller-manager or cert-manager behind.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cmarchive_e2e::controlplane::{CACHE_ENV, CONTROL_PLANE_DIR_ENV, ControlPlane};
use cmarchive_e2e::local::client_for;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

const BIN: &str = env!("CARGO_BIN_EXE_cmarchive-e2e");

/// Runs the binary with its cache in `cache` and the control plane the tests use.
fn command(cache: &Path) -> Command {
    let plane = ControlPlane::locate(None).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env(CACHE_ENV, cache).env(CONTROL_PLANE_DIR_ENV, &plane.bin_dir);
    cmd
}

fn still_running(pid: u32) -> bool {
    cmarchive_e2e::local::process::runs_our_binary(pid, &["cmarchive-e2e"])
}

fn wait_all_gone(pids: &[u32]) -> Vec<u32> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if pids.iter().all(|p| !still_running(*p)) {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    pids.iter().copied().filter(|p| still_running(*p)).collect()
}

fn parse_pids(line: &str) -> Vec<u32> {
    line.trim_start_matches("pids: [")
        .trim_end_matches(']')
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect()
}

#[test]
fn sigkill_of_the_owner_kills_the_whole_cluster() {
    let cache = tempfile::tempdir().unwrap();
    let mut child = command(cache.path())
        .args(["up", "--foreground", "--name", "killed"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut pids = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("pids: ") {
            pids = Some(parse_pids(&line));
            break;
        }
    }
    let pids = pids.expect("the supervisor reported its processes (see its stderr above)");
    assert_eq!(
        pids.len(),
        6,
        "etcd, kube-apiserver, kube-controller-manager and cert-manager's three: {pids:?}"
    );
    assert!(pids.iter().all(|p| still_running(*p)));
    child.kill().unwrap(); // SIGKILL: no Drop, no signal handler runs
    child.wait().unwrap();
    assert_eq!(
        wait_all_gone(&pids),
        Vec::<u32>::new(),
        "processes left behind after SIGKILL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_gives_a_working_kubeconfig_and_down_cleans_up() {
    let cache = tempfile::tempdir().unwrap();
    let out = command(cache.path())
        .args(["up", "--name", "lifecycle"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "up failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kubeconfig = stdout
        .trim()
        .strip_prefix("export KUBECONFIG=")
        .expect("prints export KUBECONFIG=")
        .to_owned();

    let client = client_for(Path::new(&kubeconfig)).await.unwrap();
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"cert-manager".to_owned()), "{names:?}");

    let state = cache.path().join("clusters").join("lifecycle");
    let log = std::fs::read_to_string(state.join("supervisor.log")).unwrap();
    let mut pids = parse_pids(
        log.lines()
            .find(|l| l.starts_with("pids: "))
            .expect("pids in supervisor.log"),
    );
    let supervisor: u32 = std::fs::read_to_string(state.join("supervisor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    pids.push(supervisor);

    let env = command(cache.path())
        .args(["env", "--name", "lifecycle"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        format!("export KUBECONFIG={kubeconfig}")
    );
    let again = command(cache.path())
        .args(["up", "--name", "lifecycle"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a second `up` of the same name is refused");

    let down = command(cache.path())
        .args(["down", "--name", "lifecycle"])
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(
        wait_all_gone(&pids),
        Vec::<u32>::new(),
        "processes left behind after down"
    );
    assert!(!state.exists(), "state removed");
    let env = command(cache.path())
        .args(["env", "--name", "lifecycle"])
        .output()
        .unwrap();
    assert!(!env.status.success());
}
