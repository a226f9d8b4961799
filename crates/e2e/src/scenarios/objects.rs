//! Raw-JSON access to the few kinds the scenarios touch: apply with server-side apply, list and get as the API
//! server sends them (nothing dropped by a typed struct), delete.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind, Request};
use kube::runtime::watcher;
use serde_json::Value;

/// Field manager the harness applies with, so its writes are told apart from cmarchive's and cert-manager's.
pub const FIELD_MANAGER: &str = "cmarchive-e2e";

/// A kind the scenarios know: its plural and whether it is namespaced.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    /// `apiVersion`, e.g. `cert-manager.io/v1`.
    pub api_version: &'static str,
    /// `kind`.
    pub kind: &'static str,
    /// Resource name in URLs.
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

/// Every kind a scenario creates or inspects. A table, so adding one is one line.
pub const KINDS: &[Kind] = &[
    Kind {
        api_version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
    },
    Kind {
        api_version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
    },
    Kind {
        api_version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
    },
    Kind {
        api_version: "cert-manager.io/v1",
        kind: "Issuer",
        plural: "issuers",
        namespaced: true,
    },
    Kind {
        api_version: "cert-manager.io/v1",
        kind: "ClusterIssuer",
        plural: "clusterissuers",
        namespaced: false,
    },
    Kind {
        api_version: "cert-manager.io/v1",
        kind: "Certificate",
        plural: "certificates",
        namespaced: true,
    },
    Kind {
        api_version: "cert-manager.io/v1",
        kind: "CertificateRequest",
        plural: "certificaterequests",
        namespaced: true,
    },
    Kind {
        api_version: "networking.k8s.io/v1",
        kind: "Ingress",
        plural: "ingresses",
        namespaced: true,
    },
    Kind {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "Gateway",
        plural: "gateways",
        namespaced: true,
    },
    Kind {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        plural: "roles",
        namespaced: true,
    },
    Kind {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
    },
];

/// Shorthands for the kinds used most.
pub mod kinds {
    use super::Kind;
    /// `v1` Namespace.
    pub const NAMESPACE: &Kind = &super::KINDS[0];
    /// `v1` Secret.
    pub const SECRET: &Kind = &super::KINDS[1];
    /// cert-manager Issuer.
    pub const ISSUER: &Kind = &super::KINDS[3];
    /// cert-manager ClusterIssuer.
    pub const CLUSTER_ISSUER: &Kind = &super::KINDS[4];
    /// cert-manager Certificate.
    pub const CERTIFICATE: &Kind = &super::KINDS[5];
    /// cert-manager CertificateRequest.
    pub const CERTIFICATE_REQUEST: &Kind = &super::KINDS[6];
    /// `networking.k8s.io/v1` Ingress.
    pub const INGRESS: &Kind = &super::KINDS[7];
}

impl Kind {
    /// The kind of an object, from its `apiVersion` and `kind`.
    pub fn of(obj: &Value) -> Result<&'static Kind> {
        let av = obj["apiVersion"].as_str().unwrap_or_default();
        let k = obj["kind"].as_str().unwrap_or_default();
        KINDS
            .iter()
            .find(|x| x.api_version == av && x.kind == k)
            .ok_or_else(|| anyhow!("the scenarios do not know {av} {k}"))
    }

    fn api_resource(&self) -> ApiResource {
        let (group, version) = self.api_version.rsplit_once('/').unwrap_or(("", self.api_version));
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, self.kind), self.plural)
    }

    /// A dynamic API handle, namespaced when the kind is.
    pub fn api(&self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = self.api_resource();
        match (self.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        }
    }

    fn url_path(&self, namespace: Option<&str>) -> String {
        let base = if self.api_version.contains('/') {
            format!("/apis/{}", self.api_version)
        } else {
            format!("/api/{}", self.api_version)
        };
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }
}

/// Server-side applies `obj` (forcing conflicts: the harness sets up and breaks things on purpose).
pub async fn apply(client: &kube::Client, obj: &Value) -> Result<Value> {
    let kind = Kind::of(obj)?;
    let name = obj["metadata"]["name"].as_str().context("object without a name")?;
    let ns = obj["metadata"]["namespace"].as_str();
    let api = kind.api(client, ns);
    let applied = api
        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await
        .with_context(|| format!("applying {} {}/{name}", kind.kind, ns.unwrap_or("")))?;
    Ok(serde_json::to_value(applied)?)
}

/// Applies each object in order.
pub async fn apply_all(client: &kube::Client, objs: &[Value]) -> Result<()> {
    for obj in objs {
        apply(client, obj).await?;
    }
    Ok(())
}

