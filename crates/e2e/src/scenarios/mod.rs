//! The scenario matrix: each way a cert-manager restore goes wrong, as a self-contained set-up in a source
//! cluster plus what must hold after cmarchive restores it into a fresh target — and a negative control, the same
//! restore done with one classic mistake, that must show reissuance (proof the assertion can fail).
//!
//! A scenario never learns which provider runs its clusters; it only names a [`ClusterVariant`] (controller
//! flags). Scenarios live in their own namespaces, so one source cluster per variant serves all of them.

pub mod cli;
pub mod control;
pub mod guide;
pub mod objects;
pub mod pebble;
pub mod report;
pub mod runner;

mod acme;
mod ca_issuer;
mod cluster_issuer;
pub mod dns;
mod gateway_shim;
mod gitops;
mod ingress_shim;
mod keystores;
mod many;
mod owner_ref;
mod renewal;
mod secret_template;
mod selfsigned;
mod vault_venafi;
mod webhook_late;

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::provider::ClusterSpec;
use crate::reissuance::CertificateId;

/// Env var: how many Certificates scenario 9 creates (default [`Options::DEFAULT_MANY`]).
pub const ENV_MANY: &str = "CMARCHIVE_E2E_CERTIFICATES";
/// Env var: comma-separated scenario names to run (default: all).
pub const ENV_ONLY: &str = "CMARCHIVE_E2E_SCENARIOS";

/// Knobs that change a scenario's size, not its meaning.
#[derive(Clone, Debug)]
pub struct Options {
    /// Certificates in scenario 9, spread over [`Options::many_namespaces`] namespaces.
    pub many_certificates: usize,
    /// Namespaces in scenario 9.
    pub many_namespaces: usize,
}

impl Options {
    /// The issue asks for 500 Certificates in scenario 9; that is also what CI runs.
    pub const DEFAULT_MANY: usize = 500;

    /// Defaults, overridden by [`ENV_MANY`].
    pub fn from_env() -> Result<Options> {
        let many_certificates = match std::env::var(ENV_MANY) {
            Ok(v) => match v.trim().parse() {
                Ok(n) if n > 0 => n,
                _ => bail!("{ENV_MANY}={v:?} is not a positive number"),
            },
            Err(_) => Options::DEFAULT_MANY,
        };
        Ok(Options {
            many_certificates,
            many_namespaces: 20,
        })
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            many_certificates: Options::DEFAULT_MANY,
            many_namespaces: 20,
        }
    }
}

/// The controller flags a scenario needs; clusters are shared between scenarios with equal variants.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterVariant {
    /// `--cluster-resource-namespace`.
    pub cluster_resource_namespace: String,
    /// `--enable-certificate-owner-ref`.
    pub enable_certificate_owner_ref: bool,
    /// `--enable-gateway-api`, with the Gateway API CRDs installed.
    pub enable_gateway_api: bool,
}

impl Default for ClusterVariant {
    /// The Helm chart's defaults: cluster resource namespace `cert-manager`, no owner references.
    fn default() -> ClusterVariant {
        ClusterVariant {
            cluster_resource_namespace: "cert-manager".to_owned(),
            enable_certificate_owner_ref: false,
            enable_gateway_api: false,
        }
    }
}

impl ClusterVariant {
    /// The provider-neutral spec of a cluster of this variant.
    pub fn spec(&self, name: &str, cert_manager_version: Option<&str>) -> ClusterSpec {
        let mut spec = ClusterSpec::named(name);
        spec.cluster_resource_namespace = self.cluster_resource_namespace.clone();
        spec.enable_certificate_owner_ref = self.enable_certificate_owner_ref;
        spec.enable_gateway_api = self.enable_gateway_api;
        spec.cert_manager_version = cert_manager_version.map(str::to_owned);
        spec
    }

    /// A short label for cluster names and logs.
    pub fn label(&self) -> String {
        let mut s = format!("crn-{}", self.cluster_resource_namespace);
        if self.enable_certificate_owner_ref {
            s.push_str("-ownerref");
        }
        if self.enable_gateway_api {
            s.push_str("-gwapi");
        }
        s
    }
}

