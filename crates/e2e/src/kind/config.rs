//! Pure configuration logic of the Docker-based providers: which cert-manager version and manifest to use, which
//! kind node image or k3s tag runs which Kubernetes version, how clusters are named and how the controller's flags
//! are put into the release manifest. Kept free of I/O so it is tested on machines without Docker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::provider::ClusterSpec;

/// Environment variable: cert-manager version to install when the spec leaves it open (the nightly sets it).
pub const ENV_CERT_MANAGER_VERSION: &str = "CMARCHIVE_CERT_MANAGER_VERSION";
/// Environment variable: a local `cert-manager.yaml` to install instead of downloading the release manifest.
pub const ENV_CERT_MANAGER_MANIFEST: &str = "CMARCHIVE_CERT_MANAGER_MANIFEST";
/// Environment variable: Kubernetes version of the cluster (`1.35` or `v1.35.1`).
pub const ENV_KUBERNETES_VERSION: &str = "CMARCHIVE_KUBERNETES_VERSION";
/// Environment variable: a complete kind node image reference, overriding [`ENV_KUBERNETES_VERSION`].
pub const ENV_KIND_NODE_IMAGE: &str = "CMARCHIVE_KIND_NODE_IMAGE";
/// Environment variable: a kind cluster config file, instead of `kind-configs/single-node.yaml`.
pub const ENV_KIND_CONFIG: &str = "CMARCHIVE_KIND_CONFIG";
/// Environment variable: a `rancher/k3s` image tag, overriding [`ENV_KUBERNETES_VERSION`].
pub const ENV_K3S_TAG: &str = "CMARCHIVE_K3S_TAG";
/// Environment variable: where cluster logs go (default `target/e2e-logs`), uploaded by the nightly on failure.
pub const ENV_LOG_DIR: &str = "CMARCHIVE_E2E_LOG_DIR";
/// Environment variable: `1` keeps kind clusters after the test, for poking at them by hand.
pub const ENV_KEEP_CLUSTERS: &str = "CMARCHIVE_E2E_KEEP_CLUSTERS";

/// Namespace, Deployment and container names of the static release manifest.
pub const CERT_MANAGER_NAMESPACE: &str = "cert-manager";
/// The controller Deployment (the webhook and cainjector have their own).
pub const CONTROLLER_DEPLOYMENT: &str = "cert-manager";
/// The controller's container inside [`CONTROLLER_DEPLOYMENT`].
pub const CONTROLLER_CONTAINER: &str = "cert-manager-controller";

/// kind release whose node images are pinned in [`KIND_NODE_IMAGES`]; the workflows install this kind.
pub const KIND_VERSION: &str = "v0.32.0";

/// Node images built for [`KIND_VERSION`], by Kubernetes minor. kind only promises that an image works with the
/// kind release it was published with, so they are pinned by digest (the same digests cert-manager's own e2e
/// setup uses for that kind release).
pub const KIND_NODE_IMAGES: &[(&str, &str)] = &[
    (
        "1.33",
        "docker.io/kindest/node@sha256:3f5c8443c620245e4d355cfe09e96a91ead32ceaa569d3f1ca9edf0cb2fe2ff4",
    ),
    (
        "1.34",
        "docker.io/kindest/node@sha256:02722c2dedddcfc00febf5d27fbeb9b7b2c14294c82109ff4a85d89ac9ba3256",
    ),
    (
        "1.35",
        "docker.io/kindest/node@sha256:ce977ae6d65918d0b58a5f8b5e940429c2ce42fa3a5619ec2bbc60b949c0ac95",
    ),
    (
        "1.36",
        "docker.io/kindest/node@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5",
    ),
];

/// A release version `vMAJOR.MINOR.PATCH[-pre]`, parsed enough to compare minors and build URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major, minor, patch.
    pub numbers: (u64, u64, u64),
    /// Pre-release suffix without the dash (`alpha.0`), if any.
    pub pre: Option<String>,
}

