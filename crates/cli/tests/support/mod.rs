//! What the cluster-facing CLI tests share: the binary under test, isolated from the person's kubeconfig, and
//! running it with its output kept for the assertion and echoed for the log.

use anyhow::{Context as _, Result};
use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// `cmarchive`, with no `KUBECONFIG` and no home directory to fall back on: every test names its cluster.
pub fn cmarchive() -> Command {
    let mut command = Command::cargo_bin("cmarchive").expect("the cmarchive binary");
    command.env_remove("KUBECONFIG").env("HOME", "/nonexistent");
    command
}

/// Runs a command to its end: exit code, stdout, stderr (also printed, for the test log).
pub fn run(command: &mut Command) -> (i32, String, String) {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let out = command.output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- {program} exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    (code, stdout, stderr)
}

/// `cmarchive keygen DIR/key.txt`: the recipient it printed and the identity file.
pub fn keygen(dir: &Path) -> Result<(String, PathBuf)> {
    let key = dir.join("key.txt");
    let (code, _, stderr) = run(cmarchive().arg("keygen").arg(&key));
    anyhow::ensure!(code == 0, "keygen exited {code}");
    let recipient = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Public key: "))
        .context("public key on stderr")?;
    Ok((recipient.to_owned(), key))
}

/// The repository's root, where `deploy/` lives.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `kubectl --kubeconfig KUBECONFIG`: `KUBECTL`, else the one on PATH (scripts/test builds one where there is
/// none).
pub fn kubectl(kubeconfig: &Path) -> Command {
    let program = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
    let found = std::process::Command::new(&program)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "no kubectl: set KUBECTL, or run scripts/test (it builds one with scripts/build-kubectl)"
    );
    let mut command = Command::new(program);
    command.arg("--kubeconfig").arg(kubeconfig);
    command
}

/// `cmarchive SUBCOMMAND ARCHIVE -i KEY --kubeconfig KUBECONFIG`, ready for more arguments.
pub fn against(subcommand: &str, archive: &Path, key: &Path, kubeconfig: &Path) -> Command {
    let mut command = cmarchive();
    command
        .arg(subcommand)
        .arg(archive)
        .arg("-i")
        .arg(key)
        .arg("--kubeconfig")
        .arg(kubeconfig);
    command
}

/// A fresh age key in `dir` and `dump` (a `kubectl get -o json`-shaped List) packed offline with it into
/// `dir/NAME.cmar`: the archive and the identity file.
pub fn pack_dump(dir: &Path, name: &str, dump: &serde_json::Value) -> Result<(PathBuf, PathBuf)> {
    let (recipient, key) = keygen(dir)?;
    let dump_file = dir.join(format!("{name}.json"));
    std::fs::write(&dump_file, serde_json::to_vec(dump)?)?;
    let archive = dir.join(format!("{name}.cmar"));
    let (code, _, stderr) = run(cmarchive()
        .arg("pack")
        .arg(&archive)
        .arg("--from-file")
        .arg(&dump_file)
        .arg("-r")
        .arg(&recipient));
    anyhow::ensure!(code == 0, "pack --from-file exited {code}: {stderr}");
    Ok((archive, key))
}

/// `cmarchive ARGS…` started in the background (same isolation as [`cmarchive`]), its output piped.
pub fn spawn(args: &[&std::ffi::OsStr]) -> Result<std::process::Child> {
    std::process::Command::new(env!("CARGO_BIN_EXE_cmarchive"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting cmarchive")
}

/// Sends `signal` to a background `cmarchive`.
pub fn signal(child: &std::process::Child, signal: rustix::process::Signal) -> Result<()> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id())?).context("a child's pid")?;
    rustix::process::kill_process(pid, signal)?;
    Ok(())
}

/// Waits for a background `cmarchive`: exit code (`-1` when killed by a signal), stdout, stderr (also printed).
pub fn finish(child: std::process::Child) -> Result<(i32, String, String)> {
    let out = child.wait_with_output()?;
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- background cmarchive exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    Ok((code, stdout, stderr))
}

/// A kubeconfig for a token of ServiceAccount `namespace/account` (TokenRequest API), using the cluster's server
/// and CA from the admin kubeconfig.
pub async fn service_account_kubeconfig(
    cluster: &dyn cmarchive_e2e::provider::Cluster,
    namespace: &str,
    account: &str,
    path: &Path,
) -> Result<()> {
    let client = cluster.client();
    let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(client.clone(), namespace);
    let request = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: Some(k8s_openapi::api::authentication::v1::TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request(account, &kube::api::PostParams::default(), &request)
        .await?
        .status
        .context("token status")?
        .token;
    let admin = kube::config::Kubeconfig::read_from(cluster.kubeconfig())?;
    let named = admin.clusters.first().context("a cluster in the kubeconfig")?;
    let cluster_entry = named.cluster.clone().context("cluster entry")?;
    let server = cluster_entry.server.clone().unwrap_or_default();
    let mut cluster_json = serde_json::json!({"server": server});
    if let Some(ca) = &cluster_entry.certificate_authority_data {
        cluster_json["certificate-authority-data"] = serde_json::json!(ca);
    }
    if let Some(ca) = &cluster_entry.certificate_authority {
        cluster_json["certificate-authority"] = serde_json::json!(ca);
    }
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": account,
        "clusters": [{"name": "c", "cluster": cluster_json}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "c", "user": account}}],
    });
    std::fs::write(path, serde_json::to_string(&config)?)?;
    Ok(())
}
