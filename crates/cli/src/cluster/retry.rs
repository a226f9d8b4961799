//! Transient API errors are retried here, and only here (kube-client's own retry layer is turned off, so that
//! every retry is logged and counted): 429 (API Priority and Fairness), 503 and 504, a 500 that says etcd changed
//! leader or timed out, a request timeout, and a connection refused or reset while the API server restarts. Every request cmarchive retries is idempotent (GET, LIST, server-side apply, a merge patch) or turns
//! into one (a create whose answer was lost meets 409 and is applied instead). Validation errors, conflicts,
//! forbidden and not found are never retried: waiting does not change them.

use backon::{ExponentialBuilder, Retryable as _};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Retries in this process, for the final report. One command runs per process, so a process-wide count is
/// that command's count.
static RETRIES: AtomicU64 = AtomicU64::new(0);

/// Retries so far.
pub fn count() -> u64 {
    RETRIES.load(Ordering::Relaxed)
}

/// client-go's shape (exponential, jittered, capped), with bounds long enough to ride out an API server restart.
fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_factor(2.0)
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_max_times(12)
        .with_total_delay(Some(Duration::from_secs(90)))
}

/// Whether waiting and sending the same request again may succeed.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => match status.code {
            429 | 503 | 504 => true,
            500 => {
                let message = status.message.to_ascii_lowercase();
                // A webhook that cannot be called is waited for once, with its own bound and status line, before
                // the first cert-manager object (api_ready); retried here, every object of a preflight would
                // wait on its own (its URL's `?timeout=` and "connection refused" match the words below).
                if message.contains("failed calling webhook") {
                    return false;
                }
                [
                    "etcdserver: leader changed",
                    "etcdserver: request timed out",
                    "etcdserver: too many requests",
                    "context deadline exceeded",
                    "timeout",
                    "connection refused",
                ]
                .iter()
                .any(|m| message.contains(m))
            }
            _ => false,
        },
        other => connection_lost(other),
    }
}

/// A connection refused, reset or cut short somewhere in the error's chain.
fn connection_lost(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut
            )
        {
            return true;
        }
        // hyper and hyper-util say so in words only. A connect error means nothing was sent; a send error on a
        // connection that died is safe to repeat because every write is idempotent.
        let text = e.to_string();
        if [
            "connection closed before message completed",
            "error trying to connect",
            "client error (Connect)",
            "client error (SendRequest)",
        ]
        .iter()
        .any(|words| text.contains(words))
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Runs `request` until it succeeds, fails for good, or the bounds run out; each retry is counted and logged
/// at `-v` with `what`.
pub async fn transient<T, F, Fut>(what: &str, request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    request
        .retry(policy())
        .when(is_transient)
        .notify(|error, after| {
            RETRIES.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%error, retry_in = ?after, "{what}: transient error, retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, "").with_code(code).boxed())
    }

    #[test]
    fn transient_and_permanent_errors() {
        assert!(is_transient(&api(500, "etcdserver: leader changed")));
        assert!(is_transient(&api(500, "Timeout: request did not complete within 1m0s")));
        assert!(is_transient(&api(429, "too many requests")));
        assert!(is_transient(&api(504, "")));
        assert!(!is_transient(&api(
            500,
            "Internal error occurred: admission webhook denied"
        )));
        assert!(!is_transient(&api(
            500,
            "Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to call webhook: \
             Post \"https://localhost:1/validate?timeout=30s\": dial tcp 127.0.0.1:1: connect: connection refused"
        )));
        for permanent in [400, 403, 404, 409, 422] {
            assert!(!is_transient(&api(permanent, "timeout")), "{permanent}");
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_transient(&kube::Error::Service(Box::new(refused))));
        let other = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        assert!(!is_transient(&kube::Error::Service(Box::new(other))));
    }

    /// How many times `transient` sends a request that always fails with `error`.
    async fn calls_until_given_up(code: u16, message: &'static str) -> usize {
        let mut calls = 0;
        let result: Result<(), _> = transient("test", || {
            calls += 1;
            async move { Err(api(code, message)) }
        })
        .await;
        assert!(result.is_err());
        calls
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_counted_and_bounded() {
        let before = count();
        let calls = calls_until_given_up(500, "etcdserver: leader changed").await;
        assert!((2..=13).contains(&calls), "{calls}");
        assert!(count() - before >= u64::try_from(calls - 1).unwrap());
        assert_eq!(
            calls_until_given_up(409, "conflict").await,
            1,
            "a conflict is never retried"
        );
    }
}
