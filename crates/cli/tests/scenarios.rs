//! The scenario matrix against real clusters: every scenario packed from a source cluster with the real
//! `cmarchive` binary, restored into a fresh target, and checked for zero unexpected reissuance — and every
//! negative control restored by hand with its one mistake, which must show reissuance.
//!
//! Provider from `CMARCHIVE_E2E_PROVIDER` (default `local`; needs `scripts/build-control-plane`). Scenario 9's
//! size from `CMARCHIVE_E2E_CERTIFICATES` (default 500), a subset with `CMARCHIVE_E2E_SCENARIOS=a,b`.

use std::time::Duration;

use cmarchive_e2e::scenarios::{self, Options, runner};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_matrix() {
    let opts = Options::from_env().expect("scenario options");
    let all = scenarios::all(&opts).expect("scenario definitions");
    let selected = scenarios::select(all, &scenarios::only_from_env()).expect("scenario selection");
    let work = tempfile::Builder::new()
        .prefix("cmarchive-scenarios-")
        .tempdir()
        .expect("temp dir");
    let keep = std::env::var("CMARCHIVE_E2E_KEEP").is_ok_and(|v| v == "1");
    let cfg = runner::SuiteConfig {
        cmarchive: env!("CARGO_BIN_EXE_cmarchive").into(),
        work_dir: work.path().to_owned(),
        cert_manager_version: std::env::var(cmarchive_e2e::kind::config::ENV_CERT_MANAGER_VERSION)
            .ok()
            .filter(|v| !v.is_empty()),
        scenarios: selected,
        controls: true,
        guide: false,
        timeout: Duration::from_secs(120),
    };
    let provider = cmarchive_e2e::select::provider();
    let report = runner::run_suite(&*provider, &cfg).await.expect("suite set-up");
    eprintln!("{}", report.table());
    if keep {
        eprintln!("work dir kept: {}", work.keep().display());
    }
    assert!(report.passed(), "scenario failures:\n{}", report.failure_text());
}
