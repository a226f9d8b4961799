//! `cmarchive-demo`: the demo, the guide comparison and the scenario suite outside `cargo test`.
//!
//! - `demo`: a source cluster with sample issuers and certificates → `cmarchive pack` with a fresh age key →
//!   source stopped → a fresh target → `cmarchive restore` → the verification table.
//! - `compare-guide`: the scenarios restored once with the cert-manager guide's kubectl + jq recipe and once with
//!   cmarchive; prints reissued certificates per scenario for both.
//! - `suite`: the scenario matrix with its negative controls (what `scripts/e2e-matrix` runs per release).
//!
//! The `cmarchive` binary comes from `CMARCHIVE_BIN`, else from next to this program.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cmarchive_e2e::provider::Provider;
use cmarchive_e2e::reissuance::{self, Baseline, CertificateId};
use cmarchive_e2e::scenarios::{self, Options, cli::Cmarchive, objects, runner};

const USAGE: &str = "usage: cmarchive-demo demo | compare-guide | suite   [--keep]
  env: CMARCHIVE_BIN (cmarchive binary), CMARCHIVE_E2E_PROVIDER (local|kind|k3s),
       CMARCHIVE_E2E_SCENARIOS (names, comma-separated), CMARCHIVE_E2E_CERTIFICATES (scenario 9 size),
       CMARCHIVE_CERT_MANAGER_VERSION (cert-manager version, e.g. v1.20.2),
       CMARCHIVE_E2E_REPORT (write the suite report as JSON to this file)";

/// Scenarios the demo shows: one of each issuer family, keystores, ingress-shim.
const DEMO_SCENARIOS: &[&str] = &[
    "selfsigned",
    "ca",
    "cluster-issuer",
    "keystores",
    "secret-template",
    "ingress-shim",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keep = args.iter().any(|a| a == "--keep");
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(keep).await,
        Some("compare-guide") => suite(true, keep).await,
        Some("suite") => suite(false, keep).await,
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("cmarchive-demo: {e:#}");
            std::process::exit(1);
        }
    }
}

fn cmarchive_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var(scenarios::cli::ENV_BIN) {
        return Ok(PathBuf::from(p));
    }
    let here = std::env::current_exe()?;
    let sibling = here.with_file_name("cmarchive");
    if sibling.exists() {
        return Ok(sibling);
    }
    bail!(
        "no cmarchive binary next to {}; build it (cargo build --release) or set CMARCHIVE_BIN",
        here.display()
    )
}

fn work_dir(keep: bool) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    let dir = tempfile::Builder::new().prefix("cmarchive-demo-").tempdir()?;
    if keep {
        Ok((dir.keep(), None))
    } else {
        Ok((dir.path().to_owned(), Some(dir)))
    }
}

fn step(start: Instant, msg: &str) {
    eprintln!("==> [{:>5.1}s] {msg}", start.elapsed().as_secs_f64());
}

