//! Every place in the cert-manager v1 API (checked against v1.21.2's API types) where an object names a Secret or
//! a ServiceAccount, kept as one data table, plus a heuristic scan for reference-shaped fields the table does not
//! know: webhook DNS-01 solver `config`, external issuers' specs, fields added after v1.21.
//!
//! The cluster code uses [`secret_refs`] (or [`referenced_secrets`] over a whole set of objects) to know which
//! Secrets to GET by name; the selection uses the same answers to decide which Secrets an archive must hold.

use super::kinds::{self, CERT_MANAGER_GROUP, Kind};
use crate::object::ObjectKey;
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

/// Which objects a table row applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// `spec` of an Issuer or ClusterIssuer (both share `IssuerSpec`).
    IssuerSpec,
    /// `spec` of a Certificate.
    CertificateSpec,
}

/// How the referenced name is written in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `SecretKeySelector`: `{name, key}`.
    SecretKeySelector,
    /// `LocalObjectReference` or `ServiceAccountRef`: `{name, ...}`.
    LocalObjectReference,
    /// A plain string holding the name.
    Name,
}

/// Which namespace a name resolves in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// cert-manager's `ResourceNamespace`: the Issuer's namespace, or the cluster resource namespace for a
    /// ClusterIssuer.
    IssuerResource,
    /// The Challenge's namespace, which is the namespace of each Certificate using the issuer (HTTP-01 solver pods
    /// run there, even for a ClusterIssuer).
    ChallengeNamespace,
    /// The holder's own namespace (Certificate fields).
    ObjectNamespace,
}

/// What kind of object a row names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Secret.
    Secret,
    /// A ServiceAccount (its tokens are minted through the TokenRequest API: the object and the RBAC allowing that
    /// travel, never a token).
    ServiceAccount,
}

/// One row of [`REFERENCE_TABLE`].
#[derive(Clone, Copy, Debug)]
pub struct RefRule {
    /// Objects the row applies to.
    pub holder: Holder,
    /// Path under `.spec`: `.`-separated keys, a `[]` suffix walks every element of an array.
    pub path: &'static str,
    /// How the name is written.
    pub shape: Shape,
    /// Where the name resolves.
    pub scope: Scope,
    /// Secret or ServiceAccount.
    pub target: Target,
    /// The data key cert-manager reads when the reference does not name one.
    pub default_key: Option<&'static str>,
}

const fn row(
    holder: Holder,
    path: &'static str,
    shape: Shape,
    scope: Scope,
    target: Target,
    default_key: Option<&'static str>,
) -> RefRule {
    RefRule {
        holder,
        path,
        shape,
        scope,
        target,
        default_key,
    }
}

use Holder::{CertificateSpec as Crt, IssuerSpec as Iss};
use Scope::{ChallengeNamespace as Challenge, IssuerResource as Resource, ObjectNamespace as Own};
use Shape::{LocalObjectReference as Local, Name, SecretKeySelector as Selector};
use Target::{Secret, ServiceAccount};

