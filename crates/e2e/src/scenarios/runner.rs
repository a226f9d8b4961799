//! Runs the matrix: per source variant one source cluster holding every scenario of that variant (each in its own
//! namespaces), one `cmarchive pack -n …` per scenario, then restores into one fresh target per target variant,
//! the negative controls into another, and (for `scripts/compare-guide`) the guide's recipe into a third.
//!
//! Sharing clusters between scenarios keeps the suite to a handful of cluster starts; namespaces keep the
//! scenarios apart, and every assertion is scoped to a scenario's namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::cli::Cmarchive;
use super::control::{self, Captured};
use super::report::{ScenarioReport, SuiteReport};
use super::{Check, ClusterVariant, Scenario, SetupMode, guide, objects};
use crate::provider::{Cluster, Provider};
use crate::reissuance::{self, Baseline, CertificateId, Snapshot};

/// How to run the suite.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// The `cmarchive` binary under test.
    pub cmarchive: PathBuf,
    /// Where archives, keys and command logs go.
    pub work_dir: PathBuf,
    /// cert-manager version for every cluster (`None`: the provider's default).
    pub cert_manager_version: Option<String>,
    /// Scenarios to run (those with `not_run` are only reported).
    pub scenarios: Vec<Scenario>,
    /// Run the negative controls.
    pub controls: bool,
    /// Also restore with the guide's kubectl + jq recipe and count its reissuances.
    pub guide: bool,
    /// Bound for each wait on cert-manager; scaled up for large scenarios.
    pub timeout: Duration,
}

fn log(start: Instant, msg: impl AsRef<str>) {
    eprintln!("[{:>6.1}s] {}", start.elapsed().as_secs_f64(), msg.as_ref());
}

/// One scenario's state between the source and the target phases.
struct Packed {
    archive: PathBuf,
    /// ACME account URI per (namespace, Issuer) in the source, for [`Check::AcmeAccountReused`].
    acme_accounts: BTreeMap<(String, String), String>,
    source: Snapshot,
    captured: Option<Captured>,
    report: ScenarioReport,
}

