//! Selection: from everything a dump or cluster holds, what an archive must hold (each with the reasons), what is
//! left out on purpose (each with the reason) and what a person must know (warnings).
//!
//! Filtering the cluster LIST by namespace or label selector happens before this, in the cluster code; selection
//! works on whatever it is given.

use super::candidate::Candidate;
use super::kinds::{
    self, ACME_GROUP, CERT_MANAGER_GROUP, Kind, NEXT_PRIVATE_KEY_LABEL, SERVICE_ACCOUNT_NAME_ANNOTATION,
    SERVICE_ACCOUNT_TOKEN_TYPE,
};
use super::secret_refs::{self, FoundBy, RefContext, SecretRef, ServiceAccountRef};
use super::token_rbac;
use crate::manifest::{Exclusion, PhaseName, Warning};
use crate::object::ObjectKey;
use foldhash::{HashMap, HashSet, HashSetExt as _};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Warning codes, stable for scripts.
pub mod codes {
    /// A referenced Secret is not in the input.
    pub const MISSING_SECRET: &str = "MissingSecret";
    /// A Secret reference was found by shape, not by the reference table.
    pub const HEURISTIC_SECRET_REFERENCE: &str = "HeuristicSecretReference";
    /// An issuer authenticates with a ServiceAccount that is not in the input and must be created in the target.
    pub const SERVICE_ACCOUNT_REQUIRED: &str = "ServiceAccountRequired";
    /// An issuer authenticates with an archived ServiceAccount: the external side must trust the target's tokens.
    pub const SERVICE_ACCOUNT_TRUST: &str = "ServiceAccountTrust";
    /// A referenced Secret is a service-account token, which cannot be copied between clusters.
    pub const SERVICE_ACCOUNT_TOKEN_SECRET: &str = "ServiceAccountTokenSecret";
    /// A Certificate's issuer is not in the input.
    pub const MISSING_ISSUER: &str = "MissingIssuer";
    /// CertificateRequests were included on request; they are unreliable to restore.
    pub const CERTIFICATE_REQUESTS_INCLUDED: &str = "CertificateRequestsIncluded";
    /// An input object has no apiVersion, kind or name.
    pub const UNIDENTIFIED_OBJECT: &str = "UnidentifiedObject";
    /// Several Certificates write the same Secret; cert-manager lets only one own it and may reissue for it.
    pub const SHARED_SECRET_NAME: &str = "SharedSecretName";
    /// A Certificate's Secret could not be read as a certificate.
    pub const UNREADABLE_CERTIFICATE: &str = "UnreadableCertificate";
    /// A Secret's `data` holds a value that is not base64: the API server will refuse the Secret on restore.
    pub const INVALID_SECRET_DATA: &str = "InvalidSecretData";
}

/// What the selection is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectOptions {
    /// cert-manager's `--cluster-resource-namespace` in the source cluster: where ClusterIssuer Secrets live.
    pub cluster_resource_namespace: String,
    /// Archive CertificateRequests too (off by default: identity fields and approval make them unreliable).
    pub include_certificate_requests: bool,
    /// Archive the CRDs of cert-manager and of the external issuers in use.
    pub include_crds: bool,
    /// GitOps: the issuers and Certificates are selected (so their references and facts are known) but the plan
    /// leaves them out, because Git re-creates them.
    pub secrets_only: bool,
    /// cert-manager's own ServiceAccount (namespace, name), which token RoleBindings must name; `None` when
    /// unknown (offline), and then a binding to any ServiceAccount counts.
    pub cert_manager_service_account: Option<(String, String)>,
}

impl Default for SelectOptions {
    fn default() -> Self {
        SelectOptions {
            cluster_resource_namespace: kinds::DEFAULT_CLUSTER_RESOURCE_NAMESPACE.to_owned(),
            include_certificate_requests: false,
            include_crds: false,
            secrets_only: false,
            cert_manager_service_account: None,
        }
    }
}

/// One object the archive will hold, not yet sanitized.
#[derive(Clone, Debug, PartialEq)]
pub struct Selected {
    /// The object as given.
    pub object: Value,
    /// Restore phase it belongs to.
    pub phase: PhaseName,
    /// Why it is archived.
    pub reasons: Vec<String>,
}

