//! One test per row of the Secret reference table, each with a realistic manifest, plus the namespace rules and
//! the heuristic scan. A last test proves every row has its test.

use cmarchive_archive::certmanager::secret_refs::{Target, challenge_namespaces};
use cmarchive_archive::certmanager::{
    FoundBy, REFERENCE_TABLE, RefContext, SecretRef, referenced_secrets, secret_refs, secret_refs_in,
    service_account_refs,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Mutex;

const CRN: &str = "cert-manager";
static COVERED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn issuer(namespace: &str, spec: Value) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
        "metadata": {"name": "issuer", "namespace": namespace}, "spec": spec})
}

fn cluster_issuer(spec: Value) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "global"}, "spec": spec})
}

fn certificate(spec: Value) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": spec})
}

fn acme(solver: Value) -> Value {
    json!({"acme": {"server": "https://acme-v02.api.letsencrypt.org/directory", "email": "ops@example.com",
        "privateKeySecretRef": {"name": ""}, "solvers": [{"selector": {"dnsZones": ["example.com"]}}, solver]}})
}

/// Asserts the one table-found Secret reference at `path` (relative to `.spec`) and records the row as covered.
fn expect(object: &Value, rule_path: &'static str, namespace: &str, name: &str, key: Option<&str>) {
    let refs = secret_refs(object, CRN);
    let table: Vec<&SecretRef> = refs.iter().filter(|r| r.found_by == FoundBy::Table).collect();
    assert_eq!(table.len(), 1, "{refs:#?}");
    let found = table[0];
    assert_eq!(strip_indexes(&found.path), format!(".spec.{rule_path}"));
    assert_eq!(
        (found.namespace.as_str(), found.name.as_str(), found.key.as_deref()),
        (namespace, name, key)
    );
    assert!(
        refs.iter().all(|r| r.found_by == FoundBy::Table),
        "no heuristic double count: {refs:#?}"
    );
    COVERED.lock().unwrap().push(rule_path);
}

