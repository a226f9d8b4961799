//! A real ACME server for scenario 10: Let's Encrypt's pebble, built from its Go module
//! (`github.com/letsencrypt/pebble/v2/cmd/pebble`) into the cmarchive cache on first use and run on loopback for
//! the whole suite, so the source and the target cluster talk to the same server and the same accounts.
//!
//! Validation is real: pebble resolves the DNS-01 challenge records through the suite's authoritative DNS server
//! ([`super::dns`]), where cert-manager's `rfc2136` solver wrote them.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::dns::{self, Dns};
use crate::fixtures::{Ca, LeafSpec};
use crate::local::process;

/// The pebble release the suite builds.
pub const PEBBLE_VERSION: &str = "v2.10.1";
/// Env var naming a pebble binary to use instead of the cached build.
pub const ENV_PEBBLE: &str = "CMARCHIVE_PEBBLE";
/// Placeholder in scenario objects for the ACME directory URL.
pub const SERVER_PLACEHOLDER: &str = "${ACME_SERVER}";
/// Placeholder in scenario objects for the base64 PEM bundle that verifies the ACME server's TLS certificate.
pub const CA_BUNDLE_PLACEHOLDER: &str = "${ACME_CA_BUNDLE}";

/// A running pebble and the DNS server it validates against; both killed on drop.
pub struct Pebble {
    /// Directory URL, e.g. `https://127.0.0.1:40123/dir`.
    pub directory: String,
    /// PEM of the CA that signed pebble's serving certificate.
    pub ca_pem: String,
    /// The authoritative DNS server of the challenge zone.
    pub dns: Dns,
    _child: tokio::process::Child,
}

impl std::fmt::Debug for Pebble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pebble")
            .field("directory", &self.directory)
            .field("dns", &self.dns.addr)
            .finish_non_exhaustive()
    }
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("CMARCHIVE_CACHE").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(".cache/cmarchive"),
    }
}

/// The pebble binary: `CMARCHIVE_PEBBLE`, else the cached build, else `go install` into the cache now.
pub async fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ENV_PEBBLE).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let dir = cache_dir().join("pebble").join(PEBBLE_VERSION);
    let bin = dir.join("pebble");
    if bin.exists() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir)?;
    let scratch = tempfile::tempdir()?;
    eprintln!(
        "building pebble {PEBBLE_VERSION} from its Go module into {}",
        dir.display()
    );
    let out = tokio::process::Command::new("go")
        .args([
            "install",
            &format!("github.com/letsencrypt/pebble/v2/cmd/pebble@{PEBBLE_VERSION}"),
        ])
        .env("GOBIN", &dir)
        .env("GOFLAGS", "-mod=mod")
        .current_dir(scratch.path())
        .output()
        .await
        .context("running go install for pebble (is Go installed?)")?;
    if !out.status.success() || !bin.exists() {
        bail!("building pebble failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(bin)
}

impl Pebble {
    /// Starts the DNS server, then pebble with a fresh serving certificate in `dir`, validating challenges through
    /// that server; returns once both are up.
    pub async fn start(dir: &Path) -> Result<Pebble> {
        let bin = binary().await?;
        std::fs::create_dir_all(dir)?;
        let dns = Dns::start(&dir.join("dns")).await?;
        let ca = Ca::new("cmarchive test ACME server CA")?;
        let leaf = ca.issue(&LeafSpec::valid_for(
            &["localhost", "127.0.0.1"],
            jiff::SignedDuration::from_hours(24 * 30),
        ))?;
        std::fs::write(dir.join("cert.pem"), &leaf.cert_pem)?;
        std::fs::write(dir.join("key.pem"), &leaf.key_pem)?;
        let port = crate::local::free_port()?;
        let config = json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{}", crate::local::free_port()?),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": crate::local::free_port()?,
            "tlsPort": crate::local::free_port()?,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "retryAfter": {"authz": 1, "order": 1},
            "keyAlgorithm": "ecdsa",
            "profiles": {"default": {"description": "cmarchive tests", "validityPeriod": 7776000}},
        }});
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let mut child = tokio::process::Command::new(&bin)
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(&dns.addr)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("pebble stdout")?;
        let log_path = dir.join("pebble.log");
        if !process::log_until(stdout, &log_path, |line| line.contains("ACME directory available")).await? {
            bail!("pebble did not announce its directory; see {}", log_path.display());
        }
        Ok(Pebble {
            directory: format!("https://127.0.0.1:{port}/dir"),
            ca_pem: ca.cert_pem,
            dns,
            _child: child,
        })
    }

    /// Replaces the placeholders in every string of `obj`.
    pub fn substitute(&self, obj: &mut Value) {
        use base64::Engine;
        let bundle = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        substitute(
            obj,
            &[
                (SERVER_PLACEHOLDER, self.directory.as_str()),
                (CA_BUNDLE_PLACEHOLDER, bundle.as_str()),
                (dns::SERVER_PLACEHOLDER, self.dns.addr.as_str()),
            ],
        );
    }
}

fn substitute(obj: &mut Value, pairs: &[(&str, &str)]) {
    match obj {
        Value::String(s) => {
            for (k, v) in pairs {
                if s.contains(k) {
                    *s = s.replace(k, v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, pairs)),
        Value::Object(m) => m.values_mut().for_each(|x| substitute(x, pairs)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_everywhere() {
        let mut v = json!({"spec": {"acme": {"server": SERVER_PLACEHOLDER, "x": [CA_BUNDLE_PLACEHOLDER, 3]}}});
        substitute(
            &mut v,
            &[(SERVER_PLACEHOLDER, "https://a/dir"), (CA_BUNDLE_PLACEHOLDER, "QUJD")],
        );
        assert_eq!(
            v,
            json!({"spec": {"acme": {"server": "https://a/dir", "x": ["QUJD", 3]}}})
        );
    }
}
