//! The "done when": from a dump holding every issuer type, unrelated Secrets, ingress-shim Certificates,
//! Orders, Challenges and CertificateRequests, `plan` yields exactly the Secrets a restore needs, each with its
//! reason, in the right namespaces and phases; and `predict` says the near-expiry and the mismatched certificate
//! are reissued while the others stay.

pub mod fixtures;

use cmarchive_archive::certmanager::select::codes;
use cmarchive_archive::certmanager::{Outcome, SelectOptions, plan, predict_plan};
use cmarchive_archive::manifest::PhaseName;
use cmarchive_archive::plan::Plan;
use std::collections::BTreeSet;

fn options() -> SelectOptions {
    SelectOptions {
        cluster_resource_namespace: "cert-manager".into(),
        ..SelectOptions::default()
    }
}

fn keys_in(plan: &Plan, phase: PhaseName) -> Vec<String> {
    plan.phases
        .iter()
        .filter(|p| p.name == phase)
        .flat_map(|p| p.objects.iter().map(|o| o.key().to_string()))
        .collect()
}

fn reasons_of(plan: &Plan, key: &str) -> Vec<String> {
    plan.phases
        .iter()
        .flat_map(|p| p.objects.iter())
        .find(|o| o.key().to_string() == key)
        .map(|o| o.reasons.clone())
        .unwrap_or_else(|| panic!("{key} not planned"))
}

fn exclusion(plan: &Plan, key: &str) -> String {
    plan.excluded
        .iter()
        .find(|e| e.key.to_string() == key)
        .map(|e| e.reason.clone())
        .unwrap_or_else(|| panic!("{key} not excluded"))
}