impl Version {
    /// Parses `v1.21.2`, `1.21.2` or `v1.22.0-alpha.0`; a missing patch (`1.35`) is an error, see [`parse_minor`].
    pub fn parse(text: &str) -> anyhow::Result<Version> {
        let t = text.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let (core, pre) = match t.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_owned())),
            Some(_) => bail!("version {text:?} has an empty pre-release suffix"),
            None => (t, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else {
            bail!("version {text:?} is not of the form vMAJOR.MINOR.PATCH");
        };
        let num = |s: &str| -> anyhow::Result<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                bail!("version {text:?} has a non-numeric part {s:?}");
            }
            Ok(s.parse()?)
        };
        Ok(Version {
            numbers: (num(major)?, num(minor)?, num(patch)?),
            pre,
        })
    }

    /// `vX.Y.Z[-pre]`, the spelling of release tags.
    pub fn tag(&self) -> String {
        let (a, b, c) = self.numbers;
        match &self.pre {
            Some(pre) => format!("v{a}.{b}.{c}-{pre}"),
            None => format!("v{a}.{b}.{c}"),
        }
    }

    /// `X.Y`.
    pub fn minor(&self) -> String {
        format!("{}.{}", self.numbers.0, self.numbers.1)
    }
}

/// `1.35`, `v1.35` or `v1.35.2` → `1.35`.
pub fn parse_minor(text: &str) -> anyhow::Result<String> {
    if let Ok(v) = Version::parse(text) {
        return Ok(v.minor());
    }
    let t = text.trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    match t.split_once('.') {
        Some((a, b))
            if !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit()) =>
        {
            Ok(format!("{a}.{b}"))
        }
        _ => bail!("Kubernetes version {text:?} is neither MAJOR.MINOR nor vMAJOR.MINOR.PATCH"),
    }
}

/// The release manifest of a cert-manager version; the static install the project documents.
pub fn manifest_url(version: &str) -> anyhow::Result<String> {
    let tag = Version::parse(version)
        .with_context(|| format!("cert-manager version {version:?}"))?
        .tag();
    Ok(format!(
        "https://github.com/cert-manager/cert-manager/releases/download/{tag}/cert-manager.yaml"
    ))
}

/// The Gateway API's standard-channel install manifest (its CRDs), which gateway-shim needs before the controller
/// starts with `--enable-gateway-api`.
pub fn gateway_api_manifest_url(version: &str) -> anyhow::Result<String> {
    let tag = Version::parse(version)
        .with_context(|| format!("Gateway API version {version:?}"))?
        .tag();
    Ok(format!(
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/{tag}/standard-install.yaml"
    ))
}

/// Where the cert-manager manifest comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestSource {
    /// Downloaded from this URL (and cached under this file name).
    Release {
        /// Release tag, `vX.Y.Z`.
        version: String,
        /// The release asset URL.
        url: String,
    },
    /// A file on disk, e.g. a manifest built from a cert-manager checkout.
    File(PathBuf),
}

/// Version to install: the spec's, else the environment's, else the project's pinned default.
pub fn resolve_cert_manager_version(
    spec: Option<&str>,
    env: Option<&str>,
    pinned: Option<&str>,
) -> anyhow::Result<String> {
    let chosen = [spec, env, pinned]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|v| !v.is_empty());
    let Some(chosen) = chosen else {
        bail!(
            "no cert-manager version: set {ENV_CERT_MANAGER_VERSION} or pin CERT_MANAGER_VERSION in crates/e2e/controlplane/versions.env"
        );
    };
    Ok(Version::parse(chosen)
        .with_context(|| format!("cert-manager version {chosen:?}"))?
        .tag())
}

/// The manifest to install: a local file when one is given, else the release asset of `version`.
pub fn manifest_source(version: &str, local_file: Option<&str>) -> anyhow::Result<ManifestSource> {
    match local_file.map(str::trim).filter(|f| !f.is_empty()) {
        Some(file) => Ok(ManifestSource::File(PathBuf::from(file))),
        None => Ok(ManifestSource::Release {
            version: version.to_owned(),
            url: manifest_url(version)?,
        }),
    }
}

