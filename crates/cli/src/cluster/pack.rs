//! `pack` from a live cluster: discover cert-manager, read its objects with paged LISTs, GET by name every Secret,
//! Namespace and (with `--include-crds`) CRD they need, and record the facts about the source the manifest keeps.

use crate::cluster::client::{self, ConnectOptions};
use crate::cluster::collect::{self, CERT_MANAGER_CRDS, Selection};
use crate::cluster::controller::{self, FALLBACK_CRN};
use crate::cluster::discovery;
use crate::cluster::error::ClusterError;
use anyhow::Result;
use cmarchive_archive::certmanager::kinds::CERT_MANAGER_GROUP;
use cmarchive_archive::certmanager::{referenced_secrets, referenced_service_accounts, trim_collected};
use cmarchive_archive::manifest::{Source, Warning};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::IsTerminal as _;

/// Warning code for problems met while reading the cluster (not the planner's).
pub const CLUSTER_READ_WARNING: &str = "ClusterRead";

/// What `pack` asked for.
#[derive(Clone, Debug, Default)]
pub struct PackOptions {
    /// Which cluster.
    pub connect: ConnectOptions,
    /// Namespaces, selector, CertificateRequests.
    pub selection: Selection,
    /// `--include-crds`.
    pub include_crds: bool,
    /// `--cluster-resource-namespace`.
    pub cluster_resource_namespace: Option<String>,
    /// `--strict`: a missing referenced Secret is an error.
    pub strict: bool,
}

/// Everything read from the cluster.
#[derive(Debug, Default)]
pub struct ClusterContent {
    /// Raw objects (cert-manager objects, Secrets, Namespaces, CRDs).
    pub objects: Vec<Value>,
    /// Facts about the source.
    pub source: Source,
    /// Problems met while reading.
    pub warnings: Vec<Warning>,
    /// The controller's ServiceAccount (namespace, name), when its Deployment was readable.
    pub cert_manager_service_account: Option<(String, String)>,
}

fn spinner() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// Reads everything a backup of this cluster needs.
pub async fn read_cluster(options: &PackOptions) -> Result<ClusterContent> {
    let connection = client::connect(&options.connect).await?;
    let client = &connection.client;
    let name = connection.display_name().to_owned();
    let bar = spinner();
    let say = |text: &str| {
        if let Some(bar) = &bar {
            bar.set_message(text.to_owned());
        }
    };
    say("discovering cert-manager");
    let kubernetes_version =
        match crate::cluster::retry::transient("reading the Kubernetes version", || client.apiserver_version()).await {
            Ok(info) => Some(info.git_version),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Kubernetes version");
                None
            }
        };
    let apis = discovery::cert_manager(client, &name).await?;
    let mut warnings: Vec<String> = apis.warnings.clone();
    let deployment = controller::find(client).await;
    let cert_manager_version = deployment.as_ref().and_then(controller::ControllerDeployment::version);
    let cluster_resource_namespace =
        controller::effective_crn(options.cluster_resource_namespace.as_deref(), deployment.as_ref());
    if deployment.is_none() && options.cluster_resource_namespace.is_none() {
        tracing::info!(
            "no cert-manager controller Deployment readable; assuming cluster resource namespace {FALLBACK_CRN}"
        );
    }

    say("listing issuers and certificates");
    let found = collect::cert_manager_objects(client, &apis, &options.selection).await?;
    let mut unreadable = found.warnings.clone();
    warnings.extend(found.warnings);
    // Trimmed as soon as read (server fields, status): thousands of Certificates and Secrets are held until
    // planning, and the archive keeps none of it.
    let mut objects = found.objects;
    objects.iter_mut().for_each(trim_collected);

    let references = referenced_secrets(&objects, &cluster_resource_namespace);
    let wanted: BTreeSet<(String, String)> = references
        .iter()
        .map(|r| (r.namespace.clone(), r.name.clone()))
        .collect();
    let fetched = std::sync::atomic::AtomicUsize::new(0);
    let total = wanted.len();
    let progress = || {
        let done = fetched.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        say(&format!("reading Secrets {done}/{total}"));
    };
    let mut secrets = collect::secrets_by_name(client, &wanted, &progress).await?;
    secrets.iter_mut().for_each(trim_collected);
    let present: BTreeSet<(String, String)> = secrets
        .iter()
        .filter_map(|s| {
            let ns = s.pointer("/metadata/namespace")?.as_str()?.to_owned();
            let name = s.pointer("/metadata/name")?.as_str()?.to_owned();
            Some((ns, name))
        })
        .collect();
    let mut missing: Vec<String> = references
        .iter()
        .filter(|r| !present.contains(&(r.namespace.clone(), r.name.clone())))
        .map(|r| {
            format!(
                "Secret {}/{} referenced by {} at {}",
                r.namespace, r.name, r.holder, r.path
            )
        })
        .collect();
    missing.dedup();
    if options.strict && !missing.is_empty() {
        let lines = missing.iter().map(|l| format!("  {l}")).collect();
        return Err(ClusterError::StrictMissingSecrets {
            count: missing.len(),
            lines,
        }
        .into());
    }
    for line in &missing {
        note!("warning: {line} does not exist");
    }
    objects.extend(secrets);

    say("reading ServiceAccounts");
    let accounts: BTreeSet<(String, String)> = referenced_service_accounts(&objects, &cluster_resource_namespace)
        .into_iter()
        .map(|r| (r.namespace, r.name))
        .collect();
    let (mut account_objects, account_warnings) = collect::service_accounts(client, &accounts).await?;
    account_objects.iter_mut().for_each(trim_collected);
    unreadable.extend(account_warnings.iter().cloned());
    warnings.extend(account_warnings);
    objects.extend(account_objects);

    say("reading namespaces");
    let namespaces: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let (namespace_objects, namespace_warnings) = collect::namespaces(client, &namespaces).await?;
    unreadable.extend(namespace_warnings.iter().cloned());
    warnings.extend(namespace_warnings);
    objects.extend(namespace_objects);

    if options.include_crds {
        say("reading CRDs");
        let mut names: BTreeSet<String> = CERT_MANAGER_CRDS.iter().map(|s| (*s).to_owned()).collect();
        for issuer in collect::used_issuers(&objects)
            .into_iter()
            .filter(|u| u.group != CERT_MANAGER_GROUP)
        {
            if let Some(resource) = discovery::resolve_kind(client, &issuer.group, &issuer.kind).await? {
                names.insert(resource.qualified());
            }
        }
        let (crds, crd_warnings) = collect::crds(client, &names).await?;
        unreadable.extend(crd_warnings.iter().cloned());
        warnings.extend(crd_warnings);
        objects.extend(crds);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if options.strict && !unreadable.is_empty() {
        return Err(ClusterError::StrictUnreadable { lines: unreadable }.into());
    }
    for warning in &warnings {
        note!("warning: {warning}");
    }
    Ok(ClusterContent {
        objects,
        source: Source {
            kind: "cluster".into(),
            server: Some(connection.server.clone()),
            context: connection.context.clone(),
            kubernetes_version,
            cert_manager_version,
            cluster_resource_namespace,
            inputs: Vec::new(),
        },
        warnings: warnings
            .into_iter()
            .map(|message| Warning {
                code: CLUSTER_READ_WARNING.into(),
                object: None,
                message,
            })
            .collect(),
        cert_manager_service_account: deployment
            .as_ref()
            .map(controller::ControllerDeployment::service_account),
    })
}
