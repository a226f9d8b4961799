//! Selective restore: from an archive, the objects `-n NS` / `-l SELECTOR` pick, plus everything they need to work
//! without reissuing — the Secrets they reference, the issuer each Certificate names (a ClusterIssuer and its
//! Secrets only when a picked Certificate uses it), and the Namespaces and CRDs of what is kept. Dependencies come
//! from the objects themselves through the same reference table the pack uses ([`secret_refs`]), so a restore
//! selection and an archive agree on what a Certificate needs.
//!
//! What is picked: with `-n`, every archived object in those namespaces (cluster-scoped objects only as
//! dependencies); with `-l` alone, every archived object whose labels match, ClusterIssuers included; with both,
//! objects satisfying both. Namespaces and CRDs are never picked on their own, only kept for what lives in them.

use super::kinds::{self, ACME_GROUP, CERT_MANAGER_GROUP, Kind};
use super::label_selector::LabelSelector;
use super::secret_refs::{self, RefContext};
use crate::manifest::Manifest;
use crate::object::ObjectKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What `-n` and `-l` asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreFilter {
    /// `-n`: these namespaces (empty: any).
    pub namespaces: BTreeSet<String>,
    /// `-l`: objects whose labels match.
    pub selector: Option<LabelSelector>,
}

impl RestoreFilter {
    /// Whether nothing narrows the restore.
    pub fn is_everything(&self) -> bool {
        self.namespaces.is_empty() && self.selector.is_none()
    }

    /// The flags as a person typed them, for messages: `-n team-a -l app=web`.
    pub fn flags(&self) -> String {
        let mut parts: Vec<String> = self.namespaces.iter().map(|ns| format!("-n {ns}")).collect();
        if let Some(selector) = &self.selector {
            parts.push(format!("-l '{selector}'"));
        }
        parts.join(" ")
    }

    /// Whether an object is picked for itself (not as a dependency).
    fn picks(&self, key: &ObjectKey, object: &Value) -> bool {
        if matches!(
            kinds::classify_key(key),
            Kind::Namespace | Kind::CustomResourceDefinition
        ) {
            return false;
        }
        let in_namespace = match &key.namespace {
            Some(namespace) => self.namespaces.is_empty() || self.namespaces.contains(namespace),
            None => self.namespaces.is_empty(),
        };
        in_namespace && self.selector.as_ref().is_none_or(|s| s.matches(object))
    }
}

/// The objects a filtered restore keeps, each with why, in key order.
pub type Kept = BTreeMap<ObjectKey, Vec<String>>;

