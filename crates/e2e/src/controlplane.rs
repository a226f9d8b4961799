//! Where the local provider finds its Go-built binaries (etcd, kube-apiserver, kube-controller-manager and
//! cert-manager's controller, webhook and cainjector), cert-manager's CRDs and the Gateway API's.
//!
//! `scripts/build-control-plane` writes them to
//! `${CMARCHIVE_CACHE:-$HOME/.cache/cmarchive}/control-plane/k8s-<v>_cm-<v>/{bin,crds,gateway-api-crds,versions.env}`; the default
//! versions are pinned once, in `crates/e2e/controlplane/versions.env`, which this module embeds at compile time.
//! `CMARCHIVE_CONTROL_PLANE_DIR` points at a `bin` directory directly and wins over the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The pinned default versions, shared with `scripts/build-control-plane`.
pub const VERSIONS_ENV: &str = include_str!("../controlplane/versions.env");

/// Environment variable naming the `bin` directory with the control-plane binaries.
pub const CONTROL_PLANE_DIR_ENV: &str = "CMARCHIVE_CONTROL_PLANE_DIR";
/// Environment variable overriding the cache root (`$HOME/.cache/cmarchive`).
pub const CACHE_ENV: &str = "CMARCHIVE_CACHE";

/// Binary names inside a control-plane `bin` directory.
pub const BINARIES: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "cert-manager-controller",
    "cert-manager-webhook",
    "cert-manager-cainjector",
];

/// Parses `KEY=VALUE` lines, skipping blank lines and `#` comments (the subset of shell both sides share).
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// The versions pinned in `versions.env`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    /// e.g. `v1.36.3`
    pub kubernetes: String,
    /// e.g. `v1.21.2`
    pub cert_manager: String,
    /// e.g. `v3.6.16`
    pub etcd: String,
    /// The Gateway API release of the CRDs gateway-shim needs, e.g. `v1.6.0`; `None` when a build has none.
    pub gateway_api: Option<String>,
}

impl Versions {
    /// Reads versions from `KEY=VALUE` text (either the pinned file or a build's own `versions.env`).
    pub fn parse(text: &str) -> anyhow::Result<Versions> {
        let env = parse_env(text);
        let get = |k: &str| env.get(k).cloned().with_context(|| format!("versions.env has no {k}"));
        Ok(Versions {
            kubernetes: get("KUBERNETES_VERSION")?,
            cert_manager: get("CERT_MANAGER_VERSION")?,
            etcd: get("ETCD_VERSION")?,
            gateway_api: env.get("GATEWAY_API_VERSION").filter(|v| !v.is_empty()).cloned(),
        })
    }

    /// The pinned defaults.
    pub fn pinned() -> Versions {
        Versions::parse(VERSIONS_ENV).expect("crates/e2e/controlplane/versions.env is well-formed")
    }
}

/// The Kubernetes version the local control plane runs for `cert_manager` (`vX.Y.Z`): the one `versions.env` pins
/// for its minor (`KUBERNETES_FOR_CERT_MANAGER_1_<minor>`), else the default. `scripts/build-control-plane` makes
/// the same choice.
pub fn kubernetes_for(cert_manager: &str) -> String {
    let env = parse_env(VERSIONS_ENV);
    let minor = cert_manager.split('.').nth(1).unwrap_or_default();
    env.get(&format!("KUBERNETES_FOR_CERT_MANAGER_1_{minor}"))
        .cloned()
        .unwrap_or_else(|| Versions::pinned().kubernetes)
}

/// The cache root: `$CMARCHIVE_CACHE`, else `$HOME/.cache/cmarchive`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("cmarchive")
}

/// The `bin` directory `scripts/build-control-plane` fills for a version pair.
pub fn default_bin_dir(kubernetes: &str, cert_manager: &str) -> PathBuf {
    cache_dir()
        .join("control-plane")
        .join(format!("k8s-{kubernetes}_cm-{cert_manager}"))
        .join("bin")
}

/// A built control plane: binaries, CRDs and the versions they were built from.
#[derive(Clone, Debug)]
pub struct ControlPlane {
    /// Directory holding the four binaries.
    pub bin_dir: PathBuf,
    /// Directory holding cert-manager's CRD manifests.
    pub crd_dir: PathBuf,
    /// Directory holding the Gateway API's standard CRDs (for clusters that run gateway-shim).
    pub gateway_api_crd_dir: PathBuf,
    /// What the build says it holds (its own `versions.env`, else the pinned defaults).
    pub versions: Versions,
}

impl ControlPlane {
    /// Finds the binaries for the default versions, or for `cert_manager` when given. Fails, never skips, with
    /// the command that builds what is missing.
    pub fn locate(cert_manager: Option<&str>) -> anyhow::Result<ControlPlane> {
        let pinned = Versions::pinned();
        let explicit = std::env::var_os(CONTROL_PLANE_DIR_ENV)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let bin_dir = match (&explicit, cert_manager) {
            (Some(dir), None) => dir.clone(),
            (Some(dir), Some(cm)) => {
                let here = ControlPlane::at(dir)?;
                if here.versions.cert_manager == cm {
                    dir.clone()
                } else {
                    // A sibling build for the other cert-manager version, next to the explicit one.
                    let root = dir.parent().and_then(Path::parent).unwrap_or(dir);
                    root.join(format!("k8s-{}_cm-{cm}", kubernetes_for(cm))).join("bin")
                }
            }
            (None, cm) => {
                let cm = cm.unwrap_or(&pinned.cert_manager);
                default_bin_dir(&kubernetes_for(cm), cm)
            }
        };
        let plane = ControlPlane::at(&bin_dir)?;
        if let Some(cm) = cert_manager
            && plane.versions.cert_manager != cm
        {
            bail!(
                "{} holds cert-manager {}, not {cm}; run: scripts/build-control-plane --cert-manager {cm}",
                bin_dir.display(),
                plane.versions.cert_manager
            );
        }
        Ok(plane)
    }