/// Every Secret and ServiceAccount reference of the cert-manager v1 API (v1.21). One test per row lives in this
/// file's tests. Names verified against `pkg/apis/certmanager/v1/types_issuer.go`,
/// `pkg/apis/certmanager/v1/types_certificate.go` and `pkg/apis/acme/v1/types_issuer.go`; default keys against the
/// issuer implementations.
#[rustfmt::skip]
pub const REFERENCE_TABLE: &[RefRule] = &[
    // CA: the signing key pair (tls.crt, tls.key, optional ca.crt).
    row(Iss, "ca.secretName", Name, Resource, Secret, None),
    // ACME account key (a lost key means a new ACME account) and External Account Binding HMAC key.
    row(Iss, "acme.privateKeySecretRef", Selector, Resource, Secret, Some("tls.key")),
    row(Iss, "acme.externalAccountBinding.keySecretRef", Selector, Resource, Secret, None),
    // ACME DNS-01 providers, one row per credential.
    row(Iss, "acme.solvers[].dns01.akamai.clientTokenSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.akamai.clientSecretSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.akamai.accessTokenSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.cloudDNS.serviceAccountSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.cloudflare.apiKeySecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.cloudflare.apiTokenSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.route53.accessKeyIDSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.route53.secretAccessKeySecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.route53.auth.kubernetes.serviceAccountRef", Local, Resource, ServiceAccount, None),
    row(Iss, "acme.solvers[].dns01.azureDNS.clientSecretSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.digitalocean.tokenSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.acmeDNS.accountSecretRef", Selector, Resource, Secret, None),
    row(Iss, "acme.solvers[].dns01.rfc2136.tsigSecretSecretRef", Selector, Resource, Secret, None),
    // ACME HTTP-01 solver pods: pulled and run in the Challenge's namespace.
    row(Iss, "acme.solvers[].http01.ingress.podTemplate.spec.imagePullSecrets[]", Local, Challenge, Secret, None),
    row(Iss, "acme.solvers[].http01.ingress.podTemplate.spec.serviceAccountName", Name, Challenge, ServiceAccount, None),
    row(Iss, "acme.solvers[].http01.gatewayHTTPRoute.podTemplate.spec.imagePullSecrets[]", Local, Challenge, Secret, None),
    row(Iss, "acme.solvers[].http01.gatewayHTTPRoute.podTemplate.spec.serviceAccountName", Name, Challenge, ServiceAccount, None),
    // Vault: authentication (precedence token, appRole, clientCertificate, kubernetes, aws) and TLS to Vault.
    row(Iss, "vault.auth.tokenSecretRef", Selector, Resource, Secret, Some("token")),
    row(Iss, "vault.auth.appRole.secretRef", Selector, Resource, Secret, None),
    row(Iss, "vault.auth.clientCertificate.secretName", Name, Resource, Secret, None),
    row(Iss, "vault.auth.kubernetes.secretRef", Selector, Resource, Secret, Some("token")),
    row(Iss, "vault.auth.kubernetes.serviceAccountRef", Local, Resource, ServiceAccount, None),
    row(Iss, "vault.auth.aws.serviceAccountRef", Local, Resource, ServiceAccount, None),
    row(Iss, "vault.caBundleSecretRef", Selector, Resource, Secret, Some("ca.crt")),
    row(Iss, "vault.clientCertSecretRef", Selector, Resource, Secret, Some("tls.crt")),
    row(Iss, "vault.clientKeySecretRef", Selector, Resource, Secret, Some("tls.key")),
    // Venafi (CyberArk Certificate Manager) self-hosted, SaaS, and NGTS (new in v1.21).
    row(Iss, "venafi.tpp.credentialsRef", Local, Resource, Secret, None),
    row(Iss, "venafi.tpp.caBundleSecretRef", Selector, Resource, Secret, Some("ca.crt")),
    row(Iss, "venafi.cloud.apiTokenSecretRef", Selector, Resource, Secret, Some("api-key")),
    row(Iss, "venafi.ngts.credentialsRef", Local, Resource, Secret, None),
    // Certificate: the TLS Secret itself and keystore passwords (a literal `password` field needs no Secret).
    row(Crt, "secretName", Name, Own, Secret, None),
    row(Crt, "keystores.jks.passwordSecretRef", Selector, Own, Secret, None),
    row(Crt, "keystores.pkcs12.passwordSecretRef", Selector, Own, Secret, None),
];

/// How a reference was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FoundBy {
    /// A row of [`REFERENCE_TABLE`].
    Table,
    /// The shape of a field the table does not know (worth a warning: the guess may be wrong either way).
    Heuristic,
}

/// A resolved reference from an object to a Secret.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// Namespace the Secret is looked up in.
    pub namespace: String,
    /// Secret name.
    pub name: String,
    /// Data key: the one named by the reference, else the key cert-manager defaults to, if any.
    pub key: Option<String>,
    /// Where the reference was written, e.g. `.spec.acme.privateKeySecretRef`.
    pub path: String,
    /// The object holding the reference.
    pub holder: ObjectKey,
    /// Table or heuristic.
    pub found_by: FoundBy,
}

