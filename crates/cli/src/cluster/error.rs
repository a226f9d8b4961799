//! Cluster errors a person has to act on, each saying what went wrong, with [`ClusterError::remedy`] saying what
//! to do (printed as the same hint line as every other error's remedy). Everything else travels as `anyhow`
//! context inside [`ClusterError::Other`].

use thiserror::Error;

/// An error whose message is written for the person at the terminal.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The cert-manager API groups are not served.
    #[error("cert-manager CRDs not found in cluster {cluster}{}: is cert-manager installed?",
        unserved.as_ref().map(|kind| format!(" ({kind} is not served)")).unwrap_or_default())]
    CertManagerMissing {
        /// Context or server of the cluster.
        cluster: String,
        /// The one kind missing from a group that is otherwise served.
        unserved: Option<String>,
    },
    /// cert-manager is there but does not serve `v1`.
    #[error("cluster {cluster} serves {group} only in versions {served}, but cmarchive needs v1: upgrade cert-manager")]
    NoV1 {
        /// Context or server of the cluster.
        cluster: String,
        /// API group.
        group: String,
        /// Versions served.
        served: String,
    },
    /// The credentials may not read an object the backup needs.
    #[error("forbidden to {verb} {what}: {message}")]
    Forbidden {
        /// The verb that was refused.
        verb: String,
        /// The object, e.g. `Secret cert-manager/ca-key-pair`.
        what: String,
        /// Resource, e.g. `secrets` or `issuers.cert-manager.io`.
        resource: String,
        /// ` in namespace X` or empty.
        scope: String,
        /// The API server's message.
        message: String,
    },
    /// The restore preflight found verbs that are not allowed.
    #[error("the kubeconfig's identity lacks permissions the restore needs:\n{}", missing.join("\n"))]
    MissingPermissions {
        /// One line per missing permission.
        missing: Vec<String>,
    },
    /// cert-manager's admission webhook did not become callable within the restore's `--timeout`.
    #[error("cert-manager's API is not usable after waiting {}s: {cause}", waited.as_secs())]
    ApiNotReady {
        /// How long the restore waited.
        waited: std::time::Duration,
        /// Why the webhook could not be called.
        cause: String,
        /// What to check.
        remedy: String,
    },
    /// The prediction says cert-manager will reissue, and the restore was not told that this is fine.
    #[error(
        "{count} Certificate(s) would be reissued by cert-manager (listed above with its reason); nothing was written"
    )]
    ReissueNotAllowed {
        /// How many.
        count: usize,
    },
    /// `--strict` and a referenced Secret does not exist.
    #[error("{count} referenced Secret(s) do not exist (--strict):\n{}", lines.join("\n"))]
    StrictMissingSecrets {
        /// Number of missing Secrets.
        count: usize,
        /// One line per missing Secret.
        lines: Vec<String>,
    },
    /// `--strict` and objects that could not be read.
    #[error("--strict: {} object(s) could not be read:\n  {}", lines.len(), lines.join("\n  "))]
    StrictUnreadable {
        /// One line per object.
        lines: Vec<String>,
    },
    /// Anything else, with the context of what was being done.
    #[error("{0:#}")]
    Other(anyhow::Error),
}

impl From<anyhow::Error> for ClusterError {
    /// Keeps a typed error typed when it travelled through `?` as `anyhow` without context on top.
    fn from(error: anyhow::Error) -> ClusterError {
        if error.chain().count() > 1 {
            return ClusterError::Other(error);
        }
        error.downcast::<ClusterError>().unwrap_or_else(ClusterError::Other)
    }
}

impl ClusterError {
    /// What to do about it, when the message does not say so already.
    pub fn remedy(&self) -> Option<String> {
        match self {
            ClusterError::CertManagerMissing { .. } => Some(
                "install cert-manager in that cluster first (an archive packed with --include-crds carries its CRDs)"
                    .into(),
            ),
            ClusterError::NoV1 { .. } => None,
            ClusterError::Forbidden {
                verb, resource, scope, ..
            } => Some(format!(
                "grant `{verb}` on `{resource}`{scope} to the identity in the kubeconfig (for example with a Role and \
                 RoleBinding)"
            )),
            ClusterError::MissingPermissions { .. } => Some("grant them, or run with an identity that has them".into()),
            ClusterError::ApiNotReady { remedy, .. } => Some(format!(
                "{remedy}; then run the restore again: it resumes where it stopped"
            )),
            ClusterError::ReissueNotAllowed { .. } => Some(
                "restore each with its Secret (e.g. from a `cmarchive pack` archive), or pass --allow-reissue to let \
                 cert-manager issue new certificates"
                    .into(),
            ),
            ClusterError::StrictMissingSecrets { .. } => {
                Some("create them, or pack without --strict to record warnings instead".into())
            }
            ClusterError::StrictUnreadable { .. } => {
                Some("grant the missing permissions, or pack without --strict to record warnings instead".into())
            }
            // A typed error under added context still has its remedy.
            ClusterError::Other(error) => error
                .chain()
                .find_map(|e| e.downcast_ref::<ClusterError>())
                .and_then(ClusterError::remedy),
        }
    }
}

/// The HTTP status code of a kube API error, if it is one.
pub fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether a kube error is an API error with this code.
pub fn is_code(error: &kube::Error, code: u16) -> bool {
    api_code(error) == Some(code)
}

/// The API server's message of an API error, or the error itself.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// The fields a server-side apply conflicted on (`.data.keystore.p12`, …), as the API server lists them.
pub fn conflict_fields(error: &kube::Error) -> Vec<String> {
    match error {
        kube::Error::Api(status) => status
            .details
            .iter()
            .flat_map(|d| &d.causes)
            .filter(|c| !c.field.is_empty())
            .map(|c| c.field.clone())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    fn forbidden() -> ClusterError {
        ClusterError::Forbidden {
            verb: "get".into(),
            what: "Secret a/b".into(),
            resource: "secrets".into(),
            scope: " in namespace a".into(),
            message: "no".into(),
        }
    }

    /// A typed error that travelled through `?` as `anyhow` comes back typed; under added context it keeps the
    /// context in its message and its remedy.
    #[test]
    fn typed_errors_survive_anyhow() {
        let back = ClusterError::from(anyhow::Error::new(forbidden()));
        assert!(matches!(back, ClusterError::Forbidden { .. }), "{back:?}");
        let wrapped: anyhow::Result<()> = Err(forbidden()).context("collecting issuers");
        let back = ClusterError::from(wrapped.unwrap_err());
        assert!(matches!(back, ClusterError::Other(_)), "{back:?}");
        assert!(
            back.to_string()
                .starts_with("collecting issuers: forbidden to get Secret a/b"),
            "{back}"
        );
        assert_eq!(back.remedy(), forbidden().remedy());
        assert!(
            forbidden()
                .remedy()
                .unwrap()
                .contains("grant `get` on `secrets` in namespace a")
        );
        assert_eq!(ClusterError::from(anyhow::anyhow!("plain")).remedy(), None);
    }
}
