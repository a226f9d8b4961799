//! Reading what a backup needs from a live cluster: paged LISTs of cert-manager objects, and GETs by name of
//! everything they reference. Secrets are never LISTed: a backup identity needs `get` on the Secrets it names,
//! not the power to read every Secret in the cluster.

use crate::cluster::discovery::{self, CertManagerApis};
use crate::cluster::error::ClusterError;
use crate::cluster::raw::Resource;
use anyhow::{Context as _, Result};
use cmarchive_archive::certmanager::kinds::CERT_MANAGER_GROUP;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// How many GETs run at once: enough to hide latency, few enough not to trip API priority and fairness.
pub const CONCURRENT_GETS: usize = 32;

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Namespaces to read; empty = all namespaces.
    pub namespaces: Vec<String>,
    /// Label selector for Issuers, ClusterIssuers and Certificates.
    pub selector: Option<String>,
    /// Also CertificateRequests.
    pub certificate_requests: bool,
}

/// The cert-manager objects of a cluster, as the API server returned them (plus `apiVersion`/`kind`).
#[derive(Debug, Default)]
pub struct CertManagerObjects {
    /// Issuers, ClusterIssuers, Certificates, external issuers and (when asked) CertificateRequests.
    pub objects: Vec<Value>,
    /// Things a person should know.
    pub warnings: Vec<String>,
    /// Counts per kind, for the summary line.
    pub counts: BTreeMap<String, usize>,
}