/// Which archived objects a restore with `filter` holds. `objects` are the archived objects with their keys;
/// `cluster_resource_namespace` is the archive's (where ClusterIssuer Secrets were resolved). A filter that picks
/// nothing is an error naming the flags and the namespaces the archive does hold.
pub fn select_for_restore<'a>(
    objects: impl IntoIterator<Item = (&'a ObjectKey, &'a Value)>,
    filter: &RestoreFilter,
    cluster_resource_namespace: &str,
) -> Result<Kept, String> {
    let objects: BTreeMap<&ObjectKey, &Value> = objects.into_iter().collect();
    let mut kept = Kept::new();
    let keep = |kept: &mut Kept, key: &ObjectKey, reason: String| {
        let reasons = kept.entry(key.clone()).or_default();
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    };
    let picked_because = format!("selected by {}", filter.flags());
    for (key, object) in &objects {
        if filter.picks(key, object) {
            keep(&mut kept, key, picked_because.clone());
        }
    }
    if kept.is_empty() {
        let namespaces: BTreeSet<&str> = objects.keys().filter_map(|k| k.namespace.as_deref()).collect();
        let held = namespaces.into_iter().collect::<Vec<_>>().join(", ");
        return Err(format!(
            "{} selects nothing in the archive (its namespaces: {held}); check the namespace and label selector",
            filter.flags()
        ));
    }

    // Issuers the picked Certificates (and CertificateRequests) name. Only picked objects name issuers, so one
    // pass is enough.
    let users: Vec<(ObjectKey, &Value)> = kept
        .keys()
        .filter(|key| matches!(kinds::classify_key(key), Kind::Certificate | Kind::CertificateRequest))
        .filter_map(|key| Some((key.clone(), *objects.get(key)?)))
        .collect();
    // Indexed once: looking each issuerRef up by scanning every object was quadratic.
    let by_identity: BTreeMap<(&str, &str, &str, Option<&str>), &ObjectKey> = objects
        .keys()
        .map(|k| {
            (
                (k.group(), k.kind.as_str(), k.name.as_str(), k.namespace.as_deref()),
                *k,
            )
        })
        .collect();
    for (user, object) in &users {
        let (name, kind, group) = kinds::issuer_ref(object);
        let issuer = by_identity
            .get(&(group, kind, name, user.namespace.as_deref()))
            .or_else(|| by_identity.get(&(group, kind, name, None)));
        if let Some(issuer) = issuer {
            keep(&mut kept, issuer, format!("issuer of {user}"));
        }
    }

    // Secrets of everything kept so far; a ClusterIssuer's HTTP-01 pull secrets only in the namespaces of the
    // kept Certificates that use it.
    let certificates: Vec<&Value> = users
        .iter()
        .filter(|(key, _)| kinds::classify_key(key) == Kind::Certificate)
        .map(|(_, object)| *object)
        .collect();
    let referencing: Vec<&ObjectKey> = kept
        .keys()
        .filter(|key| {
            matches!(
                kinds::classify_key(key),
                Kind::Issuer | Kind::ClusterIssuer | Kind::Certificate | Kind::Other
            )
        })
        .collect();
    let mut secrets = Vec::new();
    for key in referencing {
        let Some(object) = objects.get(key) else { continue };
        let namespaces = secret_refs::challenge_namespaces(object, certificates.iter().copied());
        let context = RefContext {
            cluster_resource_namespace,
            challenge_namespaces: &namespaces,
        };
        secrets.extend(secret_refs::secret_refs_in(object, &context));
    }
    for reference in secrets {
        let secret = ObjectKey::new(
            "v1".into(),
            "Secret".into(),
            Some(reference.namespace.clone()),
            reference.name.clone(),
        );
        if objects.contains_key(&secret) {
            keep(
                &mut kept,
                &secret,
                format!("referenced by {} at {}", reference.holder, reference.path),
            );
        }
    }

    // Namespaces of what is kept, and the CRDs of the groups in use.
    let namespaces: BTreeSet<String> = kept.keys().filter_map(|k| k.namespace.clone()).collect();
    let mut groups: BTreeSet<String> = kept.keys().map(|k| k.group().to_owned()).collect();
    if groups.contains(CERT_MANAGER_GROUP) {
        groups.insert(ACME_GROUP.to_owned());
    }
    for (key, object) in &objects {
        match kinds::classify_key(key) {
            Kind::Namespace if namespaces.contains(&key.name) => {
                keep(&mut kept, key, "holds selected objects".into());
            }
            Kind::CustomResourceDefinition => {
                let group = kinds::str_at(object, &["spec", "group"]).unwrap_or_default();
                if groups.contains(group) {
                    keep(&mut kept, key, format!("CRD of {group}, in use by selected objects"));
                }
            }
            _ => {}
        }
    }
    Ok(kept)
}