#[test]
fn plan_holds_exactly_the_secrets_a_restore_needs() {
    let plan = plan(fixtures::dump(), &options());
    let secrets: BTreeSet<String> = keys_in(&plan, PhaseName::Secrets).into_iter().collect();
    let expected: BTreeSet<String> = [
        // ClusterIssuer credentials, resolved in the cluster resource namespace.
        "Secret/cert-manager/root-ca",
        "Secret/cert-manager/letsencrypt-account",
        "Secret/cert-manager/eab-hmac",
        "Secret/cert-manager/cloudflare-token",
        "Secret/cert-manager/route53-credentials",
        "Secret/cert-manager/gandi-credentials",
        "Secret/cert-manager/aws-creds",
        // ClusterIssuer HTTP-01 pull secret, in the namespace of the Certificates using it.
        "Secret/shop/regcred",
        // Issuer credentials in their own namespaces.
        "Secret/shop/vault-token",
        "Secret/payments/venafi-tpp",
        "Secret/shop/venafi-cloud-key",
        "Secret/payments/pkcs12-password",
        // TLS Secrets, including the ingress-shim one.
        "Secret/shop/web-tls",
        "Secret/shop/near-tls",
        "Secret/shop/mismatch-tls",
        "Secret/payments/api-tls",
        "Secret/payments/api-pca-tls",
        "Secret/shop/shop-ingress-tls",
        // The ServiceAccount Vault's kubernetes auth authenticates as, restored with the Secrets.
        "ServiceAccount/payments/vault-issuer",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(secrets, expected);

    let root = reasons_of(&plan, "Secret/cert-manager/root-ca");
    assert!(
        root.contains(&"referenced by ClusterIssuer/ca-issuer at .spec.ca.secretName".to_owned()),
        "{root:?}"
    );
    assert!(root.contains(&"referenced by Certificate/cert-manager/root-ca at .spec.secretName".to_owned()));
    assert_eq!(
        reasons_of(&plan, "Secret/cert-manager/letsencrypt-account"),
        vec!["referenced by ClusterIssuer/letsencrypt at .spec.acme.privateKeySecretRef"]
    );
    assert_eq!(
        reasons_of(&plan, "Secret/shop/regcred"),
        vec![
            "referenced by ClusterIssuer/letsencrypt at \
             .spec.acme.solvers[3].http01.ingress.podTemplate.spec.imagePullSecrets[0]"
        ]
    );
    let gandi = reasons_of(&plan, "Secret/cert-manager/gandi-credentials");
    assert!(gandi[0].ends_with(".spec.acme.solvers[2].dns01.webhook.config.apiKeySecretRef (found by heuristic)"));
    let shim = reasons_of(&plan, "Secret/shop/shop-ingress-tls");
    assert!(shim[0].contains("adopts this Secret"), "{shim:?}");
}

#[test]
fn plan_leaves_out_what_a_restore_must_not_get() {
    let plan = plan(fixtures::dump(), &options());
    assert!(exclusion(&plan, "Certificate/shop/shop-ingress-tls").contains("Ingress/shop"));
    assert!(exclusion(&plan, "Order/shop/web-1-3918").contains("ACME"));
    assert!(exclusion(&plan, "Challenge/shop/web-1-3918-11").contains("ACME"));
    assert!(exclusion(&plan, "CertificateRequest/shop/web-1").contains("one-shot"));
    assert!(exclusion(&plan, "Secret/shop/web-x7k2p").contains("temporary private key"));
    assert!(exclusion(&plan, "Secret/shop/mismatch-k8x2z").contains("nextPrivateKeySecretName"));
    assert!(exclusion(&plan, "Secret/payments/vault-issuer-token").contains("service-account token"));
    assert_eq!(
        exclusion(&plan, "Secret/shop/db-password"),
        "not referenced by any archived object"
    );
    assert_eq!(
        exclusion(&plan, "Secret/default/random"),
        "not referenced by any archived object"
    );
    assert_eq!(
        reasons_of(&plan, "ServiceAccount/payments/vault-issuer"),
        ["ServiceAccount of Issuer/payments/vault-k8s at .spec.vault.auth.kubernetes.serviceAccountRef"]
    );
    assert!(exclusion(&plan, "CustomResourceDefinition/certificates.cert-manager.io").contains("--include-crds"));
    assert_eq!(exclusion(&plan, "Namespace/empty"), "no archived object lives in it");
    let planned: usize = plan.object_count();
    assert_eq!(
        planned + plan.excluded.len(),
        fixtures::dump().len() + 1,
        "every input is accounted for (+1 synthesized)"
    );
}

#[test]
fn plan_orders_phases_and_objects() {
    let plan = plan(fixtures::dump(), &options());
    let names: Vec<PhaseName> = plan.phases.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        vec![
            PhaseName::Namespaces,
            PhaseName::Secrets,
            PhaseName::Issuers,
            PhaseName::Certificates
        ]
    );
    assert_eq!(
        keys_in(&plan, PhaseName::Namespaces),
        vec!["Namespace/cert-manager", "Namespace/payments", "Namespace/shop"]
    );
    assert!(reasons_of(&plan, "Namespace/payments")[0].contains("synthesized"));
    assert_eq!(
        keys_in(&plan, PhaseName::Issuers),
        vec![
            "ClusterIssuer/ca-issuer",
            "ClusterIssuer/letsencrypt",
            "AWSPCAClusterIssuer/pca",
            "ClusterIssuer/selfsigned",
            "Issuer/payments/vault-k8s",
            "Issuer/payments/venafi",
            "Issuer/shop/vault",
            "Issuer/shop/venafi-cloud",
        ]
    );
    assert_eq!(
        keys_in(&plan, PhaseName::Certificates),
        vec![
            "Certificate/cert-manager/root-ca",
            "Certificate/payments/api",
            "Certificate/payments/api-pca",
            "Certificate/shop/mismatch",
            "Certificate/shop/near",
            "Certificate/shop/web",
        ]
    );
    assert!(reasons_of(&plan, "AWSPCAClusterIssuer/pca")[0].contains("external issuer"));
    // Sanitized: no status, no server fields; annotations kept.
    for object in plan.phases.iter().flat_map(|p| p.objects.iter().map(|o| o.object())) {
        assert!(object.get("status").is_none());
        assert!(object["metadata"].get("uid").is_none());
        assert!(object["metadata"].get("resourceVersion").is_none());
    }
    let web = plan.phases[1]
        .objects
        .iter()
        .find(|o| o.key().name == "web-tls")
        .unwrap();
    assert_eq!(
        web.object()["metadata"]["annotations"]["cert-manager.io/issuer-kind"],
        "ClusterIssuer"
    );
    // Deterministic: the same input in another order gives the same plan.
    let mut reversed = fixtures::dump();
    reversed.reverse();
    let again = cmarchive_archive::certmanager::plan(reversed, &options());
    let strip = |p: &Plan| -> Vec<Vec<String>> {
        p.phases
            .iter()
            .map(|ph| ph.objects.iter().map(|o| o.key().to_string()).collect())
            .collect()
    };
    assert_eq!(strip(&plan), strip(&again));
}