/// Runs `cfg.scenarios` on clusters from `provider`. Errors only for problems outside the scenarios (no cmarchive
/// binary, no work dir); a scenario's failures are in its report.
pub async fn run_suite(provider: &dyn Provider, cfg: &SuiteConfig) -> Result<SuiteReport> {
    let start = Instant::now();
    std::fs::create_dir_all(&cfg.work_dir)?;
    let cm = Cmarchive::keygen(&cfg.cmarchive, &cfg.work_dir.join("cmarchive")).await?;
    // pebble and its DNS server listen on this machine's loopback, which only the local provider's controller
    // (a process here) reaches; pods in kind or k3s containers cannot.
    let mut scenarios: Vec<Scenario> = cfg.scenarios.clone();
    if provider.name() != "local" {
        for s in scenarios
            .iter_mut()
            .filter(|s| s.needs_acme_server && s.not_run.is_none())
        {
            s.not_run = Some(
                "pebble and its DNS server listen on the host's loopback, which pods of a kind or k3s cluster \
                 cannot reach; runs on the local provider",
            );
        }
    }
    // One ACME server for the whole suite, so source and target see the same accounts.
    let needs_acme = scenarios.iter().any(|s| s.needs_acme_server && s.not_run.is_none());
    let pebble = if needs_acme {
        Some(super::pebble::Pebble::start(&cfg.work_dir.join("pebble")).await?)
    } else {
        None
    };
    let scenarios: Vec<Scenario> = scenarios
        .into_iter()
        .map(|mut s| {
            if let (true, Some(p)) = (s.needs_acme_server, &pebble) {
                s.setup
                    .iter_mut()
                    .chain(s.redeploy.iter_mut())
                    .for_each(|o| p.substitute(o));
            }
            s
        })
        .collect();
    // Every cluster's DNS-01 self-check asks the suite's DNS server only (it is the zone's sole authority).
    let dns01 = pebble.as_ref().map(|p| p.dns.addr.clone());
    let spec_for = |variant: &ClusterVariant, name: String| {
        let mut spec = variant.spec(&name, cfg.cert_manager_version.as_deref());
        spec.dns01_nameserver = dns01.clone();
        spec
    };
    let mut suite = SuiteReport {
        provider: provider.name().to_owned(),
        ..Default::default()
    };
    let mut reports: BTreeMap<&str, ScenarioReport> = BTreeMap::new();
    let mut groups: BTreeMap<&ClusterVariant, Vec<&Scenario>> = BTreeMap::new();
    for s in &scenarios {
        let mut r = ScenarioReport {
            number: s.number,
            name: s.name.to_owned(),
            title: s.title.to_owned(),
            certificates: s.certificates.len(),
            expected: s.expect_reissued.len(),
            control: s.control.as_ref().map(|c| c.mistake.describe().to_owned()),
            ..Default::default()
        };
        match s.not_run {
            Some(why) => r.not_run = Some(why.to_owned()),
            None => groups.entry(&s.source).or_default().push(s),
        }
        reports.insert(s.name, r);
    }

    let mut targets: BTreeMap<(ClusterVariant, &'static str), Box<dyn Cluster>> = BTreeMap::new();
    for (variant, group) in groups {
        let mut roles = vec!["target"];
        if cfg.controls {
            roles.push("control");
        }
        if cfg.guide {
            roles.push("guide");
        }
        log(
            start,
            format!("source {}: starting ({} scenarios)", variant.label(), group.len()),
        );
        let source = match provider
            .start(&spec_for(variant, format!("source-{}", variant.label())))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                suite
                    .failures
                    .push(format!("source cluster {} did not start: {e:#}", variant.label()));
                continue;
            }
        };
        suite.cert_manager_version = source.cert_manager_version().to_owned();
        log(
            start,
            format!(
                "source {}: up, cert-manager {}",
                variant.label(),
                source.cert_manager_version()
            ),
        );
        let target_variants: BTreeSet<&ClusterVariant> = group.iter().map(|s| &s.target).collect();

        let packed = match source_phase(&*source, &group, &cm, cfg, start).await {
            Ok(p) => p,
            Err(e) => {
                for s in &group {
                    if let Some(r) = reports.get_mut(s.name) {
                        r.failures.push(format!("source set-up failed: {e:#}"));
                    }
                }
                continue;
            }
        };
        let guide_backup = cfg.work_dir.join(format!("guide-backup-{}.json", variant.label()));
        if cfg.guide
            && let Err(e) = guide::backup(source.kubeconfig(), &guide_backup).await
        {
            suite.failures.push(format!("the guide's backup failed: {e:#}"));
        }
        drop(source);

        for tv in target_variants {
            for role in &roles {
                let key = (tv.clone(), *role);
                if targets.contains_key(&key) {
                    continue;
                }
                log(start, format!("{role} {}: starting", tv.label()));
                match provider.start(&spec_for(tv, format!("{role}-{}", tv.label()))).await {
                    Ok(c) => {
                        targets.insert(key, c);
                    }
                    Err(e) => suite
                        .failures
                        .push(format!("{role} cluster {} did not start: {e:#}", tv.label())),
                }
            }
        }

        let mut packed = packed;
        let mut sources: BTreeMap<&str, Snapshot> = BTreeMap::new();
        for s in &group {
            let Some(mut p) = packed.remove(s.name) else {
                continue;
            };
            let t0 = Instant::now();
            let control_cluster = targets
                .get(&(s.target.clone(), "control"))
                .filter(|_| cfg.controls)
                .map(|c| &**c);
            if let Some(target) = targets.get(&(s.target.clone(), "target")) {
                log(
                    start,
                    format!("scenario {} {}: restore with cmarchive", s.number, s.name),
                );
                if let Err(e) = restore_phase(&**target, control_cluster, s, &mut p, &cm, cfg).await {
                    p.report.failures.push(format!("{e:#}"));
                }
            }
            // A refusal control runs during the restore (see `restore_phase`).
            if cfg.controls
                && let (Some(ctl), Some(target)) = (&s.control, control_cluster)
                && !ctl.mistake.is_refusal()
            {
                log(
                    start,
                    format!(
                        "scenario {} {}: negative control ({})",
                        s.number,
                        s.name,
                        ctl.mistake.describe()
                    ),
                );
                if let Err(e) = control_phase(target, s, &mut p, &cm, cfg).await {
                    p.report.failures.push(format!("negative control: {e:#}"));
                }
            }
            p.report.seconds = t0.elapsed().as_secs_f64();
            sources.insert(s.name, p.source);
            reports.insert(s.name, p.report);
        }
        if cfg.guide {
            for tv in group.iter().map(|s| &s.target).collect::<BTreeSet<_>>() {
                let Some(target) = targets.get(&(tv.clone(), "guide")) else {
                    continue;
                };
                let members: Vec<&Scenario> = group.iter().copied().filter(|s| &s.target == tv).collect();
                log(start, format!("guide's recipe into {}", tv.label()));
                if let Err(e) = guide_phase(&**target, &members, &guide_backup, &sources, &mut reports, cfg).await {
                    suite
                        .failures
                        .push(format!("the guide's recipe into {}: {e:#}", tv.label()));
                }
            }
        }
    }
    drop(targets);
    suite.scenarios = scenarios.iter().filter_map(|s| reports.remove(s.name)).collect();
    drop(pebble);
    suite.seconds = start.elapsed().as_secs_f64();
    log(start, "suite done");
    Ok(suite)
}

