//! Waiting for cert-manager's API before the first cert-manager object, the way `cmctl check api --wait` decides
//! it: a server-side dry run of a cert-manager object must pass the admission webhook. Right after an install or
//! an upgrade the webhook is often not serving yet (no endpoints, connection refused, its CA not injected by
//! cainjector yet); that passes, so the restore waits with backoff. Any other refusal is the object's own problem
//! and is reported by the apply itself.

use crate::cluster::apply::{Applier, Outcome, Prepared};
use crate::cluster::error::ClusterError;
use anyhow::Result;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// What the API server says when a webhook could not be called: it refused the write, not the webhook.
const WEBHOOK_CALL_FAILED: &str = "failed calling webhook";

/// Why the webhook could not be called, matched on the API server's message, with what an operator checks.
const CAUSES: &[(&str, &str, &str)] = &[
    (
        "connection refused",
        "the webhook is not running (connection refused)",
        CHECK_RUNNING,
    ),
    (
        "no endpoints available",
        "the webhook's Service has no ready endpoints",
        CHECK_RUNNING,
    ),
    ("not found", "the webhook's Service does not exist", CHECK_RUNNING),
    (
        "x509:",
        "the webhook's serving certificate is not trusted yet: its CA is not injected (x509)",
        CHECK_CAINJECTOR,
    ),
    (
        "tls:",
        "the webhook's serving certificate is not trusted yet: its CA is not injected (TLS)",
        CHECK_CAINJECTOR,
    ),
    (
        "deadline exceeded",
        "the webhook did not answer in time",
        CHECK_REACHABLE,
    ),
    // Not plain "timeout": every webhook URL carries `?timeout=`.
    ("i/o timeout", "the webhook did not answer in time", CHECK_REACHABLE),
    ("Client.Timeout", "the webhook did not answer in time", CHECK_REACHABLE),
    ("connection reset", "the webhook closed the connection", CHECK_RUNNING),
    ("EOF", "the webhook closed the connection", CHECK_RUNNING),
];

const CHECK_RUNNING: &str = "check that the cert-manager-webhook Deployment is running and ready \
     (kubectl -n cert-manager get deployment cert-manager-webhook)";
const CHECK_CAINJECTOR: &str = "check that cert-manager-cainjector is running: it copies the webhook's CA into \
     the webhook configurations' caBundle";
const CHECK_REACHABLE: &str = "check that the API server can reach the webhook (network policies, firewalls)";

/// A refusal that waiting can cure: cert-manager's webhook not answering yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUnavailable {
    /// What is wrong, in words.
    pub cause: &'static str,
    /// What to check.
    pub remedy: &'static str,
}

/// Whether the API server's refusal `message` means the webhook could not be called (and why); `None` for any other
/// refusal, such as the webhook denying the object.
pub fn webhook_unavailable(message: &str) -> Option<WebhookUnavailable> {
    if !message.contains(WEBHOOK_CALL_FAILED) {
        return None;
    }
    let (cause, remedy) = CAUSES
        .iter()
        .find(|(needle, _, _)| message.contains(needle))
        .map(|(_, cause, remedy)| (*cause, *remedy))
        .unwrap_or(("the webhook could not be called", CHECK_RUNNING));
    Some(WebhookUnavailable { cause, remedy })
}

/// The webhook problem an outcome shows, if any.
pub fn outcome_unavailable(outcome: &Outcome) -> Option<WebhookUnavailable> {
    match outcome {
        Outcome::Failed(message) => webhook_unavailable(message),
        _ => None,
    }
}

/// Backoff between probes: from half a second, doubling, at most five.
fn next_delay(delay: Duration) -> Duration {
    (delay * 2).min(Duration::from_secs(5))
}

