//! `restore`: preflight (CRDs, permissions, a server-side dry run that shows what exists and would change), then
//! the phases (docs/CLUSTER.md) — Namespaces, Secrets, the race barrier, issuers, Certificates — with readiness waits,
//! and finally `verify`. Every write is server-side apply, so running it again after a failure resumes.

use crate::cli::{self, EXIT_ERROR, EXIT_OK, EXIT_REISSUED};
use crate::cluster::access::{self, Permission};
use crate::cluster::api_ready::{self, WebhookUnavailable};
use crate::cluster::apply::{Applied, Applier, Outcome, Prepared};
use crate::cluster::client::{self, ConnectOptions};
use crate::cluster::controller::{self, ControllerDeployment};
use crate::cluster::discovery::{self, CertManagerApis};
use crate::cluster::error::ClusterError;
use crate::cluster::progress::{Paused, Progress};
use crate::cluster::raw::FIELD_MANAGER;
use crate::cluster::retry;
use crate::cluster::verify::{self, Report, Unarchived};
use crate::cluster::wait::{self, NotReady, SecretBarrier};
use anyhow::{Context as _, Result, bail};
use cmarchive_archive::VerifiedObject;
use cmarchive_archive::certmanager::evidence::Conclusion;
use cmarchive_archive::certmanager::evidence::RENEWING;
use cmarchive_archive::certmanager::keystores::PasswordBook;
use cmarchive_archive::certmanager::kinds;
use cmarchive_archive::certmanager::predict::{Outcome as Predicted, Prediction, predict_stored};
use cmarchive_archive::certmanager::{NamespaceMapping, RestoreOptions as Remap, prepare_for_restore};
use cmarchive_archive::manifest::{CertificateFacts, Manifest, PhaseName};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// What `restore` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Which cluster.
    pub connect: ConnectOptions,
    /// Server-side dry run only.
    pub dry_run: bool,
    /// `--force-conflicts`.
    pub force_conflicts: bool,
    /// Bound of each wait.
    pub timeout: Duration,
    /// `--same-cluster`.
    pub same_cluster: bool,
    /// `--pause-controller`.
    pub pause_controller: bool,
    /// `--no-verify`.
    pub no_verify: bool,
    /// `--cluster-resource-namespace` of the target.
    pub cluster_resource_namespace: Option<String>,
    /// `--allow-reissue`: go ahead although cert-manager is predicted to reissue.
    pub allow_reissue: bool,
    /// `--namespace-mapping`, already applied to the archive content; the preflight checks its targets.
    pub namespace_mapping: NamespaceMapping,
}

/// What happened, for `-o json` and for the exit code.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// Server-side dry run only.
    pub dry_run: bool,
    /// When the restore began (issuance after this counts as reissuance).
    pub started: Option<jiff::Timestamp>,
    /// Certificates cert-manager will reissue whatever the order (renewal window, key mismatch, …), judged from
    /// the archive before anything is applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicted_reissuance: Vec<Prediction>,
    /// Objects per phase with what happened to them.
    pub phases: BTreeMap<String, Vec<Applied>>,
    /// Issuers and Certificates that did not become Ready in time.
    pub not_ready: Vec<NotReady>,
    /// Requests sent again after a transient API error (a leader change, a refused connection, …).
    pub retries: u64,
    /// The verification, unless `--no-verify` or `--dry-run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Report>,
    /// A secrets-only archive's Certificates that do not exist yet (`namespace/name`): Git is to apply them, and
    /// `cmarchive verify` judges them then.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expected_from_git: Vec<String>,
}

impl RestoreReport {
    fn problems(&self) -> usize {
        self.phases.values().flatten().filter(|a| !a.outcome.is_ok()).count()
    }

    /// [`EXIT_REISSUED`] when a certificate was reissued, [`EXIT_ERROR`] when anything else went wrong.
    pub fn exit_code(&self) -> i32 {
        let conclusion = self.verify.as_ref().map(Report::conclusion);
        match conclusion {
            Some(Conclusion::Reissued) => EXIT_REISSUED,
            _ if self.problems() > 0 || !self.not_ready.is_empty() => EXIT_ERROR,
            Some(conclusion) => cli::exit_code(conclusion),
            None => EXIT_OK,
        }
    }
}