/// Scales the wait bound with the number of Certificates cert-manager must look at.
fn wait_bound(cfg: &SuiteConfig, certificates: usize) -> Duration {
    cfg.timeout + Duration::from_millis(400 * certificates as u64)
}

/// Sets up every scenario of one source, packs each, and captures what the controls and the guide need.
async fn source_phase(
    source: &dyn Cluster,
    group: &[&Scenario],
    cm: &Cmarchive,
    cfg: &SuiteConfig,
    start: Instant,
) -> Result<BTreeMap<&'static str, Packed>> {
    let client = source.client();
    let mut out = BTreeMap::new();
    let live: Vec<&&Scenario> = group.iter().filter(|s| s.setup_mode == SetupMode::Live).collect();
    let stopped: Vec<&&Scenario> = group
        .iter()
        .filter(|s| s.setup_mode == SetupMode::ControllerStopped)
        .collect();
    for s in &live {
        objects::apply_all(&client, &s.setup)
            .await
            .with_context(|| format!("setting up {}", s.name))?;
    }
    let ids: BTreeSet<CertificateId> = live.iter().flat_map(|s| s.certificates.iter().cloned()).collect();
    log(
        start,
        format!("source: {} certificates applied, waiting until Ready", ids.len()),
    );
    reissuance::wait_settled(&client, &ids, &BTreeSet::new(), wait_bound(cfg, ids.len()))
        .await
        .context("source certificates did not become Ready")?;
    log(start, "source: all Ready");
    for s in live {
        out.insert(s.name, pack_one(source, s, cm, cfg).await?);
    }
    if !stopped.is_empty() {
        source
            .stop_controller()
            .await
            .context("stopping the source controller")?;
        let result = async {
            for s in &stopped {
                objects::apply_all(&client, &s.setup)
                    .await
                    .with_context(|| format!("setting up {}", s.name))?;
                out.insert(s.name, pack_one(source, s, cm, cfg).await?);
            }
            anyhow::Ok(())
        }
        .await;
        source
            .start_controller()
            .await
            .context("starting the source controller again")?;
        result?;
    }
    log(start, format!("source: {} archives packed", out.len()));
    Ok(out)
}