    /// Opens a `bin` directory and checks that every binary and the CRDs are there.
    pub fn at(bin_dir: &Path) -> anyhow::Result<ControlPlane> {
        let pinned = Versions::pinned();
        let root = bin_dir.parent().unwrap_or(bin_dir);
        let versions = match std::fs::read_to_string(root.join("versions.env")) {
            Ok(text) => Versions::parse(&text)?,
            Err(_) => pinned.clone(),
        };
        let hint = || {
            let mut cmd = "scripts/build-control-plane".to_owned();
            if versions.kubernetes != kubernetes_for(&versions.cert_manager) {
                cmd += &format!(" --kubernetes {}", versions.kubernetes);
            }
            if versions.cert_manager != pinned.cert_manager {
                cmd += &format!(" --cert-manager {}", versions.cert_manager);
            }
            format!(
                "the local control plane is not built in {} ({CONTROL_PLANE_DIR_ENV} or the default cache dir); \
                 run: {cmd}",
                bin_dir.display()
            )
        };
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|b| !bin_dir.join(b).is_file())
            .collect();
        if !missing.is_empty() {
            bail!("{} (missing: {})", hint(), missing.join(", "));
        }
        let crd_dir = root.join("crds");
        let has_crds = std::fs::read_dir(&crd_dir)
            .map(|rd| rd.flatten().any(|e| e.path().extension().is_some_and(|x| x == "yaml")))
            .unwrap_or(false);
        if !has_crds {
            bail!("{} (no CRDs in {})", hint(), crd_dir.display());
        }
        Ok(ControlPlane {
            bin_dir: bin_dir.to_owned(),
            crd_dir,
            gateway_api_crd_dir: root.join("gateway-api-crds"),
            versions,
        })
    }

    /// Full path of one binary.
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// cert-manager's CRD manifests, sorted by file name.
    pub fn crd_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        yaml_files(&self.crd_dir)
    }

    /// The Gateway API CRD manifests; an error naming the build command when this build has none (built before
    /// the script copied them, or a cert-manager release that does not depend on the Gateway API).
    pub fn gateway_api_crd_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let files = yaml_files(&self.gateway_api_crd_dir).unwrap_or_default();
        if files.is_empty() {
            bail!(
                "no Gateway API CRDs in {}; run: scripts/build-control-plane{}",
                self.gateway_api_crd_dir.display(),
                if self.versions.cert_manager == Versions::pinned().cert_manager {
                    String::new()
                } else {
                    format!(" --cert-manager {}", self.versions.cert_manager)
                }
            );
        }
        Ok(files)
    }
}

/// The `*.yaml` files of a directory, sorted by name.
fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_parse() {
        let v = Versions::pinned();
        assert!(v.kubernetes.starts_with("v1."), "{v:?}");
        assert!(v.cert_manager.starts_with("v1."), "{v:?}");
        assert!(v.etcd.starts_with("v3."), "{v:?}");
    }

    /// kind and k3s install the pinned Gateway API release; the local build uses the one cert-manager requires.
    /// Keeping them equal keeps the providers' gateway-shim clusters alike.
    #[test]
    fn pinned_gateway_api_matches_the_cert_manager_wrapper_module() {
        let go_mod = include_str!("../controlplane/cert-manager/go.mod");
        let required = go_mod
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("sigs.k8s.io/gateway-api "))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the cert-manager wrapper module requires sigs.k8s.io/gateway-api");
        assert_eq!(Versions::pinned().gateway_api.as_deref(), Some(required));
    }

    #[test]
    fn older_cert_manager_minors_run_a_kubernetes_they_support() {
        let pinned = Versions::pinned();
        assert_eq!(kubernetes_for(&pinned.cert_manager), pinned.kubernetes);
        assert_eq!(kubernetes_for("v1.20.2"), "v1.35.4");
        assert_eq!(kubernetes_for("v1.19.4"), "v1.34.4");
        // A release newer than any pin runs the default.
        assert_eq!(kubernetes_for("v1.99.0"), pinned.kubernetes);
    }

    #[test]
    fn env_parsing_skips_comments_and_quotes() {
        let env = parse_env("# c\n\nA=1\n B = \"two\" \nnot a pair\n");
        assert_eq!(env.get("A").map(String::as_str), Some("1"));
        assert_eq!(env.get("B").map(String::as_str), Some("two"));
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn missing_binaries_name_the_build_script() {
        let dir = tempfile::tempdir().unwrap();
        let err = ControlPlane::at(&dir.path().join("bin")).unwrap_err().to_string();
        assert!(err.contains("scripts/build-control-plane"), "{err}");
        assert!(err.contains("kube-apiserver"), "{err}");
    }
}