/// The archive content the restore needs: manifest facts and objects by phase.
pub struct ArchiveContent<'a> {
    /// The manifest.
    pub manifest: &'a Manifest,
    /// The verified objects, in restore order; each is dropped as soon as its restorable form exists.
    pub objects: Vec<VerifiedObject>,
}

/// Phases in restore order, each with its objects ready to send.
type Phases = Vec<(PhaseName, Vec<Prepared>)>;

/// How many predicted issuances are more than a renewal that was due (which cert-manager would have done in the
/// source cluster too, and verify reports as a renewal): those need `--allow-reissue`.
fn blocking_reissues(predicted: &[Prediction]) -> usize {
    predicted
        .iter()
        .filter(|p| matches!(&p.outcome, Predicted::Reissued { reason, .. } if reason != RENEWING))
        .count()
}

/// `at` without its fraction of a second.
fn whole_second(at: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// At most this many predicted reissues are named one by one.
const SHOWN_PREDICTIONS: usize = 20;

/// The Certificates cert-manager will issue anew after this restore, each said on one line with cert-manager's
/// reason (the first [`SHOWN_PREDICTIONS`], then a count).
fn predict_reissuance(objects: &[VerifiedObject], at: jiff::Timestamp) -> Vec<Prediction> {
    let everything = objects.iter().map(|o| (&o.entry.key, o.bytes.as_slice()));
    let predicted: Vec<Prediction> = predict_stored(everything, at)
        .into_iter()
        .filter(|p| matches!(p.outcome, Predicted::Reissued { .. }))
        .collect();
    for p in predicted.iter().take(SHOWN_PREDICTIONS) {
        if let Predicted::Reissued { reason, message } = &p.outcome {
            note!(
                "prediction: cert-manager will reissue {} ({reason}: {message})",
                p.certificate
            );
        }
    }
    if predicted.len() > SHOWN_PREDICTIONS {
        eprintln!(
            "prediction: … and {} more Certificate(s) will be reissued",
            predicted.len() - SHOWN_PREDICTIONS
        );
    }
    predicted
}

/// The predicted Certificates that come without archived facts (no Secret with a certificate in the input).
fn unarchived_certificates(
    objects: &[VerifiedObject],
    predicted: &[Prediction],
    facts: &[CertificateFacts],
) -> Vec<Unarchived> {
    let with_facts: BTreeSet<(&str, &str)> = facts.iter().map(|f| (f.namespace.as_str(), f.name.as_str())).collect();
    let wanted: BTreeSet<&cmarchive_archive::object::ObjectKey> = predicted
        .iter()
        .map(|p| &p.certificate)
        .filter(|k| !with_facts.contains(&(k.namespace.as_deref().unwrap_or_default(), k.name.as_str())))
        .collect();
    objects
        .iter()
        .filter(|o| wanted.contains(&o.entry.key))
        .filter_map(|o| {
            let certificate = o.object().ok()?;
            Some(Unarchived {
                namespace: o.entry.key.namespace.clone()?,
                name: o.entry.key.name.clone(),
                secret_name: certificate.pointer("/spec/secretName")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

/// (namespace, name), the way the readiness waits name objects.
fn key(object: &Prepared) -> (Option<String>, String) {
    (object.key.namespace.clone(), object.key.name.clone())
}

fn kind(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or_default()
}

/// The archived facts with ClusterIssuer-namespace objects moved the way the restore moves them.
pub fn remap_facts(facts: &[CertificateFacts], source_crn: &str, target_crn: &str) -> Vec<CertificateFacts> {
    facts
        .iter()
        .cloned()
        .map(|f| CertificateFacts {
            namespace: moved_namespace(&f.namespace, source_crn, target_crn),
            ..f
        })
        .collect()
}

/// `namespace` after the restore: the source's cluster resource namespace becomes the target's, the rest stay.
fn moved_namespace(namespace: &str, source_crn: &str, target_crn: &str) -> String {
    if namespace == source_crn { target_crn } else { namespace }.to_owned()
}

/// Label the API server sets on every Namespace to its name. Applying it ourselves adds nothing and, when the
/// cluster resource namespace is remapped, the archived value names the old namespace: a conflict with the API
/// server's own field manager.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn drop_server_owned_labels(object: &mut Value) {
    if kind(object) != "Namespace" {
        return;
    }
    if let Some(labels) = object.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(NAMESPACE_NAME_LABEL);
        if labels.is_empty()
            && let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
        {
            metadata.remove("labels");
        }
    }
}

/// The permissions a restore of these objects needs.
async fn needed_permissions(
    applier: &Applier,
    phases: &[(PhaseName, Vec<Prepared>)],
    options: &RestoreOptions,
    deployment: Option<&controller::ControllerDeployment>,
) -> Result<Vec<Permission>> {
    let mut wanted = BTreeSet::new();
    for (phase, objects) in phases {
        for object in objects {
            let resource = applier.resource_for(&object.key.api_version, &object.key.kind).await?;
            let namespace = object.key.namespace.as_deref();
            // A dry run creates and applies too, with dryRun=All, and RBAC checks the same verbs.
            for verb in ["get", "create", "patch"] {
                wanted.insert(Permission::new(
                    verb,
                    &resource.api.group,
                    &resource.api.plural,
                    namespace,
                ));
            }
            match phase {
                PhaseName::Secrets if !options.dry_run => {
                    wanted.insert(Permission::of("watch", &kinds::SECRET, namespace));
                }
                PhaseName::Issuers | PhaseName::Certificates if !options.dry_run => {
                    for verb in ["list", "watch"] {
                        wanted.insert(Permission::new(
                            verb,
                            &resource.api.group,
                            &resource.api.plural,
                            namespace,
                        ));
                    }
                }
                _ => {}
            }
            if *phase == PhaseName::Certificates && !options.no_verify && !options.dry_run {
                wanted.insert(Permission::of("list", &kinds::CERTIFICATE_REQUEST, namespace));
            }
        }
    }
    if options.pause_controller
        && !options.dry_run
        && let Some(d) = deployment
    {
        wanted.insert(Permission::of("patch", &kinds::DEPLOYMENT, Some(d.namespace())));
        wanted.insert(Permission::new("list", "", "pods", Some(d.namespace())));
    }
    Ok(wanted.into_iter().collect())
}

/// Objects (other than Namespaces, which merge harmlessly) that more than one archived object would be restored as.
fn restored_twice(phases: &[(PhaseName, Vec<Prepared>)]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut doubled = BTreeSet::new();
    for object in phases.iter().flat_map(|(_, objects)| objects) {
        if object.key.kind != "Namespace" && !seen.insert(&object.key) {
            doubled.insert(object.key.to_string());
        }
    }
    doubled.into_iter().collect()
}

/// Objects to be restored into a namespace the mapping targets that already exist there and were not written by
/// cmarchive, one line each.
async fn mapping_conflicts(
    applier: &Applier,
    phases: &[(PhaseName, Vec<Prepared>)],
    mapping: &NamespaceMapping,
) -> Result<Vec<String>> {
    let targets = mapping.targets();
    let mut taken = Vec::new();
    for object in phases.iter().flat_map(|(_, objects)| objects) {
        let Some(namespace) = object.key.namespace.as_deref().filter(|ns| targets.contains(ns)) else {
            continue;
        };
        let resource = applier.resource_for(&object.key.api_version, &object.key.kind).await?;
        let what = resource.describe(Some(namespace), &object.key.name);
        // Metadata only, managedFields included (the raw GET drops them).
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(applier.client.clone(), namespace, &resource.api);
        let existing = retry::transient(&what, || api.get_metadata_opt(&object.key.name))
            .await
            .with_context(|| format!("cannot get {what}"))?;
        let Some(existing) = existing else { continue };
        let written_by_us = existing
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|field| field.manager.as_deref() == Some(FIELD_MANAGER));
        if written_by_us {
            continue;
        }
        let sources = mapping.sources_of(namespace).join(", ");
        taken.push(format!(
            "{what} exists in the target (the archive's object of that name in {sources} would overwrite it)"
        ));
    }
    Ok(taken)
}

fn print_phase(name: PhaseName, applied: &[Applied], dry_run: bool) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in applied {
        let word = match a.outcome {
            Outcome::Created if dry_run => "would be created",
            Outcome::Changed if dry_run => "would change",
            Outcome::Created => "created",
            Outcome::Changed => "changed",
            Outcome::Unchanged => "unchanged",
            Outcome::Kept(_) => "kept",
            Outcome::Conflict(_) => "conflicts",
            Outcome::Failed(_) => "failed",
        };
        *counts.entry(word).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    let prefix = if dry_run { "dry run: " } else { "" };
    note!("{prefix}{name}: {}", summary.join(", "));
    for a in applied {
        if dry_run || !matches!(a.outcome, Outcome::Unchanged | Outcome::Created) {
            note!("  {a}");
        }
    }
}

/// Runs a restore. `archive` has already been decrypted and verified as a whole. `progress` tells, should the
/// restore be dropped half-way (a signal), what it had applied and which controller it had paused.
pub async fn restore(
    archive: ArchiveContent<'_>,
    options: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    // To the second, as the API server stamps creationTimestamp: a CertificateRequest cert-manager creates within
    // the restore's first second would otherwise look older than the restore.
    let started = whole_second(jiff::Timestamp::now());
    progress.stage("preflight");
    // Preflight 0: what cert-manager will reissue no matter how carefully we restore, said (and, unless allowed,
    // refused) before the cluster is even contacted. Judged on the objects as they are: moving the cluster
    // resource namespace moves a Certificate and its Secret together and changes no verdict.
    let predicted = predict_reissuance(&archive.objects, started);
    let blocking = blocking_reissues(&predicted);
    if blocking > 0 && !options.allow_reissue {
        if !options.dry_run {
            return Err(ClusterError::ReissueNotAllowed { count: blocking }.into());
        }
        note!(
            "dry run: a restore would stop here: {blocking} Certificate(s) would be reissued; --allow-reissue lets it go ahead"
        );
    }
    let connection = client::connect(&options.connect).await?;
    let client = connection.client.clone();
    let cluster = connection.display_name().to_owned();
    let has_crds = archive.objects.iter().any(|o| o.phase == PhaseName::Crds);
    let (apis, served) = match discovery::cert_manager(&client, &cluster).await {
        Ok(apis) => (apis, true),
        Err(ClusterError::CertManagerMissing { .. }) if has_crds => {
            note!("cert-manager CRDs missing in {cluster}: they will be created from the archive");
            (CertManagerApis::v1(), false)
        }
        Err(e) => return Err(e.into()),
    };
    for warning in &apis.warnings {
        note!("warning: {warning}");
    }
    let deployment = controller::find(&client).await;
    // Said first: an earlier run was killed while the controller was paused. This one scales it back at its end.
    if let Some(warning) = deployment.as_ref().and_then(ControllerDeployment::left_paused_warning) {
        eprintln!("warning: {warning}; this restore scales it back when it ends");
    }
    if options.pause_controller && deployment.is_none() {
        bail!(
            "--pause-controller: no cert-manager controller Deployment found in {cluster} (looked for labels {} and cert-manager/cert-manager)",
            controller::CONTROLLER_SELECTOR
        );
    }
    let source_crn = archive.manifest.source.cluster_resource_namespace.clone();
    let target_crn = controller::effective_crn(options.cluster_resource_namespace.as_deref(), deployment.as_ref());
    if source_crn != target_crn {
        note!("cluster resource namespace: {source_crn} (archive) → {target_crn} (target)");
    }
    let remap = Remap {
        same_cluster: options.same_cluster,
        source_cluster_resource_namespace: source_crn.clone(),
        target_cluster_resource_namespace: target_crn.clone(),
    };
    // Certificates restored without a leaf to compare with, whose predicted issuance verify is to look for.
    let unarchived = if options.allow_reissue && !options.no_verify {
        unarchived_certificates(&archive.objects, &predicted, &archive.manifest.certificates)
    } else {
        Vec::new()
    };
    // One object parsed at a time: transformed for the target, serialised again, and the parsed form dropped.
    let mut phases: Phases = Vec::new();
    for verified in archive.objects {
        let mut object = prepare_for_restore(&verified.object()?, &remap);
        drop_server_owned_labels(&mut object);
        let prepared = Prepared::new(&object)
            .with_context(|| format!("{}: not a Kubernetes object after preparing it", verified.entry.key))?;
        match phases.last_mut() {
            Some((p, list)) if *p == verified.phase => list.push(prepared),
            _ => phases.push((verified.phase, vec![prepared])),
        }
    }
    // Moving the source's cluster resource namespace to the target's, and mapping namespaces, can each land an
    // archived object where another of the same name lands; neither move alone sees it.
    let doubled = restored_twice(&phases);
    if !doubled.is_empty() {
        let mapping = if options.namespace_mapping.is_empty() {
            String::new()
        } else {
            format!(" and --namespace-mapping {}", options.namespace_mapping)
        };
        bail!(
            "{} would each be restored from two archived objects (cluster resource namespace {source_crn} → {target_crn}{mapping}); nothing was changed",
            doubled.join(", ")
        );
    }

    progress.plan(phases.iter().map(|(p, objects)| (*p, objects.len())));

    // Keystores cert-manager encoded again are judged by what they hold, opened with their Certificate's password.
    let keystore_passwords =
        Arc::new(PasswordBook::from_stored(phases.iter().flat_map(|(_, objects)| {
            objects.iter().map(|o| (&o.key, o.bytes.as_slice()))
        })));

    // Preflight 1: permissions, all at once, before anything is written.
    let preview = Applier::new(client.clone(), apis.clone(), true, options.force_conflicts)
        .with_keystore_passwords(keystore_passwords.clone());
    let wanted = needed_permissions(&preview, &phases, options, deployment.as_ref()).await?;
    let denied = access::denied(&client, &wanted).await?;
    if !denied.is_empty() {
        return Err(ClusterError::MissingPermissions {
            missing: denied.iter().map(ToString::to_string).collect(),
        }
        .into());
    }

    // Preflight 1b: a namespace mapping must not land on objects someone else keeps in the new namespace; the
    // apply would take them over. Objects an earlier run of this restore wrote are not in the way.
    if !options.namespace_mapping.is_empty() {
        let taken = mapping_conflicts(&preview, &phases, &options.namespace_mapping).await?;
        if !taken.is_empty() {
            for line in &taken {
                eprintln!("preflight: conflict: {line}");
            }
            bail!(
                "preflight: {} object(s) already exist where --namespace-mapping {} restores (see above); nothing was changed. Map to another namespace, or remove them first",
                taken.len(),
                options.namespace_mapping
            );
        }
    }

    // Preflight 2: a server-side dry run of every object says what exists and what would change.
    let mut report = RestoreReport {
        dry_run: options.dry_run,
        started: Some(started),
        predicted_reissuance: predicted,
        ..RestoreReport::default()
    };
    let mut would_change = 0;
    let mut blocking_secrets = 0;
    let mut blocking = 0;
    let mut webhook: Option<(WebhookUnavailable, usize)> = None;
    for (phase, objects) in &phases {
        if !served
            && matches!(
                phase,
                PhaseName::Issuers | PhaseName::Certificates | PhaseName::Certificaterequests
            )
        {
            note!("preflight: {phase} not dry-run: their CRDs do not exist yet");
            continue;
        }
        let applied = preview.apply_all(objects, &|_| {}).await?;
        would_change += applied.iter().filter(|a| matches!(a.outcome, Outcome::Changed)).count();
        if options.dry_run {
            print_phase(*phase, &applied, true);
        }
        for a in &applied {
            // A webhook that does not answer yet is one finding, not one per object; the restore waits for it.
            if let Some(problem) = api_ready::outcome_unavailable(&a.outcome) {
                webhook.get_or_insert((problem, 0)).1 += 1;
                continue;
            }
            if !options.dry_run && !matches!(a.outcome, Outcome::Unchanged | Outcome::Created) {
                note!("preflight: {a}");
            }
            if !a.outcome.is_ok() {
                if *phase == PhaseName::Secrets {
                    blocking_secrets += 1;
                } else {
                    blocking += 1;
                }
            }
        }
        if options.dry_run {
            report.phases.insert(phase.to_string(), applied);
        }
    }
    if let Some((problem, count)) = &webhook {
        let then = if options.dry_run {
            format!("a restore would wait up to {}s for it", options.timeout.as_secs())
        } else {
            "the restore writes Namespaces and Secrets, then waits for it before the first issuer".to_owned()
        };
        eprintln!(
            "preflight: cert-manager's API refused {count} object(s) for want of its webhook: {}; {then}",
            problem.cause
        );
    }
    if blocking_secrets > 0 {
        bail!(
            "preflight: {blocking_secrets} Secret(s) would not be applied (see above), and a Certificate without its Secret is reissued; nothing was changed. Resolve them (or rerun with --force-conflicts to take over conflicting fields)"
        );
    }
    if blocking > 0 && !options.dry_run {
        bail!(
            "preflight: {blocking} object(s) would not be applied (see above), and waiting would not change that; nothing was changed. Resolve them (or rerun with --force-conflicts to take over conflicting fields)"
        );
    }
    if options.dry_run {
        note!("dry run: nothing was changed ({would_change} existing objects would change)");
        return Ok(report);
    }

    // Paused by this run, or left paused by an earlier one that was killed: either way scaled back at the end.
    let paused = match &deployment {
        Some(d) if options.pause_controller || d.left_paused().is_some() => Some(Paused {
            client: client.clone(),
            deployment: d.clone(),
            replicas: d.replicas_to_restore(),
        }),
        _ => None,
    };
    progress.set_paused(paused.clone());
    let applier = Applier::new(client.clone(), apis.clone(), false, options.force_conflicts)
        .with_keystore_passwords(keystore_passwords.clone());
    preview.carry_over_to(&applier);
    let outcome = async {
        if let Some(p) = &paused
            && options.pause_controller
        {
            progress.stage("pausing the controller");
            controller::pause(&client, &p.deployment, p.replicas, options.timeout).await?;
        }
        apply_phases(
            &applier,
            &apis,
            &phases,
            options,
            paused.is_some(),
            progress,
            &mut report,
        )
        .await
    }
    .await;
    if paused.is_some() {
        progress.stage("scaling the controller back");
        if let Some(Err(message)) = progress.resume_paused().await {
            bail!("{message}");
        }
    }
    outcome?;
    if paused.is_some() {
        progress.stage("waiting for readiness");
        wait_for_ready(&client, &apis, &phases, options, &mut report).await?;
    }
    if !options.no_verify {
        progress.stage("verify");
        let facts = remap_facts(&archive.manifest.certificates, &source_crn, &target_crn);
        let moved = |namespace: &str| moved_namespace(namespace, &source_crn, &target_crn);
        let unarchived: Vec<Unarchived> = unarchived
            .into_iter()
            .map(|u| Unarchived {
                namespace: moved(&u.namespace),
                ..u
            })
            .collect();
        let mut verification = verify::verify(
            &client,
            &apis.certificates,
            &apis.certificate_requests,
            &facts,
            &unarchived,
            started,
        )
        .await?;
        if options.allow_reissue {
            let allowed = report
                .predicted_reissuance
                .iter()
                .filter_map(|p| Some((moved(p.certificate.namespace.as_deref()?), p.certificate.name.clone())))
                .collect();
            verification = verification.accept_predicted(&allowed);
        }
        if archive.manifest.secrets_only() {
            let (absent, present) = verify::split_absent(verification);
            verification = present;
            report.expected_from_git = absent;
        }
        report.verify = Some(verification);
    }
    if archive.manifest.secrets_only() {
        let waiting = if options.no_verify {
            archive.manifest.certificates.len()
        } else {
            report.expected_from_git.len()
        };
        note!(
            "secrets-only archive: {waiting} Certificate(s) are expected from Git; once it has applied them, \
             `cmarchive verify` proves they adopted their restored Secrets"
        );
    }
    report.retries = retry::count();
    if report.retries > 0 {
        eprintln!(
            "retried {} request(s) after transient API errors (-v shows each)",
            report.retries
        );
    }
    Ok(report)
}

async fn apply_phases(
    applier: &Applier,
    apis: &CertManagerApis,
    phases: &[(PhaseName, Vec<Prepared>)],
    options: &RestoreOptions,
    paused: bool,
    progress: &Progress,
    report: &mut RestoreReport,
) -> Result<()> {
    let client = &applier.client;
    let mut api_checked = false;
    for (phase, objects) in phases {
        progress.stage(phase.to_string());
        if !api_checked
            && matches!(
                phase,
                PhaseName::Issuers | PhaseName::Certificates | PhaseName::Certificaterequests
            )
            && let Some(first) = objects.first()
        {
            let preview = Applier::new(client.clone(), apis.clone(), true, options.force_conflicts);
            api_ready::wait_for_api(&preview, first, options.timeout).await?;
            api_checked = true;
        }
        let mut barrier = None;
        if *phase == PhaseName::Secrets {
            let namespaces: BTreeSet<String> = objects.iter().filter_map(|o| key(o).0).collect();
            barrier = Some(SecretBarrier::open(client, &namespaces).await?);
        }
        let applied = applier
            .apply_all(objects, &|a| {
                tracing::info!(%a, "applied");
                if a.outcome.is_ok() {
                    progress.applied(*phase);
                }
            })
            .await?;
        print_phase(*phase, &applied, false);
        let failed = applied.iter().filter(|a| !a.outcome.is_ok()).count();
        let done: Vec<Applied> = applied.clone();
        report.phases.insert(phase.to_string(), applied);
        match phase {
            PhaseName::Crds if done.iter().any(|a| a.outcome == Outcome::Created) => {
                let created: Vec<&str> = done
                    .iter()
                    .filter(|a| a.outcome == Outcome::Created)
                    .map(|a| a.name.as_str())
                    .collect();
                wait_for_crds(client, &created, options.timeout).await?;
            }
            PhaseName::Secrets => {
                if failed > 0 {
                    bail!(
                        "{failed} Secret(s) could not be applied (see above); Certificates were NOT applied, because cert-manager would reissue them. Fix the cause and run the restore again: it resumes"
                    );
                }
                // The phase also restores the ServiceAccounts issuers authenticate as; the barrier watches Secrets.
                let expected: Vec<(String, String, u64)> = done
                    .iter()
                    .filter(|a| a.kind == "Secret")
                    .filter(|a| matches!(a.outcome, Outcome::Created | Outcome::Changed))
                    .filter_map(|a| Some((a.namespace.clone()?, a.name.clone(), a.resource_version?)))
                    .collect();
                if let Some(barrier) = barrier.take() {
                    barrier.wait(&expected, options.timeout).await?;
                }
            }
            PhaseName::Issuers if !paused => {
                wait_issuers(client, apis, &applied_ok(objects, &done), options.timeout, report).await?;
            }
            PhaseName::Certificates if !paused => {
                wait_certificates(client, apis, &applied_ok(objects, &done), options.timeout, report).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The objects whose apply went through: nothing that failed to apply is waited for. `applied` is in the
/// order of `objects`, as [`Applier::apply_all`] returns it.
fn applied_ok<'a>(objects: &'a [Prepared], applied: &[Applied]) -> Vec<&'a Prepared> {
    objects
        .iter()
        .zip(applied)
        .filter(|(_, a)| a.outcome.is_ok())
        .map(|(o, _)| o)
        .collect()
}

async fn wait_issuers(
    client: &kube::Client,
    apis: &CertManagerApis,
    objects: &[&Prepared],
    timeout: Duration,
    report: &mut RestoreReport,
) -> Result<()> {
    for resource in [&apis.issuers, &apis.cluster_issuers] {
        let names: BTreeSet<_> = objects
            .iter()
            .filter(|o| o.key.kind == resource.api.kind)
            .map(|o| key(o))
            .collect();
        let not_ready = wait::until_ready(client, resource, &names, timeout).await?;
        for n in &not_ready {
            note!("not ready: {}: {}", n.object, n.message);
        }
        report.not_ready.extend(not_ready);
    }
    Ok(())
}

async fn wait_certificates(
    client: &kube::Client,
    apis: &CertManagerApis,
    objects: &[&Prepared],
    timeout: Duration,
    report: &mut RestoreReport,
) -> Result<()> {
    let names: BTreeSet<_> = objects
        .iter()
        .filter(|o| o.key.kind == "Certificate")
        .map(|o| key(o))
        .collect();
    let not_ready = wait::until_ready(client, &apis.certificates, &names, timeout).await?;
    for n in &not_ready {
        note!("not ready: {}: {}", n.object, n.message);
    }
    report.not_ready.extend(not_ready);
    Ok(())
}

async fn wait_for_ready(
    client: &kube::Client,
    apis: &CertManagerApis,
    phases: &[(PhaseName, Vec<Prepared>)],
    options: &RestoreOptions,
    report: &mut RestoreReport,
) -> Result<()> {
    for (phase, objects) in phases {
        let applied = report.phases.get(&phase.to_string()).cloned().unwrap_or_default();
        let ok = applied_ok(objects, &applied);
        match phase {
            PhaseName::Issuers => wait_issuers(client, apis, &ok, options.timeout, report).await?,
            PhaseName::Certificates => wait_certificates(client, apis, &ok, options.timeout, report).await?,
            _ => {}
        }
    }
    Ok(())
}

/// After creating CRDs: wait until each is Established, then until discovery serves cert-manager.io/v1.
async fn wait_for_crds(client: &kube::Client, created: &[&str], timeout: Duration) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions::is_crd_established};
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    for name in created {
        let established = await_condition(crds.clone(), name, is_crd_established());
        match tokio::time::timeout_at(deadline, established).await {
            Ok(result) => {
                result.with_context(|| format!("waiting for the restored CRD {name}"))?;
            }
            Err(_) => bail!("the restored CRD {name} is not Established after {timeout:?}"),
        }
    }
    // Established says the API server serves it; its discovery document may lag a moment behind.
    loop {
        if discovery::cert_manager(client, "target").await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the restored CRDs are not served after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_name_label_is_left_to_the_api_server() {
        let mut namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kube-system", "labels": {"kubernetes.io/metadata.name": "cert-manager", "team": "x"}}});
        drop_server_owned_labels(&mut namespace);
        assert_eq!(namespace["metadata"]["labels"], serde_json::json!({"team": "x"}));
        let mut bare = serde_json::json!({"kind": "Namespace",
            "metadata": {"name": "a", "labels": {"kubernetes.io/metadata.name": "a"}}});
        drop_server_owned_labels(&mut bare);
        assert!(bare["metadata"].get("labels").is_none());
    }

    #[test]
    fn only_a_renewal_that_is_due_passes_the_gate() {
        let predicted = |reason: &str| Prediction {
            certificate: cmarchive_archive::object::ObjectKey::new(
                "cert-manager.io/v1".into(),
                "Certificate".into(),
                Some("a".into()),
                reason.into(),
            ),
            outcome: Predicted::Reissued {
                reason: reason.into(),
                message: String::new(),
            },
        };
        assert_eq!(blocking_reissues(&[predicted(RENEWING)]), 0);
        assert_eq!(
            blocking_reissues(&[
                predicted(RENEWING),
                predicted("DoesNotExist"),
                predicted("SecretPrivateKeyMismatchesSpec")
            ]),
            2
        );
    }

    #[test]
    fn objects_restored_twice_are_found() {
        let prepared = |kind: &str, namespace: &str, name: &str| {
            Prepared::new(&serde_json::json!({"apiVersion": "v1", "kind": kind,
                "metadata": {"name": name, "namespace": namespace}}))
            .unwrap()
        };
        let phases: Phases = vec![
            (
                PhaseName::Namespaces,
                vec![prepared("Namespace", "", "ops"), prepared("Namespace", "", "ops")],
            ),
            (
                PhaseName::Secrets,
                vec![
                    prepared("Secret", "ops", "ca"),
                    prepared("Secret", "ops", "web"),
                    prepared("Secret", "ops", "ca"),
                ],
            ),
        ];
        assert_eq!(restored_twice(&phases), ["Secret/ops/ca"]);
        assert!(restored_twice(&phases[..1]).is_empty());
    }

    #[test]
    fn the_restore_starts_on_a_whole_second() {
        let at: jiff::Timestamp = "2026-12-03T14:10:24.226Z".parse().unwrap();
        assert_eq!(
            whole_second(at),
            "2026-12-03T14:10:24Z".parse::<jiff::Timestamp>().unwrap()
        );
    }

    #[test]
    fn facts_follow_the_cluster_resource_namespace() {
        let facts = CertificateFacts {
            namespace: "cert-manager".into(),
            name: "ca".into(),
            secret_name: "ca".into(),
            serial_number: "1".into(),
            not_before: jiff::Timestamp::UNIX_EPOCH,
            not_after: jiff::Timestamp::UNIX_EPOCH,
            sha256_fingerprint: "00".into(),
            is_ca: true,
            public_key_algorithm: "RSA-2048".into(),
            ..CertificateFacts::default()
        };
        let moved = remap_facts(&[facts], "cert-manager", "kube-system");
        assert_eq!(moved[0].namespace, "kube-system");
    }
}