/// Lists a kind, raw (with `apiVersion` and `kind` filled into every item), in `namespace` or everywhere.
pub async fn list(client: &kube::Client, kind: &Kind, namespace: Option<&str>) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut lp = kube::api::ListParams::default().limit(500);
    loop {
        let req = Request::new(kind.url_path(namespace)).list(&lp)?;
        let mut page: Value = client
            .request(req)
            .await
            .with_context(|| format!("listing {} in {}", kind.plural, namespace.unwrap_or("all namespaces")))?;
        if let Some(items) = page["items"].as_array_mut() {
            for item in items.drain(..) {
                let mut item = item;
                item["apiVersion"] = Value::String(kind.api_version.to_owned());
                item["kind"] = Value::String(kind.kind.to_owned());
                out.push(item);
            }
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => lp = lp.continue_token(c),
            _ => return Ok(out),
        }
    }
}

/// Gets one object, raw; `None` when it does not exist.
pub async fn get(client: &kube::Client, kind: &Kind, namespace: Option<&str>, name: &str) -> Result<Option<Value>> {
    let req = Request::new(kind.url_path(namespace)).get(name, &Default::default())?;
    match client.request::<Value>(req).await {
        Ok(mut v) => {
            v["apiVersion"] = Value::String(kind.api_version.to_owned());
            v["kind"] = Value::String(kind.kind.to_owned());
            Ok(Some(v))
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e).with_context(|| format!("getting {} {}/{name}", kind.kind, namespace.unwrap_or(""))),
    }
}

/// Deletes one object; absent is fine.
pub async fn delete(client: &kube::Client, kind: &Kind, namespace: Option<&str>, name: &str) -> Result<()> {
    match kind.api(client, namespace).delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting {} {name}", kind.kind)),
    }
}

/// Watches every object of `kind` (all namespaces) and calls `check` with each changed object and the whole
/// current set, until `check` returns `Some` or `timeout` passes. Event-driven: no polling interval, no sleep.
/// `check` is also called once the initial list is complete, with `changed = None`.
pub async fn watch_until<T>(
    client: &kube::Client,
    kind: &Kind,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut(Option<&Value>, &std::collections::BTreeMap<(String, String), Value>) -> Option<T>,
) -> Result<T> {
    let api = kind.api(client, None);
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut state = std::collections::BTreeMap::<(String, String), Value>::new();
    let mut init = std::collections::BTreeMap::<(String, String), Value>::new();
    let key = |v: &Value| {
        (
            v["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
            v["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let event = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => bail!("timed out after {timeout:?} waiting until {what}"),
            Ok(None) => bail!("the watch on {} ended while waiting until {what}", kind.plural),
            Ok(Some(Err(e))) => {
                tracing::debug!("watch on {} restarts: {e}", kind.plural);
                continue;
            }
            Ok(Some(Ok(event))) => event,
        };
        let changed = match event {
            watcher::Event::Init => {
                init.clear();
                continue;
            }
            watcher::Event::InitApply(obj) => {
                let v = serde_json::to_value(obj)?;
                init.insert(key(&v), v);
                continue;
            }
            watcher::Event::InitDone => {
                state = std::mem::take(&mut init);
                None
            }
            watcher::Event::Apply(obj) => {
                let v = serde_json::to_value(obj)?;
                state.insert(key(&v), v.clone());
                Some(v)
            }
            watcher::Event::Delete(obj) => {
                let v = serde_json::to_value(obj)?;
                state.remove(&key(&v));
                Some(v)
            }
        };
        if let Some(t) = check(changed.as_ref(), &state) {
            return Ok(t);
        }
    }
}

/// The `status` of the condition `type_` of a cert-manager object, with its reason and observed generation.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Whether the object's `type_` condition is `True` and observed the object's current generation.
pub fn condition_true_and_current(obj: &Value, type_: &str) -> bool {
    let Some(c) = condition(obj, type_) else {
        return false;
    };
    if c["status"] != "True" {
        return false;
    }
    match (c["observedGeneration"].as_i64(), obj["metadata"]["generation"].as_i64()) {
        (Some(seen), Some(generation)) => seen >= generation,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_of_core_and_grouped_kinds() {
        assert_eq!(kinds::SECRET.url_path(Some("a")), "/api/v1/namespaces/a/secrets");
        assert_eq!(kinds::NAMESPACE.url_path(Some("a")), "/api/v1/namespaces");
        assert_eq!(
            kinds::CLUSTER_ISSUER.url_path(None),
            "/apis/cert-manager.io/v1/clusterissuers"
        );
        assert_eq!(
            kinds::INGRESS.url_path(Some("x")),
            "/apis/networking.k8s.io/v1/namespaces/x/ingresses"
        );
    }

    #[test]
    fn kind_of_an_object() {
        let v = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate"});
        assert_eq!(Kind::of(&v).unwrap().plural, "certificates");
        assert!(Kind::of(&json!({"apiVersion": "v9", "kind": "Nope"})).is_err());
    }

    #[test]
    fn current_true_condition() {
        let mut v = json!({"metadata": {"generation": 2}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "observedGeneration": 1}]}});
        assert!(!condition_true_and_current(&v, "Ready"));
        v["status"]["conditions"][0]["observedGeneration"] = json!(2);
        assert!(condition_true_and_current(&v, "Ready"));
        assert!(!condition_true_and_current(&v, "Issuing"));
    }
}