/// A resolved reference from an object to a ServiceAccount.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceAccountRef {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// ServiceAccount name.
    pub name: String,
    /// Where the reference was written.
    pub path: String,
    /// The object holding the reference.
    pub holder: ObjectKey,
}

/// What a reference resolves against besides the object itself.
#[derive(Clone, Copy, Debug)]
pub struct RefContext<'a> {
    /// cert-manager's `--cluster-resource-namespace` in the source cluster.
    pub cluster_resource_namespace: &'a str,
    /// For a ClusterIssuer: namespaces of the Certificates that use it, where its HTTP-01 solver pods run.
    /// Without them, ClusterIssuer HTTP-01 pull-secret references cannot be resolved and are left out.
    pub challenge_namespaces: &'a [String],
}

/// Secrets an Issuer, ClusterIssuer, Certificate or external issuer references. ClusterIssuer references resolve
/// in `cluster_resource_namespace`; HTTP-01 pull secrets of a ClusterIssuer need the Certificates' namespaces, so
/// use [`secret_refs_in`] or [`referenced_secrets`] for those. Other cert-manager kinds, Secrets and Namespaces
/// reference nothing; any other object is treated as an external issuer and scanned by shape.
pub fn secret_refs(object: &Value, cluster_resource_namespace: &str) -> Vec<SecretRef> {
    secret_refs_in(
        object,
        &RefContext {
            cluster_resource_namespace,
            challenge_namespaces: &[],
        },
    )
}

/// [`secret_refs`] with the full resolution context.
pub fn secret_refs_in(object: &Value, context: &RefContext<'_>) -> Vec<SecretRef> {
    collect(object, context).0
}

/// ServiceAccounts an issuer references (Vault and Route53 Kubernetes auth, Vault AWS auth, HTTP-01 solver pods).
pub fn service_account_refs(object: &Value, context: &RefContext<'_>) -> Vec<ServiceAccountRef> {
    collect(object, context).1
}

/// [`secret_refs_in`] and [`service_account_refs`] in one walk of the object.
pub fn refs_in(object: &Value, context: &RefContext<'_>) -> (Vec<SecretRef>, Vec<ServiceAccountRef>) {
    collect(object, context)
}

/// Every Secret referenced by a set of objects, resolved together: ClusterIssuer HTTP-01 pull secrets expand over
/// the namespaces of the Certificates using each ClusterIssuer. Objects of other kinds are scanned only when they
/// look like external issuers (a Certificate's `issuerRef` names their group and kind, or their kind ends in
/// `Issuer`), so passing a whole dump is safe. Sorted and de-duplicated: the list of Secrets a cluster pack must
/// GET.
pub fn referenced_secrets(objects: &[Value], cluster_resource_namespace: &str) -> Vec<SecretRef> {
    referenced(objects, cluster_resource_namespace, |object, context| {
        secret_refs_in(object, context)
    })
}

/// Every ServiceAccount referenced by a set of objects (issuers' Kubernetes and AWS auth, HTTP-01 solver pods),
/// resolved like [`referenced_secrets`]: the ServiceAccounts a cluster pack GETs by name.
pub fn referenced_service_accounts(objects: &[Value], cluster_resource_namespace: &str) -> Vec<ServiceAccountRef> {
    referenced(objects, cluster_resource_namespace, service_account_refs)
}