fn strip_indexes(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

macro_rules! row_tests {
    ($($test:ident: $object:expr, $path:literal, $ns:literal, $name:literal, $key:expr;)*) => {
        $(#[test] fn $test() { expect(&$object, $path, $ns, $name, $key); })*
        /// Every table row is exercised by one of the tests above.
        #[test]
        fn every_secret_row_has_a_test() {
            let tested: BTreeSet<&str> = [$($path),*].into_iter().collect();
            let rows: BTreeSet<&str> =
                REFERENCE_TABLE.iter().filter(|r| r.target == Target::Secret).map(|r| r.path).collect();
            assert_eq!(tested, rows);
        }
    };
}

row_tests! {
    ca_secret_name: issuer("pki", json!({"ca": {"secretName": "ca-key-pair"}})),
        "ca.secretName", "pki", "ca-key-pair", None;
    acme_account_key: cluster_issuer(json!({"acme": {"server": "https://acme.example/dir",
        "privateKeySecretRef": {"name": "letsencrypt-prod"}, "solvers": []}})),
        "acme.privateKeySecretRef", "cert-manager", "letsencrypt-prod", Some("tls.key");
    acme_eab: issuer("shop", json!({"acme": {"server": "https://acme.zerossl.com/v2/DV90",
        "privateKeySecretRef": {}, "externalAccountBinding": {"keyID": "kid", "keySecretRef": {"name": "zerossl-eab", "key": "secret"}}}})),
        "acme.externalAccountBinding.keySecretRef", "shop", "zerossl-eab", Some("secret");
    akamai_client_token: issuer("shop", acme(json!({"dns01": {"akamai": {"serviceConsumerDomain": "akab.example",
        "clientTokenSecretRef": {"name": "akamai", "key": "clientToken"}, "clientSecretSecretRef": {}, "accessTokenSecretRef": {}}}}))),
        "acme.solvers[].dns01.akamai.clientTokenSecretRef", "shop", "akamai", Some("clientToken");
    akamai_client_secret: issuer("shop", acme(json!({"dns01": {"akamai": {"serviceConsumerDomain": "akab.example",
        "clientTokenSecretRef": {}, "clientSecretSecretRef": {"name": "akamai", "key": "clientSecret"}, "accessTokenSecretRef": {}}}}))),
        "acme.solvers[].dns01.akamai.clientSecretSecretRef", "shop", "akamai", Some("clientSecret");
    akamai_access_token: issuer("shop", acme(json!({"dns01": {"akamai": {"serviceConsumerDomain": "akab.example",
        "clientTokenSecretRef": {"name": ""}, "clientSecretSecretRef": {}, "accessTokenSecretRef": {"name": "akamai", "key": "accessToken"}}}}))),
        "acme.solvers[].dns01.akamai.accessTokenSecretRef", "shop", "akamai", Some("accessToken");
    clouddns: cluster_issuer(acme(json!({"dns01": {"cloudDNS": {"project": "p",
        "serviceAccountSecretRef": {"name": "clouddns-sa", "key": "key.json"}}}}))),
        "acme.solvers[].dns01.cloudDNS.serviceAccountSecretRef", "cert-manager", "clouddns-sa", Some("key.json");
    cloudflare_api_key: issuer("shop", acme(json!({"dns01": {"cloudflare": {"email": "a@example.com",
        "apiKeySecretRef": {"name": "cloudflare-key", "key": "api-key"}}}}))),
        "acme.solvers[].dns01.cloudflare.apiKeySecretRef", "shop", "cloudflare-key", Some("api-key");
    cloudflare_api_token: cluster_issuer(acme(json!({"dns01": {"cloudflare": {
        "apiTokenSecretRef": {"name": "cloudflare-token", "key": "api-token"}}}}))),
        "acme.solvers[].dns01.cloudflare.apiTokenSecretRef", "cert-manager", "cloudflare-token", Some("api-token");
    route53_access_key_id: issuer("shop", acme(json!({"dns01": {"route53": {"region": "eu-west-1",
        "accessKeyIDSecretRef": {"name": "aws", "key": "id"}, "secretAccessKeySecretRef": {"name": ""}}}}))),
        "acme.solvers[].dns01.route53.accessKeyIDSecretRef", "shop", "aws", Some("id");
    route53_secret_access_key: issuer("shop", acme(json!({"dns01": {"route53": {"region": "eu-west-1", "accessKeyID": "AKIA",
        "secretAccessKeySecretRef": {"name": "aws", "key": "secret"}}}}))),
        "acme.solvers[].dns01.route53.secretAccessKeySecretRef", "shop", "aws", Some("secret");
    azuredns: issuer("shop", acme(json!({"dns01": {"azureDNS": {"clientID": "c", "subscriptionID": "s", "tenantID": "t",
        "resourceGroupName": "rg", "hostedZoneName": "example.com", "clientSecretSecretRef": {"name": "azure", "key": "client-secret"}}}}))),
        "acme.solvers[].dns01.azureDNS.clientSecretSecretRef", "shop", "azure", Some("client-secret");
    digitalocean: issuer("shop", acme(json!({"dns01": {"digitalocean": {"tokenSecretRef": {"name": "do", "key": "access-token"}}}}))),
        "acme.solvers[].dns01.digitalocean.tokenSecretRef", "shop", "do", Some("access-token");
    acmedns: issuer("shop", acme(json!({"dns01": {"acmeDNS": {"host": "https://auth.acme-dns.io",
        "accountSecretRef": {"name": "acme-dns", "key": "acmedns.json"}}}}))),
        "acme.solvers[].dns01.acmeDNS.accountSecretRef", "shop", "acme-dns", Some("acmedns.json");
    rfc2136: cluster_issuer(acme(json!({"dns01": {"rfc2136": {"nameserver": "10.0.0.53", "tsigKeyName": "k",
        "tsigAlgorithm": "HMACSHA512", "tsigSecretSecretRef": {"name": "tsig", "key": "tsig-secret-key"}}}}))),
        "acme.solvers[].dns01.rfc2136.tsigSecretSecretRef", "cert-manager", "tsig", Some("tsig-secret-key");
    http01_ingress_pull_secret: issuer("shop", acme(json!({"http01": {"ingress": {"ingressClassName": "nginx",
        "podTemplate": {"spec": {"imagePullSecrets": [{"name": "regcred"}]}}}}}))),
        "acme.solvers[].http01.ingress.podTemplate.spec.imagePullSecrets[]", "shop", "regcred", None;
    http01_gateway_pull_secret: issuer("shop", acme(json!({"http01": {"gatewayHTTPRoute": {
        "parentRefs": [{"name": "gw"}], "podTemplate": {"spec": {"imagePullSecrets": [{"name": "regcred"}]}}}}}))),
        "acme.solvers[].http01.gatewayHTTPRoute.podTemplate.spec.imagePullSecrets[]", "shop", "regcred", None;
    vault_token: issuer("shop", json!({"vault": {"server": "https://vault:8200", "path": "pki/sign/x",
        "auth": {"tokenSecretRef": {"name": "vault-token"}}}})),
        "vault.auth.tokenSecretRef", "shop", "vault-token", Some("token");
    vault_approle: cluster_issuer(json!({"vault": {"server": "https://vault:8200", "path": "pki/sign/x",
        "auth": {"appRole": {"path": "approle", "roleId": "r", "secretRef": {"name": "approle", "key": "secretId"}}}}})),
        "vault.auth.appRole.secretRef", "cert-manager", "approle", Some("secretId");
    vault_client_certificate: issuer("shop", json!({"vault": {"server": "https://vault:8200", "path": "pki/sign/x",
        "auth": {"clientCertificate": {"mountPath": "/v1/auth/cert", "secretName": "vault-client-tls"}}}})),
        "vault.auth.clientCertificate.secretName", "shop", "vault-client-tls", None;
    vault_kubernetes_secret: issuer("shop", json!({"vault": {"server": "https://vault:8200", "path": "pki/sign/x",
        "auth": {"kubernetes": {"role": "r", "secretRef": {"name": "vault-sa-token"}}}}})),
        "vault.auth.kubernetes.secretRef", "shop", "vault-sa-token", Some("token");
    vault_ca_bundle: issuer("shop", json!({"vault": {"server": "https://vault:8200", "path": "pki/sign/x",
        "auth": {"tokenSecretRef": {"name": ""}}, "caBundleSecretRef": {"name": "vault-ca"}}})),
        "vault.caBundleSecretRef", "shop", "vault-ca", Some("ca.crt");
    vault_client_cert: issuer("shop", json!({"vault": {"server": "https://vault:8200", "path": "pki/sign/x",
        "auth": {}, "clientCertSecretRef": {"name": "vault-mtls"}}})),
        "vault.clientCertSecretRef", "shop", "vault-mtls", Some("tls.crt");
    vault_client_key: issuer("shop", json!({"vault": {"server": "https://vault:8200", "path": "pki/sign/x",
        "auth": {}, "clientKeySecretRef": {"name": "vault-mtls", "key": "key.pem"}}})),
        "vault.clientKeySecretRef", "shop", "vault-mtls", Some("key.pem");
    venafi_tpp_credentials: issuer("shop", json!({"venafi": {"zone": "z", "tpp": {"url": "https://tpp/vedsdk",
        "credentialsRef": {"name": "tpp-creds"}}}})),
        "venafi.tpp.credentialsRef", "shop", "tpp-creds", None;
    venafi_tpp_ca_bundle: issuer("shop", json!({"venafi": {"zone": "z", "tpp": {"url": "https://tpp/vedsdk",
        "credentialsRef": {"name": ""}, "caBundleSecretRef": {"name": "tpp-ca"}}}})),
        "venafi.tpp.caBundleSecretRef", "shop", "tpp-ca", Some("ca.crt");
    venafi_cloud: cluster_issuer(json!({"venafi": {"zone": "app\\z", "cloud": {"apiTokenSecretRef": {"name": "vaas"}}}})),
        "venafi.cloud.apiTokenSecretRef", "cert-manager", "vaas", Some("api-key");
    venafi_ngts: issuer("shop", json!({"venafi": {"zone": "z", "ngts": {"tsgID": "123", "credentialsRef": {"name": "ngts"}}}})),
        "venafi.ngts.credentialsRef", "shop", "ngts", None;
    certificate_secret_name: certificate(json!({"secretName": "web-tls", "issuerRef": {"name": "ca"}})),
        "secretName", "shop", "web-tls", None;
    keystore_jks_password: certificate(json!({"secretName": "", "issuerRef": {"name": "ca"},
        "keystores": {"jks": {"create": true, "passwordSecretRef": {"name": "jks-password", "key": "password"}}}})),
        "keystores.jks.passwordSecretRef", "shop", "jks-password", Some("password");
    keystore_pkcs12_password: certificate(json!({"secretName": "", "issuerRef": {"name": "ca"},
        "keystores": {"pkcs12": {"create": true, "profile": "Modern2023", "passwordSecretRef": {"name": "p12", "key": "password"}}}})),
        "keystores.pkcs12.passwordSecretRef", "shop", "p12", Some("password");
}

#[test]
fn every_service_account_row_is_found() {
    let object = issuer(
        "shop",
        json!({
        "vault": {"server": "https://vault:8200", "path": "p", "auth": {
            "kubernetes": {"role": "r", "serviceAccountRef": {"name": "vault-k8s", "audiences": ["x"]}},
            "aws": {"role": "r", "serviceAccountRef": {"name": "vault-aws"}}}},
        "acme": {"server": "s", "privateKeySecretRef": {}, "solvers": [
            {"dns01": {"route53": {"region": "r", "auth": {"kubernetes": {"serviceAccountRef": {"name": "r53"}}}}}},
            {"http01": {"ingress": {"podTemplate": {"spec": {"serviceAccountName": "solver-ing"}}}}},
            {"http01": {"gatewayHTTPRoute": {"podTemplate": {"spec": {"serviceAccountName": "solver-gw"}}}}}]}}),
    );
    let context = RefContext {
        cluster_resource_namespace: CRN,
        challenge_namespaces: &[],
    };
    let found: BTreeSet<String> = service_account_refs(&object, &context)
        .iter()
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    let expected: BTreeSet<String> = [
        "shop/vault-k8s",
        "shop/vault-aws",
        "shop/r53",
        "shop/solver-ing",
        "shop/solver-gw",
    ]
    .map(String::from)
    .into();
    assert_eq!(found, expected);
    let rows = REFERENCE_TABLE
        .iter()
        .filter(|r| r.target == Target::ServiceAccount)
        .count();
    assert_eq!(rows, expected.len());
    assert!(
        secret_refs(&object, CRN).is_empty(),
        "ServiceAccount refs are not Secrets"
    );
}

#[test]
fn empty_names_are_no_reference() {
    let object = issuer(
        "shop",
        json!({"acme": {"server": "s", "privateKeySecretRef": {"name": ""},
        "solvers": [{"dns01": {"route53": {"region": "r", "secretAccessKeySecretRef": {}}}}]}}),
    );
    assert!(secret_refs(&object, CRN).is_empty());
}

#[test]
fn cluster_issuer_pull_secrets_resolve_in_certificate_namespaces() {
    let ci = cluster_issuer(acme(
        json!({"http01": {"ingress": {"podTemplate": {"spec": {"imagePullSecrets": [{"name": "regcred"}]}}}}}),
    ));
    assert!(secret_refs(&ci, CRN).is_empty(), "unknown without the Certificates");
    let namespaces = vec!["a".to_owned(), "b".to_owned()];
    let refs = secret_refs_in(
        &ci,
        &RefContext {
            cluster_resource_namespace: CRN,
            challenge_namespaces: &namespaces,
        },
    );
    let at: Vec<&str> = refs.iter().map(|r| r.namespace.as_str()).collect();
    assert_eq!(at, ["a", "b"]);

    let crt = |ns: &str| {
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "c", "namespace": ns},
        "spec": {"secretName": "c-tls", "issuerRef": {"name": "global", "kind": "ClusterIssuer"}}})
    };
    let objects = vec![ci.clone(), crt("x"), crt("y")];
    assert_eq!(challenge_namespaces(&ci, &objects), ["x", "y"]);
    let all: Vec<String> = referenced_secrets(&objects, CRN)
        .iter()
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    assert_eq!(all, ["x/c-tls", "x/regcred", "y/c-tls", "y/regcred"]);
}