/// How the source objects come into being.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupMode {
    /// Applied with the controller running; the runner waits until every Certificate is Ready.
    Live,
    /// Applied and packed while the source controller is stopped, so the source cannot act on them first (a
    /// certificate inside its renewal window would be renewed in the source before the backup otherwise).
    ControllerStopped,
}

/// The one mistake a negative control makes in an otherwise careful restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mistake {
    /// The guide's recipe: Issuers, ClusterIssuers and Certificates only, no Secret at all.
    NoSecrets,
    /// Certificates first; the Secrets only once cert-manager has noticed they are missing.
    SecretsAfterCertificates,
    /// Secrets restored first but without their `cert-manager.io/issuer-*` annotations (absent annotations
    /// count as a mismatch for a ClusterIssuer).
    IssuerAnnotationsStripped,
    /// Secrets restored first with their owner references to the source cluster's Certificate UIDs kept: the
    /// garbage collector deletes them.
    StaleOwnerReferenceKept,
    /// The Ingress or Gateway re-deployed before its TLS Secret is restored.
    RedeployedBeforeSecret,
    /// `cmarchive unpack | kubectl apply -f -` while cert-manager's webhook is down: refused by the API server
    /// (nothing to reissue; the control proves the restore had something to wait for).
    AppliedWhileWebhookDown,
}

impl Mistake {
    /// Short description for tables.
    pub fn describe(self) -> &'static str {
        match self {
            Mistake::NoSecrets => "no Secrets (the guide's recipe)",
            Mistake::SecretsAfterCertificates => "Secrets applied after the Certificates",
            Mistake::IssuerAnnotationsStripped => "issuer annotations stripped from the Secrets",
            Mistake::StaleOwnerReferenceKept => "stale owner references kept on the Secrets",
            Mistake::RedeployedBeforeSecret => "Ingress/Gateway re-deployed before its Secret",
            Mistake::AppliedWhileWebhookDown => "unpack | kubectl apply while the webhook is down",
        }
    }

    /// Whether the control shows an API server refusal instead of reissuance.
    pub fn is_refusal(self) -> bool {
        self == Mistake::AppliedWhileWebhookDown
    }
}

/// What happens to the target cluster while the restore runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disturbance {
    /// cert-manager's webhook is scaled to zero when the restore starts and back to one once the restore has
    /// written its Secrets and waits for cert-manager's API.
    WebhookLate,
}

/// A negative control: the mistake and the Certificates that must be reissued because of it.
#[derive(Clone, Debug)]
pub struct Control {
    /// What the naive restore gets wrong.
    pub mistake: Mistake,
    /// Certificates that must show reissuance.
    pub must_reissue: BTreeSet<CertificateId>,
}