async fn pack_one(source: &dyn Cluster, s: &Scenario, cm: &Cmarchive, cfg: &SuiteConfig) -> Result<Packed> {
    let client = source.client();
    let snap = reissuance::snapshot(&client, &s.namespaces).await?;
    let missing: Vec<String> = s
        .certificates
        .iter()
        .filter(|id| !snap.certificates.contains_key(*id))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        bail!("{}: certificates missing in the source: {}", s.name, missing.join(", "));
    }
    let archive = cm_dir(cfg).join(format!("{:02}-{}.cmar", s.number, s.name));
    let extra: &[&str] = if s.secrets_only { &["--secrets-only"] } else { &[] };
    let run = cm
        .pack_with(&archive, source.kubeconfig(), &s.namespaces, extra)
        .await?;
    run.expect_code(0).with_context(|| format!("packing {}", s.name))?;
    let mut acme_accounts = BTreeMap::new();
    for check in &s.checks {
        if let Check::AcmeAccountReused { namespace, issuer } = check {
            let uri = wait_acme_account(&client, namespace, issuer, cfg.timeout)
                .await
                .context("in the source")?;
            acme_accounts.insert((namespace.clone(), issuer.clone()), uri);
        }
    }
    let captured = if cfg.controls {
        Some(control::capture(&client, s, &s.target.cluster_resource_namespace).await?)
    } else {
        None
    };
    Ok(Packed {
        archive,
        acme_accounts,
        source: snap,
        captured,
        report: ScenarioReport::default(),
    })
    .map(|mut p| {
        p.report = ScenarioReport {
            number: s.number,
            name: s.name.to_owned(),
            title: s.title.to_owned(),
            certificates: s.certificates.len(),
            expected: s.expect_reissued.len(),
            control: s.control.as_ref().map(|c| c.mistake.describe().to_owned()),
            ..Default::default()
        };
        p
    })
}

fn cm_dir(cfg: &SuiteConfig) -> PathBuf {
    cfg.work_dir.join("cmarchive")
}

/// cmarchive restore (disturbed as the scenario says, with its refusal control on `control`) → re-deploy →
/// settled → barrier → compare, checks, verify.
async fn restore_phase(
    target: &dyn Cluster,
    control: Option<&dyn Cluster>,
    s: &Scenario,
    p: &mut Packed,
    cm: &Cmarchive,
    cfg: &SuiteConfig,
) -> Result<()> {
    let client = target.client();
    if !s.expect_reissued.is_empty() {
        let run = cm.inspect(&p.archive).await?;
        run.expect_code(0)?;
        for id in &s.expect_reissued {
            if !run.stdout.contains(&id.name) || !run.stdout.contains("Renewing") {
                p.report.failures.push(format!(
                    "`cmarchive inspect -o json` does not predict the renewal of {id} (no \"Renewing\" next to its name)"
                ));
            }
        }
    }
    if let Some(super::Disturbance::WebhookLate) = s.disturbance {
        let outcome = super::webhook_late::restore(target, control, s, &p.archive, cm, cfg.timeout).await?;
        outcome.restore.expect_code(0).context("cmarchive restore")?;
        p.report.control_reissued = outcome.control;
        p.report.failures.extend(outcome.failures);
    } else if s.unreachable_issuers {
        let run = cm
            .restore(&p.archive, target.kubeconfig(), &["--timeout", "20s"])
            .await?;
        // Exit 1 is acceptable only when every complaint is an Issuer that cannot reach its server.
        let complaints: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("not ready:")).collect();
        let only_issuers = complaints
            .iter()
            .all(|l| l.starts_with("not ready: Issuer ") || l.starts_with("not ready: ClusterIssuer "));
        if !(run.code == 0 || (run.code == 1 && only_issuers)) {
            run.expect_code(0).context("cmarchive restore")?;
        }
    } else {
        let run = cm.restore(&p.archive, target.kubeconfig(), &[]).await?;
        run.expect_code(0).context("cmarchive restore")?;
        if s.secrets_only {
            let failures = super::gitops::sync(s, &p.archive, target.kubeconfig(), cm, &run).await?;
            p.report.failures.extend(failures);
        }
    }
    objects::apply_all(&client, &s.redeploy).await?;
    reissuance::wait_settled(
        &client,
        &s.certificates,
        &s.expect_reissued,
        wait_bound(cfg, s.certificates.len()),
    )
    .await
    .context("restored certificates did not settle")?;
    reissuance::barrier(&client, cfg.timeout).await?;
    let after = reissuance::snapshot(&client, &s.namespaces).await?;
    let cmp = reissuance::compare(&p.source, &after, Baseline::OtherCluster);
    p.report.cmarchive_reissued = Some(cmp.reissued().len());
    if let Err(e) = reissuance::assert_reissued_exactly(&cmp, &s.expect_reissued) {
        p.report.failures.push(format!("after cmarchive restore: {e:#}"));
    }
    for check in &s.checks {
        if let Err(e) = run_check(&client, check, s, &after, &p.acme_accounts, cfg).await {
            p.report.failures.push(format!("check failed: {e:#}"));
        }
    }
    let verify = cm.verify(&p.archive, target.kubeconfig(), true).await?;
    p.report.verify_code = Some(verify.code);
    if verify.code != 0 {
        p.report.failures.push(format!(
            "cmarchive verify exited {} after a restore without unexpected reissuance:\n{}{}",
            verify.code, verify.stdout, verify.stderr
        ));
    }
    // Per Certificate, verify must agree with the harness: `ok` for the kept ones, anything but `ok` for those
    // renewed as predicted.
    let verdicts = super::cli::verdicts(&verify)?;
    for id in s.archived_certificates() {
        let verdict = verdicts.get(&id).map(String::as_str);
        let fine = if s.expect_reissued.contains(&id) {
            verdict.is_some_and(|v| v != "ok")
        } else {
            verdict == Some("ok")
        };
        if !fine {
            p.report
                .failures
                .push(format!("cmarchive verify -o json says {verdict:?} for {id}"));
        }
    }
    Ok(())
}

