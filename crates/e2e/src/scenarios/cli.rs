//! Drives the real `cmarchive` binary, as a user would: the cluster comes from `KUBECONFIG`, the archive is a
//! positional argument, keys are age files. Every run's output is kept next to the archive for post-mortems.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Env var naming the `cmarchive` binary for scripts (tests use `CARGO_BIN_EXE_cmarchive`).
pub const ENV_BIN: &str = "CMARCHIVE_BIN";

/// What one `cmarchive` run did.
#[derive(Clone, Debug)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Fails with the output unless the exit code is `want`.
    pub fn expect_code(&self, want: i32) -> Result<&Run> {
        if self.code != want {
            bail!(
                "`{}` exited {} (wanted {want})\n--- stdout\n{}\n--- stderr\n{}",
                self.command,
                self.code,
                tail(&self.stdout, 40),
                tail(&self.stderr, 40)
            );
        }
        Ok(self)
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("`{}` did not print JSON", self.command))
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// The `cmarchive` binary with one age identity, working in one directory.
#[derive(Clone, Debug)]
pub struct Cmarchive {
    bin: PathBuf,
    dir: PathBuf,
    /// The age identity file.
    pub identity: PathBuf,
    /// Its public key (`age1…`).
    pub recipient: String,
    runs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Cmarchive {
    /// Generates a fresh identity with `cmarchive keygen` in `dir`.
    pub async fn keygen(bin: &Path, dir: &Path) -> Result<Cmarchive> {
        std::fs::create_dir_all(dir)?;
        let identity = dir.join("key.txt");
        let mut c = Cmarchive {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            identity: identity.clone(),
            recipient: String::new(),
            runs: Default::default(),
        };
        let path = identity.to_str().context("non-UTF-8 path")?;
        let run = c.run("keygen", &["keygen", path], None).await?;
        run.expect_code(0)?;
        let file = std::fs::read_to_string(&identity).unwrap_or_default();
        c.recipient = [run.stdout.as_str(), run.stderr.as_str(), file.as_str()]
            .iter()
            .find_map(|s| find_recipient(s))
            .with_context(|| {
                format!(
                    "`cmarchive keygen` printed no age1… public key:\n{}{}",
                    run.stdout, run.stderr
                )
            })?;
        Ok(c)
    }

    /// The `cmarchive` binary.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// Runs `cmarchive ARGS…` against the cluster of `kubeconfig` (if any).
    pub async fn run(&self, label: &str, args: &[&str], kubeconfig: Option<&Path>) -> Result<Run> {
        self.run_noticing(label, args, kubeconfig, None).await
    }

    /// Like [`Cmarchive::run`]; in addition, `notice` (a needle and a sender) is told the first time a line of
    /// standard error contains the needle, while the command still runs.
    pub async fn run_noticing(
        &self,
        label: &str,
        args: &[&str],
        kubeconfig: Option<&Path>,
        notice: Option<(&str, tokio::sync::oneshot::Sender<()>)>,
    ) -> Result<Run> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.env_remove("CMARCHIVE_AGE_KEY_FILE")
            .env_remove("CMARCHIVE_AGE_RECIPIENTS")
            .env("NO_COLOR", "1");
        match kubeconfig {
            Some(k) => cmd.env("KUBECONFIG", k),
            None => cmd.env_remove("KUBECONFIG"),
        };
        let command = format!("cmarchive {}", args.join(" "));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {} (build it first, or set {ENV_BIN})", self.bin.display()))?;
        let mut stdout_pipe = child.stdout.take().context("stdout is piped")?;
        let stderr_pipe = child.stderr.take().context("stderr is piped")?;
        let read_stdout = async {
            let mut out = Vec::new();
            stdout_pipe.read_to_end(&mut out).await.map(|_| out)
        };
        let read_stderr = async {
            let mut notice = notice;
            let mut lines = tokio::io::BufReader::new(stderr_pipe).lines();
            let mut text = String::new();
            while let Some(line) = lines.next_line().await? {
                if notice.as_ref().is_some_and(|(needle, _)| line.contains(needle))
                    && let Some((_, tx)) = notice.take()
                {
                    let _ = tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            std::io::Result::Ok(text)
        };
        let (stdout, stderr, status) = tokio::join!(read_stdout, read_stderr, child.wait());
        let run = Run {
            command,
            code: status?.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout?).into_owned(),
            stderr: stderr?,
        };
        let log = self.dir.join(format!("{n:02}-{label}.log"));
        let text = format!(
            "$ {}\n# exit {}\n--- stdout\n{}\n--- stderr\n{}\n",
            run.command, run.code, run.stdout, run.stderr
        );
        std::fs::write(&log, text).with_context(|| format!("writing {}", log.display()))?;
        Ok(run)
    }

    /// `cmarchive pack ARCHIVE -r RECIPIENT -n NS…` against `kubeconfig`.
    pub async fn pack(&self, archive: &Path, kubeconfig: &Path, namespaces: &[String]) -> Result<Run> {
        self.pack_with(archive, kubeconfig, namespaces, &[]).await
    }

    /// [`Cmarchive::pack`] with more flags (e.g. `--secrets-only`).
    pub async fn pack_with(
        &self,
        archive: &Path,
        kubeconfig: &Path,
        namespaces: &[String],
        extra: &[&str],
    ) -> Result<Run> {
        let a = archive.to_str().context("non-UTF-8 path")?;
        let mut args = vec!["pack", a, "-r", self.recipient.as_str()];
        for ns in namespaces {
            args.extend(["-n", ns.as_str()]);
        }
        args.extend_from_slice(extra);
        self.run("pack", &args, Some(kubeconfig)).await
    }

    /// `cmarchive restore ARCHIVE -i KEY [EXTRA…]` against `kubeconfig`.
    pub async fn restore(&self, archive: &Path, kubeconfig: &Path, extra: &[&str]) -> Result<Run> {
        self.restore_noticing(archive, kubeconfig, extra, None).await
    }

    /// [`Cmarchive::restore`] that tells `notice` when a line of its standard error contains the needle.
    pub async fn restore_noticing(
        &self,
        archive: &Path,
        kubeconfig: &Path,
        extra: &[&str],
        notice: Option<(&str, tokio::sync::oneshot::Sender<()>)>,
    ) -> Result<Run> {
        let a = archive.to_str().context("non-UTF-8 path")?;
        let i = self.identity.to_str().context("non-UTF-8 path")?;
        let mut args = vec!["restore", a, "-i", i];
        args.extend_from_slice(extra);
        self.run_noticing("restore", &args, Some(kubeconfig), notice).await
    }

    /// `cmarchive verify ARCHIVE -i KEY [-o json]` against `kubeconfig`.
    pub async fn verify(&self, archive: &Path, kubeconfig: &Path, json: bool) -> Result<Run> {
        let a = archive.to_str().context("non-UTF-8 path")?;
        let i = self.identity.to_str().context("non-UTF-8 path")?;
        let mut args = vec!["verify", a, "-i", i];
        if json {
            args.extend(["-o", "json"]);
        }
        self.run("verify", &args, Some(kubeconfig)).await
    }

    /// `cmarchive inspect ARCHIVE -i KEY -o json`: the manifest with the reissuance prediction.
    pub async fn inspect(&self, archive: &Path) -> Result<Run> {
        let a = archive.to_str().context("non-UTF-8 path")?;
        let i = self.identity.to_str().context("non-UTF-8 path")?;
        self.run("inspect", &["inspect", a, "-i", i, "-o", "json"], None).await
    }
}

/// `verdict` per Certificate from `cmarchive verify -o json` (`{"certificates": [{namespace, name, verdict}]}`).
pub fn verdicts(run: &Run) -> Result<std::collections::BTreeMap<crate::reissuance::CertificateId, String>> {
    let v = run.json()?;
    let list = v["certificates"]
        .as_array()
        .with_context(|| format!("`{}` printed no certificates list", run.command))?;
    Ok(list
        .iter()
        .filter_map(|c| {
            let id = crate::reissuance::CertificateId::new(c["namespace"].as_str()?, c["name"].as_str()?);
            Some((id, c["verdict"].as_str().unwrap_or_default().to_owned()))
        })
        .collect())
}

/// The first `age1…` public key in `text`.
pub fn find_recipient(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.starts_with("age1") && w.len() > 50)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verdicts_are_read_per_certificate() {
        let run = Run {
            command: "cmarchive verify".into(),
            code: 2,
            stdout: json!({"certificates": [{"namespace": "a", "name": "x", "verdict": "reissued"},
                {"namespace": "a", "name": "y", "verdict": "ok"}]})
            .to_string(),
            stderr: String::new(),
        };
        let v = verdicts(&run).unwrap();
        assert_eq!(v[&crate::reissuance::CertificateId::new("a", "x")], "reissued");
        assert_eq!(v.len(), 2);
        assert!(
            verdicts(&Run {
                stdout: "{}".into(),
                ..run
            })
            .is_err()
        );
    }

    #[test]
    fn recipient_is_found_in_keygen_output() {
        let out = "# created: 2026-11-22\n# public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\nAGE-SECRET-KEY-1XYZ";
        assert_eq!(
            find_recipient(out).unwrap(),
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
        );
        assert!(find_recipient("Public key: none").is_none());
    }
}
