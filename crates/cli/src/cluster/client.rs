//! Connecting to a cluster the way kubectl does, so a person's existing kubeconfig habits just work:
//! `--kubeconfig` names one file; otherwise `KUBECONFIG` is a list of files merged first-wins; otherwise
//! `~/.kube/config`; otherwise the in-cluster service account.

use anyhow::{Context as _, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

/// The user agent every request carries, so audit logs show who touched the cluster.
pub const USER_AGENT: &str = concat!("cmarchive/", env!("CARGO_PKG_VERSION"));

/// How to reach the cluster, as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`: exactly this file (kubectl semantics: it replaces `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: a context of the kubeconfig other than its current one.
    pub context: Option<String>,
}

/// A connected client plus the facts about the connection that go into a manifest or a message.
#[derive(Clone)]
pub struct Connection {
    /// The client, with cmarchive's user agent.
    pub client: kube::Client,
    /// API server URL.
    pub server: String,
    /// kubeconfig context in use; `None` in-cluster.
    pub context: Option<String>,
}

impl Connection {
    /// A short name for the cluster in messages: the context, or the server URL.
    pub fn display_name(&self) -> &str {
        self.context.as_deref().unwrap_or(&self.server)
    }
}

/// Where the kubeconfig comes from, decided before anything is read.
#[derive(Debug, PartialEq)]
enum Source {
    File(PathBuf),
    Env,
    Home(PathBuf),
    InCluster,
}

fn choose_source(options: &ConnectOptions, kubeconfig_env: Option<&str>, home: Option<PathBuf>) -> Source {
    if let Some(path) = &options.kubeconfig {
        return Source::File(path.clone());
    }
    if kubeconfig_env.is_some_and(|v| std::env::split_paths(v).any(|p| !p.as_os_str().is_empty())) {
        return Source::Env;
    }
    match home.map(|h| h.join(".kube").join("config")) {
        Some(path) if path.is_file() => Source::Home(path),
        _ => Source::InCluster,
    }
}

/// Reads and merges the files of a `KUBECONFIG` list, first value wins. Like kubectl, files that do not exist
/// are skipped; a list where none exists is an error.
fn merge_env_list(list: &str) -> Result<Kubeconfig> {
    let paths: Vec<PathBuf> = std::env::split_paths(list)
        .filter(|p| !p.as_os_str().is_empty() && p.exists())
        .collect();
    if paths.is_empty() {
        bail!("none of the files in KUBECONFIG ({list}) exists");
    }
    let mut merged = Kubeconfig::default();
    for path in paths {
        let next = Kubeconfig::read_from(&path)
            .with_context(|| format!("cannot read kubeconfig {} (from KUBECONFIG)", path.display()))?;
        merged = merged
            .merge(next)
            .with_context(|| format!("cannot merge kubeconfig {}", path.display()))?;
    }
    Ok(merged)
}

/// Connects with the options given, kubectl-style.
pub async fn connect(options: &ConnectOptions) -> Result<Connection> {
    let env = std::env::var("KUBECONFIG").ok();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let source = choose_source(options, env.as_deref(), home);
    tracing::debug!(?source, "kubeconfig source");
    let (mut config, context) = match source {
        Source::InCluster => {
            if let Some(context) = &options.context {
                bail!(
                    "--context {context} given, but no kubeconfig was found (no --kubeconfig, KUBECONFIG or ~/.kube/config)"
                );
            }
            let config = kube::Config::incluster().context(
                "no kubeconfig found (--kubeconfig, KUBECONFIG, ~/.kube/config) and not running inside a cluster",
            )?;
            (config, None)
        }
        other => {
            let kubeconfig = match &other {
                Source::File(path) | Source::Home(path) => {
                    Kubeconfig::read_from(path).with_context(|| format!("cannot read kubeconfig {}", path.display()))?
                }
                Source::Env => merge_env_list(env.as_deref().unwrap_or_default())?,
                Source::InCluster => unreachable!("handled above"),
            };
            let context = options.context.clone().or_else(|| kubeconfig.current_context.clone());
            if let Some(name) = &options.context
                && !kubeconfig.contexts.iter().any(|c| &c.name == name)
            {
                let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
                bail!(
                    "context {name:?} not found in the kubeconfig (known: {})",
                    known.join(", ")
                );
            }
            let kube_options = KubeConfigOptions {
                context: options.context.clone(),
                ..Default::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube_options)
                .await
                .context("cannot use the kubeconfig")?;
            (config, context)
        }
    };
    config
        .headers
        .push((http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT)));
    // One retry policy, cmarchive's (retry.rs): every retry of a 429 as of a leader change is then logged at -v
    // and counted in the report, instead of some vanishing inside kube-client's own layer.
    config.default_retry = false;
    let server = config.cluster_url.to_string().trim_end_matches('/').to_owned();
    let client = kube::Client::try_from(config).with_context(|| format!("cannot create a client for {server}"))?;
    Ok(Connection {
        client,
        server,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_environment_and_home() {
        let options = ConnectOptions {
            kubeconfig: Some("/x/kc".into()),
            context: None,
        };
        assert_eq!(
            choose_source(&options, Some("/a:/b"), Some("/home".into())),
            Source::File("/x/kc".into())
        );
    }

    #[test]
    fn environment_list_beats_home() {
        let options = ConnectOptions::default();
        assert_eq!(
            choose_source(&options, Some("/a:/b"), Some("/nonexistent-home".into())),
            Source::Env
        );
        // An empty KUBECONFIG is ignored, as kubectl does.
        assert_eq!(
            choose_source(&options, Some(""), Some("/nonexistent-home".into())),
            Source::InCluster
        );
    }

    #[test]
    fn environment_list_merges_first_wins_and_skips_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a");
        let second = dir.path().join("b");
        std::fs::write(
            &first,
            "apiVersion: v1\nkind: Config\ncurrent-context: one\nclusters:\n- name: c1\n  cluster:\n    server: https://one\n",
        )
        .unwrap();
        std::fs::write(
            &second,
            "apiVersion: v1\nkind: Config\ncurrent-context: two\nclusters:\n- name: c1\n  cluster:\n    server: https://two\n- name: c2\n  cluster:\n    server: https://other\n",
        )
        .unwrap();
        let missing = dir.path().join("missing");
        let list = std::env::join_paths([&missing, &first, &second]).unwrap();
        let merged = merge_env_list(list.to_str().unwrap()).unwrap();
        assert_eq!(merged.current_context.as_deref(), Some("one"));
        assert_eq!(merged.clusters.len(), 2);
        let c1 = merged.clusters.iter().find(|c| c.name == "c1").unwrap();
        assert_eq!(c1.cluster.as_ref().unwrap().server.as_deref(), Some("https://one"));
        assert!(merge_env_list(missing.to_str().unwrap()).is_err());
    }

    #[test]
    fn home_config_when_present() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".kube")).unwrap();
        std::fs::write(home.path().join(".kube/config"), "apiVersion: v1\nkind: Config\n").unwrap();
        let source = choose_source(&ConnectOptions::default(), None, Some(home.path().to_owned()));
        assert_eq!(source, Source::Home(home.path().join(".kube/config")));
    }
}