/// The manifest of the selection: entries, certificate facts and warnings of kept objects only (an entry's
/// reasons get the selection's added), exclusions only from the selected namespaces, empty phases dropped.
pub fn narrow_manifest(manifest: &Manifest, kept: &Kept, filter: &RestoreFilter) -> Manifest {
    let mut narrowed = manifest.clone();
    for phase in &mut narrowed.phases {
        phase.entries.retain(|entry| kept.contains_key(&entry.key));
        for entry in &mut phase.entries {
            for reason in &kept[&entry.key] {
                entry.reasons.push(format!("restore: {reason}"));
            }
        }
    }
    narrowed.phases.retain(|phase| !phase.entries.is_empty());
    narrowed.certificates.retain(|facts| {
        let key = ObjectKey::new(
            format!("{CERT_MANAGER_GROUP}/v1"),
            "Certificate".into(),
            Some(facts.namespace.clone()),
            facts.name.clone(),
        );
        kept.contains_key(&key)
    });
    narrowed
        .warnings
        .retain(|warning| warning.object.as_ref().is_none_or(|key| kept.contains_key(key)));
    narrowed.excluded.retain(|exclusion| {
        filter.namespaces.is_empty()
            || exclusion
                .key
                .namespace
                .as_ref()
                .is_some_and(|ns| filter.namespaces.contains(ns))
    });
    narrowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CRN: &str = "cert-manager";

    fn namespace(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    }

    fn secret(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}})
    }

    fn certificate(ns: &str, name: &str, issuer: Value, labels: Value) -> Value {
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"secretName": format!("{name}-tls"), "issuerRef": issuer,
                "keystores": {"pkcs12": {"create": true, "passwordSecretRef": {"name": "store-pass", "key": "p"}}}}})
    }

    /// Two teams: team-a uses a namespaced CA Issuer and the ClusterIssuer `public`; team-b only `public`.
    /// `private` is a ClusterIssuer nobody in team-a uses.
    fn archive() -> Vec<Value> {
        vec![
            namespace("team-a"),
            namespace("team-b"),
            namespace(CRN),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "certificates.cert-manager.io"}, "spec": {"group": "cert-manager.io"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com"}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "ca", "namespace": "team-a"}, "spec": {"ca": {"secretName": "ca-key"}}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "ca", "namespace": "team-b"}, "spec": {"ca": {"secretName": "ca-key"}}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "public"},
                "spec": {"acme": {"privateKeySecretRef": {"name": "acme-account"}, "solvers": [{"http01":
                    {"ingress": {"podTemplate": {"spec": {"imagePullSecrets": [{"name": "pull"}]}}}}}]}}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "private",
                "labels": {"team": "a"}}, "spec": {"ca": {"secretName": "private-ca"}}}),
            certificate("team-a", "web", json!({"name": "ca"}), json!({"app": "web"})),
            certificate(
                "team-a",
                "api",
                json!({"name": "public", "kind": "ClusterIssuer"}),
                json!({"app": "api"}),
            ),
            certificate(
                "team-b",
                "shop",
                json!({"name": "public", "kind": "ClusterIssuer"}),
                json!({}),
            ),
            secret("team-a", "ca-key"),
            secret("team-a", "web-tls"),
            secret("team-a", "api-tls"),
            secret("team-a", "store-pass"),
            secret("team-a", "pull"),
            secret("team-b", "ca-key"),
            secret("team-b", "shop-tls"),
            secret("team-b", "store-pass"),
            secret("team-b", "pull"),
            secret(CRN, "acme-account"),
            secret(CRN, "private-ca"),
        ]
    }

    fn kept_by(filter: &RestoreFilter) -> Result<Vec<String>, String> {
        let objects = archive();
        let keyed: Vec<(ObjectKey, &Value)> = objects.iter().map(|o| (ObjectKey::of(o).unwrap(), o)).collect();
        let kept = select_for_restore(keyed.iter().map(|(k, o)| (k, *o)), filter, CRN)?;
        Ok(kept.keys().map(|k| format!("{} {}", k.kind, k)).collect())
    }

    fn filter(namespaces: &[&str], selector: Option<&str>) -> RestoreFilter {
        RestoreFilter {
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            selector: selector.map(|s| LabelSelector::parse(s).unwrap()),
        }
    }

    fn has(kept: &[String], kind: &str, what: &str) -> bool {
        kept.iter()
            .any(|k| k.starts_with(&format!("{kind} ")) && k.ends_with(what))
    }

    #[test]
    fn a_namespace_brings_the_cluster_issuer_it_uses_and_its_secrets() {
        let kept = kept_by(&filter(&["team-a"], None)).unwrap();
        for (kind, what) in [
            ("Certificate", "team-a/web"),
            ("Certificate", "team-a/api"),
            ("Issuer", "team-a/ca"),
            ("Secret", "team-a/ca-key"),
            ("Secret", "team-a/web-tls"),
            ("Secret", "team-a/store-pass"),
            ("Secret", "team-a/pull"),
            ("ClusterIssuer", "public"),
            ("Secret", "cert-manager/acme-account"),
            ("Namespace", "team-a"),
            ("Namespace", "cert-manager"),
            ("CustomResourceDefinition", "certificates.cert-manager.io"),
        ] {
            assert!(has(&kept, kind, what), "{kind} {what} missing from {kept:#?}");
        }
        for (kind, what) in [
            ("Certificate", "team-b/shop"),
            ("Secret", "team-b/pull"),
            ("Issuer", "team-b/ca"),
            ("ClusterIssuer", "private"),
            ("Secret", "cert-manager/private-ca"),
            ("Namespace", "team-b"),
            ("CustomResourceDefinition", "widgets.example.com"),
        ] {
            assert!(!has(&kept, kind, what), "{kind} {what} kept: {kept:#?}");
        }
    }

    #[test]
    fn a_label_selector_picks_certificates_and_cluster_issuers_with_what_they_need() {
        let kept = kept_by(&filter(&[], Some("app=api"))).unwrap();
        assert!(has(&kept, "Certificate", "team-a/api"));
        assert!(has(&kept, "Secret", "team-a/api-tls"));
        assert!(has(&kept, "Secret", "team-a/store-pass"));
        assert!(has(&kept, "ClusterIssuer", "public"));
        assert!(!has(&kept, "Certificate", "team-a/web"));
        assert!(!has(&kept, "Issuer", "team-a/ca"));
        assert!(!has(&kept, "Secret", "team-a/ca-key"));

        // Without -n, a cluster-scoped object is picked by its labels; with -n it comes only when used.
        let labelled = kept_by(&filter(&[], Some("team=a"))).unwrap();
        assert!(has(&labelled, "ClusterIssuer", "private"));
        assert!(has(&labelled, "Secret", "cert-manager/private-ca"));
        let error = kept_by(&filter(&["team-a"], Some("team=a"))).unwrap_err();
        assert!(error.contains("-n team-a -l 'team=a' selects nothing"), "{error}");
    }

    #[test]
    fn a_selection_of_nothing_names_the_flags_and_the_namespaces_held() {
        let error = kept_by(&filter(&["team-x"], None)).unwrap_err();
        assert!(error.starts_with("-n team-x selects nothing"), "{error}");
        assert!(error.contains("cert-manager, team-a, team-b"), "{error}");
    }

    #[test]
    fn the_manifest_keeps_only_the_selection() {
        use crate::manifest::{CertificateFacts, Entry, Exclusion, Phase, PhaseName, Source, Warning};
        let objects = archive();
        let entries = |phase: PhaseName| -> Vec<Entry> {
            objects
                .iter()
                .filter(|o| super::super::phase_of(o) == Some(phase))
                .map(|o| Entry {
                    key: ObjectKey::of(o).unwrap(),
                    path: String::new(),
                    size: 0,
                    sha256: String::new(),
                    reasons: vec!["archived".into()],
                })
                .collect()
        };
        let facts = |ns: &str, name: &str| CertificateFacts {
            namespace: ns.into(),
            name: name.into(),
            secret_name: format!("{name}-tls"),
            serial_number: "1".into(),
            not_before: jiff::Timestamp::UNIX_EPOCH,
            not_after: jiff::Timestamp::UNIX_EPOCH,
            sha256_fingerprint: "00".into(),
            public_key_algorithm: "RSA-2048".into(),
            ..CertificateFacts::default()
        };
        let shop = ObjectKey::of(&objects[11]).unwrap();
        let manifest = Manifest {
            format: "cmarchive".into(),
            format_version: "1.0".into(),
            tool_version: "test".into(),
            created: jiff::Timestamp::UNIX_EPOCH,
            source: Source {
                kind: "file".into(),
                cluster_resource_namespace: CRN.into(),
                ..Source::default()
            },
            options: BTreeMap::new(),
            phases: [
                PhaseName::Crds,
                PhaseName::Namespaces,
                PhaseName::Secrets,
                PhaseName::Issuers,
                PhaseName::Certificates,
            ]
            .into_iter()
            .map(|name| Phase {
                name,
                entries: entries(name),
            })
            .collect(),
            excluded: vec![
                Exclusion {
                    key: ObjectKey::new("v1".into(), "Secret".into(), Some("team-a".into()), "x".into()),
                    reason: "r".into(),
                },
                Exclusion {
                    key: ObjectKey::new("v1".into(), "Secret".into(), Some("team-b".into()), "y".into()),
                    reason: "r".into(),
                },
            ],
            warnings: vec![
                Warning {
                    code: "A".into(),
                    object: Some(shop.clone()),
                    message: "about shop".into(),
                },
                Warning {
                    code: "B".into(),
                    object: None,
                    message: "general".into(),
                },
            ],
            certificates: vec![facts("team-a", "web"), facts("team-b", "shop")],
        };
        let filter = filter(&["team-a"], None);
        let keyed: Vec<(ObjectKey, &Value)> = objects.iter().map(|o| (ObjectKey::of(o).unwrap(), o)).collect();
        let kept = select_for_restore(keyed.iter().map(|(k, o)| (k, *o)), &filter, CRN).unwrap();
        let narrowed = narrow_manifest(&manifest, &kept, &filter);
        let listed: Vec<&ObjectKey> = narrowed
            .phases
            .iter()
            .flat_map(|p| p.entries.iter().map(|e| &e.key))
            .collect();
        assert_eq!(listed.len(), kept.len());
        assert!(!listed.contains(&&shop));
        let web = narrowed
            .phases
            .iter()
            .flat_map(|p| &p.entries)
            .find(|e| e.key.name == "web")
            .unwrap();
        assert_eq!(web.reasons, ["archived", "restore: selected by -n team-a"]);
        assert_eq!(narrowed.certificates, [facts("team-a", "web")]);
        assert_eq!(narrowed.warnings.len(), 1);
        assert_eq!(narrowed.warnings[0].code, "B");
        assert_eq!(narrowed.excluded.len(), 1);
        assert_eq!(narrowed.excluded[0].key.namespace.as_deref(), Some("team-a"));
    }
}