/// The node image for a Kubernetes version. A full version (`v1.35.2`) names the tag directly and is only as safe
/// as that tag's match with the installed kind; a minor (`1.35`) picks the digest pinned for [`KIND_VERSION`].
pub fn kind_node_image(kubernetes: &str) -> anyhow::Result<String> {
    if let Ok(v) = Version::parse(kubernetes) {
        return Ok(format!("docker.io/kindest/node:{}", v.tag()));
    }
    let minor = parse_minor(kubernetes)?;
    match KIND_NODE_IMAGES.iter().find(|(m, _)| *m == minor) {
        Some((_, image)) => Ok((*image).to_owned()),
        None => {
            let known: Vec<&str> = KIND_NODE_IMAGES.iter().map(|(m, _)| *m).collect();
            bail!(
                "no kind node image pinned for Kubernetes {minor} (pinned for kind {KIND_VERSION}: {}); pass a full \
                 version such as v{minor}.0 or set {ENV_KIND_NODE_IMAGE}",
                known.join(", ")
            )
        }
    }
}

/// The node image for this run: an explicit image wins, then a Kubernetes version, then the pinned default.
pub fn choose_kind_node_image(
    explicit_image: Option<&str>,
    kubernetes: Option<&str>,
    pinned_kubernetes: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(image) = explicit_image.map(str::trim).filter(|i| !i.is_empty()) {
        return Ok(image.to_owned());
    }
    match [kubernetes, pinned_kubernetes]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|v| !v.is_empty())
    {
        // The pinned default is a full version for the local build; its minor picks the digest-pinned image.
        Some(v) if kubernetes.is_none_or(|k| k.trim().is_empty()) => kind_node_image(&parse_minor(v)?),
        Some(v) => kind_node_image(v),
        None => {
            bail!("no Kubernetes version: set {ENV_KUBERNETES_VERSION} or {ENV_KIND_NODE_IMAGE}")
        }
    }
}

/// The `rancher/k3s` tag for a Kubernetes version: k3s tags releases `vX.Y.Z-k3s1`, so a full version is needed.
pub fn k3s_tag(explicit_tag: Option<&str>, kubernetes: Option<&str>) -> anyhow::Result<String> {
    if let Some(tag) = explicit_tag.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(tag.to_owned());
    }
    let Some(k) = kubernetes.map(str::trim).filter(|k| !k.is_empty()) else {
        bail!("no Kubernetes version for k3s: set {ENV_KUBERNETES_VERSION} (vX.Y.Z) or {ENV_K3S_TAG}");
    };
    let v = Version::parse(k).with_context(|| {
        format!("k3s images are tagged by full Kubernetes version (vX.Y.Z-k3s1); set {ENV_K3S_TAG} for {k:?}")
    })?;
    if v.pre.is_some() {
        bail!("k3s does not publish pre-release Kubernetes {k:?}; set {ENV_K3S_TAG}");
    }
    Ok(format!("{}-k3s1", v.tag()))
}

/// Longest name we hand kind: its node container is `<name>-control-plane`, which must stay a valid hostname
/// (63 characters) after kind adds its own suffix.
pub const MAX_CLUSTER_NAME: usize = 40;

/// A kind cluster name for one test cluster: `cmarchive-<spec name>-<unique>`, lower-case, `[a-z0-9-]` only, short
/// enough for kind; `unique` keeps parallel tests and leftover clusters of earlier runs apart.
pub fn cluster_name(spec_name: &str, unique: &str) -> String {
    let clean = |s: &str| -> String {
        let mut out = String::new();
        for c in s.chars().flat_map(char::to_lowercase) {
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            };
            if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
                out.push(c);
            }
        }
        out.trim_end_matches('-').to_owned()
    };
    let unique = clean(unique);
    let mut name = clean(spec_name);
    if name.is_empty() {
        name.push_str("cluster");
    }
    let fixed = "cmarchive-".len() + if unique.is_empty() { 0 } else { unique.len() + 1 };
    let room = MAX_CLUSTER_NAME.saturating_sub(fixed).max(1);
    name.truncate(room);
    let name = name.trim_end_matches('-');
    if unique.is_empty() {
        format!("cmarchive-{name}")
    } else {
        format!("cmarchive-{name}-{unique}")
    }
}

