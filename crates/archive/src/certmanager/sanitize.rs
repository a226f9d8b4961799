//! Two transforms of an object: [`sanitize`] at pack time (drop what only the source cluster's API server
//! understands) and [`prepare_for_restore`] at restore time (owner references and the cluster resource namespace,
//! which depend on the target).
//!
//! Neither ever touches `data`, `stringData`, `type`, `spec`, labels or annotations other than kubectl's
//! last-applied copy: cert-manager compares the `cert-manager.io/*` issuer annotations of a Secret with the
//! Certificate's `issuerRef` and reissues when they differ.

use super::kinds::{self, Kind};
use serde_json::{Map, Value};

/// kubectl's copy of the last applied object: stale after a restore and often holds Secret data in clear.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `metadata` fields the source API server assigned; a create in the target refuses or ignores them.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Pack-time cleanup: removes server-assigned metadata, the last-applied annotation and `status` (the API server
/// ignores status on create; a restored `Issuing` condition would even start an issuance), and a ServiceAccount's
/// list of token `secrets`. Keeps labels,
/// annotations and `ownerReferences` (so a `--same-cluster` restore can use them). Idempotent.
pub fn sanitize(object: &Value) -> Value {
    let mut object = object.clone();
    sanitize_in_place(&mut object);
    object
}

/// [`sanitize`] without a copy, for objects the caller owns.
pub fn sanitize_in_place(object: &mut Value) {
    let service_account = kinds::classify(object) == Kind::ServiceAccount;
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if service_account {
            // Names of the source cluster's token Secrets, which are never archived: the target makes its own.
            map.remove("secrets");
        }
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in SERVER_METADATA {
                metadata.remove(*field);
            }
            remove_annotation(metadata, LAST_APPLIED_ANNOTATION);
        }
    }
}

/// What a collector may drop from an object as soon as it has read it: everything [`sanitize`] drops, except the
/// one status field selection still reads (a Certificate's `status.nextPrivateKeySecretName`, whose Secret is left
/// out of the backup). Planning trimmed objects gives the same archive as planning them whole, and a cluster pack
/// holding thousands of Certificates holds them at a fraction of the size. Idempotent.
pub fn trim_collected(object: &mut Value) {
    let next_key = object
        .pointer_mut("/status/nextPrivateKeySecretName")
        .map(Value::take)
        .filter(Value::is_string);
    sanitize_in_place(object);
    if let (Some(next_key), Some(map)) = (next_key, object.as_object_mut()) {
        map.insert(
            "status".into(),
            Value::Object(Map::from_iter([("nextPrivateKeySecretName".to_owned(), next_key)])),
        );
    }
}

/// How the target differs from the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Restoring into the cluster the archive came from, whose owner objects still carry the recorded UIDs.
    pub same_cluster: bool,
    /// cert-manager's cluster resource namespace in the source cluster (recorded in the manifest).
    pub source_cluster_resource_namespace: String,
    /// cert-manager's cluster resource namespace in the target cluster.
    pub target_cluster_resource_namespace: String,
}

/// Restore-time transform of an archived object.
///
/// Owner references: a Secret's reference to a Certificate is always dropped, even with `same_cluster`. Keeping it
/// only helps when that Certificate still exists with the same UID, and then cert-manager
/// (`--enable-certificate-owner-ref`) re-adds it through its post-issuance checks without reissuing; if the
/// Certificate was deleted and is restored after the Secret, the reference dangles and the garbage collector
/// deletes the freshly restored Secret, which is exactly the reissuance this tool exists to prevent. Every other
/// owner reference is kept only with `same_cluster`: elsewhere the UIDs are the source cluster's, and a dangling
/// owner gets its dependent garbage-collected.
///
/// Namespaces: everything archived from the source cluster resource namespace moves to the target's, together
/// (ClusterIssuer Secrets, and the Certificates and Issuers there that produce or use them, e.g. a CA key pair
/// issued by a Certificate in `cert-manager` and used by a CA ClusterIssuer), and a Namespace object of that name is
/// renamed. Idempotent.
pub fn prepare_for_restore(object: &Value, options: &RestoreOptions) -> Value {
    let mut object = sanitize(object);
    let kind = kinds::classify(&object);
    let source = options.source_cluster_resource_namespace.as_str();
    let target = options.target_cluster_resource_namespace.as_str();
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return object;
    };
    if let Some(owners) = metadata.get_mut("ownerReferences").and_then(Value::as_array_mut) {
        owners.retain(|owner| options.same_cluster && !(kind == Kind::Secret && is_certificate_owner(owner)));
        if owners.is_empty() {
            metadata.remove("ownerReferences");
        }
    }
    if source != target && !target.is_empty() {
        let field = if kind == Kind::Namespace { "name" } else { "namespace" };
        if metadata.get(field).and_then(Value::as_str) == Some(source) {
            metadata.insert(field.to_owned(), Value::String(target.to_owned()));
        }
    }
    object
}

