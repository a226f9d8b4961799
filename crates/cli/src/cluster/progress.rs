//! What a restore has done so far, kept outside the restore itself so that it can still be told — and a paused
//! controller still scaled back — after a signal has dropped the restore mid-way.

use crate::cluster::controller::{self, ControllerDeployment};
use cmarchive_archive::manifest::PhaseName;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

/// A controller Deployment scaled to zero (or about to be) and the replica count it must get back.
#[derive(Clone)]
pub struct Paused {
    /// The cluster.
    pub client: kube::Client,
    /// The Deployment.
    pub deployment: ControllerDeployment,
    /// Replicas to scale back to.
    pub replicas: i64,
}

#[derive(Default)]
struct Inner {
    /// Phases in order: name, objects, objects applied.
    phases: Vec<(PhaseName, usize, usize)>,
    /// What the restore is doing now, for the summary.
    stage: String,
    paused: Option<Paused>,
}

/// Shared between a restore and whoever must report on it when it is interrupted.
#[derive(Default)]
pub struct Progress(Mutex<Inner>);

impl Progress {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The phases a restore will apply, with their sizes.
    pub fn plan(&self, phases: impl IntoIterator<Item = (PhaseName, usize)>) {
        self.lock().phases = phases.into_iter().map(|(p, n)| (p, n, 0)).collect();
    }

    /// What the restore does now ("preflight", a phase, "waiting for readiness", …).
    pub fn stage(&self, stage: impl Into<String>) {
        self.lock().stage = stage.into();
    }

    /// One object of `phase` was written (or found as archived).
    pub fn applied(&self, phase: PhaseName) {
        if let Some(entry) = self.lock().phases.iter_mut().find(|(p, ..)| *p == phase) {
            entry.2 += 1;
        }
    }

    /// Records the controller as paused, before the write that pauses it, so an interruption during that write
    /// still scales it back (scaling to the recorded count is harmless if the pause never landed).
    pub fn set_paused(&self, paused: Option<Paused>) {
        self.lock().paused = paused;
    }

    /// The paused controller, if any.
    pub fn paused(&self) -> Option<Paused> {
        self.lock().paused.clone()
    }

    /// Scales a paused controller back (`None` when none is paused); the error says how to do it by hand.
    pub async fn resume_paused(&self) -> Option<Result<String, String>> {
        let paused = self.paused()?;
        Some(
            match controller::resume(&paused.client, &paused.deployment, paused.replicas).await {
                Ok(()) => {
                    self.set_paused(None);
                    Ok(format!(
                        "the cert-manager controller was scaled back to {} replica(s)",
                        paused.replicas
                    ))
                }
                Err(e) => Err(format!("{e:#}")),
            },
        )
    }

    /// What was applied and what was not, for a person deciding what to do after an interruption.
    pub fn summary(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let applied: Vec<String> = inner
            .phases
            .iter()
            .filter(|(_, _, done)| *done > 0)
            .map(|(p, total, done)| format!("{p} {done}/{total}"))
            .collect();
        let missing: Vec<String> = inner
            .phases
            .iter()
            .filter(|(_, total, done)| done < total)
            .map(|(p, total, done)| format!("{p} {}", total - done))
            .collect();
        let _ = writeln!(out, "  stopped during: {}", inner.stage);
        if applied.is_empty() {
            let _ = writeln!(out, "  applied: nothing");
        } else {
            let _ = writeln!(out, "  applied: {}", applied.join(", "));
        }
        if missing.is_empty() {
            let _ = writeln!(out, "  not applied: nothing (every object is in the cluster)");
        } else {
            let _ = writeln!(out, "  not applied: {}", missing.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_what_was_and_was_not_applied() {
        let progress = Progress::default();
        progress.plan([
            (PhaseName::Namespaces, 2),
            (PhaseName::Secrets, 5),
            (PhaseName::Certificates, 3),
        ]);
        progress.stage("secrets");
        for _ in 0..2 {
            progress.applied(PhaseName::Namespaces);
        }
        progress.applied(PhaseName::Secrets);
        let summary = progress.summary();
        assert!(summary.contains("stopped during: secrets"), "{summary}");
        assert!(summary.contains("applied: namespaces 2/2, secrets 1/5"), "{summary}");
        assert!(summary.contains("not applied: secrets 4, certificates 3"), "{summary}");
    }
}
