//! What the cluster-facing CLI tests share: the binary under test, isolated from the person's kubeconfig, and
//! running it with its output kept for the assertion and echoed for the log.

#![allow(dead_code)] // each test binary uses a different part

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
    let out = command.output().expect("running cmarchive");
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- cmarchive exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}");
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
