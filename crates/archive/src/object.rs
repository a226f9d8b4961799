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
    /// An identity from its four parts, for readers that find them side by side with other fields.
    pub fn new(api_version: String, kind: String, namespace: Option<String>, name: String) -> ObjectKey {
        ObjectKey {
            api_version,
            kind,
            namespace,
            name,
        }
    }

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

    /// [`ObjectKey::of`] straight from JSON bytes, without building the object: the identity fields are read and
    /// everything else is only checked to be well-formed JSON. `Err` when the bytes are not JSON; `Ok(None)` when
    /// they are JSON but not a Kubernetes object.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<Option<ObjectKey>, String> {
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(rename = "apiVersion")]
            api_version: Option<String>,
            kind: Option<String>,
            metadata: Option<Metadata>,
        }
        #[derive(serde::Deserialize)]
        struct Metadata {
            name: Option<String>,
            namespace: Option<String>,
        }
        match serde_json::from_slice::<Head>(bytes) {
            Ok(head) => {
                let (Some(api_version), Some(kind), Some(metadata)) = (head.api_version, head.kind, head.metadata)
                else {
                    return Ok(None);
                };
                let Some(name) = metadata.name else {
                    return Ok(None);
                };
                Ok(Some(ObjectKey {
                    api_version,
                    kind,
                    namespace: metadata.namespace.filter(|ns| !ns.is_empty()),
                    name,
                }))
            }
            // Not shaped like an object (an array, a number where a string belongs, …): decide on the full value,
            // so the answer is exactly [`ObjectKey::of`]'s.
            Err(_) => match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => Ok(ObjectKey::of(&value)),
                Err(e) => Err(format!("not JSON: {e}")),
            },
        }
    }

    /// The API group: empty for the core group.
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }
}

/// Serializes a value into a `Vec` of exactly its length. `serde_json::to_vec` grows its buffer by doubling and
/// keeps the slack, up to half of each allocation; across the tens of thousands of objects a pack or a restore
/// holds as bytes, that slack was tens of megabytes.
pub fn to_json_exact(value: &Value) -> Vec<u8> {
    write_exact(|out| serde_json::to_writer(out, value).expect("a JSON value serializes"))
}

/// Runs `write` into this thread's scratch buffer and returns a copy of exactly the bytes written (see
/// [`to_json_exact`]).
pub(crate) fn write_exact(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        write(scratch);
        scratch.as_slice().to_vec()
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The byte-level reader must agree with [`ObjectKey::of`] on every shape, odd ones included.
    #[test]
    fn from_json_agrees_with_of() {
        let cases = [
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "ns", "labels": {"x": "y"}}, "data": {"k": "dg=="}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "ca"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": ""}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": 7}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": null}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": null}),
            json!({"apiVersion": 1, "kind": "Secret", "metadata": {"name": "a"}}),
            json!({"kind": "Secret", "metadata": {"name": "a"}}),
            json!([1, 2]),
            json!("text"),
        ];
        for value in cases {
            let bytes = serde_json::to_vec(&value).unwrap();
            assert_eq!(ObjectKey::from_json(&bytes), Ok(ObjectKey::of(&value)), "{value}");
        }
        assert!(
            ObjectKey::from_json(b"{\"apiVersion\": ")
                .unwrap_err()
                .starts_with("not JSON")
        );
    }
}
