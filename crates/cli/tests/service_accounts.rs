//! An issuer's ServiceAccount and the RBAC letting cert-manager create its tokens, restored into a real local
//! cluster by an account bound to `deploy/rbac/restore-role.yaml`: without `cmarchive-restore-token-rbac` in the
//! ServiceAccount's namespace the API server refuses the token Role in the preflight's dry run and nothing is
//! written; with it the ServiceAccount, Role and RoleBinding arrive as archived and the Vault Issuer using them
//! exists (it cannot reach a Vault here, so it is never Ready).

pub mod support;

use anyhow::{Context as _, Result};
use cmarchive_e2e::local::LocalCluster;
use cmarchive_e2e::provider::{Cluster as _, ClusterSpec};
use serde_json::{Value, json};
use std::path::Path;
use support::{against, kubectl, pack_dump, repository, run, service_account_kubeconfig};

const NS: &str = "vault-auth";

/// A Vault Issuer with Kubernetes auth, its ServiceAccount (with a token Secret name, as old clusters list them),
/// and the Role and RoleBinding letting cert-manager's controller create its tokens.
fn dump() -> Value {
    let items = vec![
        cmarchive_e2e::fixtures::namespace(NS),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "vault-issuer", "namespace": NS, "uid": "0f3e", "resourceVersion": "12"},
               "secrets": [{"name": "vault-issuer-token-8x2kq"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "vault-issuer-tokens", "namespace": NS},
               "rules": [{"apiGroups": [""], "resources": ["serviceaccounts/token"],
                          "resourceNames": ["vault-issuer"], "verbs": ["create"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "cert-manager-vault-issuer-tokens", "namespace": NS},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vault-issuer-tokens"},
               "subjects": [{"kind": "ServiceAccount", "name": "cert-manager", "namespace": "cert-manager"}]}),
        cmarchive_e2e::fixtures::issuer(
            Some(NS),
            "vault",
            json!({"vault": {"server": "https://vault.cmarchive.invalid:8200", "path": "pki/sign/web",
                "auth": {"kubernetes": {"role": "web", "serviceAccountRef": {"name": "vault-issuer"}}}}}),
        ),
    ];
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// `kubectl get KIND NAME -n NS -o json`, `None` when it does not exist.
fn get(kubeconfig: &Path, kind: &str, name: &str) -> Option<Value> {
    let (code, stdout, _) = run(kubectl(kubeconfig).args(["get", kind, name, "-n", NS, "-o", "json"]));
    (code == 0).then(|| serde_json::from_str(&stdout).expect("kubectl printed JSON"))
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str], stdin: Option<Value>) {
    let mut command = kubectl(kubeconfig);
    command.current_dir(repository()).args(args);
    if let Some(objects) = stdin {
        command.write_stdin(objects.to_string());
    }
    let (code, _, stderr) = run(&mut command);
    assert_eq!(code, 0, "kubectl {args:?}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuers_service_account_and_token_rbac_are_restored() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (archive, key) = pack_dump(work.path(), "vault", &dump())?;
    let target = LocalCluster::start(&ClusterSpec::named("service-accounts")).await?;
    let admin = target.kubeconfig();

    // A restorer bound cluster-wide to cmarchive-restore, as restore-role.yaml's header says.
    kubectl_ok(admin, &["apply", "-f", "deploy/rbac/restore-role.yaml"], None);
    let restorer_objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "restorer", "namespace": "default"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "restorer"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cmarchive-restore"},
         "subjects": [{"kind": "ServiceAccount", "name": "restorer", "namespace": "default"}]},
    ]});
    kubectl_ok(admin, &["apply", "-f", "-"], Some(restorer_objects));
    kubectl_ok(admin, &["create", "namespace", NS], None);
    let restorer = work.path().join("restorer.kubeconfig");
    service_account_kubeconfig(&target, "default", "restorer", &restorer).await?;

    // Without the token role the API server will not let the restorer grant what it does not hold.
    let (code, _, stderr) = run(against("restore", &archive, &key, &restorer).args(["--timeout", "10s"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("vault-issuer-tokens"),
        "the refused Role is named: {stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(
        get(admin, "serviceaccount", "vault-issuer").is_none(),
        "written despite the refusal"
    );

    kubectl_ok(
        admin,
        &[
            "create",
            "rolebinding",
            "cmarchive-restore-token-rbac",
            "-n",
            NS,
            "--clusterrole=cmarchive-restore-token-rbac",
            "--serviceaccount=default:restorer",
        ],
        None,
    );
    let (code, _, stderr) = run(against("restore", &archive, &key, &restorer).args(["--timeout", "10s"]));
    // The Issuer cannot reach a Vault: not Ready is its only complaint.
    let complaints: Vec<&str> = stderr.lines().filter(|l| l.starts_with("not ready:")).collect();
    assert!(
        code == 0
            || (code == 1
                && complaints
                    .iter()
                    .all(|l| l.starts_with("not ready: Issuer vault-auth/vault"))),
        "{stderr}"
    );
    assert!(stderr.contains("secrets: 3 created"), "{stderr}");

    let archived = dump();
    let items = archived["items"].as_array().context("items")?;
    let account = get(admin, "serviceaccount", "vault-issuer").context("ServiceAccount restored")?;
    assert!(
        account.get("secrets").is_none(),
        "no token Secret name travels: {account}"
    );
    let role = get(admin, "role", "vault-issuer-tokens").context("Role restored")?;
    assert_eq!(role["rules"], items[2]["rules"]);
    let binding = get(admin, "rolebinding", "cert-manager-vault-issuer-tokens").context("RoleBinding restored")?;
    assert_eq!(binding["roleRef"], items[3]["roleRef"]);
    assert_eq!(binding["subjects"], items[3]["subjects"]);
    get(admin, "issuer", "vault").context("the Vault Issuer restored")?;
    Ok(())
}
