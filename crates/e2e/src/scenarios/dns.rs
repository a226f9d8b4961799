//! The authoritative DNS server of scenario 10's DNS-01 challenges: BIND's `named` (Debian's `bind9`, installed by
//! `scripts/install-deps`) on a loopback port, primary for one zone that accepts RFC 2136 updates signed with a
//! TSIG key. cert-manager's `rfc2136` solver writes the challenge TXT records there, its self-check reads them back
//! (`--dns01-recursive-nameservers-only`), and pebble validates against the same server (`-dnsserver`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

/// The zone the ACME scenario's names live in.
pub const ZONE: &str = "s10.cmarchive.test";
/// TSIG key name, as cert-manager's `tsigKeyName` spells it (fully qualified).
pub const TSIG_KEY_NAME: &str = "cmarchive.";
/// The TSIG secret in BIND's base64 form; cert-manager reads the same string from the solver's Secret.
pub const TSIG_SECRET: &str = "Y21hcmNoaXZlLXRlc3RzLXRzaWctaG1hYy1zaGEyNTY=";
/// Placeholder in scenario objects for the DNS server's `host:port`.
pub const SERVER_PLACEHOLDER: &str = "${DNS_SERVER}";

/// Where Debian installs `named`.
const NAMED: &str = "/usr/sbin/named";

/// A running `named`; killed on drop.
pub struct Dns {
    /// `127.0.0.1:<port>`, for the solver, the controller's self-check and pebble.
    pub addr: String,
    _child: tokio::process::Child,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// `named.conf` for a server on `port` keeping its files in `dir`: authoritative only, updates by the TSIG key.
fn named_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
}};
key "{TSIG_KEY_NAME}" {{ algorithm hmac-sha256; secret "{TSIG_SECRET}"; }};
zone "{ZONE}" {{ type primary; file "{d}/{ZONE}.zone"; allow-update {{ key "{TSIG_KEY_NAME}"; }}; }};
"#
    )
}

/// The zone as it starts: SOA and NS only; the challenges add their TXT records.
fn zone_file() -> String {
    format!("$TTL 60\n@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 60 60 600 60\n@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n")
}

/// A loopback port free for both UDP and TCP (named serves DNS on both), below the ephemeral range like every port
/// the harness hands out. A UDP port taken from that range was twice in a row already the local end of one of the
/// clusters' TCP connections: named logged "creating TCP socket: address in use" and pebble's DNS-01 validation of
/// the ACME scenario failed at once.
fn dns_port() -> Result<u16> {
    for _ in 0..100 {
        let port = crate::local::free_port()?;
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no loopback port free for both UDP and TCP")
}

impl Dns {
    /// Starts `named` with its config and zone in `dir`; returns once it reports that it is running.
    pub async fn start(dir: &Path) -> Result<Dns> {
        if !Path::new(NAMED).is_file() {
            bail!("{NAMED} not found: the ACME scenario needs BIND for DNS-01; run scripts/install-deps");
        }
        std::fs::create_dir_all(dir)?;
        let dir: PathBuf = dir.canonicalize()?;
        let port = dns_port()?;
        std::fs::write(dir.join("named.conf"), named_conf(&dir, port))?;
        std::fs::write(dir.join(format!("{ZONE}.zone")), zone_file())?;
        let mut child = tokio::process::Command::new(NAMED)
            .arg("-g")
            .arg("-c")
            .arg(dir.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {NAMED}"))?;
        let stderr = child.stderr.take().context("named stderr")?;
        let log_path = dir.join("named.log");
        // `-g` logs to stderr; "running" follows "all zones loaded" once the sockets are open.
        if !crate::local::process::log_until(stderr, &log_path, |line| line.ends_with(" running")).await? {
            bail!("named did not start; see {}", log_path.display());
        }
        Ok(Dns {
            addr: format!("127.0.0.1:{port}"),
            _child: child,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn config_names_the_port_zone_and_update_key() {
        let conf = named_conf(Path::new("/tmp/x"), 40053);
        assert!(conf.contains("listen-on port 40053 { 127.0.0.1; };"), "{conf}");
        assert!(conf.contains(&format!("zone \"{ZONE}\"")), "{conf}");
        assert!(conf.contains("allow-update { key \"cmarchive.\"; }"), "{conf}");
        assert!(zone_file().contains(&format!("IN SOA ns.{ZONE}.")));
    }

    #[test]
    fn tsig_secret_is_base64_as_bind_and_cert_manager_expect() {
        let raw = base64::engine::general_purpose::STANDARD.decode(TSIG_SECRET).unwrap();
        assert!(raw.len() >= 32, "HMAC-SHA256 keys should be at least 32 bytes");
    }
}
