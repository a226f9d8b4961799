//! What a suite run found, per scenario, and the tables it prints.

use std::fmt::Write as _;

use serde::Serialize;

/// The outcome of one scenario.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScenarioReport {
    /// Issue number.
    pub number: u8,
    /// Scenario name.
    pub name: String,
    /// One line.
    pub title: String,
    /// Why it did not run, if it did not.
    pub not_run: Option<String>,
    /// Certificates in the scenario.
    pub certificates: usize,
    /// Certificates expected to be reissued (renewal window).
    pub expected: usize,
    /// Certificates cmarchive's restore left reissued (expected ones included), when it ran.
    pub cmarchive_reissued: Option<usize>,
    /// `cmarchive verify` exit code after the restore.
    pub verify_code: Option<i32>,
    /// The negative control's mistake.
    pub control: Option<String>,
    /// Certificates the control reissued, with cert-manager's reasons, when it ran.
    pub control_reissued: Option<String>,
    /// `cmarchive verify` exit code on the control's target.
    pub control_verify_code: Option<i32>,
    /// Certificates reissued by the guide's recipe, when it ran.
    pub guide_reissued: Option<usize>,
    /// Seconds spent on this scenario's restores and checks.
    pub seconds: f64,
    /// Every assertion that failed.
    pub failures: Vec<String>,
}

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SuiteReport {
    /// Provider name.
    pub provider: String,
    /// cert-manager version of the clusters.
    pub cert_manager_version: String,
    /// Per scenario, in issue order.
    pub scenarios: Vec<ScenarioReport>,
    /// Failures outside any one scenario (a cluster that did not start, …).
    pub failures: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl SuiteReport {
    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.scenarios.iter().all(|s| s.failures.is_empty())
    }

    /// Every failure, one block per scenario.
    pub fn failure_text(&self) -> String {
        let mut out = String::new();
        for f in &self.failures {
            let _ = writeln!(out, "suite: {f}");
        }
        for s in &self.scenarios {
            for f in &s.failures {
                let _ = writeln!(out, "scenario {} {}: {f}\n", s.number, s.name);
            }
        }
        out
    }

    /// The matrix: one row per scenario.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<3} {:<26} {:>5} {:>10} {:>7} {:>8}  {:<46} {:>6}",
            "#", "scenario", "certs", "reissued", "verify", "guide", "negative control (must reissue)", "result"
        );
        for s in &self.scenarios {
            if let Some(why) = &s.not_run {
                let _ = writeln!(out, "{:<3} {:<26} not run: {why}", s.number, s.name);
                continue;
            }
            let reissued = match s.cmarchive_reissued {
                Some(n) if s.expected > 0 => format!("{n} ({} exp)", s.expected),
                Some(n) => n.to_string(),
                None => "-".into(),
            };
            let control = match (&s.control, &s.control_reissued) {
                (Some(m), Some(r)) => format!("{m}: {r}"),
                (Some(m), None) => format!("{m}: -"),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "{:<3} {:<26} {:>5} {:>10} {:>7} {:>8}  {:<46} {:>6}",
                s.number,
                s.name,
                s.certificates,
                reissued,
                s.verify_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                s.guide_reissued.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                truncate(&control, 46),
                if s.failures.is_empty() { "ok" } else { "FAIL" },
            );
        }
        let _ = writeln!(
            out,
            "provider {}, cert-manager {}, {:.0} s",
            self.provider, self.cert_manager_version, self.seconds
        );
        out
    }

    /// The comparison `scripts/compare-guide` prints: scenario × reissued by the guide's recipe × by cmarchive.
    pub fn guide_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<3} {:<26} {:>12} {:>16} {:>16}",
            "#", "scenario", "certificates", "guide's recipe", "cmarchive"
        );
        let (mut total, mut by_guide, mut by_us) = (0, 0, 0);
        for s in self.scenarios.iter().filter(|s| s.not_run.is_none()) {
            let g = s.guide_reissued.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
            let c = match s.cmarchive_reissued {
                Some(n) if s.expected > 0 => format!("{n} ({} expected)", s.expected),
                Some(n) => n.to_string(),
                None => "-".into(),
            };
            total += s.certificates;
            by_guide += s.guide_reissued.unwrap_or(0);
            by_us += s.cmarchive_reissued.unwrap_or(0);
            let _ = writeln!(
                out,
                "{:<3} {:<26} {:>12} {:>16} {:>16}",
                s.number, s.name, s.certificates, g, c
            );
        }
        let _ = writeln!(
            out,
            "{:<3} {:<26} {:>12} {:>16} {:>16}",
            "", "total", total, by_guide, by_us
        );
        out
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_failure_fails_the_suite() {
        let mut r = SuiteReport::default();
        r.scenarios.push(ScenarioReport {
            name: "a".into(),
            ..Default::default()
        });
        assert!(r.passed());
        r.scenarios[0].failures.push("boom".into());
        assert!(!r.passed());
        assert!(r.failure_text().contains("boom"));
        assert!(r.table().contains("FAIL"));
    }

    #[test]
    fn guide_table_totals() {
        let mut r = SuiteReport::default();
        for (n, g, c) in [(2, 2, 0), (3, 3, 1)] {
            r.scenarios.push(ScenarioReport {
                certificates: n,
                guide_reissued: Some(g),
                cmarchive_reissued: Some(c),
                ..Default::default()
            });
        }
        let t = r.guide_table();
        let last = t.lines().last().unwrap();
        assert!(
            last.contains("total") && last.contains('5') && last.contains('1'),
            "{t}"
        );
    }
}
