//! `restore --namespace-mapping OLD:NEW`: every namespaced archived object of OLD is restored into NEW, and OLD's
//! Namespace object is renamed (labels and annotations kept).
//!
//! Nothing inside the objects needs rewriting: cert-manager resolves an Issuer's Secrets, a Certificate's Issuer,
//! TLS Secret and keystore password Secret in the object's own namespace, and the annotations it checks on a TLS
//! Secret (`issuer-name`, `issuer-kind`, `issuer-group`, `certificate-name`) name no namespace, so a moved
//! Certificate finds its moved Secret unchanged and is not reissued. The cluster resource namespace is the one
//! exception: ClusterIssuer Secrets must be where the target's controller reads them, so that namespace follows
//! `--cluster-resource-namespace` and may be neither an OLD nor a NEW here.

use super::label_selector::is_dns_label;
use crate::error::ArchiveError;
use crate::manifest::Manifest;
use crate::object::{ObjectKey, to_json_exact};
use crate::reader::VerifiedObject;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Label the API server sets on every Namespace to its own name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// OLD → NEW, as `--namespace-mapping` gave them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceMapping {
    moves: BTreeMap<String, String>,
}

impl fmt::Display for NamespaceMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.moves.iter().map(|(old, new)| format!("{old}:{new}")).collect();
        f.write_str(&pairs.join(","))
    }
}

