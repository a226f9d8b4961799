//! Cluster errors a person has to act on, each saying what went wrong and what to do. Everything else travels
//! as `anyhow` context.

use thiserror::Error;

/// An error whose message is written for the person at the terminal.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The cert-manager API groups are not served.
    #[error("cert-manager CRDs not found in cluster {cluster}: is cert-manager installed?")]
    CertManagerMissing {
        /// Context or server of the cluster.
        cluster: String,
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
    #[error(
        "forbidden to {verb} {what}: {message}\n  remedy: grant `{verb}` on `{resource}`{scope} to the identity in the kubeconfig (for example with a Role and RoleBinding)"
    )]
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
    #[error("the kubeconfig's identity lacks permissions the restore needs:\n{}\n  remedy: grant them, or run with an identity that has them", missing.join("\n"))]
    MissingPermissions {
        /// One line per missing permission.
        missing: Vec<String>,
    },
    /// cert-manager's admission webhook did not become callable within the restore's `--timeout`.
    #[error(
        "cert-manager's API is not usable after waiting {}s: {cause}\n  remedy: {remedy}; then run the restore again: it resumes where it stopped", waited.as_secs()
    )]
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
        "{count} Certificate(s) would be reissued by cert-manager (listed above with its reason); nothing was written\n  remedy: restore each with its Secret (e.g. from a `cmarchive pack` archive), or pass --allow-reissue to let cert-manager issue new certificates"
    )]
    ReissueNotAllowed {
        /// How many.
        count: usize,
    },
    /// `--strict` and a referenced Secret does not exist.
    #[error("{count} referenced Secret(s) do not exist (--strict):\n{}\n  remedy: create them, or pack without --strict to record warnings instead", lines.join("\n"))]
    StrictMissingSecrets {
        /// Number of missing Secrets.
        count: usize,
        /// One line per missing Secret.
        lines: Vec<String>,
    },
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