/// The result of [`select`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Objects to archive, in input order.
    pub selected: Vec<Selected>,
    /// Objects left out on purpose, sorted.
    pub excluded: Vec<Exclusion>,
    /// Things to read before restoring, sorted.
    pub warnings: Vec<Warning>,
}

/// Owner kinds through which ingress-shim and gateway-shim create Certificates, by API group.
const SHIM_OWNER_GROUPS: &[&str] = &[
    "networking.k8s.io",
    "extensions",
    "gateway.networking.k8s.io",
    "gateway.networking.x-k8s.io",
];

/// Decides what an archive holds. `objects` is everything the source holds (any kinds; `List`s flattened by the
/// caller); duplicates by identity keep the first. The selected objects are copies (the planner moves its
/// candidates instead: a pack of thousands of Secrets would otherwise hold each one twice).
pub fn select(objects: &[Value], options: &SelectOptions) -> Selection {
    let (selected, excluded, warnings) =
        decide(objects, options).choose(|position| objects[position].clone(), |object| object);
    Selection {
        selected: selected
            .into_iter()
            .map(|(object, phase, reasons)| Selected { object, phase, reasons })
            .collect(),
        excluded,
        warnings,
    }
}

/// [`select`] over [`Candidate`]s, judged by their views and moved instead of copied: what the planner runs.
pub(crate) fn select_candidates(candidates: Vec<Candidate>, options: &SelectOptions) -> Chosen<Candidate> {
    let decision = decide(candidates.iter().map(Candidate::view), options);
    decision.take_from(candidates, Candidate::new)
}

/// Chosen items with their phase and reasons (input order, synthesized last), exclusions, warnings.
pub(crate) type Chosen<T> = (Vec<(T, PhaseName, Vec<String>)>, Vec<Exclusion>, Vec<Warning>);