/// A check beyond "nothing reissued", on the target after the restore.
#[derive(Clone, Debug)]
pub enum Check {
    /// These Secrets (namespace, name; the namespace as in the source, cluster resource namespace remapped)
    /// exist in the target with byte-identical data.
    SecretsIdentical(Vec<(String, String)>),
    /// A Certificate's Secret carries this label or annotation with this value in the target.
    SecretMetadata {
        /// The Certificate.
        certificate: CertificateId,
        /// `labels` or `annotations`.
        field: &'static str,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// The Certificate's Secret has no owner reference to anything but the target's live Certificate.
    NoStaleOwnerReference(CertificateId),
    /// The Certificate was created in the target by ingress-shim or gateway-shim: an owner reference to an object
    /// of this kind (`Ingress`, `Gateway`).
    GeneratedBy(CertificateId, &'static str),
    /// These set-up objects exist in the target, each field they set besides `metadata` as set (ServiceAccounts and
    /// the RBAC an issuer's Kubernetes auth needs).
    Restored(Vec<Value>),
    /// The ACME Issuer is Ready in the target with the same account URI as in the source: its account key came
    /// along, so no new ACME account was registered.
    AcmeAccountReused {
        /// Namespace of the Issuer.
        namespace: String,
        /// Issuer name.
        issuer: String,
    },
}

/// One scenario of the matrix.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Number in the scenario list (`cmarchive_e2e::scenarios::all`).
    pub number: u8,
    /// Short unique name, used for namespaces, selection and tables.
    pub name: &'static str,
    /// One line saying what it proves.
    pub title: &'static str,
    /// Controller flags of the source cluster.
    pub source: ClusterVariant,
    /// Controller flags of the target cluster.
    pub target: ClusterVariant,
    /// Namespaces holding the scenario's namespaced objects (packed with `-n`).
    pub namespaces: Vec<String>,
    /// ClusterIssuers the scenario creates.
    pub cluster_issuers: Vec<String>,
    /// Secrets the scenario keeps in the source's cluster resource namespace.
    pub cluster_resource_secrets: Vec<String>,
    /// Objects applied to the source, in order.
    pub setup: Vec<Value>,
    /// Whether the source controller runs during set-up.
    pub setup_mode: SetupMode,
    /// Every Certificate the scenario ends up with, including those ingress-shim generates.
    pub certificates: BTreeSet<CertificateId>,
    /// Certificates that must be reissued after the restore (inside their renewal window).
    pub expect_reissued: BTreeSet<CertificateId>,
    /// Objects the application's own deployment re-creates in the target after the restore (Ingresses, Gateways):
    /// cmarchive backs up cert-manager's state, not the workloads.
    pub redeploy: Vec<Value>,
    /// Further checks on the target.
    pub checks: Vec<Check>,
    /// The negative control.
    pub control: Option<Control>,
    /// Issuers that can never become Ready here (their servers do not exist): the restore is given a short
    /// `--timeout` and may exit 1 as long as the only complaint is those issuers.
    pub unreachable_issuers: bool,
    /// Needs the suite's ACME server; its objects carry the placeholders of [`pebble`].
    pub needs_acme_server: bool,
    /// Why the scenario cannot run here, if it cannot.
    pub not_run: Option<&'static str>,
    /// What happens to the target while the restore runs.
    pub disturbance: Option<Disturbance>,
    /// GitOps: packed with `--secrets-only`; after the restore the issuers and Certificates come from Git.
    pub secrets_only: bool,
}

impl Scenario {
    /// A scenario skeleton in the default variant, with `namespaces` created first in its set-up.
    fn new(number: u8, name: &'static str, title: &'static str, namespaces: &[&str]) -> Scenario {
        Scenario {
            number,
            name,
            title,
            source: ClusterVariant::default(),
            target: ClusterVariant::default(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            cluster_issuers: Vec::new(),
            cluster_resource_secrets: Vec::new(),
            setup: namespaces.iter().map(|ns| crate::fixtures::namespace(ns)).collect(),
            setup_mode: SetupMode::Live,
            certificates: BTreeSet::new(),
            expect_reissued: BTreeSet::new(),
            redeploy: Vec::new(),
            checks: Vec::new(),
            control: None,
            unreachable_issuers: false,
            needs_acme_server: false,
            not_run: None,
            disturbance: None,
            secrets_only: false,
        }
    }

    /// Adds a Certificate to the set-up and to the expected set.
    fn certificate(&mut self, crt: &crate::fixtures::Certificate) {
        self.setup.push(crt.to_json());
        self.certificates.insert(CertificateId::new(&crt.namespace, &crt.name));
    }

    /// Certificates that cmarchive archives (all but those ingress-shim or gateway-shim generates, which it leaves
    /// to the shim), i.e. those `cmarchive verify` can speak about.
    pub fn archived_certificates(&self) -> BTreeSet<CertificateId> {
        let generated: BTreeSet<&CertificateId> = self
            .checks
            .iter()
            .filter_map(|c| match c {
                Check::GeneratedBy(id, _) => Some(id),
                _ => None,
            })
            .collect();
        self.certificates
            .iter()
            .filter(|id| !generated.contains(id))
            .cloned()
            .collect()
    }

    /// A control whose mistake must reissue every Certificate of the scenario.
    fn control_all(&mut self, mistake: Mistake) {
        self.control = Some(Control {
            mistake,
            must_reissue: self.certificates.clone(),
        });
    }
}

/// Every scenario, in issue order (those that cannot run here included, with their reason).
pub fn all(opts: &Options) -> Result<Vec<Scenario>> {
    let mut v = vec![
        selfsigned::scenario(),
        ca_issuer::scenario()?,
        cluster_issuer::scenario(&ClusterVariant::default(), "cluster-issuer")?,
        cluster_issuer::scenario(
            &ClusterVariant {
                cluster_resource_namespace: "pki-system".to_owned(),
                ..ClusterVariant::default()
            },
            "cluster-issuer-custom-crn",
        )?,
        keystores::scenario()?,
        secret_template::scenario()?,
        owner_ref::scenario(),
        ingress_shim::scenario(),
        gateway_shim::scenario(),
        many::scenario(opts)?,
        acme::scenario()?,
        vault_venafi::scenario()?,
        renewal::scenario()?,
        webhook_late::scenario()?,
        gitops::scenario()?,
    ];
    v.sort_by_key(|s| s.number);
    Ok(v)
}

/// The scenarios named in `only` (all runnable ones when empty); unknown names are an error.
pub fn select(all: Vec<Scenario>, only: &[String]) -> Result<Vec<Scenario>> {
    if only.is_empty() {
        return Ok(all);
    }
    for name in only {
        if !all.iter().any(|s| s.name == name) {
            let names: Vec<&str> = all.iter().map(|s| s.name).collect();
            bail!("no scenario named {name:?}; known: {}", names.join(", "));
        }
    }
    Ok(all.into_iter().filter(|s| only.iter().any(|o| o == s.name)).collect())
}

/// Scenario names from [`ENV_ONLY`].
pub fn only_from_env() -> Vec<String> {
    std::env::var(ENV_ONLY)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Options {
        Options {
            many_certificates: 12,
            many_namespaces: 3,
        }
    }

    #[test]
    fn names_and_namespaces_are_unique() {
        let all = all(&small()).unwrap();
        let names: BTreeSet<_> = all.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), all.len());
        let mut seen = BTreeSet::new();
        for s in &all {
            for ns in &s.namespaces {
                assert!(seen.insert(ns.clone()), "namespace {ns} used twice");
            }
        }
        let mut ci = BTreeSet::new();
        for s in &all {
            for c in &s.cluster_issuers {
                assert!(ci.insert(c.clone()), "ClusterIssuer {c} used twice");
            }
        }
    }

