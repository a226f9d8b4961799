//! Identity of a Kubernetes object held as JSON.
//!
//! Objects stay `serde_json::Value` end to end so that a backup never drops a field a newer cert-manager added.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Names one object; used for manifest entries, exclusions, warnings and error messages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectKey {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// Reads the identity fields of an object; `None` when `apiVersion`, `kind` or `metadata.name` is missing.
    pub fn of(object: &Value) -> Option<ObjectKey> {
        let api_version = object.get("apiVersion")?.as_str()?.to_owned();
        let kind = object.get("kind")?.as_str()?.to_owned();
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?.to_owned();
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .map(str::to_owned);
        Some(ObjectKey {
            api_version,
            kind,
            namespace,
            name,
        })
    }

    /// The API group: empty for the core group.
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `Kind/namespace/name` or `Kind/name`, the way a person searches for it in kubectl output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}