fn is_certificate_owner(owner: &Value) -> bool {
    let api_version = owner.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    owner.get("kind").and_then(Value::as_str) == Some("Certificate")
        && api_version.starts_with(&format!("{}/", kinds::CERT_MANAGER_GROUP))
}

fn remove_annotation(metadata: &mut Map<String, Value>, key: &str) {
    if let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove(key);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn options(same_cluster: bool) -> RestoreOptions {
        RestoreOptions {
            same_cluster,
            source_cluster_resource_namespace: "cert-manager".into(),
            target_cluster_resource_namespace: "kube-system".into(),
        }
    }

    fn tls_secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {
                "name": "web-tls", "namespace": "shop", "uid": "1a2b", "resourceVersion": "42",
                "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1, "selfLink": "/api/v1/x",
                "managedFields": [{"manager": "cert-manager-certificates-issuing"}],
                "labels": {"controller.cert-manager.io/fao": "true"},
                "annotations": {
                    "cert-manager.io/issuer-name": "ca", "cert-manager.io/issuer-kind": "ClusterIssuer",
                    "cert-manager.io/issuer-group": "cert-manager.io", "cert-manager.io/certificate-name": "web",
                    LAST_APPLIED_ANNOTATION: "{\"data\":{\"tls.key\":\"secret\"}}"
                },
                "ownerReferences": [
                    {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "web", "uid": "c1",
                     "controller": true, "blockOwnerDeletion": true},
                    {"apiVersion": "example.com/v1", "kind": "Bundle", "name": "b", "uid": "b1"}
                ]
            },
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
        })
    }

    #[test]
    fn sanitize_drops_server_fields_and_keeps_the_rest() {
        let clean = sanitize(&tls_secret());
        let metadata = &clean["metadata"];
        for field in SERVER_METADATA {
            assert!(metadata.get(*field).is_none(), "{field} kept");
        }
        assert!(metadata["annotations"].get(LAST_APPLIED_ANNOTATION).is_none());
        assert_eq!(metadata["annotations"]["cert-manager.io/issuer-kind"], "ClusterIssuer");
        assert_eq!(metadata["labels"]["controller.cert-manager.io/fao"], "true");
        assert_eq!(metadata["ownerReferences"].as_array().unwrap().len(), 2);
        assert_eq!(clean["data"], tls_secret()["data"]);
    }

    #[test]
    fn sanitize_drops_status() {
        let crt = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "shop"}, "spec": {"secretName": "web-tls"},
            "status": {"conditions": [{"type": "Issuing", "status": "True"}], "nextPrivateKeySecretName": "web-x"}});
        assert!(sanitize(&crt).get("status").is_none());
    }

    #[test]
    fn sanitize_drops_the_token_secrets_of_a_service_account_only() {
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "vault-issuer", "namespace": "vault", "uid": "u"},
            "secrets": [{"name": "vault-issuer-token-x7k2p"}], "imagePullSecrets": [{"name": "regcred"}],
            "automountServiceAccountToken": false});
        assert_eq!(
            sanitize(&account),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "vault-issuer", "namespace": "vault"},
                   "imagePullSecrets": [{"name": "regcred"}], "automountServiceAccountToken": false})
        );
        let other = json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "secrets": []});
        assert_eq!(sanitize(&other), other);
    }

    #[test]
    fn restore_elsewhere_drops_every_owner_reference() {
        let restored = prepare_for_restore(&tls_secret(), &options(false));
        assert!(restored["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn restore_in_same_cluster_still_drops_secret_owner_certificate() {
        let restored = prepare_for_restore(&tls_secret(), &options(true));
        let owners = restored["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0]["kind"], "Bundle");
    }

    #[test]
    fn restore_in_same_cluster_keeps_certificate_owner_references() {
        let crt = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "shop", "ownerReferences": [
                {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web", "uid": "i1", "controller": true}]},
            "spec": {"secretName": "web"}});
        let same = prepare_for_restore(&crt, &options(true));
        assert_eq!(same["metadata"]["ownerReferences"][0]["kind"], "Ingress");
        let other = prepare_for_restore(&crt, &options(false));
        assert!(other["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn restore_moves_the_cluster_resource_namespace() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "acme-account", "namespace": "cert-manager"}, "data": {"tls.key": "a2V5"}});
        let moved = prepare_for_restore(&secret, &options(false));
        assert_eq!(moved["metadata"]["namespace"], "kube-system");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}});
        assert_eq!(
            prepare_for_restore(&ns, &options(false))["metadata"]["name"],
            "kube-system"
        );
        let other = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "shop"}});
        assert_eq!(
            prepare_for_restore(&other, &options(false))["metadata"]["namespace"],
            "shop"
        );
    }

    pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z0-9./-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z.]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_strings() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map(
            prop_oneof![
                "cert-manager\\.io/[a-z-]{1,12}",
                "controller\\.cert-manager\\.io/fao",
                Just(LAST_APPLIED_ANNOTATION.to_owned()),
                "[a-z.]{1,10}/[a-z]{1,6}",
            ],
            "[a-zA-Z0-9 ,.-]{0,16}".prop_map(Value::String),
            0..6,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    prop_compose! {
        pub(crate) fn arb_object()(
            kind in prop_oneof![Just("Secret"), Just("Certificate"), Just("Namespace"), Just("Issuer")],
            namespace in prop_oneof![Just("cert-manager"), Just("kube-system"), Just("shop")],
            labels in arb_strings(),
            annotations in arb_strings(),
            data in arb_json(),
            string_data in arb_json(),
            spec in arb_json(),
            status in arb_json(),
            owner_kind in prop_oneof![Just("Certificate"), Just("Ingress")],
            extra in arb_json(),
        ) -> Value {
            let api_version = if kind == "Secret" || kind == "Namespace" { "v1" } else { "cert-manager.io/v1" };
            serde_json::json!({
                "apiVersion": api_version, "kind": kind,
                "metadata": {
                    "name": "n", "namespace": namespace, "uid": "u", "resourceVersion": "1",
                    "labels": labels, "annotations": annotations, "extra": extra,
                    "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": owner_kind, "name": "o", "uid": "x"}],
                },
                "data": data, "stringData": string_data, "spec": spec, "status": status,
            })
        }
    }

    fn cert_manager_annotations(object: &Value) -> Vec<(String, Value)> {
        object["metadata"]["annotations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("cert-manager.io/"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    proptest! {
        #[test]
        fn sanitize_is_idempotent(object in arb_object()) {
            let once = sanitize(&object);
            prop_assert_eq!(sanitize(&once), once);
        }

        #[test]
        fn prepare_for_restore_is_idempotent(object in arb_object(), same in any::<bool>()) {
            let once = prepare_for_restore(&object, &options(same));
            prop_assert_eq!(prepare_for_restore(&once, &options(same)), once);
        }

        #[test]
        fn transforms_never_touch_data_labels_or_cert_manager_annotations(object in arb_object(), same in any::<bool>()) {
            for out in [sanitize(&object), prepare_for_restore(&object, &options(same))] {
                prop_assert_eq!(&out["data"], &object["data"]);
                prop_assert_eq!(&out["stringData"], &object["stringData"]);
                prop_assert_eq!(&out["spec"], &object["spec"]);
                prop_assert_eq!(&out["metadata"]["labels"], &object["metadata"]["labels"]);
                prop_assert_eq!(cert_manager_annotations(&out), cert_manager_annotations(&object));
            }
        }
    }
}
