//! Finding cert-manager's APIs (and external issuers' APIs) in a cluster by discovery rather than assuming them,
//! so a cluster without cert-manager gets one clear error and a newer cert-manager a warning instead of a crash.

use crate::cluster::error::ClusterError;
use crate::cluster::raw::Resource;
use crate::cluster::retry;
use anyhow::{Context as _, Result};
use cmarchive_archive::certmanager::kinds::{self, ACME_GROUP, CERT_MANAGER_GROUP};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroup, APIGroupList};

/// The one version of both groups this cmarchive understands.
pub const KNOWN_VERSION: &str = "v1";

/// The cert-manager resources cmarchive reads and writes.
#[derive(Clone, Debug)]
pub struct CertManagerApis {
    /// `issuers.cert-manager.io`.
    pub issuers: Resource,
    /// `clusterissuers.cert-manager.io`.
    pub cluster_issuers: Resource,
    /// `certificates.cert-manager.io`.
    pub certificates: Resource,
    /// `certificaterequests.cert-manager.io`.
    pub certificate_requests: Resource,
    /// Things a person should know (a newer version served than this cmarchive knows).
    pub warnings: Vec<String>,
}

impl CertManagerApis {
    /// The resources with the usual shape, for code paths that know discovery already succeeded.
    pub fn v1() -> CertManagerApis {
        CertManagerApis {
            issuers: Resource::of(&kinds::ISSUER),
            cluster_issuers: Resource::of(&kinds::CLUSTER_ISSUER),
            certificates: Resource::of(&kinds::CERTIFICATE),
            certificate_requests: Resource::of(&kinds::CERTIFICATE_REQUEST),
            warnings: Vec::new(),
        }
    }

    /// The resource for a cert-manager kind.
    pub fn for_kind(&self, kind: &str) -> Option<&Resource> {
        [
            &self.issuers,
            &self.cluster_issuers,
            &self.certificates,
            &self.certificate_requests,
        ]
        .into_iter()
        .find(|r| r.api.kind == kind)
    }
}

fn versions(group: &APIGroup) -> Vec<String> {
    group.versions.iter().map(|v| v.version.clone()).collect()
}

/// Checks the served versions of one cert-manager group: v1 must be there; others are reported.
fn check_group(groups: &APIGroupList, name: &str, cluster: &str, warnings: &mut Vec<String>) -> Result<bool> {
    let Some(group) = groups.groups.iter().find(|g| g.name == name) else {
        return Ok(false);
    };
    let served = versions(group);
    if !served.iter().any(|v| v == KNOWN_VERSION) {
        return Err(ClusterError::NoV1 {
            cluster: cluster.to_owned(),
            group: name.to_owned(),
            served: served.join(", "),
        }
        .into());
    }
    let unknown: Vec<&str> = served
        .iter()
        .map(String::as_str)
        .filter(|v| *v != KNOWN_VERSION)
        .collect();
    if !unknown.is_empty() {
        warnings.push(format!(
            "cluster {cluster} also serves {name} versions {} that this cmarchive does not know; objects are read as {KNOWN_VERSION}",
            unknown.join(", ")
        ));
    }
    Ok(true)
}