#[test]
fn plan_warns_about_missing_secrets_service_accounts_and_heuristics() {
    let plan = plan(fixtures::dump(), &options());
    let with = |code: &str| -> Vec<String> {
        plan.warnings
            .iter()
            .filter(|w| w.code == code)
            .map(|w| w.message.clone())
            .collect()
    };
    let missing = with(codes::MISSING_SECRET);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("Issuer/shop/vault") && missing[0].contains("shop/vault-ca"));
    assert!(missing[0].contains(".spec.vault.caBundleSecretRef"));
    assert_eq!(with(codes::SERVICE_ACCOUNT_REQUIRED), Vec::<String>::new());
    let accounts = with(codes::SERVICE_ACCOUNT_TRUST);
    assert_eq!(accounts.len(), 1);
    assert!(
        accounts[0].contains("payments/vault-issuer") && accounts[0].contains("no RoleBinding in the input"),
        "{accounts:?}"
    );
    let heuristic = with(codes::HEURISTIC_SECRET_REFERENCE);
    assert_eq!(heuristic.len(), 2, "{heuristic:?}");
    assert!(heuristic.iter().any(|m| m.contains("cert-manager/aws-creds")));
    assert!(heuristic.iter().any(|m| m.contains("cert-manager/gandi-credentials")));
}

#[test]
fn plan_records_certificate_facts() {
    let plan = plan(fixtures::dump(), &options());
    let names: Vec<String> = plan
        .certificates
        .iter()
        .map(|c| format!("{}/{}", c.namespace, c.name))
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    let api = plan.certificates.iter().find(|c| c.name == "api").unwrap();
    assert_eq!(api.secret_name, "api-tls");
    assert_eq!(api.common_name.as_deref(), Some("api.pay.example"));
    assert_eq!(api.dns_names, vec!["api.pay.example"]);
    assert_eq!(api.ip_addresses, vec!["10.0.0.7"]);
    assert_eq!(api.public_key_algorithm, "ECDSA-P384");
    assert_eq!(api.sha256_fingerprint.len(), 64);
    assert!(!api.serial_number.is_empty());
    let root = plan.certificates.iter().find(|c| c.name == "root-ca").unwrap();
    assert_eq!(root.public_key_algorithm, "RSA-2048");
    assert_eq!(root.not_after.to_string(), "2026-08-01T00:00:00Z");
}

#[test]
fn opt_ins_add_certificate_requests_and_crds() {
    let options = SelectOptions {
        include_certificate_requests: true,
        include_crds: true,
        ..options()
    };
    let plan = plan(fixtures::dump(), &options);
    assert_eq!(
        keys_in(&plan, PhaseName::Certificaterequests),
        vec!["CertificateRequest/shop/web-1"]
    );
    assert_eq!(
        keys_in(&plan, PhaseName::Crds),
        vec![
            "CustomResourceDefinition/awspcaclusterissuers.awspca.cert-manager.io",
            "CustomResourceDefinition/certificates.cert-manager.io",
            "CustomResourceDefinition/orders.acme.cert-manager.io",
        ]
    );
    assert!(exclusion(&plan, "CustomResourceDefinition/widgets.example.com").contains("not a CRD"));
    assert_eq!(plan.phases.first().unwrap().name, PhaseName::Crds);
    assert_eq!(plan.phases.last().unwrap().name, PhaseName::Certificaterequests);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.code == codes::CERTIFICATE_REQUESTS_INCLUDED)
    );
}