impl NamespaceMapping {
    /// Parses `OLD:NEW` values, each of which may also be a comma-separated list (as Velero's
    /// `--namespace-mappings` takes them).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<NamespaceMapping, String> {
        let mut moves = BTreeMap::new();
        for pair in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
            if pair.is_empty() {
                continue;
            }
            let Some((old, new)) = pair.split_once(':') else {
                return Err(format!("`{pair}` is not OLD:NEW (e.g. team-a:team-z)"));
            };
            let (old, new) = (old.trim(), new.trim());
            for name in [old, new] {
                if !is_dns_label(name) {
                    return Err(format!(
                        "`{pair}`: `{name}` is not a namespace name (lower-case letters, digits and `-`, at most 63)"
                    ));
                }
            }
            if old == new {
                return Err(format!("`{pair}` maps a namespace onto itself"));
            }
            match moves.insert(old.to_owned(), new.to_owned()) {
                Some(earlier) if earlier != new => {
                    return Err(format!("{old} is mapped twice: to {earlier} and to {new}"));
                }
                _ => {}
            }
        }
        Ok(NamespaceMapping { moves })
    }

    /// Whether nothing moves.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// Where objects of `namespace` are restored.
    pub fn namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.moves.get(namespace).map_or(namespace, String::as_str)
    }

    /// The NEW namespaces.
    pub fn targets(&self) -> BTreeSet<&str> {
        self.moves.values().map(String::as_str).collect()
    }

    /// The OLD namespaces mapped onto `new`.
    pub fn sources_of(&self, new: &str) -> Vec<&str> {
        self.moves
            .iter()
            .filter(|(_, n)| n.as_str() == new)
            .map(|(old, _)| old.as_str())
            .collect()
    }

    /// The identity an archived object is restored under.
    pub fn key(&self, key: &ObjectKey) -> ObjectKey {
        let mut key = key.clone();
        if is_namespace(&key) {
            key.name = self.namespace(&key.name).to_owned();
        } else if let Some(namespace) = &key.namespace {
            key.namespace = Some(self.namespace(namespace).to_owned());
        }
        key
    }

    /// Moves one object (a Namespace object is renamed); true when it changed.
    pub fn move_object(&self, object: &mut Value) -> bool {
        let is_namespace_object = ObjectKey::of(object).as_ref().is_some_and(is_namespace);
        let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return false;
        };
        let field = if is_namespace_object { "name" } else { "namespace" };
        let Some(new) = metadata
            .get(field)
            .and_then(Value::as_str)
            .and_then(|old| self.moves.get(old))
            .cloned()
        else {
            return false;
        };
        if is_namespace_object
            && let Some(label) = metadata
                .get_mut("labels")
                .and_then(|labels| labels.get_mut(NAMESPACE_NAME_LABEL))
        {
            *label = Value::String(new.clone());
        }
        metadata.insert(field.to_owned(), Value::String(new));
        true
    }

    /// Checks the mapping against an archive's manifest: the cluster resource namespace is neither moved nor a
    /// destination, every OLD holds archived objects, and no two archived objects land on one identity (two
    /// Namespace objects merging into one are fine: the first is kept). One line per problem.
    pub fn check(&self, manifest: &Manifest) -> Result<(), String> {
        let crn = manifest.source.cluster_resource_namespace.as_str();
        let mut problems = Vec::new();
        for (old, new) in &self.moves {
            if old == crn || new == crn {
                problems.push(format!(
                    "--namespace-mapping {old}:{new}: {crn} is the archive's cluster resource namespace, where \
                     ClusterIssuer Secrets live; it follows --cluster-resource-namespace, not a mapping"
                ));
            }
        }
        let held: BTreeSet<&str> = entries(manifest)
            .flat_map(|key| [key.namespace.as_deref(), is_namespace(key).then_some(key.name.as_str())])
            .flatten()
            .collect();
        for old in self.moves.keys() {
            if !held.contains(old.as_str()) {
                problems.push(format!(
                    "--namespace-mapping {old}:…: no archived (or selected) object lives in namespace {old}"
                ));
            }
        }
        let mut landing: BTreeMap<ObjectKey, Vec<&ObjectKey>> = BTreeMap::new();
        for key in entries(manifest).filter(|key| !is_namespace(key)) {
            landing.entry(self.key(key)).or_default().push(key);
        }
        for (target, from) in landing.into_iter().filter(|(_, from)| from.len() > 1) {
            let from: Vec<String> = from.iter().map(|k| k.to_string()).collect();
            problems.push(format!(
                "--namespace-mapping {self}: {target} would be restored from each of {}; map them to different \
                 namespaces or restore them separately (-n)",
                from.join(" and ")
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Namespace objects that another one of the same restored name replaces: the first one listed is kept,
    /// unless one of them is not moved (the namespace's own object).
    fn superseded(&self, manifest: &Manifest) -> BTreeSet<ObjectKey> {
        let mut by_target: BTreeMap<ObjectKey, Vec<&ObjectKey>> = BTreeMap::new();
        for key in entries(manifest).filter(|key| is_namespace(key)) {
            by_target.entry(self.key(key)).or_default().push(key);
        }
        let mut superseded = BTreeSet::new();
        for (target, keys) in by_target.into_iter().filter(|(_, keys)| keys.len() > 1) {
            let winner = keys.iter().find(|k| **k == &target).unwrap_or(&keys[0]);
            superseded.extend(keys.iter().filter(|k| *k != winner).map(|k| (*k).clone()));
        }
        superseded
    }

    /// Moves the manifest's entries, certificate facts and warnings (so that verify looks each moved Certificate
    /// up under its new namespace), and the objects with them: each moved object is serialized again and its
    /// entry's size and checksum updated. Call [`NamespaceMapping::check`] first.
    pub fn apply(&self, manifest: &mut Manifest, objects: &mut Vec<VerifiedObject>) -> Result<(), ArchiveError> {
        let superseded = self.superseded(manifest);
        objects.retain(|object| !superseded.contains(&object.entry.key));
        for object in objects.iter_mut() {
            let moved = self.key(&object.entry.key);
            if moved == object.entry.key {
                continue;
            }
            let mut value = object.object()?;
            self.move_object(&mut value);
            object.bytes = to_json_exact(&value);
            object.entry.size = object.bytes.len() as u64;
            object.entry.sha256 = hex::encode(Sha256::digest(&object.bytes));
            object.entry.key = moved;
        }
        for phase in &mut manifest.phases {
            phase.entries.retain(|entry| !superseded.contains(&entry.key));
            for entry in &mut phase.entries {
                let moved = self.key(&entry.key);
                if moved != entry.key {
                    entry.reasons.push(format!(
                        "restore: moved from namespace {} by --namespace-mapping",
                        entry.key.namespace.as_deref().unwrap_or(&entry.key.name)
                    ));
                    entry.key = moved;
                }
            }
        }
        for facts in &mut manifest.certificates {
            facts.namespace = self.namespace(&facts.namespace).to_owned();
        }
        for warning in &mut manifest.warnings {
            if let Some(key) = &mut warning.object {
                *key = self.key(key);
            }
        }
        Ok(())
    }
}

fn is_namespace(key: &ObjectKey) -> bool {
    key.kind == "Namespace" && key.api_version == "v1"
}

fn entries(manifest: &Manifest) -> impl Iterator<Item = &ObjectKey> {
    manifest.phases.iter().flat_map(|p| p.entries.iter().map(|e| &e.key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{CertificateFacts, Entry, Phase, PhaseName, Source, Warning};
    use serde_json::json;

    fn mapping(values: &[&str]) -> NamespaceMapping {
        NamespaceMapping::parse(values.iter().copied()).unwrap()
    }

    #[test]
    fn parses_repeated_and_comma_separated_pairs() {
        let m = mapping(&["team-a:team-z", "b:y, c:x", "a:z"]);
        assert_eq!(m.to_string(), "a:z,b:y,c:x,team-a:team-z");
        assert_eq!(m.namespace("team-a"), "team-z");
        assert_eq!(m.namespace("other"), "other");
        assert_eq!(m.targets(), BTreeSet::from(["team-z", "x", "y", "z"]));
        for (value, says) in [
            ("team-a", "is not OLD:NEW"),
            ("team-a:", "is not a namespace name"),
            ("Team:a", "is not a namespace name"),
            ("a:a", "onto itself"),
            ("a:b,a:c", "mapped twice"),
        ] {
            let error = NamespaceMapping::parse([value]).expect_err(value);
            assert!(error.contains(says), "{value}: {error}");
        }
    }

    #[test]
    fn moves_namespaced_objects_and_renames_the_namespace() {
        let m = mapping(&["team-a:team-z"]);
        let mut certificate = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"secretName": "web-tls", "issuerRef": {"name": "ca"}}});
        let before = certificate.clone();
        assert!(m.move_object(&mut certificate));
        assert_eq!(certificate["metadata"]["namespace"], "team-z");
        assert_eq!(
            certificate["spec"], before["spec"],
            "references resolve in the own namespace: unchanged"
        );

        let mut namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a",
            "labels": {"team": "a", "kubernetes.io/metadata.name": "team-a"}, "annotations": {"owner": "x"}}});
        assert!(m.move_object(&mut namespace));
        assert_eq!(
            namespace["metadata"],
            json!({"name": "team-z", "labels": {"team": "a", "kubernetes.io/metadata.name": "team-z"},
                "annotations": {"owner": "x"}})
        );

        let mut elsewhere = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "b"}});
        assert!(!m.move_object(&mut elsewhere));
        let mut cluster = json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": "team-a"}});
        assert!(
            !m.move_object(&mut cluster),
            "a cluster-scoped object named like OLD stays"
        );
    }

    fn key(kind: &str, ns: Option<&str>, name: &str) -> ObjectKey {
        let api = if kind == "Certificate" {
            "cert-manager.io/v1"
        } else {
            "v1"
        };
        ObjectKey::new(api.into(), kind.into(), ns.map(str::to_owned), name.into())
    }

    fn entry(key: ObjectKey) -> Entry {
        Entry {
            key,
            path: "p".into(),
            size: 0,
            sha256: String::new(),
            reasons: vec![],
        }
    }

    fn manifest(keys: Vec<ObjectKey>) -> Manifest {
        Manifest {
            format: "cmarchive".into(),
            format_version: "1.0".into(),
            tool_version: "test".into(),
            created: jiff::Timestamp::UNIX_EPOCH,
            source: Source {
                kind: "file".into(),
                cluster_resource_namespace: "cert-manager".into(),
                ..Source::default()
            },
            options: BTreeMap::new(),
            phases: vec![Phase {
                name: PhaseName::Secrets,
                entries: keys.into_iter().map(entry).collect(),
            }],
            excluded: vec![],
            warnings: vec![],
            certificates: vec![],
        }
    }

    #[test]
    fn check_refuses_collisions_the_cluster_resource_namespace_and_unknown_namespaces() {
        let archive = manifest(vec![
            key("Namespace", None, "team-a"),
            key("Namespace", None, "team-b"),
            key("Certificate", Some("team-a"), "web"),
            key("Certificate", Some("team-b"), "web"),
            key("Certificate", Some("team-b"), "shop"),
            key("Secret", Some("cert-manager"), "ca"),
        ]);
        assert_eq!(mapping(&["team-a:team-z"]).check(&archive), Ok(()));
        assert_eq!(mapping(&["team-a:team-z", "team-b:team-y"]).check(&archive), Ok(()));
        let error = mapping(&["team-a:team-z", "team-b:team-z"])
            .check(&archive)
            .unwrap_err();
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(
            error.contains("Certificate/team-z/web would be restored from each of")
                && error.contains("team-a/web")
                && error.contains("team-b/web"),
            "{error}"
        );
        let error = mapping(&["team-a:team-b"]).check(&archive).unwrap_err();
        assert!(
            error.contains("Certificate/team-b/web would be restored from each of"),
            "{error}"
        );
        let error = mapping(&["cert-manager:ops"]).check(&archive).unwrap_err();
        assert!(error.contains("cluster resource namespace"), "{error}");
        let error = mapping(&["team-a:cert-manager"]).check(&archive).unwrap_err();
        assert!(error.contains("cluster resource namespace"), "{error}");
        let error = mapping(&["team-x:team-z"]).check(&archive).unwrap_err();
        assert!(
            error.contains("no archived (or selected) object lives in namespace team-x"),
            "{error}"
        );
    }

    #[test]
    fn apply_moves_objects_entries_facts_and_warnings_together() {
        let objects_json = [
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": {"t": "a"}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-z"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-tls", "namespace": "team-a",
                "annotations": {"cert-manager.io/certificate-name": "web"}}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other", "namespace": "team-z"}}),
        ];
        let mut archive = manifest(objects_json.iter().map(|o| ObjectKey::of(o).unwrap()).collect());
        let web = key("Certificate", Some("team-a"), "web");
        archive.warnings.push(Warning {
            code: "X".into(),
            object: Some(web.clone()),
            message: "m".into(),
        });
        archive.certificates.push(CertificateFacts {
            namespace: "team-a".into(),
            name: "web".into(),
            secret_name: "web-tls".into(),
            serial_number: "1".into(),
            not_before: jiff::Timestamp::UNIX_EPOCH,
            not_after: jiff::Timestamp::UNIX_EPOCH,
            sha256_fingerprint: "00".into(),
            public_key_algorithm: "RSA-2048".into(),
            ..CertificateFacts::default()
        });
        let mut objects: Vec<VerifiedObject> = objects_json
            .iter()
            .zip(&archive.phases[0].entries)
            .map(|(o, e)| VerifiedObject {
                phase: PhaseName::Secrets,
                entry: e.clone(),
                bytes: to_json_exact(o),
            })
            .collect();
        let m = mapping(&["team-a:team-z"]);
        m.check(&archive).unwrap();
        m.apply(&mut archive, &mut objects).unwrap();

        // team-z's own Namespace object wins over the renamed team-a.
        let names: Vec<String> = objects.iter().map(|o| o.entry.key.to_string()).collect();
        assert_eq!(
            names,
            ["Namespace/team-z", "Secret/team-z/web-tls", "Secret/team-z/other"]
        );
        assert_eq!(archive.phases[0].entries.len(), 3);
        let secret = objects[1].object().unwrap();
        assert_eq!(secret["metadata"]["namespace"], "team-z");
        assert_eq!(
            secret["metadata"]["annotations"],
            objects_json[2]["metadata"]["annotations"]
        );
        assert_eq!(objects[1].entry.size, objects[1].bytes.len() as u64);
        assert_eq!(objects[1].entry.sha256, hex::encode(Sha256::digest(&objects[1].bytes)));
        assert_eq!(archive.phases[0].entries[1].key, objects[1].entry.key);
        assert_eq!(archive.certificates[0].namespace, "team-z");
        assert_eq!(archive.warnings[0].object, Some(m.key(&web)));
    }
}