fn decide<'a>(objects: impl IntoIterator<Item = &'a Value>, options: &SelectOptions) -> Decision {
    let mut state = State::default();
    let objects: Vec<&Value> = objects.into_iter().collect();
    let keys: Vec<Option<ObjectKey>> = objects.par_iter().map(|object| ObjectKey::of(object)).collect();
    // The first object of each identity; the keys are only borrowed to find them, then moved.
    let first: Vec<bool> = {
        let mut seen = HashSet::with_capacity(keys.len());
        keys.iter()
            .map(|key| key.as_ref().is_some_and(|key| seen.insert(key)))
            .collect()
    };
    let mut identified: Vec<(ObjectKey, &Value)> = Vec::with_capacity(objects.len());
    let mut positions: Vec<usize> = Vec::with_capacity(objects.len());
    for (position, ((object, key), first)) in objects.into_iter().zip(keys).zip(first).enumerate() {
        match key {
            Some(key) if first => {
                identified.push((key, object));
                positions.push(position);
            }
            Some(_) => {}
            None => state.warn(
                codes::UNIDENTIFIED_OBJECT,
                None,
                "an input object without apiVersion, kind or metadata.name was skipped".into(),
            ),
        }
    }
    let inputs: Vec<Input<'_>> = identified
        .into_par_iter()
        .map(|(key, object)| Input {
            facts: Facts::of(&key, object),
            key,
            object,
        })
        .collect();
    // Certificates first: they decide which issuers, external issuer kinds and TLS Secrets matter.
    let certificates: Vec<&Input<'_>> = inputs
        .iter()
        .filter(|input| kinds::classify_key(&input.key) == Kind::Certificate)
        .collect();
    let mut shim_owned = BTreeSet::new();
    for Input { key, facts, .. } in &certificates {
        match &facts.shim_owner {
            Some(owner) => {
                shim_owned.insert(key.clone());
                state.exclude(
                    key,
                    format!(
                        "created by cert-manager's ingress-/gateway-shim for {owner}: cert-manager recreates it \
                         from that object and adopts its archived TLS Secret"
                    ),
                );
            }
            None => state.keep(key, PhaseName::Certificates, "cert-manager Certificate".into()),
        }
    }

    // Issuers: cert-manager's own kinds, and external issuers matched by group and kind of an issuerRef.
    let external_kinds = external_issuer_kinds(&certificates, &inputs);
    for Input { key, .. } in &inputs {
        match kinds::classify_key(key) {
            Kind::Issuer | Kind::ClusterIssuer => {
                state.keep(key, PhaseName::Issuers, format!("cert-manager {}", key.kind))
            }
            Kind::Other => {
                let group_kind = (key.group().to_owned(), key.kind.clone());
                if let Some(users) = external_kinds.get(&group_kind) {
                    let reason = match users.first() {
                        Some(user) => {
                            format!("external issuer ({}) used by {user}", key.api_version)
                        }
                        None => format!("external issuer ({}): kind named like an issuer", key.api_version),
                    };
                    state.keep(key, PhaseName::Issuers, reason);
                }
            }
            _ => {}
        }
    }
    warn_missing_issuers(&mut state, &certificates, &inputs);
    warn_shared_secret_names(&mut state, &certificates);

    // Secrets and ServiceAccounts referenced by what is kept (and by shim Certificates, whose Secrets stay).
    // Each object's references are its own business: found on every core, gathered in input order.
    let found: Vec<(Vec<SecretRef>, Vec<ServiceAccountRef>)> = inputs
        .par_iter()
        .filter(|Input { key, .. }| {
            let referencing = state.kept.contains_key(key) || shim_owned.contains(key);
            referencing
                && matches!(
                    kinds::classify_key(key),
                    Kind::Issuer | Kind::ClusterIssuer | Kind::Certificate | Kind::Other
                )
        })
        .map(|Input { object, .. }| {
            let namespaces = secret_refs::challenge_namespaces(object, inputs.iter().map(|input| input.object));
            let context = RefContext {
                cluster_resource_namespace: &options.cluster_resource_namespace,
                challenge_namespaces: &namespaces,
            };
            secret_refs::refs_in(object, &context)
        })
        .collect();
    // Sized up front: grown by doubling, a reference per Certificate was copied and touched twice over.
    let mut references: Vec<SecretRef> = Vec::with_capacity(found.iter().map(|(secrets, _)| secrets.len()).sum());
    let mut accounts: Vec<ServiceAccountRef> = Vec::new();
    for (secrets, service_accounts) in found {
        references.extend(secrets);
        accounts.extend(service_accounts);
    }
    let next_private_keys: BTreeSet<(String, String)> = certificates
        .iter()
        .filter_map(|Input { key, facts, .. }| {
            let name = facts.next_private_key_secret?;
            Some((key.namespace.clone().unwrap_or_default(), name.to_owned()))
        })
        .collect();
    select_secrets(&mut state, &inputs, &references, &shim_owned, &next_private_keys);
    select_service_accounts(&mut state, &inputs, &accounts, options);

    // One-shot and opt-in kinds.
    for Input { key, .. } in &inputs {
        match kinds::classify_key(key) {
            Kind::CertificateRequest if options.include_certificate_requests => {
                state.keep(key, PhaseName::Certificaterequests, "included on request".into())
            }
            Kind::CertificateRequest => state.exclude(
                key,
                "CertificateRequests are one-shot: a restored one is approved and signed again with the \
                 restorer's identity (include on request)"
                    .into(),
            ),
            Kind::Order | Kind::Challenge => state.exclude(
                key,
                "point-in-time ACME state: cert-manager creates Orders and Challenges when it needs them".into(),
            ),
            _ => {}
        }
    }
    if options.include_certificate_requests && state.kept.values().any(|k| k.phase == PhaseName::Certificaterequests) {
        state.warn(
            codes::CERTIFICATE_REQUESTS_INCLUDED,
            None,
            "CertificateRequests are archived: on restore their identity fields are rewritten to the restorer's \
             and the approver may sign them again; delete them if issuers misbehave"
                .into(),
        );
    }

    select_crds(&mut state, &inputs, options, &external_kinds);
    select_namespaces(&mut state, &inputs, options.secrets_only);

    // Everything not decided yet is not cert-manager configuration.
    for Input { key, .. } in &inputs {
        if !state.kept.contains_key(key) && !state.excluded.contains_key(key) {
            state.exclude(key, format!("{} is not part of a cert-manager backup", key.kind));
        }
    }
    state.finish(&inputs, &positions)
}