#[test]
fn heuristic_finds_webhook_config_references() {
    let object = cluster_issuer(acme(
        json!({"dns01": {"webhook": {"groupName": "acme.example", "solverName": "hetzner",
        "config": {"secretName": "hetzner-secret", "zoneName": "example.com",
                   "apiKey": {"name": "hetzner-api", "key": "token"},
                   "nested": [{"credentialsSecretRef": {"name": "deep"}}],
                   "notASecret": {"name": "x"}}}}}),
    ));
    let refs = secret_refs(&object, CRN);
    assert!(
        refs.iter()
            .all(|r| r.found_by == FoundBy::Heuristic && r.namespace == CRN)
    );
    let found: BTreeSet<(String, String)> = refs.iter().map(|r| (r.path.clone(), r.name.clone())).collect();
    let base = ".spec.acme.solvers[1].dns01.webhook.config";
    let expected: BTreeSet<(String, String)> = [
        (format!("{base}.secretName"), "hetzner-secret".to_owned()),
        (format!("{base}.apiKey"), "hetzner-api".to_owned()),
        (format!("{base}.nested[0].credentialsSecretRef"), "deep".to_owned()),
    ]
    .into();
    assert_eq!(found, expected);
}

#[test]
fn heuristic_scans_external_issuers() {
    let step = json!({"apiVersion": "certmanager.step.sm/v1beta1", "kind": "StepIssuer",
        "metadata": {"name": "step", "namespace": "shop"},
        "spec": {"url": "https://ca", "caBundle": "LS0t",
                 "provisioner": {"name": "admin", "kid": "k", "passwordRef": {"name": "step-pw", "key": "password"}}}});
    let refs = secret_refs(&step, CRN);
    assert_eq!(refs.len(), 1);
    assert_eq!(
        (
            refs[0].namespace.as_str(),
            refs[0].name.as_str(),
            refs[0].key.as_deref()
        ),
        ("shop", "step-pw", Some("password"))
    );
    assert_eq!(refs[0].path, ".spec.provisioner.passwordRef");

    let pca = json!({"apiVersion": "awspca.cert-manager.io/v1beta1", "kind": "AWSPCAClusterIssuer",
        "metadata": {"name": "pca"}, "spec": {"arn": "a", "secretRef": {"namespace": "aws", "name": "creds"}}});
    let refs = secret_refs(&pca, CRN);
    assert_eq!((refs[0].namespace.as_str(), refs[0].name.as_str()), ("aws", "creds"));
}