/// Discovers cert-manager's API groups and resources; `cluster` names the cluster in messages.
pub async fn cert_manager(client: &kube::Client, cluster: &str) -> Result<CertManagerApis, ClusterError> {
    let groups = retry::transient("API discovery", || client.list_api_groups())
        .await
        .context("API discovery failed")?;
    let mut warnings = Vec::new();
    if !check_group(&groups, CERT_MANAGER_GROUP, cluster, &mut warnings)? {
        return Err(ClusterError::CertManagerMissing {
            cluster: cluster.to_owned(),
            unserved: None,
        });
    }
    if !check_group(&groups, ACME_GROUP, cluster, &mut warnings)? {
        warnings.push(format!(
            "cluster {cluster} does not serve {ACME_GROUP}: is cert-manager fully installed?"
        ));
    }
    let group_version = format!("{CERT_MANAGER_GROUP}/{KNOWN_VERSION}");
    let list = retry::transient("API discovery", || client.list_api_group_resources(&group_version))
        .await
        .context("API discovery of cert-manager.io/v1 failed")?;
    let mut apis = CertManagerApis::v1();
    for (kind, slot) in [
        (kinds::ISSUER.kind, &mut apis.issuers),
        (kinds::CLUSTER_ISSUER.kind, &mut apis.cluster_issuers),
        (kinds::CERTIFICATE.kind, &mut apis.certificates),
        (kinds::CERTIFICATE_REQUEST.kind, &mut apis.certificate_requests),
    ] {
        let found = list.resources.iter().find(|r| r.kind == kind && !r.name.contains('/'));
        let Some(found) = found else {
            return Err(ClusterError::CertManagerMissing {
                cluster: cluster.to_owned(),
                unserved: Some(format!("{kind}.{CERT_MANAGER_GROUP}/{KNOWN_VERSION}")),
            });
        };
        slot.api.plural = found.name.clone();
        slot.namespaced = found.namespaced;
    }
    apis.warnings = warnings;
    Ok(apis)
}

/// Resolves a kind of an arbitrary group (external issuers) at the group's preferred version; `None` when the
/// cluster does not serve it.
pub async fn resolve_kind(client: &kube::Client, group: &str, kind: &str) -> Result<Option<Resource>> {
    let groups = retry::transient("API discovery", || client.list_api_groups())
        .await
        .context("API discovery failed")?;
    let Some(api_group) = groups.groups.iter().find(|g| g.name == group) else {
        return Ok(None);
    };
    let version = api_group
        .preferred_version
        .as_ref()
        .map(|v| v.version.clone())
        .or_else(|| api_group.versions.first().map(|v| v.version.clone()));
    let Some(version) = version else {
        return Ok(None);
    };
    let group_version = format!("{group}/{version}");
    let list = retry::transient("API discovery", || client.list_api_group_resources(&group_version))
        .await
        .with_context(|| format!("API discovery of {group_version} failed"))?;
    Ok(list
        .resources
        .iter()
        .find(|r| r.kind == kind && !r.name.contains('/'))
        .map(|r| Resource::known(group, &version, kind, &r.name, r.namespaced)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::GroupVersionForDiscovery;

    fn group(name: &str, versions: &[&str]) -> APIGroup {
        APIGroup {
            name: name.to_owned(),
            versions: versions
                .iter()
                .map(|v| GroupVersionForDiscovery {
                    group_version: format!("{name}/{v}"),
                    version: (*v).to_owned(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn missing_group_is_not_an_error_here() {
        let groups = APIGroupList {
            groups: vec![group("apps", &["v1"])],
        };
        assert!(!check_group(&groups, CERT_MANAGER_GROUP, "c", &mut Vec::new()).unwrap());
    }

    #[test]
    fn newer_version_warns() {
        let groups = APIGroupList {
            groups: vec![group(CERT_MANAGER_GROUP, &["v2", "v1"])],
        };
        let mut warnings = Vec::new();
        assert!(check_group(&groups, CERT_MANAGER_GROUP, "c", &mut warnings).unwrap());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("v2"), "{warnings:?}");
    }

    #[test]
    fn without_v1_is_an_error() {
        let groups = APIGroupList {
            groups: vec![group(CERT_MANAGER_GROUP, &["v2"])],
        };
        let error = check_group(&groups, CERT_MANAGER_GROUP, "c", &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("needs v1"), "{error}");
    }

    #[test]
    fn missing_cert_manager_message() {
        let message = ClusterError::CertManagerMissing {
            cluster: "kind-a".into(),
            unserved: None,
        }
        .to_string();
        assert_eq!(
            message,
            "cert-manager CRDs not found in cluster kind-a: is cert-manager installed?"
        );
    }
}
