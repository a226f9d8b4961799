//! What an object is, as far as a cert-manager backup cares, and small readers for the JSON fields every rule
//! needs. Classification goes by API group and kind only, so any served version of the CRDs is understood.

use serde_json::Value;

/// API group of Issuers, ClusterIssuers, Certificates and CertificateRequests.
pub const CERT_MANAGER_GROUP: &str = "cert-manager.io";
/// API group of Orders and Challenges.
pub const ACME_GROUP: &str = "acme.cert-manager.io";
/// API group of Roles and RoleBindings.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// API group of CustomResourceDefinitions.
pub const CRD_GROUP: &str = "apiextensions.k8s.io";
/// Where ClusterIssuer Secrets live when nothing better is known: the namespace the Helm chart installs into.
pub const DEFAULT_CLUSTER_RESOURCE_NAMESPACE: &str = "cert-manager";

/// An API resource cmarchive (and its tests) read or write, with the names its URLs and RBAC rules use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ApiKind {
    /// `apiVersion`, e.g. `cert-manager.io/v1` or `v1`.
    pub api_version: &'static str,
    /// `kind`.
    pub kind: &'static str,
    /// Resource name in URLs and RBAC rules.
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl ApiKind {
    /// The API group (empty for the core group).
    pub fn group(&self) -> &'static str {
        self.api_version.rsplit_once('/').map_or("", |(group, _)| group)
    }

    /// The version within the group.
    pub fn version(&self) -> &'static str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version, |(_, version)| version)
    }
}

const fn api_kind(api_version: &'static str, kind: &'static str, plural: &'static str, namespaced: bool) -> ApiKind {
    ApiKind {
        api_version,
        kind,
        plural,
        namespaced,
    }
}

/// `v1` Namespace.
pub const NAMESPACE: ApiKind = api_kind("v1", "Namespace", "namespaces", false);
/// `v1` Secret.
pub const SECRET: ApiKind = api_kind("v1", "Secret", "secrets", true);
/// `v1` ServiceAccount.
pub const SERVICE_ACCOUNT: ApiKind = api_kind("v1", "ServiceAccount", "serviceaccounts", true);
/// `rbac.authorization.k8s.io/v1` Role (the token RBAC of an issuer's ServiceAccount).
pub const ROLE: ApiKind = api_kind("rbac.authorization.k8s.io/v1", "Role", "roles", true);
/// `rbac.authorization.k8s.io/v1` RoleBinding.
pub const ROLE_BINDING: ApiKind = api_kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", true);
/// `apps/v1` Deployment (cert-manager's controller runs as one).
pub const DEPLOYMENT: ApiKind = api_kind("apps/v1", "Deployment", "deployments", true);
/// cert-manager Issuer.
pub const ISSUER: ApiKind = api_kind("cert-manager.io/v1", "Issuer", "issuers", true);
/// cert-manager ClusterIssuer.
pub const CLUSTER_ISSUER: ApiKind = api_kind("cert-manager.io/v1", "ClusterIssuer", "clusterissuers", false);
/// cert-manager Certificate.
pub const CERTIFICATE: ApiKind = api_kind("cert-manager.io/v1", "Certificate", "certificates", true);
/// cert-manager CertificateRequest.
pub const CERTIFICATE_REQUEST: ApiKind =
    api_kind("cert-manager.io/v1", "CertificateRequest", "certificaterequests", true);
/// cert-manager's ACME Order.
pub const ORDER: ApiKind = api_kind("acme.cert-manager.io/v1", "Order", "orders", true);
/// cert-manager's ACME Challenge.
pub const CHALLENGE: ApiKind = api_kind("acme.cert-manager.io/v1", "Challenge", "challenges", true);
/// CustomResourceDefinition.
pub const CUSTOM_RESOURCE_DEFINITION: ApiKind = api_kind(
    "apiextensions.k8s.io/v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    false,
);

// What cert-manager and Kubernetes write on the Secrets a backup carries.