/// One identified input object (the first of its identity) and what the rules read of it.
struct Input<'a> {
    key: ObjectKey,
    object: &'a Value,
    facts: Facts<'a>,
}

/// The fields of one object that the rules above read one object at a time, gathered for every object on every
/// core before they run. The parsed objects lie scattered over the heap: reading a field inside a rule cost a
/// cache miss for each map on the way to it, and at 13,000 objects that was a good part of the selection's time.
#[derive(Default)]
struct Facts<'a> {
    /// A Certificate's `spec.issuerRef` as [`kinds::issuer_ref`] reads it.
    issuer_ref: Option<(&'a str, &'a str, &'a str)>,
    /// A Certificate's `spec.secretName`.
    secret_name: Option<&'a str>,
    /// A Certificate's `status.nextPrivateKeySecretName`.
    next_private_key_secret: Option<&'a str>,
    /// A Certificate's ingress-/gateway-shim owner.
    shim_owner: Option<String>,
    /// A Secret carries the next-private-key label.
    next_private_key_label: bool,
    /// A Secret's `type`.
    secret_type: Option<&'a str>,
}

impl<'a> Facts<'a> {
    fn of(key: &ObjectKey, object: &'a Value) -> Facts<'a> {
        match kinds::classify_key(key) {
            Kind::Certificate => Facts {
                issuer_ref: Some(kinds::issuer_ref(object)),
                secret_name: kinds::str_at(object, &["spec", "secretName"]),
                next_private_key_secret: kinds::str_at(object, &["status", "nextPrivateKeySecretName"]),
                shim_owner: shim_owner(object),
                ..Facts::default()
            },
            // A planner candidate's Secret view keeps only these two, the identity and the service-account-name
            // annotation (`candidate::secret_view`): a new fact read here must be kept there too.
            Kind::Secret => Facts {
                next_private_key_label: kinds::label(object, NEXT_PRIVATE_KEY_LABEL) == Some("true"),
                secret_type: object.get("type").and_then(Value::as_str),
                ..Facts::default()
            },
            _ => Facts::default(),
        }
    }

    /// The issuerRef of a Certificate, defaults applied (only Certificates are asked).
    fn issuer_ref(&self) -> (&'a str, &'a str, &'a str) {
        self.issuer_ref.expect("a Certificate's facts hold its issuerRef")
    }
}

/// The shim owner (`Kind/name`) of a Certificate, if ingress-shim or gateway-shim created it.
fn shim_owner(certificate: &Value) -> Option<String> {
    let owner = kinds::controller_owner(certificate)?;
    let api_version = owner.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    if !SHIM_OWNER_GROUPS.contains(&group) {
        return None;
    }
    let kind = owner.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = owner.get("name").and_then(Value::as_str).unwrap_or_default();
    Some(format!("{kind}/{name}"))
}

/// External issuer (group, kind) → Certificates using one, plus kinds outside cert-manager named `*Issuer`.
fn external_issuer_kinds(certificates: &[&Input<'_>], inputs: &[Input<'_>]) -> BTreeMap<(String, String), Vec<String>> {
    let mut kinds_in_use: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for Input { key, facts, .. } in certificates {
        let (_, kind, group) = facts.issuer_ref();
        if group != CERT_MANAGER_GROUP {
            kinds_in_use
                .entry((group.to_owned(), kind.to_owned()))
                .or_default()
                .push(key.to_string());
        }
    }
    for Input { key, .. } in inputs {
        let group = key.group();
        let own_group = group == CERT_MANAGER_GROUP || group == ACME_GROUP || group.is_empty();
        if kinds::classify_key(key) == Kind::Other && !own_group && key.kind.ends_with("Issuer") {
            kinds_in_use.entry((group.to_owned(), key.kind.clone())).or_default();
        }
    }
    kinds_in_use
}

fn warn_missing_issuers(state: &mut State, certificates: &[&Input<'_>], inputs: &[Input<'_>]) {
    // One set of (group, kind, name, namespace) for all Certificates: scanning the inputs per Certificate would be
    // quadratic in the size of the dump.
    let present: HashSet<(&str, &str, &str, Option<&str>)> = inputs
        .iter()
        .map(|Input { key: other, .. }| {
            (
                other.group(),
                other.kind.as_str(),
                other.name.as_str(),
                other.namespace.as_deref(),
            )
        })
        .collect();
    for Input { key, facts, .. } in certificates {
        let (name, kind, group) = facts.issuer_ref();
        let found = present.contains(&(group, kind, name, None))
            || present.contains(&(group, kind, name, key.namespace.as_deref()));
        if !found {
            state.warn(
                codes::MISSING_ISSUER,
                Some((*key).clone()),
                format!(
                    "{key} is issued by {kind}.{group}/{name}, which is not in the input: it will not become \
                     Ready after a restore until that issuer exists"
                ),
            );
        }
    }
}

/// cert-manager lets one Certificate own a shared Secret (the one its `certificate-name` annotation names, else
/// the oldest); the others fight over it, and after a restore "oldest" is decided by restore order.
fn warn_shared_secret_names(state: &mut State, certificates: &[&Input<'_>]) {
    let mut by_secret: BTreeMap<(Option<String>, &str), Vec<&ObjectKey>> = BTreeMap::new();
    for Input { key, facts, .. } in certificates {
        if let Some(secret) = facts.secret_name {
            by_secret.entry((key.namespace.clone(), secret)).or_default().push(key);
        }
    }
    for ((namespace, secret), users) in by_secret.into_iter().filter(|(_, users)| users.len() > 1) {
        let names: Vec<String> = users.iter().map(|k| k.to_string()).collect();
        state.warn(
            codes::SHARED_SECRET_NAME,
            Some(users[0].clone()),
            format!(
                "{} all write Secret {}/{secret}: only one can own it, and the others are issued anew",
                names.join(", "),
                namespace.unwrap_or_default()
            ),
        );
    }
}

fn select_secrets(
    state: &mut State,
    inputs: &[Input<'_>],
    references: &[SecretRef],
    shim_owned: &BTreeSet<ObjectKey>,
    next_private_keys: &BTreeSet<(String, String)>,
) {
    let mut by_secret: BTreeMap<(String, String), Vec<&SecretRef>> = BTreeMap::new();
    for reference in references {
        by_secret
            .entry((reference.namespace.clone(), reference.name.clone()))
            .or_default()
            .push(reference);
    }
    let mut present = BTreeSet::new();
    for Input {
        key,
        object: secret,
        facts,
    } in inputs
        .iter()
        .filter(|input| kinds::classify_key(&input.key) == Kind::Secret)
    {
        let id = (key.namespace.clone().unwrap_or_default(), key.name.clone());
        present.insert(id.clone());
        let referenced_by = by_secret.get(&id);
        if facts.next_private_key_label || next_private_keys.contains(&id) {
            state.exclude(
                key,
                "temporary private key of an issuance in progress (status.nextPrivateKeySecretName): \
                 cert-manager deletes it and makes a new one"
                    .into(),
            );
            continue;
        }
        if facts.secret_type == Some(SERVICE_ACCOUNT_TOKEN_TYPE) {
            state.exclude(
                key,
                "service-account token: the target's token controller deletes copies; recreate it from its \
                 ServiceAccount"
                    .into(),
            );
            for reference in referenced_by.into_iter().flatten() {
                let sa = kinds::annotation(secret, SERVICE_ACCOUNT_NAME_ANNOTATION).unwrap_or("<unknown>");
                state.warn(
                    codes::SERVICE_ACCOUNT_TOKEN_SECRET,
                    Some(reference.holder.clone()),
                    format!(
                        "{} references service-account token Secret {}/{} at {}: in the target, create a Secret \
                         of type {SERVICE_ACCOUNT_TOKEN_TYPE} with annotation kubernetes.io/service-account.name: \
                         {sa} and let the token controller fill it (and trust the new cluster's tokens in Vault)",
                        reference.holder, id.0, id.1, reference.path
                    ),
                );
            }
            continue;
        }
        match referenced_by {
            Some(refs) => {
                for reference in refs {
                    let reason = if reference.found_by == FoundBy::Heuristic {
                        format!(
                            "referenced by {} at {} (found by heuristic)",
                            reference.holder, reference.path
                        )
                    } else if shim_owned.contains(&reference.holder) {
                        format!(
                            "TLS Secret of {} (created by ingress-/gateway-shim, not archived): cert-manager \
                             recreates the Certificate and adopts this Secret",
                            reference.holder
                        )
                    } else {
                        format!("referenced by {} at {}", reference.holder, reference.path)
                    };
                    state.keep(key, PhaseName::Secrets, reason);
                }
            }
            None => state.exclude(key, "not referenced by any archived object".into()),
        }
    }
    for ((namespace, name), refs) in &by_secret {
        for reference in refs {
            if reference.found_by == FoundBy::Heuristic {
                state.warn(
                    codes::HEURISTIC_SECRET_REFERENCE,
                    Some(reference.holder.clone()),
                    format!(
                        "{} at {} looks like a reference to Secret {namespace}/{name}; it is archived, but check \
                         that the issuer really reads it from that namespace",
                        reference.holder, reference.path
                    ),
                );
            }
            if present.contains(&(namespace.clone(), name.clone())) {
                continue;
            }
            let consequence = if reference.path == ".spec.secretName" {
                "the Certificate will be issued anew after a restore"
            } else {
                "issuance through it fails until the Secret exists in the target"
            };
            state.warn(
                codes::MISSING_SECRET,
                Some(reference.holder.clone()),
                format!(
                    "{} references Secret {namespace}/{name} at {}, which does not exist: {consequence}",
                    reference.holder, reference.path
                ),
            );
        }
    }
}

/// The ServiceAccounts issuers authenticate as (Vault `kubernetes`/`aws`, Route53 `kubernetes`) or HTTP-01 solver
/// pods run as are archived when the input holds them, with the Role and RoleBinding that let cert-manager create
/// their tokens ([`token_rbac`]), and restored with the Secrets. What no copy carries is the trust the external
/// side (Vault role, AWS IAM OIDC provider) places in the *source* cluster's token issuer: a warning says so.
fn select_service_accounts(
    state: &mut State,
    inputs: &[Input<'_>],
    accounts: &[ServiceAccountRef],
    options: &SelectOptions,
) {
    let mut by_account: BTreeMap<(&str, &str), Vec<&ServiceAccountRef>> = BTreeMap::new();
    for account in accounts {
        by_account
            .entry((account.namespace.as_str(), account.name.as_str()))
            .or_default()
            .push(account);
    }
    fn in_namespace<'i, 'a>(
        inputs: &'i [Input<'a>],
        kind: Kind,
        namespace: &'i str,
    ) -> impl Iterator<Item = &'i Input<'a>> {
        inputs
            .iter()
            .filter(move |i| kinds::classify_key(&i.key) == kind && i.key.namespace.as_deref() == Some(namespace))
    }
    let requester = options
        .cert_manager_service_account
        .as_ref()
        .map(|(ns, name)| (ns.as_str(), name.as_str()));
    for ((namespace, name), refs) in by_account {
        let token_auth = refs.iter().any(|r| r.path.contains(".auth."));
        let account = in_namespace(inputs, Kind::ServiceAccount, namespace).find(|i| i.key.name == name);
        let Some(account) = account else {
            for r in &refs {
                let remedy = if r.path.contains(".auth.") {
                    "create it in the target with RBAC allowing cert-manager to create serviceaccounts/token for \
                     it, and make the external side (Vault role, AWS IAM trust) accept the target cluster's \
                     service-account issuer"
                } else {
                    "create it in the target before the solver pods need it"
                };
                state.warn(
                    codes::SERVICE_ACCOUNT_REQUIRED,
                    Some(r.holder.clone()),
                    format!(
                        "{} uses ServiceAccount {namespace}/{name} ({}), which is not in the input: {remedy}",
                        r.holder, r.path
                    ),
                );
            }
            continue;
        };
        for r in &refs {
            state.keep(
                &account.key,
                PhaseName::Secrets,
                format!("ServiceAccount of {} at {}", r.holder, r.path),
            );
        }
        let mut granted = false;
        for role in in_namespace(inputs, Kind::Role, namespace).filter(|i| token_rbac::grants_token(i.object, name)) {
            let bindings: Vec<&Input<'_>> = in_namespace(inputs, Kind::RoleBinding, namespace)
                .filter(|i| token_rbac::binds(i.object, &role.key.name, requester))
                .collect();
            for binding in &bindings {
                state.keep(
                    &binding.key,
                    PhaseName::Secrets,
                    format!(
                        "binds {} for cert-manager: tokens of ServiceAccount {namespace}/{name}",
                        role.key
                    ),
                );
            }
            if !bindings.is_empty() {
                granted = true;
                state.keep(
                    &role.key,
                    PhaseName::Secrets,
                    format!("lets cert-manager create tokens of ServiceAccount {namespace}/{name}"),
                );
            }
        }
        if !token_auth {
            continue;
        }
        let rbac = if granted {
            "archived with the Role and RoleBinding letting cert-manager create its tokens"
        } else {
            "archived, but no RoleBinding in the input lets cert-manager create its tokens (create on \
             serviceaccounts/token): create one in the target"
        };
        for r in refs.iter().filter(|r| r.path.contains(".auth.")) {
            state.warn(
                codes::SERVICE_ACCOUNT_TRUST,
                Some(r.holder.clone()),
                format!(
                    "{} authenticates as ServiceAccount {namespace}/{name} ({}): {rbac}; make the external side \
                     (Vault role, AWS IAM trust) accept the target cluster's service-account token issuer",
                    r.holder, r.path
                ),
            );
        }
    }
}

fn select_crds(
    state: &mut State,
    inputs: &[Input<'_>],
    options: &SelectOptions,
    external_kinds: &BTreeMap<(String, String), Vec<String>>,
) {
    let mut groups: BTreeSet<&str> = [CERT_MANAGER_GROUP, ACME_GROUP].into_iter().collect();
    groups.extend(external_kinds.keys().map(|(group, _)| group.as_str()));
    for Input { key, object: crd, .. } in inputs
        .iter()
        .filter(|input| kinds::classify_key(&input.key) == Kind::CustomResourceDefinition)
    {
        let group = kinds::str_at(crd, &["spec", "group"]).unwrap_or_default();
        if !groups.contains(group) {
            state.exclude(key, "not a CRD of cert-manager or of an external issuer in use".into());
        } else if options.include_crds {
            state.keep(
                key,
                PhaseName::Crds,
                format!("CRD of {group} (included on request; restored only when missing)"),
            );
        } else {
            state.exclude(key, "CRDs are archived only on request (--include-crds)".into());
        }
    }
}

/// Every namespace an archived object lives in gets a Namespace object: the input's when present, else a minimal
/// one, so that restore can create what is missing without guessing. In secrets-only mode the objects Git
/// re-creates do not count.
fn select_namespaces(state: &mut State, inputs: &[Input<'_>], secrets_only: bool) {
    let mut needed: BTreeMap<String, usize> = BTreeMap::new();
    for (key, keep) in &state.kept {
        if secrets_only && left_to_git(keep.phase) {
            continue;
        }
        if let Some(namespace) = &key.namespace {
            *needed.entry(namespace.clone()).or_default() += 1;
        }
    }
    for Input { key, .. } in inputs
        .iter()
        .filter(|input| kinds::classify_key(&input.key) == Kind::Namespace)
    {
        match needed.remove(&key.name) {
            Some(count) => state.keep(key, PhaseName::Namespaces, format!("holds {count} archived object(s)")),
            None => state.exclude(key, "no archived object lives in it".into()),
        }
    }
    for (namespace, count) in needed {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        let key = ObjectKey::of(&object).expect("synthesized Namespace has an identity");
        state.synthesized.push(object);
        state.keep(
            &key,
            PhaseName::Namespaces,
            format!("holds {count} archived object(s); not in the input, synthesized"),
        );
    }
}

/// The phases a secrets-only (GitOps) archive leaves to Git.
pub(crate) fn left_to_git(phase: PhaseName) -> bool {
    matches!(
        phase,
        PhaseName::Issuers | PhaseName::Certificates | PhaseName::Certificaterequests
    )
}

#[derive(Default)]
struct State {
    /// Hashed, not ordered: looked up for every object, and read in input order (or sorted) at the end.
    kept: HashMap<ObjectKey, Keep>,
    excluded: HashMap<ObjectKey, String>,
    /// (code, object, message): unique and in the order the manifest lists them, at any count.
    warnings: BTreeSet<(String, Option<ObjectKey>, String)>,
    synthesized: Vec<Value>,
}

struct Keep {
    phase: PhaseName,
    reasons: Vec<String>,
}

impl State {
    fn keep(&mut self, key: &ObjectKey, phase: PhaseName, reason: String) {
        let entry = self.kept.entry(key.clone()).or_insert_with(|| Keep {
            phase,
            reasons: Vec::new(),
        });
        if !entry.reasons.contains(&reason) {
            entry.reasons.push(reason);
        }
    }

    fn exclude(&mut self, key: &ObjectKey, reason: String) {
        self.excluded.entry(key.clone()).or_insert(reason);
    }

    fn warn(&mut self, code: &str, object: Option<ObjectKey>, message: String) {
        self.warnings.insert((code.to_owned(), object, message));
    }

    /// Kept objects in input order (synthesized ones last), by their position in the input.
    fn finish(mut self, inputs: &[Input<'_>], positions: &[usize]) -> Decision {
        let mut picked = Vec::with_capacity(self.kept.len());
        for (Input { key, .. }, position) in inputs.iter().zip(positions) {
            if let Some(keep) = self.kept.remove(key) {
                picked.push((Picked::Input(*position), keep));
            }
        }
        for object in std::mem::take(&mut self.synthesized) {
            if let Some(keep) = ObjectKey::of(&object).and_then(|key| self.kept.remove(&key)) {
                picked.push((Picked::Synthesized(object), keep));
            }
        }
        let mut excluded: Vec<Exclusion> = self
            .excluded
            .into_iter()
            .map(|(key, reason)| Exclusion { key, reason })
            .collect();
        excluded.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let warnings = self
            .warnings
            .into_iter()
            .map(|(code, object, message)| Warning { code, object, message })
            .collect();
        Decision {
            picked,
            excluded,
            warnings,
        }
    }
}

/// Where a kept object comes from.
enum Picked {
    /// The input object at this position.
    Input(usize),
    /// Made up by the selection (a Namespace the input lacks).
    Synthesized(Value),
}

/// A [`Selection`] before its objects are taken from the input.
struct Decision {
    picked: Vec<(Picked, Keep)>,
    excluded: Vec<Exclusion>,
    warnings: Vec<Warning>,
}

impl Decision {
    /// The picked items: input positions through `take`, synthesized objects through `wrap`.
    fn choose<T>(self, mut take: impl FnMut(usize) -> T, mut wrap: impl FnMut(Value) -> T) -> Chosen<T> {
        let chosen = self
            .picked
            .into_iter()
            .map(|(picked, keep)| {
                let item = match picked {
                    Picked::Input(position) => take(position),
                    Picked::Synthesized(object) => wrap(object),
                };
                (item, keep.phase, keep.reasons)
            })
            .collect();
        (chosen, self.excluded, self.warnings)
    }

    /// [`Decision::choose`] moving the picked items out of `items`, the input the decision was made on.
    fn take_from<T>(self, items: Vec<T>, wrap: impl FnMut(Value) -> T) -> Chosen<T> {
        let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
        self.choose(
            |position| {
                slots[position]
                    .take()
                    .expect("the decision picks each input position at most once")
            },
            wrap,
        )
    }
}
