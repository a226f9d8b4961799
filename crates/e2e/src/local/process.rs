//! Child processes that cannot outlive the test: each runs in its own process group, gets SIGKILL from the
//! kernel when the thread that spawned it dies (`PR_SET_PDEATHSIG`, Linux), and is killed with its whole group
//! when the handle is dropped. Output goes to a log file whose tail ends up in error messages.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustix::process::{Pid, Signal, kill_process_group};

/// A running child process with its log file.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl ManagedProcess {
    /// Starts `program args…` in a new process group, stdout and stderr appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> anyhow::Result<ManagedProcess> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", program.display()))?;
        Ok(ManagedProcess {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            exited: None,
        })
    }

    /// The name used in messages (`etcd`, `kube-apiserver`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Fails with the log tail if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => anyhow::bail!("{} exited ({status})\n{}", self.name, self.tail(40)),
        }
    }

    /// The last `lines` lines of the log, framed with the process name, for error messages.
    pub fn tail(&self, lines: usize) -> String {
        format!(
            "----- last {lines} lines of {} ({}) -----\n{}",
            self.name,
            self.log.display(),
            tail_file(&self.log, lines)
        )
    }

    /// Sends SIGTERM to the process group, waits up to `grace`, then SIGKILLs the group and reaps the process.
    pub fn stop(&mut self, grace: Duration) {
        if self.exit_status().is_some() {
            self.signal_group(Signal::KILL); // anything the leader left behind
            return;
        }
        self.signal_group(Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group(Signal::KILL);
        if self.exited.is_none() {
            self.exited = self.child.wait().ok();
        }
    }

    fn signal_group(&self, signal: Signal) {
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            // ESRCH (group already gone) is the expected outcome after a clean exit.
            let _ = kill_process_group(pid, signal);
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// Asks the kernel to SIGKILL the child when the spawning thread exits (test process killed, Ctrl-C, panic
/// that aborts). This is the one place the crate needs `unsafe`: `pre_exec` runs between fork and exec.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure only makes async-signal-safe system calls (prctl, getppid) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died between fork and prctl; then nobody would ever send the signal.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("parent exited before the child started"));
            }
            Ok(())
        });
    }
}

/// The last `lines` lines of a file (reads at most the final 64 KiB).
pub fn tail_file(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return "(log unreadable)".to_owned();
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether `pid` is a live (not zombie) process running one of the control plane's binaries, or one whose name is in
/// `also`: what tests check to prove that nothing outlives its cluster. The kernel keeps the first 15 bytes of a
/// program's name, so a reused pid running something else does not count.
pub fn runs_our_binary(pid: u32, also: &[&str]) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    let comm = comm.trim();
    let truncated = |name: &str| name.get(..15).unwrap_or(name) == comm;
    let ours = crate::controlplane::BINARIES.iter().any(|b| truncated(b)) || also.iter().any(|b| truncated(b));
    ours && !zombie
}

/// Copies a server's output into `log_path` line by line and returns whether a line `ready` accepts came within
/// 30 s; the copying goes on in the background for as long as the server writes.
pub(crate) async fn log_until(
    output: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    log_path: &Path,
    ready: impl Fn(&str) -> bool,
) -> anyhow::Result<bool> {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let mut lines = BufReader::new(output).lines();
    let mut log = tokio::fs::File::create(log_path).await?;
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            log.write_all(format!("{line}\n").as_bytes()).await?;
            if ready(&line) {
                return anyhow::Ok(true);
            }
        }
        Ok(false)
    })
    .await;
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log.write_all(format!("{line}\n").as_bytes()).await;
        }
    });
    Ok(matches!(seen, Ok(Ok(true))))
}