    #[test]
    fn every_issue_item_is_covered() {
        let all = all(&small()).unwrap();
        for n in 1..=14u8 {
            assert!(all.iter().any(|s| s.number == n), "scenario {n} missing");
        }
    }

    #[test]
    fn every_runnable_scenario_has_certificates_and_a_control_that_can_fail() {
        for s in all(&small()).unwrap().iter().filter(|s| s.not_run.is_none()) {
            assert!(!s.certificates.is_empty(), "{}", s.name);
            let c = s
                .control
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no negative control", s.name));
            // A refusal control shows the API server refusing the hand-made restore instead of reissuance.
            assert_eq!(c.must_reissue.is_empty(), c.mistake.is_refusal(), "{}", s.name);
            assert!(c.must_reissue.is_subset(&s.certificates), "{}", s.name);
            assert!(s.expect_reissued.is_subset(&s.certificates), "{}", s.name);
            for id in &s.certificates {
                assert!(
                    s.namespaces.contains(&id.namespace),
                    "{}: {id} outside its namespaces",
                    s.name
                );
            }
        }
    }

    #[test]
    fn setup_objects_are_kinds_the_harness_knows_and_stay_in_their_namespaces() {
        for s in all(&small()).unwrap() {
            for obj in s.setup.iter().chain(&s.redeploy) {
                let kind = objects::kind_of(obj).unwrap();
                if kind.namespaced {
                    let ns = obj["metadata"]["namespace"].as_str().unwrap();
                    assert!(
                        s.namespaces.iter().any(|n| n == ns) || ns == s.source.cluster_resource_namespace,
                        "{}: object in foreign namespace {ns}",
                        s.name
                    );
                }
            }
        }
    }

    #[test]
    fn many_scales_with_the_option() {
        let all = all(&Options {
            many_certificates: 40,
            many_namespaces: 4,
        })
        .unwrap();
        let many = all.iter().find(|s| s.name == "many").unwrap();
        assert_eq!(many.certificates.len(), 40);
        assert_eq!(many.namespaces.len(), 4);
    }

    #[test]
    fn selection_rejects_unknown_names() {
        let all = all(&small()).unwrap();
        assert!(select(all.clone(), &["nope".into()]).is_err());
        assert_eq!(select(all, &["selfsigned".into()]).unwrap().len(), 1);
    }
}