/// The name and data of the account key Secret of an ACME Issuer, as captured from the source.
fn acme_key(
    secrets: &[serde_json::Value],
    setup: &[serde_json::Value],
    namespace: &str,
    issuer: &str,
) -> Result<(String, serde_json::Value)> {
    let iss = setup
        .iter()
        .find(|o| o["kind"] == "Issuer" && o["metadata"]["namespace"] == namespace && o["metadata"]["name"] == issuer)
        .context("issuer not in the set-up")?;
    let name = iss["spec"]["acme"]["privateKeySecretRef"]["name"]
        .as_str()
        .context("no privateKeySecretRef")?;
    let secret = secrets
        .iter()
        .find(|o| o["metadata"]["namespace"] == namespace && o["metadata"]["name"] == name)
        .with_context(|| format!("Secret {namespace}/{name} was not captured"))?;
    Ok((name.to_owned(), secret["data"].clone()))
}

/// Waits until the ACME Issuer is Ready and returns its account URI.
async fn wait_acme_account(client: &kube::Client, namespace: &str, issuer: &str, timeout: Duration) -> Result<String> {
    let key = (namespace.to_owned(), issuer.to_owned());
    let mut last = serde_json::Value::Null;
    let what = format!("Issuer {namespace}/{issuer} is Ready");
    let res = objects::watch_until(client, objects::kinds::ISSUER, timeout, &what, |_, all| {
        let iss = all.get(&key)?;
        last = iss["status"].clone();
        if !objects::condition_true_and_current(iss, "Ready") {
            return None;
        }
        iss["status"]["acme"]["uri"].as_str().map(str::to_owned)
    })
    .await;
    res.with_context(|| format!("its status: {last}"))
}

