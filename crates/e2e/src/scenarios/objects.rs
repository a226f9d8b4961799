//! Raw-JSON access to the few kinds the scenarios touch: apply with server-side apply, list and get as the API
//! server sends them (nothing dropped by a typed struct), delete.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind, Request};
use kube::runtime::watcher;
use serde_json::Value;

use crate::FIELD_MANAGER;

/// A kind the scenarios know: the same table entry cmarchive itself uses, or one of the few kinds only the
/// scenarios touch.
pub use cmarchive_archive::certmanager::kinds::ApiKind as Kind;

/// Every kind a scenario creates or inspects. A table, so adding one is one line.
pub const KINDS: &[Kind] = &[
    am::NAMESPACE,
    am::SECRET,
    am::SERVICE_ACCOUNT,
    am::ISSUER,
    am::CLUSTER_ISSUER,
    am::CERTIFICATE,
    am::CERTIFICATE_REQUEST,
    kinds::INGRESS_KIND,
    kinds::GATEWAY_KIND,
    am::ROLE,
    am::ROLE_BINDING,
];

use cmarchive_archive::certmanager::kinds as am;

/// Shorthands for the kinds used most.
pub mod kinds {
    use super::{Kind, am};
    /// `v1` Namespace.
    pub const NAMESPACE: &Kind = &am::NAMESPACE;
    /// `v1` Secret.
    pub const SECRET: &Kind = &am::SECRET;
    /// cert-manager Issuer.
    pub const ISSUER: &Kind = &am::ISSUER;
    /// cert-manager ClusterIssuer.
    pub const CLUSTER_ISSUER: &Kind = &am::CLUSTER_ISSUER;
    /// cert-manager Certificate.
    pub const CERTIFICATE: &Kind = &am::CERTIFICATE;
    /// cert-manager CertificateRequest.
    pub const CERTIFICATE_REQUEST: &Kind = &am::CERTIFICATE_REQUEST;
    /// `networking.k8s.io/v1` Ingress.
    pub const INGRESS: &Kind = &INGRESS_KIND;
    pub(super) const INGRESS_KIND: Kind = Kind {
        api_version: "networking.k8s.io/v1",
        kind: "Ingress",
        plural: "ingresses",
        namespaced: true,
    };
    pub(super) const GATEWAY_KIND: Kind = Kind {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "Gateway",
        plural: "gateways",
        namespaced: true,
    };
}

/// The kind of an object, from its `apiVersion` and `kind`.
pub fn kind_of(obj: &Value) -> Result<&'static Kind> {
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    let k = obj["kind"].as_str().unwrap_or_default();
    KINDS
        .iter()
        .find(|x| x.api_version == av && x.kind == k)
        .ok_or_else(|| anyhow!("the scenarios do not know {av} {k}"))
}

/// A dynamic API handle, namespaced when the kind is.
pub fn api(kind: &Kind, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, kind.plural);
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

fn url_path(kind: &Kind, namespace: Option<&str>) -> String {
    let base = if kind.group().is_empty() {
        format!("/api/{}", kind.api_version)
    } else {
        format!("/apis/{}", kind.api_version)
    };
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => format!("{base}/namespaces/{ns}/{}", kind.plural),
        _ => format!("{base}/{}", kind.plural),
    }
}

/// Server-side applies `obj` (forcing conflicts: the harness sets up and breaks things on purpose).
pub async fn apply(client: &kube::Client, obj: &Value) -> Result<Value> {
    let kind = kind_of(obj)?;
    let name = obj["metadata"]["name"].as_str().context("object without a name")?;
    let ns = obj["metadata"]["namespace"].as_str();
    let api = api(kind, client, ns);
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
        let req = Request::new(url_path(kind, namespace)).list(&lp)?;
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
    let req = Request::new(url_path(kind, namespace)).get(name, &Default::default())?;
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
    match api(kind, client, namespace)
        .delete(name, &DeleteParams::default())
        .await
    {
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
    let api = api(kind, client, None);
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
        assert_eq!(url_path(kinds::SECRET, Some("a")), "/api/v1/namespaces/a/secrets");
        assert_eq!(url_path(kinds::NAMESPACE, Some("a")), "/api/v1/namespaces");
        assert_eq!(
            url_path(kinds::CLUSTER_ISSUER, None),
            "/apis/cert-manager.io/v1/clusterissuers"
        );
        assert_eq!(
            url_path(kinds::INGRESS, Some("x")),
            "/apis/networking.k8s.io/v1/namespaces/x/ingresses"
        );
    }

    #[test]
    fn kind_of_an_object() {
        let v = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate"});
        assert_eq!(kind_of(&v).unwrap().plural, "certificates");
        assert!(kind_of(&json!({"apiVersion": "v9", "kind": "Nope"})).is_err());
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
