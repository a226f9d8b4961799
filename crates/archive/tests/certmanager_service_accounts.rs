//! The ServiceAccounts issuers authenticate as, one test per reference field of the API (Vault `kubernetes` and
//! `aws` auth, Route53 `kubernetes` auth): the ServiceAccount itself (without its token Secrets) and the Role and
//! RoleBinding letting cert-manager create its tokens are archived in the Secrets phase, found by what they grant
//! and to whom, not by name; look-alikes stay out; the warning only asks for the external side's trust.

pub mod fixtures;

use cmarchive_archive::certmanager::select::codes;
use cmarchive_archive::certmanager::{SelectOptions, plan};
use cmarchive_archive::manifest::PhaseName;
use cmarchive_archive::plan::Plan;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const NS: &str = "pki";
const ACCOUNT: &str = "issuer-sa";

fn options() -> SelectOptions {
    SelectOptions {
        cluster_resource_namespace: "cert-manager".into(),
        cert_manager_service_account: Some(("cert-manager".into(), "cert-manager".into())),
        ..SelectOptions::default()
    }
}

fn service_account(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": namespace, "uid": "0c1d", "resourceVersion": "7"},
           "secrets": [{"name": format!("{name}-token-abcde")}]})
}

fn token_role(namespace: &str, name: &str, account: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
           "metadata": {"name": name, "namespace": namespace},
           "rules": [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": [account],
                      "verbs": ["create"]}]})
}

fn binding(namespace: &str, name: &str, role: &str, subject: (&str, &str)) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": name, "namespace": namespace},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
           "subjects": [{"kind": "ServiceAccount", "namespace": subject.0, "name": subject.1}]})
}

/// The issuer, its ServiceAccount and token RBAC, plus look-alikes that must stay out: a Role for another
/// ServiceAccount (bound to cert-manager), a binding of the right Role to someone else, an unrelated Role.
fn inputs(issuer: Value, namespace: &str) -> Vec<Value> {
    vec![
        fixtures::namespace(namespace),
        issuer,
        service_account(namespace, ACCOUNT),
        service_account(namespace, "unrelated"),
        token_role(namespace, "cm-token-issuer", ACCOUNT),
        binding(
            namespace,
            "cm-token-issuer",
            "cm-token-issuer",
            ("cert-manager", "cert-manager"),
        ),
        token_role(namespace, "cm-token-other", "unrelated"),
        binding(
            namespace,
            "cm-token-other",
            "cm-token-other",
            ("cert-manager", "cert-manager"),
        ),
        binding(namespace, "someone-else", "cm-token-issuer", ("ci", "deployer")),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "reader", "namespace": namespace},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
    ]
}

fn secrets_phase(plan: &Plan) -> BTreeSet<String> {
    plan.phases
        .iter()
        .filter(|p| p.name == PhaseName::Secrets)
        .flat_map(|p| p.objects.iter().map(|o| o.key().to_string()))
        .collect()
}

/// Asserts the ServiceAccount (sanitized), its Role and RoleBinding are in the Secrets phase and nothing else of
/// RBAC is, and that the one warning left is about the external side's trust.
fn assert_archived(plan: &Plan, namespace: &str, path: &str) {
    let expected: BTreeSet<String> = [
        format!("ServiceAccount/{namespace}/{ACCOUNT}"),
        format!("Role/{namespace}/cm-token-issuer"),
        format!("RoleBinding/{namespace}/cm-token-issuer"),
    ]
    .into_iter()
    .collect();
    assert_eq!(secrets_phase(plan), expected);
    let account = plan
        .phases
        .iter()
        .flat_map(|p| p.objects.iter())
        .find(|o| o.key().kind == "ServiceAccount")
        .unwrap();
    assert!(account.reasons[0].ends_with(path), "{:?}", account.reasons);
    let stored = account.object();
    assert!(
        stored.get("secrets").is_none(),
        "token Secrets are never archived: {stored}"
    );
    assert!(stored["metadata"].get("uid").is_none(), "{stored}");
    let trust: Vec<&str> = plan
        .warnings
        .iter()
        .filter(|w| w.code == codes::SERVICE_ACCOUNT_TRUST)
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(trust.len(), 1, "{:?}", plan.warnings);
    assert!(
        trust[0].contains("archived with the Role and RoleBinding") && trust[0].contains("external side"),
        "{trust:?}"
    );
    assert!(!plan.warnings.iter().any(|w| w.code == codes::SERVICE_ACCOUNT_REQUIRED));
}