/// LISTs Issuers, ClusterIssuers and Certificates (and CertificateRequests when asked), then GETs the external
/// issuers the Certificates name.
pub async fn cert_manager_objects(
    client: &kube::Client,
    apis: &CertManagerApis,
    selection: &Selection,
) -> Result<CertManagerObjects> {
    let selector = selection.selector.as_deref();
    let scopes: Vec<Option<&str>> = if selection.namespaces.is_empty() {
        vec![None]
    } else {
        selection.namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let mut out = CertManagerObjects::default();
    let mut namespaced = vec![&apis.issuers, &apis.certificates];
    if selection.certificate_requests {
        namespaced.push(&apis.certificate_requests);
    }
    for resource in namespaced {
        for scope in &scopes {
            let items = resource.list(client, *scope, selector).await?;
            tracing::info!(kind = %resource.api.kind, namespace = scope.unwrap_or("*"), count = items.len(), "listed");
            out.objects.extend(items);
        }
    }
    // ClusterIssuers are cluster-scoped: with -n they are kept only when a selected Certificate uses them
    // (decided below), so a namespace-scoped backup does not carry every ClusterIssuer of the cluster.
    let cluster_issuers = apis.cluster_issuers.list(client, None, selector).await?;
    let used = used_issuers(&out.objects);
    for issuer in cluster_issuers {
        let name = issuer
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let wanted = selection.namespaces.is_empty()
            || used.contains(&IssuerUse {
                group: CERT_MANAGER_GROUP.into(),
                kind: "ClusterIssuer".into(),
                namespace: None,
                name: name.into(),
            });
        if wanted {
            out.objects.push(issuer);
        }
    }
    let external = external_issuers(client, &used).await?;
    out.warnings.extend(external.warnings);
    out.objects.extend(external.objects);
    for object in &out.objects {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?").to_owned();
        *out.counts.entry(kind).or_default() += 1;
    }
    Ok(out)
}

/// One issuer a Certificate names through `spec.issuerRef`, with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IssuerUse {
    /// API group (default `cert-manager.io`).
    pub group: String,
    /// Kind (default `Issuer`).
    pub kind: String,
    /// The Certificate's namespace (issuers of namespaced kinds are resolved there).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// Issuers named by the Certificates among `objects`.
pub fn used_issuers(objects: &[Value]) -> BTreeSet<IssuerUse> {
    let mut used = BTreeSet::new();
    for object in objects {
        if object.get("kind").and_then(Value::as_str) != Some("Certificate") {
            continue;
        }
        let Some(reference) = object.pointer("/spec/issuerRef") else {
            continue;
        };
        let text = |key: &str| reference.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
        let Some(name) = text("name") else { continue };
        let group = text("group").unwrap_or(CERT_MANAGER_GROUP).to_owned();
        let kind = text("kind").unwrap_or("Issuer").to_owned();
        let namespace = if group == CERT_MANAGER_GROUP && kind == "ClusterIssuer" {
            None
        } else {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        used.insert(IssuerUse {
            group,
            kind,
            namespace,
            name: name.to_owned(),
        });
    }
    used
}

async fn external_issuers(client: &kube::Client, used: &BTreeSet<IssuerUse>) -> Result<CertManagerObjects> {
    let mut out = CertManagerObjects::default();
    let mut resources: BTreeMap<(String, String), Option<Resource>> = BTreeMap::new();
    for issuer in used.iter().filter(|u| u.group != CERT_MANAGER_GROUP) {
        let key = (issuer.group.clone(), issuer.kind.clone());
        if !resources.contains_key(&key) {
            let resource = discovery::resolve_kind(client, &issuer.group, &issuer.kind).await?;
            resources.insert(key.clone(), resource);
        }
        let Some(resource) = &resources[&key] else {
            out.warnings.push(format!(
                "external issuer {}.{} {} is not served by the cluster; it is not archived",
                issuer.kind, issuer.group, issuer.name
            ));
            continue;
        };
        let namespace = if resource.namespaced {
            issuer.namespace.as_deref()
        } else {
            None
        };
        match resource.get(client, namespace, &issuer.name).await? {
            Some(object) => out.objects.push(object),
            None => out.warnings.push(format!(
                "{} named by a Certificate does not exist",
                resource.describe(namespace, &issuer.name)
            )),
        }
    }
    Ok(out)
}

/// GETs Secrets by name, [`CONCURRENT_GETS`] at a time. Missing ones are left out of the result (the planner
/// turns them into warnings); a refused GET is an error naming the Secret and the missing permission.
pub async fn secrets_by_name(
    client: &kube::Client,
    names: &BTreeSet<(String, String)>,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Value>> {
    let resource = Resource::secrets();
    let found: Vec<Option<Value>> = stream::iter(names.iter())
        .map(|(namespace, name)| {
            let resource = &resource;
            async move {
                let secret = resource.get(client, Some(namespace), name).await;
                progress();
                secret
            }
        })
        .buffer_unordered(CONCURRENT_GETS)
        .try_collect()
        .await?;
    let mut secrets: Vec<Value> = found.into_iter().flatten().collect();
    secrets.sort_by_key(|s| {
        (
            s.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            s.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned),
        )
    });
    Ok(secrets)
}

/// GETs the Namespaces the objects live in. A Namespace the identity may not read is archived by name only,
/// with a warning: its labels and annotations are lost, but the restore can still create it.
pub async fn namespaces(client: &kube::Client, names: &BTreeSet<String>) -> Result<(Vec<Value>, Vec<String>)> {
    let resource = Resource::namespaces();
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    let results: Vec<(String, Result<Option<Value>, ClusterError>)> = stream::iter(names.iter().cloned())
        .map(|name| {
            let resource = &resource;
            async move {
                let result = resource.get(client, None, &name).await;
                (name, result)
            }
        })
        .buffer_unordered(CONCURRENT_GETS)
        .collect()
        .await;
    for (name, result) in results {
        match result {
            Ok(Some(object)) => objects.push(object),
            Ok(None) => warnings.push(format!("Namespace {name} does not exist (its objects were just read)")),
            Err(ClusterError::Forbidden { .. }) => {
                warnings.push(format!(
                    "cannot read Namespace {name} (forbidden): archived with its name only"
                ));
                objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
            }
            Err(e) => return Err(e.into()),
        }
    }
    objects.sort_by(|a, b| {
        a.pointer("/metadata/name")
            .map(Value::to_string)
            .cmp(&b.pointer("/metadata/name").map(Value::to_string))
    });
    Ok((objects, warnings))
}

/// GETs the ServiceAccounts issuers authenticate as, by name, and LISTs the Roles and RoleBindings of their
/// namespaces, among which the selection finds those letting cert-manager create their tokens. Whatever the identity
/// may not read is a warning: the restore then lacks it, and the planner's warning says what to create by hand.
pub async fn service_accounts(
    client: &kube::Client,
    names: &BTreeSet<(String, String)>,
) -> Result<(Vec<Value>, Vec<String>)> {
    let accounts = Resource::service_accounts();
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    let mut namespaces = BTreeSet::new();
    for (namespace, name) in names {
        match accounts.get(client, Some(namespace), name).await {
            Ok(Some(account)) => {
                objects.push(account);
                namespaces.insert(namespace.clone());
            }
            Ok(None) => {}
            Err(ClusterError::Forbidden { .. }) => warnings.push(format!(
                "cannot read ServiceAccount {namespace}/{name} (forbidden): not archived; grant `get` on serviceaccounts"
            )),
            Err(e) => return Err(e.into()),
        }
    }
    for namespace in &namespaces {
        for resource in [Resource::roles(), Resource::role_bindings()] {
            match resource
                .list(client, Some(namespace), None)
                .await
                .map_err(ClusterError::from)
            {
                Ok(items) => objects.extend(items),
                Err(ClusterError::Forbidden { .. }) => warnings.push(format!(
                    "cannot list {} in namespace {namespace} (forbidden): the RBAC letting cert-manager create \
                     ServiceAccount tokens there is not archived; grant `list` on it",
                    resource.qualified()
                )),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((objects, warnings))
}

/// CRD names of cert-manager's own resources.
pub const CERT_MANAGER_CRDS: [&str; 6] = [
    "certificaterequests.cert-manager.io",
    "certificates.cert-manager.io",
    "challenges.acme.cert-manager.io",
    "clusterissuers.cert-manager.io",
    "issuers.cert-manager.io",
    "orders.acme.cert-manager.io",
];

/// GETs CRDs by name (cert-manager's, plus the external issuers' `plural.group`).
pub async fn crds(client: &kube::Client, names: &BTreeSet<String>) -> Result<(Vec<Value>, Vec<String>)> {
    let resource = Resource::crds();
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    for name in names {
        match resource
            .get(client, None, name)
            .await
            .with_context(|| format!("--include-crds: cannot read CRD {name}"))?
        {
            Some(crd) => objects.push(crd),
            None => warnings.push(format!("CustomResourceDefinition {name} does not exist")),
        }
    }
    Ok((objects, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_refs_with_defaults() {
        let objects = vec![
            json!({"kind": "Certificate", "metadata": {"namespace": "a", "name": "c1"},
                   "spec": {"issuerRef": {"name": "local"}}}),
            json!({"kind": "Certificate", "metadata": {"namespace": "b", "name": "c2"},
                   "spec": {"issuerRef": {"name": "global", "kind": "ClusterIssuer", "group": "cert-manager.io"}}}),
            json!({"kind": "Certificate", "metadata": {"namespace": "b", "name": "c3"},
                   "spec": {"issuerRef": {"name": "pca", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io"}}}),
            json!({"kind": "Issuer", "metadata": {"namespace": "a", "name": "local"}}),
        ];
        let used: Vec<IssuerUse> = used_issuers(&objects).into_iter().collect();
        assert_eq!(used.len(), 3);
        assert!(used.contains(&IssuerUse {
            group: "cert-manager.io".into(),
            kind: "Issuer".into(),
            namespace: Some("a".into()),
            name: "local".into()
        }));
        assert!(used.contains(&IssuerUse {
            group: "cert-manager.io".into(),
            kind: "ClusterIssuer".into(),
            namespace: None,
            name: "global".into()
        }));
        assert!(
            used.iter()
                .any(|u| u.group == "awspca.cert-manager.io" && u.namespace.as_deref() == Some("b"))
        );
    }
}