async fn run_check(
    client: &kube::Client,
    check: &Check,
    s: &Scenario,
    after: &Snapshot,
    acme_accounts: &BTreeMap<(String, String), String>,
    cfg: &SuiteConfig,
) -> Result<()> {
    match check {
        Check::SecretsIdentical(list) => {
            for (ns, name) in list {
                let target_ns = if *ns == s.source.cluster_resource_namespace {
                    s.target.cluster_resource_namespace.as_str()
                } else {
                    ns.as_str()
                };
                let got = objects::get(client, objects::kinds::SECRET, Some(target_ns), name)
                    .await?
                    .with_context(|| format!("Secret {target_ns}/{name} was not restored"))?;
                let want = s
                    .setup
                    .iter()
                    .find(|o| {
                        o["kind"] == "Secret"
                            && o["metadata"]["name"] == name.as_str()
                            && o["metadata"]["namespace"] == ns.as_str()
                    })
                    .with_context(|| format!("the scenario does not create Secret {ns}/{name}"))?;
                if got["data"] != want["data"] {
                    bail!("Secret {target_ns}/{name} differs from the source");
                }
            }
        }
        Check::SecretMetadata {
            certificate,
            field,
            key,
            value,
        } => {
            let st = after
                .certificates
                .get(certificate)
                .with_context(|| format!("{certificate} missing"))?;
            let secret = objects::get(
                client,
                objects::kinds::SECRET,
                Some(&certificate.namespace),
                &st.secret_name,
            )
            .await?
            .with_context(|| format!("Secret of {certificate} missing"))?;
            let got = secret["metadata"][*field][key.as_str()].as_str();
            if got != Some(value.as_str()) {
                bail!("Secret of {certificate}: {field}[{key}] is {got:?}, want {value:?}");
            }
        }
        Check::NoStaleOwnerReference(id) => {
            let st = after.certificates.get(id).with_context(|| format!("{id} missing"))?;
            let secret = st.secret.as_ref().with_context(|| format!("Secret of {id} missing"))?;
            if let Some(stale) = secret.owner_uids.iter().find(|u| **u != st.uid) {
                bail!(
                    "Secret of {id} keeps an owner reference to {stale}, not to its Certificate {}",
                    st.uid
                );
            }
        }
        Check::Restored(wanted) => {
            for want in wanted {
                let kind = objects::kind_of(want)?;
                let name = want["metadata"]["name"].as_str().context("object without a name")?;
                let namespace = want["metadata"]["namespace"].as_str();
                let got = objects::get(client, kind, namespace, name)
                    .await?
                    .with_context(|| format!("{} {}/{name} was not restored", kind.kind, namespace.unwrap_or("")))?;
                let fields = want.as_object().into_iter().flatten();
                for (field, value) in fields.filter(|(f, _)| !matches!(f.as_str(), "apiVersion" | "kind" | "metadata"))
                {
                    if got.get(field) != Some(value) {
                        bail!(
                            "{} {}/{name}: {field} is {:?} in the target, {value} in the source",
                            kind.kind,
                            namespace.unwrap_or(""),
                            got.get(field)
                        );
                    }
                }
            }
        }
        Check::AcmeAccountReused { namespace, issuer } => {
            let before = acme_accounts
                .get(&(namespace.clone(), issuer.clone()))
                .with_context(|| format!("no source account recorded for {namespace}/{issuer}"))?;
            let now = wait_acme_account(client, namespace, issuer, cfg.timeout)
                .await
                .context("in the target")?;
            if &now != before {
                bail!("Issuer {namespace}/{issuer} registered a new ACME account {now}; the source used {before}");
            }
        }
        Check::GeneratedBy(id, owner_kind) => {
            let st = after.certificates.get(id).with_context(|| format!("{id} missing"))?;
            if !st.owner_kinds.iter().any(|k| k == owner_kind) {
                bail!(
                    "{id} was not generated for its {owner_kind} in the target (owners: {:?})",
                    st.owner_kinds
                );
            }
        }
    }
    Ok(())
}