/// Waits until a server-side dry run of `probe` (the first cert-manager object the restore writes; its namespace
/// exists by now) is not refused for want of the webhook. Says what it waits for on one status line; fails after
/// `timeout` with the cause and what to check.
pub async fn wait_for_api(preview: &Applier, probe: &Prepared, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut status = StatusLine::new();
    loop {
        let applied = preview.apply(&probe.object()?).await?;
        let Some(problem) = outcome_unavailable(&applied.outcome) else {
            status.done(started.elapsed());
            return Ok(());
        };
        let waited = started.elapsed();
        if waited >= timeout {
            status.clear();
            return Err(ClusterError::ApiNotReady {
                waited: timeout,
                cause: problem.cause.to_owned(),
                remedy: problem.remedy.to_owned(),
            }
            .into());
        }
        status.show(problem.cause, waited, timeout);
        tokio::time::sleep(delay.min(timeout - waited)).await;
        delay = next_delay(delay);
    }
}

/// One line that says what the restore waits for: redrawn in place on a terminal, printed once per cause in a
/// pipe or a log.
struct StatusLine {
    bar: Option<indicatif::ProgressBar>,
    last_cause: Option<&'static str>,
}

impl StatusLine {
    fn new() -> StatusLine {
        StatusLine {
            bar: None,
            last_cause: None,
        }
    }

    fn show(&mut self, cause: &'static str, waited: Duration, timeout: Duration) {
        let text = format!(
            "waiting for cert-manager's API ({}s of {}s): {cause}",
            waited.as_secs(),
            timeout.as_secs()
        );
        if std::io::stderr().is_terminal() {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
            bar.set_message(text);
        } else if self.last_cause != Some(cause) {
            eprintln!("{text}");
        }
        self.last_cause = Some(cause);
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn done(&mut self, waited: Duration) {
        self.clear();
        if self.last_cause.is_some() {
            eprintln!("cert-manager's API is usable (waited {}s)", waited.as_secs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &str = "Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to \
        call webhook: Post \"https://localhost:31234/validate?timeout=30s\": dial tcp 127.0.0.1:31234: connect: \
        connection refused";

    #[test]
    fn webhook_call_failures_are_told_apart_from_denials() {
        let refused = webhook_unavailable(REFUSED).expect("waiting cures a refused connection");
        assert!(refused.cause.contains("connection refused"), "{refused:?}");
        assert_eq!(refused.remedy, CHECK_RUNNING);

        let untrusted = webhook_unavailable(
            "Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to call webhook: \
             Post \"https://cert-manager-webhook.cert-manager.svc:443/validate?timeout=30s\": tls: failed to \
             verify certificate: x509: certificate signed by unknown authority",
        )
        .expect("waiting cures a CA not injected yet");
        assert_eq!(untrusted.remedy, CHECK_CAINJECTOR);

        let no_endpoints = webhook_unavailable(
            "Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to call webhook: \
             Post \"https://cert-manager-webhook.cert-manager.svc:443/validate?timeout=30s\": no endpoints \
             available for service \"cert-manager-webhook\"",
        )
        .unwrap();
        assert!(no_endpoints.cause.contains("no ready endpoints"));
        // Every webhook URL carries `?timeout=`; that alone is no time-out.
        let other = webhook_unavailable(
            "Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to call webhook: \
             Post \"https://localhost:1/validate?timeout=30s\": something new",
        )
        .unwrap();
        assert_eq!(other.cause, "the webhook could not be called");

        // The webhook answered and said no: waiting changes nothing.
        assert_eq!(
            webhook_unavailable(
                "admission webhook \"webhook.cert-manager.io\" denied the request: spec.privateKey.size: Invalid \
                 value: 1024: must be between 2048 and 8192 for rsa keyAlgorithm"
            ),
            None
        );
        assert_eq!(webhook_unavailable("namespaces \"team-a\" not found"), None);
        assert_eq!(outcome_unavailable(&Outcome::Conflict(REFUSED.to_owned())), None);
        assert!(outcome_unavailable(&Outcome::Failed(REFUSED.to_owned())).is_some());
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let mut d = Duration::from_millis(500);
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(d.as_millis());
            d = next_delay(d);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 5000, 5000]);
    }
}