/// Annotation cert-manager compares with a Certificate's `issuerRef.name` (a mismatch means reissuance).
pub const ISSUER_NAME_ANNOTATION: &str = "cert-manager.io/issuer-name";
/// Annotation cert-manager compares with `issuerRef.kind`.
pub const ISSUER_KIND_ANNOTATION: &str = "cert-manager.io/issuer-kind";
/// Annotation cert-manager compares with `issuerRef.group`.
pub const ISSUER_GROUP_ANNOTATION: &str = "cert-manager.io/issuer-group";
/// Annotation naming the Certificate a TLS Secret belongs to.
pub const CERTIFICATE_NAME_ANNOTATION: &str = "cert-manager.io/certificate-name";
/// Label cert-manager puts on the temporary Secret holding the next private key during an issuance.
pub const NEXT_PRIVATE_KEY_LABEL: &str = "cert-manager.io/next-private-key";
/// Annotation naming the ServiceAccount of a service-account token Secret.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// Secret type the token controller manages; a copy is deleted in the target (UID mismatch) and its JWT was
/// signed by the source cluster.
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";

/// The kinds the selection rules tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `cert-manager.io` Issuer.
    Issuer,
    /// `cert-manager.io` ClusterIssuer.
    ClusterIssuer,
    /// `cert-manager.io` Certificate.
    Certificate,
    /// `cert-manager.io` CertificateRequest.
    CertificateRequest,
    /// `acme.cert-manager.io` Order.
    Order,
    /// `acme.cert-manager.io` Challenge.
    Challenge,
    /// Core Secret.
    Secret,
    /// Core Namespace.
    Namespace,
    /// Core ServiceAccount.
    ServiceAccount,
    /// `rbac.authorization.k8s.io` Role.
    Role,
    /// `rbac.authorization.k8s.io` RoleBinding.
    RoleBinding,
    /// `apiextensions.k8s.io` CustomResourceDefinition.
    CustomResourceDefinition,
    /// Anything else (maybe an external issuer; the selection decides).
    Other,
}

/// Classifies an object by API group and kind.
pub fn classify(object: &Value) -> Kind {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    classify_group_kind(api_group(object), kind)
}

/// [`classify`] by identity, without looking into the object: the selection asks for every object's kind many
/// times over.
pub fn classify_key(key: &crate::object::ObjectKey) -> Kind {
    classify_group_kind(key.group(), &key.kind)
}

fn classify_group_kind(group: &str, kind: &str) -> Kind {
    match (group, kind) {
        (CERT_MANAGER_GROUP, "Issuer") => Kind::Issuer,
        (CERT_MANAGER_GROUP, "ClusterIssuer") => Kind::ClusterIssuer,
        (CERT_MANAGER_GROUP, "Certificate") => Kind::Certificate,
        (CERT_MANAGER_GROUP, "CertificateRequest") => Kind::CertificateRequest,
        (ACME_GROUP, "Order") => Kind::Order,
        (ACME_GROUP, "Challenge") => Kind::Challenge,
        ("", "Secret") => Kind::Secret,
        ("", "Namespace") => Kind::Namespace,
        ("", "ServiceAccount") => Kind::ServiceAccount,
        (RBAC_GROUP, "Role") => Kind::Role,
        (RBAC_GROUP, "RoleBinding") => Kind::RoleBinding,
        (CRD_GROUP, "CustomResourceDefinition") => Kind::CustomResourceDefinition,
        _ => Kind::Other,
    }
}

/// The API group of an object (empty for the core group).
pub fn api_group(object: &Value) -> &str {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    match api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    }
}

/// Reads a string at a path of object keys; `None` when absent, not a string, or empty.
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = value;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str().filter(|s| !s.is_empty())
}

/// `metadata.name` (empty when missing).
pub(crate) fn name(object: &Value) -> &str {
    str_at(object, &["metadata", "name"]).unwrap_or_default()
}

/// `metadata.namespace`; `None` for cluster-scoped objects.
pub(crate) fn namespace(object: &Value) -> Option<&str> {
    str_at(object, &["metadata", "namespace"])
}

/// One annotation's value; present-but-empty is `Some("")`, which matters for cert-manager's issuer check.
pub(crate) fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// One label's value.
pub(crate) fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("labels")?.get(key)?.as_str()
}

