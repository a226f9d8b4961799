//! Asking the API server, before changing anything, whether the identity in the kubeconfig may do every write a
//! restore needs (SelfSubjectAccessReview). A restore that stops half-way for lack of a permission is worse than
//! one that never starts.

use crate::cluster::retry;
use anyhow::{Context as _, Result};
use cmarchive_archive::certmanager::kinds::ApiKind;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use std::fmt;

/// One permission: a verb on a resource, in a namespace or cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    /// `get`, `list`, `watch`, `create`, `patch`, …
    pub verb: String,
    /// API group; empty for core.
    pub group: String,
    /// Plural resource, e.g. `secrets`; may be `resource/subresource`.
    pub resource: String,
    /// Namespace; `None` = cluster-scoped or all namespaces.
    pub namespace: Option<String>,
}

impl Permission {
    /// `verb` on a kind from cmarchive's table.
    pub fn of(verb: &str, kind: &ApiKind, namespace: Option<&str>) -> Permission {
        Permission::new(verb, kind.group(), kind.plural, namespace.filter(|_| kind.namespaced))
    }

    /// Builds a permission.
    pub fn new(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Permission {
        Permission {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "  {} {} in namespace {}", self.verb, resource, ns),
            None => write!(f, "  {} {} (cluster-wide)", self.verb, resource),
        }
    }
}

/// Returns the permissions that are *not* allowed.
pub async fn denied(client: &kube::Client, wanted: &[Permission]) -> Result<Vec<Permission>> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answers: Vec<(Permission, bool)> = stream::iter(wanted.iter().cloned())
        .map(|permission| {
            let api = api.clone();
            async move {
                let (resource, subresource) = match permission.resource.split_once('/') {
                    Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
                    None => (permission.resource.clone(), None),
                };
                let review = SelfSubjectAccessReview {
                    spec: SelfSubjectAccessReviewSpec {
                        resource_attributes: Some(ResourceAttributes {
                            verb: Some(permission.verb.clone()),
                            group: Some(permission.group.clone()),
                            resource: Some(resource),
                            subresource,
                            namespace: permission.namespace.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let params = PostParams::default();
                let answer = retry::transient("SelfSubjectAccessReview", || api.create(&params, &review))
                    .await
                    .context("SelfSubjectAccessReview failed")?;
                let allowed = answer.status.is_some_and(|s| s.allowed);
                anyhow::Ok((permission, allowed))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let mut denied: Vec<Permission> = answers
        .into_iter()
        .filter(|(_, allowed)| !allowed)
        .map(|(p, _)| p)
        .collect();
    denied.sort();
    Ok(denied)
}
