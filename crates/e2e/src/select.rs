//! Which provider the scenario suite runs on: `CMARCHIVE_E2E_PROVIDER=local|kind|k3s`, default `local`.
//!
//! The scenarios call [`provider`] and stay provider-neutral, so the nightly runs the same suite on kind. kind and
//! k3s need Docker: when it is missing the run stops with one message saying so. The default local provider has
//! no such escape hatch — if it cannot start, the suite fails.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;

use crate::provider::Provider;

/// Environment variable choosing the provider.
pub const ENV_PROVIDER: &str = "CMARCHIVE_E2E_PROVIDER";

/// The providers there are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProviderKind {
    /// Processes on loopback ports (the tier CI runs).
    #[default]
    Local,
    /// kind clusters (nightly, needs Docker and the kind CLI).
    Kind,
    /// k3s containers through testcontainers (needs Docker).
    K3s,
}

impl ProviderKind {
    /// The spelling used in [`ENV_PROVIDER`].
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Kind => "kind",
            ProviderKind::K3s => "k3s",
        }
    }

    /// Whether the provider runs clusters in Docker.
    pub fn needs_docker(self) -> bool {
        !matches!(self, ProviderKind::Local)
    }

    /// The kind named by an environment value; unset or empty means `local`.
    pub fn from_env_value(value: Option<&str>) -> anyhow::Result<ProviderKind> {
        match value.map(str::trim) {
            None | Some("") => Ok(ProviderKind::Local),
            Some(v) => v.parse(),
        }
    }
}

impl FromStr for ProviderKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<ProviderKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(ProviderKind::Local),
            "kind" => Ok(ProviderKind::Kind),
            "k3s" => Ok(ProviderKind::K3s),
            other => bail!("{ENV_PROVIDER}={other:?} is not a provider; use local, kind or k3s"),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider kind chosen by the environment.
pub fn kind_from_env() -> anyhow::Result<ProviderKind> {
    ProviderKind::from_env_value(std::env::var(ENV_PROVIDER).ok().as_deref())
}

/// Builds a provider of `kind`, checking up front that Docker is there for kind and k3s (and the kind CLI for
/// kind), so a missing tool gives one clear error instead of a failure deep inside cluster creation.
pub fn provider_of(kind: ProviderKind) -> anyhow::Result<Box<dyn Provider>> {
    if kind.needs_docker()
        && let Err(e) = crate::kind::require_docker()
    {
        bail!("{ENV_PROVIDER}={kind} cannot run here: {e:#}");
    }
    Ok(match kind {
        ProviderKind::Local => local_provider(),
        ProviderKind::Kind => {
            if let Err(e) = crate::kind::require_kind() {
                bail!("{ENV_PROVIDER}={kind} cannot run here: {e:#}");
            }
            Box::new(crate::kind::KindProvider::new())
        }
        ProviderKind::K3s => Box::new(crate::k3s::K3sProvider::new()),
    })
}

/// The one place the local provider is constructed for the suite.
fn local_provider() -> Box<dyn Provider> {
    Box::new(crate::local::LocalProvider::default())
}

/// The provider for this run, for scenario tests: panics with the reason when the environment names an unknown
/// provider or when kind/k3s was chosen on a machine without Docker.
pub fn provider() -> Box<dyn Provider> {
    match kind_from_env().and_then(provider_of) {
        Ok(p) => p,
        Err(e) => panic!("e2e provider unavailable: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values() {
        assert_eq!(ProviderKind::from_env_value(None).unwrap(), ProviderKind::Local);
        assert_eq!(ProviderKind::from_env_value(Some("")).unwrap(), ProviderKind::Local);
        assert_eq!(ProviderKind::from_env_value(Some("kind")).unwrap(), ProviderKind::Kind);
        assert_eq!(ProviderKind::from_env_value(Some(" K3S ")).unwrap(), ProviderKind::K3s);
        assert_eq!(
            ProviderKind::from_env_value(Some("local")).unwrap(),
            ProviderKind::Local
        );
        let err = ProviderKind::from_env_value(Some("minikube")).unwrap_err().to_string();
        assert!(err.contains("minikube") && err.contains(ENV_PROVIDER), "{err}");
        for k in [ProviderKind::Local, ProviderKind::Kind, ProviderKind::K3s] {
            assert_eq!(k.to_string().parse::<ProviderKind>().unwrap(), k);
        }
    }

    #[test]
    fn only_docker_providers_need_docker() {
        assert!(!ProviderKind::Local.needs_docker());
        assert!(ProviderKind::Kind.needs_docker());
        assert!(ProviderKind::K3s.needs_docker());
    }

    #[test]
    fn local_is_always_constructed() {
        assert_eq!(provider_of(ProviderKind::Local).unwrap().name(), "local");
    }

    /// On a machine without a Docker engine (such as the one CI runs on) the Docker providers refuse with a
    /// message naming what is missing; where Docker runs they construct.
    #[test]
    fn docker_providers_say_what_is_missing() {
        let docker = crate::kind::require_docker();
        let result = provider_of(ProviderKind::K3s);
        match docker {
            Ok(()) => assert_eq!(result.unwrap().name(), "k3s"),
            Err(_) => {
                let err = format!("{:#}", result.err().expect("k3s without Docker must fail"));
                assert!(
                    err.contains("CMARCHIVE_E2E_PROVIDER=k3s") && err.contains("Docker"),
                    "{err}"
                );
            }
        }
        if let Err(e) = provider_of(ProviderKind::Kind) {
            let err = format!("{e:#}");
            assert!(
                err.contains("CMARCHIVE_E2E_PROVIDER=kind") && (err.contains("Docker") || err.contains("kind")),
                "{err}"
            );
        }
    }
}