/// The controller's arguments with the spec's flags applied: flags the spec owns are replaced (the release
/// manifest sets `--cluster-resource-namespace=$(POD_NAMESPACE)`), everything else is kept in order.
pub fn controller_args(existing: &[String], spec: &ClusterSpec) -> Vec<String> {
    // Flags the spec decides: any value the manifest had for them is replaced.
    const OWNED: [&str; 7] = [
        "--cluster-resource-namespace",
        "--enable-certificate-owner-ref",
        "--enable-gateway-api",
        "--dns01-recursive-nameservers",
        "--dns01-recursive-nameservers-only",
        "--dns01-check-retry-period",
        "--feature-gates",
    ];
    let owned = |arg: &str| {
        OWNED
            .iter()
            .any(|f| arg == *f || arg.strip_prefix(f).is_some_and(|r| r.starts_with('=')))
    };
    let mut feature_gates: Vec<String> = Vec::new();
    let mut args: Vec<String> = Vec::new();
    for arg in existing {
        if let Some(gates) = arg.strip_prefix("--feature-gates=") {
            feature_gates.extend(gates.split(',').filter(|g| !g.is_empty()).map(str::to_owned));
        } else if !owned(arg) {
            args.push(arg.clone());
        }
    }
    args.extend(spec.controller_flags());
    // The spec's gates override the manifest's gates of the same name.
    let mut gates: BTreeMap<String, String> = BTreeMap::new();
    for gate in feature_gates.iter().chain(&spec.feature_gates) {
        let (name, value) = gate.split_once('=').unwrap_or((gate.as_str(), "true"));
        gates.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    if !gates.is_empty() {
        let joined: Vec<String> = gates.into_iter().map(|(n, v)| format!("{n}={v}")).collect();
        args.push(format!("--feature-gates={}", joined.join(",")));
    }
    args
}

/// Applies [`controller_args`] to the controller Deployment inside the parsed release manifest; an error when the
/// manifest has no such Deployment, so a renamed one in a new release fails loudly instead of running unpatched.
pub fn patch_manifest(docs: &mut [Value], spec: &ClusterSpec) -> anyhow::Result<()> {
    let mut patched = false;
    for doc in docs.iter_mut() {
        if doc["kind"] != "Deployment"
            || doc["metadata"]["name"] != CONTROLLER_DEPLOYMENT
            || doc["metadata"]["namespace"] != CERT_MANAGER_NAMESPACE
        {
            continue;
        }
        let Some(containers) = doc
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        else {
            bail!("the {CONTROLLER_DEPLOYMENT} Deployment has no containers");
        };
        for container in containers.iter_mut().filter(|c| c["name"] == CONTROLLER_CONTAINER) {
            let existing: Vec<String> = container["args"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            container["args"] = Value::from(controller_args(&existing, spec));
            patched = true;
        }
    }
    if !patched {
        bail!(
            "the manifest has no Deployment {CERT_MANAGER_NAMESPACE}/{CONTROLLER_DEPLOYMENT} with a container \
             {CONTROLLER_CONTAINER}"
        );
    }
    Ok(())
}

/// Splits a multi-document manifest into objects, dropping empty documents.
pub fn parse_manifest(text: &str) -> anyhow::Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).context("parsing the cert-manager manifest")?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| d.is_object()).collect();
    for doc in &docs {
        if doc["apiVersion"].as_str().is_none() || doc["kind"].as_str().is_none() {
            bail!(
                "manifest object without apiVersion/kind: {}",
                truncate(&doc.to_string(), 200)
            );
        }
    }
    Ok(docs)
}