#[test]
fn vault_kubernetes_auth_service_account_ref() {
    let issuer = fixtures::issuer(
        NS,
        "vault",
        json!({"vault": {"server": "https://vault.example:8200", "path": "pki/sign/x",
            "auth": {"kubernetes": {"role": "issuer", "serviceAccountRef": {"name": ACCOUNT}}}}}),
    );
    let plan = plan(inputs(issuer, NS), &options());
    assert_archived(&plan, NS, ".spec.vault.auth.kubernetes.serviceAccountRef");
}

#[test]
fn vault_aws_auth_service_account_ref() {
    let issuer = fixtures::issuer(
        NS,
        "vault-aws",
        json!({"vault": {"server": "https://vault.example:8200", "path": "pki/sign/x",
            "auth": {"aws": {"role": "issuer", "region": "eu-west-1", "serviceAccountRef": {"name": ACCOUNT}}}}}),
    );
    let plan = plan(inputs(issuer, NS), &options());
    assert_archived(&plan, NS, ".spec.vault.auth.aws.serviceAccountRef");
}

#[test]
fn route53_kubernetes_auth_service_account_ref_of_a_cluster_issuer() {
    // A ClusterIssuer's ServiceAccount lives in the cluster resource namespace.
    let issuer = fixtures::cluster_issuer(
        "acme-route53",
        json!({"acme": {"server": "https://acme.example/directory", "privateKeySecretRef": {"name": "acct"},
            "solvers": [{"dns01": {"route53": {"region": "eu-west-1",
                "auth": {"kubernetes": {"serviceAccountRef": {"name": ACCOUNT}}}}}}]}}),
    );
    let plan = plan(inputs(issuer, "cert-manager"), &options());
    assert_archived(
        &plan,
        "cert-manager",
        ".spec.acme.solvers[0].dns01.route53.auth.kubernetes.serviceAccountRef",
    );
}

#[test]
fn without_the_service_account_or_its_rbac_the_warning_says_what_to_create() {
    let issuer = fixtures::issuer(
        NS,
        "vault",
        json!({"vault": {"server": "https://vault.example:8200", "path": "pki/sign/x",
            "auth": {"kubernetes": {"role": "issuer", "serviceAccountRef": {"name": ACCOUNT}}}}}),
    );
    // No ServiceAccount at all: nothing archived, the operator is told to create it.
    let plan1 = plan(vec![fixtures::namespace(NS), issuer.clone()], &options());
    assert!(secrets_phase(&plan1).is_empty());
    let required: Vec<&str> = plan1
        .warnings
        .iter()
        .filter(|w| w.code == codes::SERVICE_ACCOUNT_REQUIRED)
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(required.len(), 1);
    assert!(required[0].contains("not in the input") && required[0].contains("serviceaccounts/token"));

    // The ServiceAccount but no binding naming cert-manager's ServiceAccount: the account alone, and a warning.
    let mut inputs = inputs(issuer, NS);
    inputs.retain(|o| o["metadata"]["name"] != "cm-token-issuer" || o["kind"] != "RoleBinding");
    let plan2 = plan(inputs.clone(), &options());
    assert_eq!(
        secrets_phase(&plan2),
        [format!("ServiceAccount/{NS}/{ACCOUNT}")].into_iter().collect()
    );
    assert!(
        plan2
            .warnings
            .iter()
            .any(|w| w.code == codes::SERVICE_ACCOUNT_TRUST && w.message.contains("no RoleBinding in the input"))
    );

    // Offline, cert-manager's own ServiceAccount is unknown: a binding of the token Role to any ServiceAccount counts.
    let offline = SelectOptions {
        cert_manager_service_account: None,
        ..options()
    };
    let plan3 = plan(inputs, &offline);
    assert!(secrets_phase(&plan3).contains(&format!("RoleBinding/{NS}/someone-else")));
}