fn referenced<T: Ord>(
    objects: &[Value],
    cluster_resource_namespace: &str,
    refs: impl Fn(&Value, &RefContext<'_>) -> Vec<T>,
) -> Vec<T> {
    let external: BTreeSet<(&str, &str)> = objects
        .iter()
        .filter(|o| kinds::classify(o) == Kind::Certificate)
        .map(kinds::issuer_ref)
        .filter(|(_, _, group)| *group != CERT_MANAGER_GROUP)
        .map(|(_, kind, group)| (group, kind))
        .collect();
    let mut out = BTreeSet::new();
    for object in objects {
        if kinds::classify(object) == Kind::Other {
            let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
            let group = kinds::api_group(object);
            let own = group.is_empty() || group == CERT_MANAGER_GROUP || group == kinds::ACME_GROUP;
            let named_like_issuer = !own && kind.ends_with("Issuer");
            if !named_like_issuer && !external.contains(&(group, kind)) {
                continue;
            }
        }
        let namespaces = challenge_namespaces(object, objects);
        let context = RefContext {
            cluster_resource_namespace,
            challenge_namespaces: &namespaces,
        };
        out.extend(refs(object, &context));
    }
    out.into_iter().collect()
}

/// Namespaces of the Certificates whose `issuerRef` names `issuer` (only meaningful for cluster-scoped issuers).
pub fn challenge_namespaces<'a>(issuer: &Value, objects: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    if kinds::namespace(issuer).is_some() || !matches!(kinds::classify(issuer), Kind::ClusterIssuer) {
        return Vec::new();
    }
    let name = kinds::name(issuer);
    let namespaces: BTreeSet<String> = objects
        .into_iter()
        .filter(|o| kinds::classify(o) == Kind::Certificate)
        .filter(|crt| {
            let (n, k, g) = kinds::issuer_ref(crt);
            n == name && k == "ClusterIssuer" && g == CERT_MANAGER_GROUP
        })
        .filter_map(|crt| kinds::namespace(crt).map(str::to_owned))
        .collect();
    namespaces.into_iter().collect()
}

fn collect(object: &Value, context: &RefContext<'_>) -> (Vec<SecretRef>, Vec<ServiceAccountRef>) {
    let Some(holder) = ObjectKey::of(object) else {
        return (Vec::new(), Vec::new());
    };
    let table_holder = match kinds::classify(object) {
        Kind::Issuer | Kind::ClusterIssuer => Some(Holder::IssuerSpec),
        Kind::Certificate => Some(Holder::CertificateSpec),
        Kind::Other => None,
        _ => return (Vec::new(), Vec::new()),
    };
    let Some(spec) = object.get("spec") else {
        return (Vec::new(), Vec::new());
    };
    let own_namespace = kinds::namespace(object);
    let resource_namespace = own_namespace.unwrap_or(context.cluster_resource_namespace).to_owned();

    let mut secrets = Vec::new();
    let mut accounts = Vec::new();
    let mut known_paths = HashSet::new();
    for rule in REFERENCE_TABLE.iter().filter(|r| Some(r.holder) == table_holder) {
        let segments: Vec<&str> = rule.path.split('.').collect();
        let mut found = Vec::new();
        walk(spec, &segments, ".spec".to_owned(), &mut found);
        for (path, value) in found {
            known_paths.insert(path.clone());
            if let Some(array) = path.strip_suffix(']').and_then(|p| p.rsplit_once('[')).map(|(a, _)| a) {
                known_paths.insert(array.to_owned());
            }
            let Some((name, key)) = read_shape(value, rule.shape) else {
                continue;
            };
            let namespaces: Vec<String> = match (rule.scope, own_namespace) {
                (Scope::ObjectNamespace, _) | (Scope::IssuerResource, _) => {
                    vec![resource_namespace.clone()]
                }
                (Scope::ChallengeNamespace, Some(ns)) => vec![ns.to_owned()],
                (Scope::ChallengeNamespace, None) => context.challenge_namespaces.to_vec(),
            };
            for namespace in namespaces {
                match rule.target {
                    Target::Secret => secrets.push(SecretRef {
                        namespace,
                        name: name.to_owned(),
                        key: key.or(rule.default_key).map(str::to_owned),
                        path: path.clone(),
                        holder: holder.clone(),
                        found_by: FoundBy::Table,
                    }),
                    Target::ServiceAccount => accounts.push(ServiceAccountRef {
                        namespace,
                        name: name.to_owned(),
                        path: path.clone(),
                        holder: holder.clone(),
                    }),
                }
            }
        }
    }
    let mut shaped = Vec::new();
    heuristic_scan(spec, ".spec", &known_paths, &mut shaped);
    for found in shaped {
        secrets.push(SecretRef {
            namespace: found.namespace.unwrap_or_else(|| resource_namespace.clone()),
            name: found.name,
            key: found.key,
            path: found.path,
            holder: holder.clone(),
            found_by: FoundBy::Heuristic,
        });
    }
    (secrets, accounts)
}

