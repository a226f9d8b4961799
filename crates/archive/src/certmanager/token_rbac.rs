//! The RBAC that lets cert-manager authenticate as a ServiceAccount: for Vault `kubernetes` and `aws` auth and
//! Route53 `kubernetes` auth with a `serviceAccountRef`, cert-manager's controller requests a token for that
//! ServiceAccount (TokenRequest API), which needs `create` on `serviceaccounts/token` for its name in its namespace.
//! The objects granting it are found by what they say, never by name: a Role in the ServiceAccount's namespace
//! with such a rule, and a RoleBinding there binding that Role to cert-manager's ServiceAccount.

use super::kinds;
use serde_json::Value;

/// Whether a Role (or ClusterRole) has a rule allowing `create` on `serviceaccounts/token` for `account`, read
/// the way the API server's authorizer matches rules (`*` wildcards, `*/token`, empty `resourceNames` = all).
pub fn grants_token(role: &Value, account: &str) -> bool {
    let rules = role.get("rules").and_then(Value::as_array).into_iter().flatten();
    rules.into_iter().any(|rule| {
        let list = |field: &str| -> Vec<&str> {
            rule.get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect()
        };
        let groups = list("apiGroups");
        let resources = list("resources");
        let verbs = list("verbs");
        let names = list("resourceNames");
        groups.iter().any(|g| g.is_empty() || *g == "*")
            && resources
                .iter()
                .any(|r| matches!(*r, "*" | "serviceaccounts/token" | "*/token"))
            && verbs.iter().any(|v| matches!(*v, "create" | "*"))
            && (names.is_empty() || names.contains(&account))
    })
}

/// Whether a RoleBinding binds the Role `role` (in its own namespace) to `subject`, a ServiceAccount as
/// (namespace, name); with `None` (cert-manager's ServiceAccount unknown, as offline) any ServiceAccount subject
/// counts.
pub fn binds(binding: &Value, role: &str, subject: Option<(&str, &str)>) -> bool {
    let role_ref = binding.get("roleRef");
    let field = |name: &str| role_ref.and_then(|r| r.get(name)).and_then(Value::as_str);
    if field("kind") != Some("Role") || field("name") != Some(role) {
        return false;
    }
    let own_namespace = kinds::namespace(binding).unwrap_or_default();
    let subjects = binding.get("subjects").and_then(Value::as_array).into_iter().flatten();
    subjects.into_iter().any(|s| {
        if s.get("kind").and_then(Value::as_str) != Some("ServiceAccount") {
            return false;
        }
        let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        // A ServiceAccount subject without a namespace is the binding's own namespace.
        let namespace = s
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(own_namespace);
        subject.is_none_or(|(ns, n)| ns == namespace && n == name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(rule: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"namespace": "vault", "name": "r"}, "rules": [rule]})
    }

    #[test]
    fn token_rules_match_like_the_authorizer() {
        let exact = json!({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"],
                           "resourceNames": ["issuer-sa"]});
        assert!(grants_token(&role(exact.clone()), "issuer-sa"));
        assert!(!grants_token(&role(exact), "other-sa"), "resourceNames limit it");
        let wide = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(grants_token(&role(wide), "any"));
        let subresource = json!({"apiGroups": [""], "resources": ["*/token"], "verbs": ["create"]});
        assert!(grants_token(&role(subresource), "any"));
        let read_only = json!({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["get"]});
        assert!(!grants_token(&role(read_only), "issuer-sa"));
        let accounts = json!({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]});
        assert!(
            !grants_token(&role(accounts), "issuer-sa"),
            "the object, not its token subresource"
        );
        let other_group = json!({"apiGroups": ["apps"], "resources": ["serviceaccounts/token"], "verbs": ["create"]});
        assert!(!grants_token(&role(other_group), "issuer-sa"));
    }

    #[test]
    fn bindings_match_role_and_subject() {
        let binding = json!({"kind": "RoleBinding", "metadata": {"namespace": "vault", "name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "cert-manager", "namespace": "cert-manager"}]});
        assert!(binds(&binding, "r", Some(("cert-manager", "cert-manager"))));
        assert!(binds(&binding, "r", None));
        assert!(!binds(&binding, "other", None));
        assert!(!binds(&binding, "r", Some(("kube-system", "cert-manager"))));
        let mut to_cluster_role = binding.clone();
        to_cluster_role["roleRef"]["kind"] = json!("ClusterRole");
        assert!(!binds(&to_cluster_role, "r", None));
        let mut to_user = binding;
        to_user["subjects"] = json!([{"kind": "User", "name": "cert-manager"}]);
        assert!(!binds(&to_user, "r", None));
    }
}