/// The same restore by hand with the scenario's mistake: must show reissuance, and `cmarchive verify` must say so.
async fn control_phase(
    target: &dyn Cluster,
    s: &Scenario,
    p: &mut Packed,
    cm: &Cmarchive,
    cfg: &SuiteConfig,
) -> Result<()> {
    let ctl = s.control.as_ref().context("no control")?;
    let captured = p.captured.as_ref().context("nothing captured for the control")?;
    let seen = control::restore_with_mistake(
        &target.client(),
        captured,
        &s.redeploy,
        ctl.mistake,
        &ctl.must_reissue,
        wait_bound(cfg, ctl.must_reissue.len()),
    )
    .await?;
    // Without the account key cert-manager generates a new one (a new ACME account): the key it writes must differ
    // from the source's, or the account check could not fail.
    if ctl.mistake == super::Mistake::NoSecrets {
        for check in &s.checks {
            if let Check::AcmeAccountReused { namespace, issuer } = check {
                let (secret_name, before) =
                    acme_key(&captured.secrets, &s.setup, namespace, issuer).context("the source's account key")?;
                let key = (namespace.clone(), secret_name.clone());
                let what = format!("cert-manager generates a new account key {namespace}/{secret_name}");
                let now = objects::watch_until(
                    &target.client(),
                    objects::kinds::SECRET,
                    cfg.timeout,
                    &what,
                    |_, all| all.get(&key).map(|s| s["data"].clone()),
                )
                .await?;
                if now == before {
                    p.report.failures.push(format!(
                        "the control's Issuer {namespace}/{issuer} kept the source's account key"
                    ));
                }
            }
        }
    }
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for r in seen.values() {
        *reasons.entry(r.as_str()).or_default() += 1;
    }
    let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    p.report.control_reissued = Some(format!(
        "{}/{} ({})",
        seen.len(),
        ctl.must_reissue.len(),
        reasons.join(", ")
    ));
    let verify = cm.verify(&p.archive, target.kubeconfig(), true).await?;
    p.report.control_verify_code = Some(verify.code);
    // An archive without Certificates (ingress-shim generates them all) gives verify nothing to judge.
    if verify.code != 2 && !s.archived_certificates().is_empty() {
        p.report.failures.push(format!(
            "cmarchive verify exited {} on the negative control's cluster; it must report the reissuance with exit 2:\n{}{}",
            verify.code, verify.stdout, verify.stderr
        ));
    }
    let verdicts = super::cli::verdicts(&verify)?;
    for id in ctl.must_reissue.intersection(&s.archived_certificates()) {
        if verdicts.get(id).is_none_or(|v| v == "ok") {
            p.report.failures.push(format!(
                "cmarchive verify -o json does not report {id} as reissued on the control's cluster ({:?})",
                verdicts.get(id)
            ));
        }
    }
    Ok(())
}

/// The guide's recipe into a fresh cluster: namespaces first (the guide assumes the applications exist), then
/// `jq … | kubectl apply -f -`, the application's Ingresses, and a count of what cert-manager reissued.
async fn guide_phase(
    target: &dyn Cluster,
    members: &[&Scenario],
    backup: &Path,
    sources: &BTreeMap<&str, Snapshot>,
    reports: &mut BTreeMap<&str, ScenarioReport>,
    cfg: &SuiteConfig,
) -> Result<()> {
    let client = target.client();
    for s in members {
        for ns in &s.namespaces {
            objects::apply(&client, &crate::fixtures::namespace(ns)).await?;
        }
    }
    guide::restore(target.kubeconfig(), backup).await?;
    for s in members {
        objects::apply_all(&client, &s.redeploy).await?;
    }
    let ids: BTreeSet<CertificateId> = members.iter().flat_map(|s| s.certificates.iter().cloned()).collect();
    reissuance::wait_decided(&client, &ids, wait_bound(cfg, ids.len())).await?;
    reissuance::barrier(&client, cfg.timeout).await?;
    for s in members {
        let (Some(r), Some(source)) = (reports.get_mut(s.name), sources.get(s.name)) else {
            continue;
        };
        let after = reissuance::snapshot(&client, &s.namespaces).await?;
        r.guide_reissued = Some(
            reissuance::compare(source, &after, Baseline::OtherCluster)
                .reissued()
                .len(),
        );
    }
    Ok(())
}