/// Follows a table path, collecting every (concrete path, value) it reaches.
fn walk<'a>(value: &'a Value, segments: &[&str], path: String, out: &mut Vec<(String, &'a Value)>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push((path, value));
        return;
    };
    let (key, each) = match first.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (*first, false),
    };
    let Some(child) = value.get(key) else { return };
    let child_path = format!("{path}.{key}");
    if each {
        for (i, element) in child.as_array().into_iter().flatten().enumerate() {
            walk(element, rest, format!("{child_path}[{i}]"), out);
        }
    } else {
        walk(child, rest, child_path, out);
    }
}

/// Reads (name, key) from a value of the given shape; `None` when there is no reference (empty name: Go value
/// structs serialize as `{}` or `{"name": ""}`).
fn read_shape(value: &Value, shape: Shape) -> Option<(&str, Option<&str>)> {
    let (name, key) = match shape {
        Shape::Name => (value.as_str()?, None),
        Shape::LocalObjectReference => (value.get("name")?.as_str()?, None),
        Shape::SecretKeySelector => (
            value.get("name")?.as_str()?,
            value.get("key").and_then(Value::as_str).filter(|k| !k.is_empty()),
        ),
    };
    (!name.is_empty()).then_some((name, key))
}

/// A field that looks like a Secret reference.
struct Shaped {
    path: String,
    name: String,
    key: Option<String>,
    namespace: Option<String>,
}

/// Finds fields shaped like Secret references that no table row covers: `*SecretRef`/`*secretKeyRef`/
/// `*credentialsRef` objects with a `name`, `*secretName` strings, `imagePullSecrets` lists, and `{name, key}`
/// objects (a SecretKeySelector by another name, e.g. a webhook solver's `apiKey`). An explicit `namespace` next to
/// the name wins over the holder's resource namespace (some external ClusterIssuers use that).
fn heuristic_scan(value: &Value, path: &str, known: &HashSet<String>, found: &mut Vec<Shaped>) {
    fn shaped(path: String, name: &str, key: Option<&str>, namespace: Option<&str>) -> Shaped {
        Shaped {
            path,
            name: name.to_owned(),
            key: key.map(str::to_owned),
            namespace: namespace.map(str::to_owned),
        }
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if known.contains(&child_path) {
                    continue;
                }
                if key.contains('/') {
                    // A label or annotation key (e.g. in secretTemplate), never a field of an API type.
                    continue;
                }
                let lower = key.to_ascii_lowercase();
                if lower == "imagepullsecrets" {
                    for (i, element) in child.as_array().into_iter().flatten().enumerate() {
                        if let Some(name) = element.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                            found.push(shaped(format!("{child_path}[{i}]"), name, None, None));
                        }
                    }
                    continue;
                }
                if let Some(name) = child.as_str() {
                    if lower.ends_with("secretname") && !name.is_empty() {
                        found.push(shaped(child_path, name, None, None));
                    }
                    continue;
                }
                if let Some(selector) = child.as_object() {
                    let name = selector.get("name").and_then(Value::as_str);
                    let named_like_ref = lower.ends_with("secretref")
                        || lower.ends_with("secretkeyref")
                        || lower.ends_with("credentialsref")
                        || (lower.contains("secret") && lower.ends_with("ref"));
                    let shaped_like_selector = selector.contains_key("key")
                        && selector
                            .keys()
                            .all(|k| matches!(k.as_str(), "name" | "key" | "namespace"))
                        && selector.values().all(Value::is_string);
                    if let Some(name) = name.filter(|_| named_like_ref || shaped_like_selector) {
                        if !name.is_empty() {
                            let key = selector.get("key").and_then(Value::as_str).filter(|k| !k.is_empty());
                            let namespace = selector
                                .get("namespace")
                                .and_then(Value::as_str)
                                .filter(|n| !n.is_empty());
                            found.push(shaped(child_path, name, key, namespace));
                        }
                        continue;
                    }
                }
                heuristic_scan(child, &child_path, known, found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                heuristic_scan(item, &format!("{path}[{i}]"), known, found);
            }
        }
        _ => {}
    }
}