/// The `ownerReferences` entry marked `controller: true`, if any.
pub(crate) fn controller_owner(object: &Value) -> Option<&Value> {
    object
        .get("metadata")?
        .get("ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// A Certificate's `spec.issuerRef` as (name, kind, group) with cert-manager's defaults applied
/// (kind `Issuer`, group `cert-manager.io`), the way cert-manager compares them.
pub(crate) fn issuer_ref(certificate: &Value) -> (&str, &str, &str) {
    let issuer_ref = certificate.get("spec").and_then(|spec| spec.get("issuerRef"));
    let field = |name| str_at(issuer_ref?, &[name]);
    let name = field("name").unwrap_or_default();
    let kind = field("kind").unwrap_or("Issuer");
    let group = field("group").unwrap_or(CERT_MANAGER_GROUP);
    (name, kind, group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjectKey;
    use serde_json::json;

    /// The table and the classification are one picture of the same kinds.
    #[test]
    fn the_resource_table_agrees_with_the_classification() {
        for (api, kind) in [
            (NAMESPACE, Kind::Namespace),
            (ROLE, Kind::Role),
            (ROLE_BINDING, Kind::RoleBinding),
            (SECRET, Kind::Secret),
            (SERVICE_ACCOUNT, Kind::ServiceAccount),
            (ISSUER, Kind::Issuer),
            (CLUSTER_ISSUER, Kind::ClusterIssuer),
            (CERTIFICATE, Kind::Certificate),
            (CERTIFICATE_REQUEST, Kind::CertificateRequest),
            (ORDER, Kind::Order),
            (CHALLENGE, Kind::Challenge),
            (CUSTOM_RESOURCE_DEFINITION, Kind::CustomResourceDefinition),
        ] {
            assert_eq!(classify_group_kind(api.group(), api.kind), kind, "{api:?}");
            assert_eq!(api.plural, format!("{}s", api.kind.to_ascii_lowercase()), "{api:?}");
        }
        assert_eq!((SECRET.group(), SECRET.version()), ("", "v1"));
        assert_eq!((DEPLOYMENT.group(), DEPLOYMENT.version()), ("apps", "v1"));
        assert_eq!(ISSUER.group(), CERT_MANAGER_GROUP);
        assert_eq!(ORDER.group(), ACME_GROUP);
        assert_eq!((CLUSTER_ISSUER.namespaced, ISSUER.namespaced), (false, true));
    }

    #[test]
    fn classify_key_agrees_with_classify() {
        let cases = [
            ("cert-manager.io/v1", "Issuer", Kind::Issuer),
            ("cert-manager.io/v1", "ClusterIssuer", Kind::ClusterIssuer),
            ("cert-manager.io/v1", "Certificate", Kind::Certificate),
            ("cert-manager.io/v1", "CertificateRequest", Kind::CertificateRequest),
            ("acme.cert-manager.io/v1", "Order", Kind::Order),
            ("acme.cert-manager.io/v1", "Challenge", Kind::Challenge),
            ("v1", "Secret", Kind::Secret),
            ("v1", "Namespace", Kind::Namespace),
            ("v1", "ServiceAccount", Kind::ServiceAccount),
            ("rbac.authorization.k8s.io/v1", "Role", Kind::Role),
            ("rbac.authorization.k8s.io/v1", "RoleBinding", Kind::RoleBinding),
            ("rbac.authorization.k8s.io/v1", "ClusterRole", Kind::Other),
            (
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                Kind::CustomResourceDefinition,
            ),
            ("awspca.cert-manager.io/v1beta1", "AWSPCAClusterIssuer", Kind::Other),
            ("example.com/v1", "Secret", Kind::Other),
            ("v1", "ConfigMap", Kind::Other),
        ];
        for (api_version, kind, expected) in cases {
            let object = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
            let key = ObjectKey::of(&object).unwrap();
            assert_eq!(classify(&object), expected, "{api_version} {kind}");
            assert_eq!(classify_key(&key), expected, "{api_version} {kind}");
        }
    }
}