#[test]
fn predict_reissues_near_expiry_and_mismatch_only() {
    let plan = plan(fixtures::dump(), &options());
    let at: jiff::Timestamp = fixtures::AT.parse().unwrap();
    let predictions = predict_plan(&plan, at);
    assert_eq!(predictions.len(), 6);
    for prediction in &predictions {
        let name = prediction.certificate.name.as_str();
        match (name, &prediction.outcome) {
            ("near", Outcome::Reissued { reason, .. }) => assert_eq!(reason, "Renewing"),
            ("mismatch", Outcome::Reissued { reason, message }) => {
                assert_eq!(reason, "SecretMismatch");
                assert!(message.contains("spec.dnsNames"), "{message}");
            }
            ("near" | "mismatch", outcome) => panic!("{name}: {outcome:?}"),
            (_, outcome) => assert_eq!(outcome, &Outcome::Stays, "{name}"),
        }
    }
    // Serialized the way `inspect -o json` carries it.
    let json = serde_json::to_value(&predictions[0]).unwrap();
    assert!(json.get("outcome").is_some() && json.get("certificate").is_some());
}

#[test]
fn shared_secret_names_are_announced() {
    let mut dump = fixtures::dump();
    dump.push(fixtures::certificate(
        "shop",
        "web-copy",
        serde_json::json!({"secretName": "web-tls", "dnsNames": ["shop.example.com"], "issuerRef": {"name": "vault"}}),
    ));
    let plan = plan(dump, &options());
    let shared: Vec<&str> = plan
        .warnings
        .iter()
        .filter(|w| w.code == codes::SHARED_SECRET_NAME)
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert!(
        shared[0].contains("Certificate/shop/web,") && shared[0].contains("shop/web-tls"),
        "{shared:?}"
    );
}

#[test]
fn the_planner_moves_exactly_what_select_copies() {
    use cmarchive_archive::certmanager::select;
    use cmarchive_archive::object::ObjectKey;
    let mut dump = fixtures::dump();
    // A duplicate identity keeps the first: the planner, which moves what it keeps, must take that one, not the
    // later copy.
    let mut duplicate = dump[0].clone();
    duplicate["metadata"]["labels"] = serde_json::json!({"copy": "second"});
    dump.push(duplicate);
    let first = ObjectKey::of(&dump[0]).unwrap();
    let copied = select(&dump, &options());
    assert!(
        copied
            .selected
            .iter()
            .any(|s| ObjectKey::of(&s.object).as_ref() == Some(&first))
    );
    let planned = plan(dump, &options());
    let stored: Vec<(PhaseName, ObjectKey, serde_json::Value)> = planned
        .phases
        .iter()
        .flat_map(|p| p.objects.iter().map(move |o| (p.name, o)))
        .map(|(phase, o)| (phase, o.key().clone(), serde_json::from_slice(o.bytes()).unwrap()))
        .collect();
    assert_eq!(stored.len(), copied.selected.len());
    for selected in &copied.selected {
        let key = ObjectKey::of(&selected.object).unwrap();
        let (phase, _, object) = stored.iter().find(|(_, k, _)| *k == key).expect("planned too");
        assert_eq!(*phase, selected.phase, "{key}");
        if key == first {
            assert!(
                object["metadata"]["labels"].get("copy").is_none(),
                "the first copy is kept: {object}"
            );
        }
    }
}

#[test]
fn trimming_collected_objects_plans_the_same_archive() {
    use cmarchive_archive::certmanager::trim_collected;
    let whole = fixtures::dump();
    let mut trimmed = whole.clone();
    for object in &mut trimmed {
        trim_collected(object);
    }
    // It did trim something (status and server fields are gone, the next-key name stays).
    assert_ne!(whole, trimmed);
    assert!(trimmed.iter().all(|o| o["metadata"].get("resourceVersion").is_none()));
    assert!(
        trimmed
            .iter()
            .any(|o| o.pointer("/status/nextPrivateKeySecretName").is_some())
    );
    assert_eq!(plan(whole, &options()), plan(trimmed, &options()));
}