async fn suite(guide: bool, keep: bool) -> Result<bool> {
    let opts = Options::from_env()?;
    let selected = scenarios::select(scenarios::all(&opts)?, &scenarios::only_from_env())?;
    let (work, _guard) = work_dir(keep)?;
    let cfg = runner::SuiteConfig {
        cmarchive: cmarchive_bin()?,
        work_dir: work.clone(),
        cert_manager_version: std::env::var(cmarchive_e2e::kind::config::ENV_CERT_MANAGER_VERSION)
            .ok()
            .filter(|v| !v.is_empty()),
        scenarios: selected,
        controls: !guide,
        guide,
        timeout: Duration::from_secs(120),
    };
    let provider = cmarchive_e2e::select::provider_of(cmarchive_e2e::select::kind_from_env()?)?;
    let report = runner::run_suite(&*provider, &cfg).await?;
    println!();
    if guide {
        println!(
            "Certificates reissued after a restore into a fresh cluster (cert-manager {}):",
            report.cert_manager_version
        );
        print!("{}", report.guide_table());
        println!(
            "guide's recipe: kubectl get --all-namespaces -ojson issuer,clusterissuer,cert | jq walk(del uid, resourceVersion) | kubectl apply -f -"
        );
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = std::env::var_os("CMARCHIVE_E2E_REPORT").filter(|p| !p.is_empty()) {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", PathBuf::from(&path).display()))?;
    }
    if keep {
        println!("work dir kept: {}", work.display());
    }
    if !report.passed() {
        eprintln!("\n{}", report.failure_text());
    }
    Ok(report.passed())
}

async fn demo(keep: bool) -> Result<bool> {
    let start = Instant::now();
    let bin = cmarchive_bin()?;
    let provider: Box<dyn Provider> = cmarchive_e2e::select::provider_of(cmarchive_e2e::select::kind_from_env()?)?;
    let (work, _guard) = work_dir(keep)?;
    let picked: Vec<String> = DEMO_SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    let demo = scenarios::select(scenarios::all(&Options::default())?, &picked)?;
    let ids: BTreeSet<CertificateId> = demo.iter().flat_map(|s| s.certificates.iter().cloned()).collect();
    let namespaces: Vec<String> = demo.iter().flat_map(|s| s.namespaces.iter().cloned()).collect();
    let variant = scenarios::ClusterVariant::default();

    step(
        start,
        &format!("starting the source cluster ({} provider)", provider.name()),
    );
    let source = provider.start(&variant.spec("demo-source", None)).await?;
    step(
        start,
        &format!("source up: cert-manager {}", source.cert_manager_version()),
    );
    let client = source.client();
    for s in &demo {
        objects::apply_all(&client, &s.setup)
            .await
            .with_context(|| format!("setting up {}", s.name))?;
    }
    step(
        start,
        &format!(
            "{} sample certificates created; cert-manager is issuing them",
            ids.len()
        ),
    );
    reissuance::wait_settled(&client, &ids, &BTreeSet::new(), Duration::from_secs(300)).await?;
    let before = reissuance::snapshot(&client, &namespaces).await?;
    step(start, "all Ready in the source");

    let cm = Cmarchive::keygen(&bin, &work.join("cmarchive")).await?;
    step(
        start,
        &format!(
            "age key generated: {} (public key {})",
            cm.identity.display(),
            cm.recipient
        ),
    );
    let archive = work.join("backup.cmar");
    let run = cm.pack(&archive, source.kubeconfig(), &[]).await?;
    print_run(&run);
    run.expect_code(0)?;
    step(
        start,
        &format!(
            "packed {} ({} bytes); stopping the source cluster",
            archive.display(),
            std::fs::metadata(&archive)?.len()
        ),
    );
    drop(source);

    step(start, "starting a fresh target cluster");
    let target = provider.start(&variant.spec("demo-target", None)).await?;
    let tclient = target.client();
    step(start, "restoring");
    let run = cm.restore(&archive, target.kubeconfig(), &[]).await?;
    print_run(&run);
    run.expect_code(0)?;
    let redeploy: Vec<serde_json::Value> = demo.iter().flat_map(|s| s.redeploy.iter().cloned()).collect();
    if !redeploy.is_empty() {
        step(
            start,
            &format!(
                "re-deploying {} Ingresses (the application's part; ingress-shim regenerates their Certificates)",
                redeploy.len()
            ),
        );
        objects::apply_all(&tclient, &redeploy).await?;
    }
    reissuance::wait_settled(&tclient, &ids, &BTreeSet::new(), Duration::from_secs(300)).await?;
    reissuance::barrier(&tclient, Duration::from_secs(120)).await?;
    let after = reissuance::snapshot(&tclient, &namespaces).await?;
    let cmp = reissuance::compare(&before, &after, Baseline::OtherCluster);

    step(start, "verification");
    let run = cm.verify(&archive, target.kubeconfig(), false).await?;
    print_run(&run);
    println!();
    println!(
        "{:<34} {:<42} {:<42} result",
        "certificate", "serial in the source", "serial in the target"
    );
    for (id, b) in &before.certificates {
        let a = after.certificates.get(id);
        let serial = |s: Option<&reissuance::CertificateState>| {
            s.and_then(|s| s.secret.as_ref())
                .and_then(|s| s.leaf.as_ref())
                .map(|l| l.serial.clone())
                .unwrap_or_else(|| "-".into())
        };
        let evidence = &cmp.certificates[id];
        let result = if evidence.is_empty() {
            "kept".to_owned()
        } else {
            format!("REISSUED {}", serde_json::to_string(evidence)?)
        };
        println!(
            "{:<34} {:<42} {:<42} {result}",
            id.to_string(),
            serial(Some(b)),
            serial(a)
        );
    }
    let reissued = cmp.reissued().len();
    println!(
        "\n{} certificates restored, {} reissued; cmarchive verify exit {}; {:.0} s in total",
        before.certificates.len(),
        reissued,
        run.code,
        start.elapsed().as_secs_f64()
    );
    if keep {
        println!("work dir kept: {}", work.display());
    }
    Ok(reissued == 0 && run.code == 0)
}

fn print_run(run: &scenarios::cli::Run) {
    for line in run.stdout.lines().chain(run.stderr.lines()) {
        println!("    {line}");
    }
}