#[test]
fn unrelated_kinds_reference_nothing() {
    for object in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}, "data": {}}),
        json!({"apiVersion": "acme.cert-manager.io/v1", "kind": "Challenge", "metadata": {"name": "c", "namespace": "a"},
               "spec": {"solver": {"dns01": {"cloudflare": {"apiTokenSecretRef": {"name": "t"}}}}}}),
    ] {
        assert!(secret_refs(&object, CRN).is_empty());
    }
}

#[test]
fn heuristic_ignores_label_and_annotation_keys() {
    let object = certificate(json!({"secretName": "web-tls", "issuerRef": {"name": "ca"},
        "secretTemplate": {"annotations": {"example.com/secretName": "not-a-reference"},
                           "labels": {"example.com/tokenSecretRef": "x"}}}));
    let refs = secret_refs(&object, CRN);
    assert_eq!(refs.len(), 1, "{refs:#?}");
    assert_eq!(refs[0].name, "web-tls");
}

#[test]
fn referenced_secrets_skips_unrelated_kinds() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "a"},
        "spec": {"template": {"spec": {"volumes": [{"secret": {"secretName": "app-secret"}}]}}}});
    let step = json!({"apiVersion": "certmanager.step.sm/v1beta1", "kind": "StepIssuer",
        "metadata": {"name": "step", "namespace": "a"}, "spec": {"provisioner": {"passwordRef": {"name": "pw", "key": "k"}}}});
    let names: Vec<String> = referenced_secrets(&[deployment, step], CRN)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["pw"]);
}