/// Apply order: CRDs and Namespaces before the objects that need them; otherwise the manifest's order.
pub fn apply_order(docs: &mut [Value]) {
    let rank = |d: &Value| match d["kind"].as_str() {
        Some("CustomResourceDefinition") => 0,
        Some("Namespace") => 1,
        _ => 2,
    };
    docs.sort_by_key(rank);
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The repository root, for finding `kind-configs/` and `scripts/`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project's pinned versions (`crates/e2e/controlplane/versions.env`), the defaults when nothing else says.
pub fn pinned() -> crate::controlplane::Versions {
    crate::controlplane::Versions::pinned()
}

/// Reads a non-empty environment variable.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> ClusterSpec {
        ClusterSpec::named("source")
    }

    #[test]
    fn versions_parse_and_print_as_tags() {
        assert_eq!(Version::parse("v1.21.2").unwrap().numbers, (1, 21, 2));
        assert_eq!(Version::parse("1.21.2").unwrap().tag(), "v1.21.2");
        assert_eq!(Version::parse("v1.22.0-alpha.0").unwrap().tag(), "v1.22.0-alpha.0");
        assert_eq!(Version::parse("v1.22.0-alpha.0").unwrap().minor(), "1.22");
        for bad in ["", "v1", "1.35", "v1.2.3.4", "v1.x.0", "v1.2.3-", "latest", "v1..2"] {
            assert!(Version::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse_minor("1.35").unwrap(), "1.35");
        assert_eq!(parse_minor("v1.35").unwrap(), "1.35");
        assert_eq!(parse_minor("v1.35.4").unwrap(), "1.35");
        assert!(parse_minor("1").is_err());
        assert!(parse_minor("1.x").is_err());
    }

    #[test]
    fn manifest_url_names_the_release_asset() {
        assert_eq!(
            manifest_url("v1.21.2").unwrap(),
            "https://github.com/cert-manager/cert-manager/releases/download/v1.21.2/cert-manager.yaml"
        );
        assert_eq!(manifest_url("1.20.0").unwrap(), manifest_url("v1.20.0").unwrap());
        assert!(manifest_url("v1.21").is_err());
        assert!(manifest_url("../../evil").is_err());
        assert_eq!(
            gateway_api_manifest_url("1.6.0").unwrap(),
            "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.0/standard-install.yaml"
        );
        assert!(gateway_api_manifest_url("latest").is_err());
    }

    #[test]
    fn version_precedence_is_spec_then_env_then_pin() {
        assert_eq!(
            resolve_cert_manager_version(Some("v1.20.1"), Some("v1.21.0"), Some("v1.21.2")).unwrap(),
            "v1.20.1"
        );
        assert_eq!(
            resolve_cert_manager_version(None, Some("1.21.0"), Some("v1.21.2")).unwrap(),
            "v1.21.0"
        );
        assert_eq!(
            resolve_cert_manager_version(None, Some("  "), Some("v1.21.2")).unwrap(),
            "v1.21.2"
        );
        assert!(resolve_cert_manager_version(None, None, None).is_err());
        assert!(resolve_cert_manager_version(None, Some("nightly"), None).is_err());
    }

    #[test]
    fn manifest_source_prefers_a_local_file() {
        assert_eq!(
            manifest_source("v1.21.2", Some("/tmp/cm.yaml")).unwrap(),
            ManifestSource::File("/tmp/cm.yaml".into())
        );
        assert_eq!(
            manifest_source("v1.21.2", Some("")).unwrap(),
            ManifestSource::Release {
                version: "v1.21.2".into(),
                url: manifest_url("v1.21.2").unwrap()
            }
        );
    }

    #[test]
    fn kind_node_images_by_minor_are_digest_pinned() {
        for (minor, image) in KIND_NODE_IMAGES {
            assert_eq!(kind_node_image(minor).unwrap(), *image);
            assert_eq!(kind_node_image(&format!("v{minor}")).unwrap(), *image);
            let digest = image.rsplit_once("@sha256:").expect("pinned by digest").1;
            assert_eq!(digest.len(), 64);
            assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(kind_node_image("v1.35.2").unwrap(), "docker.io/kindest/node:v1.35.2");
        let err = kind_node_image("1.20").unwrap_err().to_string();
        assert!(err.contains("1.20") && err.contains(ENV_KIND_NODE_IMAGE), "{err}");
    }

    #[test]
    fn kind_node_image_choice() {
        assert_eq!(
            choose_kind_node_image(Some("my/node:x"), Some("1.35"), None).unwrap(),
            "my/node:x"
        );
        assert_eq!(
            choose_kind_node_image(None, Some("1.34"), Some("v1.36.3")).unwrap(),
            KIND_NODE_IMAGES[1].1
        );
        // The pinned default is a full version but still gets the digest-pinned image of its minor.
        assert_eq!(
            choose_kind_node_image(None, None, Some("v1.36.3")).unwrap(),
            KIND_NODE_IMAGES[3].1
        );
        assert_eq!(
            choose_kind_node_image(None, Some(" "), Some("v1.33.1")).unwrap(),
            KIND_NODE_IMAGES[0].1
        );
        assert!(choose_kind_node_image(None, None, None).is_err());
    }

    #[test]
    fn k3s_tags() {
        assert_eq!(k3s_tag(None, Some("v1.35.2")).unwrap(), "v1.35.2-k3s1");
        assert_eq!(k3s_tag(None, Some("1.35.2")).unwrap(), "v1.35.2-k3s1");
        assert_eq!(k3s_tag(Some("v1.34.1-k3s2"), Some("v1.35.2")).unwrap(), "v1.34.1-k3s2");
        assert!(k3s_tag(None, Some("1.35")).is_err());
        assert!(k3s_tag(None, Some("v1.36.0-rc.1")).is_err());
        assert!(k3s_tag(None, None).is_err());
    }

    #[test]
    fn cluster_names_are_valid_for_kind() {
        assert_eq!(cluster_name("source", "1a2b"), "cmarchive-source-1a2b");
        assert_eq!(cluster_name("Target_Cluster 2", "X9"), "cmarchive-target-cluster-2-x9");
        assert_eq!(cluster_name("--", ""), "cmarchive-cluster");
        let long = cluster_name(&"restore-into-a-fresh-cluster-".repeat(5), "p1234-7");
        assert!(long.len() <= MAX_CLUSTER_NAME, "{long}");
        assert!(long.ends_with("-p1234-7"), "{long}");
        for name in [long, cluster_name("ÄÖ", "u"), cluster_name("a.b/c", "1")] {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
            assert!(!name.contains("--") && !name.ends_with('-'), "{name}");
        }
    }

    fn release_args() -> Vec<String> {
        [
            "--v=2",
            "--cluster-resource-namespace=$(POD_NAMESPACE)",
            "--leader-election-namespace=kube-system",
            "--acme-http01-solver-image=quay.io/jetstack/cert-manager-acmesolver:v1.21.2",
            "--max-concurrent-challenges=60",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn controller_args_default_spec() {
        let args = controller_args(&release_args(), &spec());
        assert_eq!(
            args,
            [
                "--v=2",
                "--leader-election-namespace=kube-system",
                "--acme-http01-solver-image=quay.io/jetstack/cert-manager-acmesolver:v1.21.2",
                "--max-concurrent-challenges=60",
                "--cluster-resource-namespace=cert-manager",
                "--enable-certificate-owner-ref=false",
            ]
        );
    }

    #[test]
    fn controller_args_with_owner_refs_namespace_and_gates() {
        let mut s = spec();
        s.cluster_resource_namespace = "issuers".into();
        s.enable_certificate_owner_ref = true;
        s.enable_gateway_api = true;
        s.dns01_nameserver = Some("10.0.0.53:53".into());
        s.feature_gates = vec![
            "ServerSideApply=true".into(),
            "ExperimentalCertificateSigningRequestControllers=false".into(),
        ];
        let mut existing = release_args();
        existing.push("--enable-certificate-owner-ref=false".into());
        existing.push("--feature-gates=ServerSideApply=false,AdditionalCertificateOutputFormats=true".into());
        let args = controller_args(&existing, &s);
        assert_eq!(
            args.iter()
                .filter(|a| a.starts_with("--cluster-resource-namespace"))
                .count(),
            1
        );
        assert!(args.contains(&"--cluster-resource-namespace=issuers".to_owned()));
        assert!(args.contains(&"--enable-certificate-owner-ref=true".to_owned()));
        assert!(!args.contains(&"--enable-certificate-owner-ref=false".to_owned()));
        assert!(args.contains(&"--enable-gateway-api=true".to_owned()));
        assert!(args.contains(&"--dns01-recursive-nameservers=10.0.0.53:53".to_owned()));
        assert!(args.contains(&"--dns01-recursive-nameservers-only=true".to_owned()));
        assert!(args.contains(&"--dns01-check-retry-period=1s".to_owned()));
        assert!(
            !controller_args(&args, &spec())
                .iter()
                .any(|a| a.starts_with("--enable-gateway-api"))
        );
        assert_eq!(
            args.last().unwrap(),
            "--feature-gates=AdditionalCertificateOutputFormats=true,\
             ExperimentalCertificateSigningRequestControllers=false,ServerSideApply=true"
        );
        // Idempotent: patching twice gives the same flags.
        assert_eq!(controller_args(&args, &s), args);
        // Flags that merely share a prefix are not the spec's.
        let other = vec!["--cluster-resource-namespace-extra=x".to_owned()];
        assert!(controller_args(&other, &spec()).contains(&other[0]));
    }

    const MANIFEST: &str = r#"
# Source: cert-manager/templates/crds.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: issuers.cert-manager.io
---
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cert-manager
  namespace: cert-manager
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: cert-manager-controller
          image: "quay.io/jetstack/cert-manager-controller:v1.21.2"
          args:
          - --v=2
          - --cluster-resource-namespace=$(POD_NAMESPACE)
          - --leader-election-namespace=kube-system
---
apiVersion: v1
kind: Namespace
metadata:
  name: cert-manager
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cert-manager-webhook
  namespace: cert-manager
spec:
  template:
    spec:
      containers:
        - name: cert-manager-webhook
          args: ["--v=2", "--secure-port=10250"]
"#;

    #[test]
    fn manifest_is_parsed_ordered_and_patched() {
        let mut docs = parse_manifest(MANIFEST).unwrap();
        assert_eq!(docs.len(), 4);
        apply_order(&mut docs);
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["CustomResourceDefinition", "Namespace", "Deployment", "Deployment"]
        );
        let mut s = spec();
        s.enable_certificate_owner_ref = true;
        patch_manifest(&mut docs, &s).unwrap();
        assert_eq!(
            docs[2].pointer("/spec/template/spec/containers/0/args").unwrap(),
            &json!([
                "--v=2",
                "--leader-election-namespace=kube-system",
                "--cluster-resource-namespace=cert-manager",
                "--enable-certificate-owner-ref=true"
            ])
        );
        // The webhook is left alone.
        assert_eq!(
            docs[3].pointer("/spec/template/spec/containers/0/args").unwrap(),
            &json!(["--v=2", "--secure-port=10250"])
        );
    }

    #[test]
    fn manifest_without_controller_is_an_error() {
        let mut docs = parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: cert-manager}\n").unwrap();
        let err = patch_manifest(&mut docs, &spec()).unwrap_err().to_string();
        assert!(err.contains("cert-manager-controller"), "{err}");
        assert!(parse_manifest("kind: Namespace\n").is_err());
    }

    #[test]
    fn kind_config_in_repo_is_single_node_v1alpha4() {
        let path = workspace_root().join("kind-configs/single-node.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = parse_manifest(&text).unwrap();
        assert_eq!(docs.len(), 1);
        let cfg = &docs[0];
        assert_eq!(cfg["apiVersion"], "kind.x-k8s.io/v1alpha4");
        assert_eq!(cfg["kind"], "Cluster");
        assert_eq!(cfg["nodes"], json!([{ "role": "control-plane" }]));
        // The node image is chosen per run (`--image`), never fixed in the file.
        assert!(cfg["nodes"][0].get("image").is_none());
        let patches = cfg["kubeadmConfigPatches"].as_array().unwrap();
        let patch: Value = serde_saphyr::from_str(patches[0].as_str().unwrap()).unwrap();
        assert_eq!(patch["kind"], "ClusterConfiguration");
        assert_eq!(patch["etcd"]["local"]["extraArgs"]["unsafe-no-fsync"], "true");
    }
}
