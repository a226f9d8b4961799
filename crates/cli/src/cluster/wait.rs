//! Waiting on the cluster, always by watching rather than sleeping: the race barrier between the Secret phase and
//! the Certificate phase, and readiness of issuers and Certificates.

use anyhow::{Context as _, Result, bail};
use cmarchive_archive::certmanager::evidence::{is_ready, readiness_message};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cluster::raw::Resource;
use crate::cluster::retry;

/// Pause after the barrier: the controller's own informer is a different watch than ours, and usually a hair
/// behind it.
pub const BARRIER_GRACE: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Seen {
    /// Highest resourceVersion seen per (namespace, name).
    objects: HashMap<(String, String), u64>,
    /// Highest bookmark resourceVersion per namespace: everything up to it has been delivered.
    bookmarks: HashMap<String, u64>,
    /// A watch that failed for good, with why.
    failed: Option<String>,
}

/// Metadata-only watches on Secrets, one per namespace, opened *before* the Secret phase. Once they have seen
/// every restored Secret at (at least) the resourceVersion the apply returned, the API server's watch cache — the
/// same stream cert-manager's informer reads — has delivered them, so the controller cannot meet a restored
/// Certificate whose Secret it has never heard of.
pub struct SecretBarrier {
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl SecretBarrier {
    /// Opens the watches and returns once the API server has accepted every one of them.
    pub async fn open(client: &kube::Client, namespaces: &BTreeSet<String>) -> Result<SecretBarrier> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let changed = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        for namespace in namespaces {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let params = WatchParams::default().timeout(290);
            let what = format!("watching Secrets in {namespace}");
            let stream = retry::transient(&what, || api.watch_metadata(&params, "0"))
                .await
                .with_context(|| {
                    format!("cannot watch Secrets in namespace {namespace} (needed for the race barrier)")
                })?
                .boxed();
            let (seen, changed, namespace) = (seen.clone(), changed.clone(), namespace.clone());
            tasks.push(tokio::spawn(async move {
                let mut stream = stream;
                let mut last = "0".to_owned();
                // Watches that broke before delivering anything: a stream that breaks for good is not retried
                // for ever.
                let mut fruitless = 0;
                loop {
                    while let Some(event) = stream.next().await {
                        let mut state = seen.lock().expect("barrier state poisoned");
                        match event {
                            Ok(WatchEvent::Added(meta) | WatchEvent::Modified(meta)) => {
                                let rv = meta.metadata.resource_version.clone().unwrap_or_default();
                                if let (Some(name), Ok(number)) = (meta.metadata.name.clone(), rv.parse::<u64>()) {
                                    let entry = state.objects.entry((namespace.clone(), name)).or_default();
                                    *entry = (*entry).max(number);
                                }
                                last = rv;
                            }
                            Ok(WatchEvent::Bookmark(bookmark)) => {
                                if let Ok(number) = bookmark.metadata.resource_version.parse::<u64>() {
                                    let entry = state.bookmarks.entry(namespace.clone()).or_default();
                                    *entry = (*entry).max(number);
                                }
                                last = bookmark.metadata.resource_version;
                            }
                            Ok(WatchEvent::Deleted(_)) => {}
                            // The resourceVersion left the watch cache (an API server that restarted has a new
                            // one): start again from what the cache holds now, which lists every Secret there.
                            Ok(WatchEvent::Error(status)) if status.code == 410 => {
                                tracing::info!(%namespace, "race barrier: watch expired, watching again");
                                last = "0".to_owned();
                                break;
                            }
                            Ok(WatchEvent::Error(status)) => {
                                state.failed = Some(format!("watch on Secrets in {namespace}: {}", status.message));
                                changed.notify_waiters();
                                return;
                            }
                            // A connection that broke (an API server restarting): watch again from the last event.
                            Err(e) if fruitless < 10 => {
                                tracing::info!(%namespace, error = %e, "race barrier: watch broke, watching again");
                                fruitless += 1;
                                break;
                            }
                            Err(e) => {
                                state.failed = Some(format!("watch on Secrets in {namespace}: {e}"));
                                changed.notify_waiters();
                                return;
                            }
                        }
                        fruitless = 0;
                        drop(state);
                        changed.notify_waiters();
                    }
                    // Also where the server ends a watch after its timeout. Bounded: a server that stays away
                    // fails the barrier.
                    let what = format!("watching Secrets in {namespace}");
                    match retry::transient(&what, || api.watch_metadata(&params, &last)).await {
                        Ok(next) => stream = next.boxed(),
                        Err(e) => {
                            seen.lock().expect("barrier state poisoned").failed =
                                Some(format!("re-watching Secrets in {namespace}: {e}"));
                            changed.notify_waiters();
                            return;
                        }
                    }
                }
            }));
        }
        Ok(SecretBarrier { seen, changed, tasks })
    }

    fn missing(&self, expected: &[(String, String, u64)]) -> Result<Vec<String>> {
        let state = self.seen.lock().expect("barrier state poisoned");
        if let Some(why) = &state.failed {
            bail!("race barrier failed: {why}");
        }
        Ok(expected
            .iter()
            .filter(|(ns, name, rv)| {
                let by_event = state
                    .objects
                    .get(&(ns.clone(), name.clone()))
                    .is_some_and(|seen| seen >= rv);
                let by_bookmark = state.bookmarks.get(ns).is_some_and(|seen| seen >= rv);
                !(by_event || by_bookmark)
            })
            .map(|(ns, name, rv)| format!("{ns}/{name}@{rv}"))
            .collect())
    }

    /// Waits until every `(namespace, name, resourceVersion)` has been seen, then [`BARRIER_GRACE`].
    pub async fn wait(self, expected: &[(String, String, u64)], timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let missing = self.missing(expected)?;
            if missing.is_empty() {
                break;
            }
            tracing::debug!(waiting_for = missing.len(), "race barrier");
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "race barrier: the Secret watch has not seen {} restored Secret(s) after {timeout:?}: {}; not applying Certificates (rerun to resume)",
                    missing.len(),
                    missing.join(", ")
                );
            }
        }
        tracing::info!(secrets = expected.len(), "race barrier passed; grace {BARRIER_GRACE:?}");
        tokio::time::sleep(BARRIER_GRACE).await;
        Ok(())
    }
}

impl Drop for SecretBarrier {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The last readiness seen of each watched object, by (namespace, name): `None` when Ready, else why not. Only
/// this is kept, not the object: thousands of Certificates as parsed values were a third of a restore's heap.
type LastSeen = HashMap<(Option<String>, String), Option<String>>;

/// An object that did not become Ready in time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotReady {
    /// `Kind ns/name`.
    pub object: String,
    /// Its Ready condition, or why there is none.
    pub message: String,
}

/// Watches the named objects of one resource until all are Ready or `timeout` passes; returns those that are not.
/// One watch per namespace (or one for cluster-scoped kinds), never one per object.
pub async fn until_ready(
    client: &kube::Client,
    resource: &Resource,
    names: &BTreeSet<(Option<String>, String)>,
    timeout: Duration,
) -> Result<Vec<NotReady>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_scope: BTreeMap<Option<String>, BTreeSet<String>> = BTreeMap::new();
    for (namespace, name) in names {
        let scope = if resource.namespaced { namespace.clone() } else { None };
        by_scope.entry(scope).or_default().insert(name.clone());
    }
    let latest: Arc<Mutex<LastSeen>> = Arc::default();
    let watches = by_scope.into_iter().map(|(scope, mut pending)| {
        let api: Api<DynamicObject> = match &scope {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource.api),
            None => Api::all_with(client.clone(), &resource.api),
        };
        let latest = latest.clone();
        async move {
            // The watcher's own backoff re-opens the watch when the API server goes away for a moment.
            let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
            while !pending.is_empty() {
                let event = match stream.next().await {
                    None => break,
                    Some(Ok(event)) => event,
                    Some(Err(e)) => {
                        tracing::info!(error = %e, kind = %resource.api.kind, "watch interrupted, re-opening");
                        continue;
                    }
                };
                let objects = match event {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => vec![o],
                    _ => Vec::new(),
                };
                for object in objects {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    if !pending.contains(&name) {
                        continue;
                    }
                    let value = serde_json::to_value(&object)?;
                    let readiness = if is_ready(&value) {
                        pending.remove(&name);
                        None
                    } else {
                        Some(readiness_message(Some(&value)))
                    };
                    latest
                        .lock()
                        .expect("poisoned")
                        .insert((scope.clone(), name), readiness);
                }
            }
            anyhow::Ok(())
        }
    });
    let all = futures::future::try_join_all(watches);
    match tokio::time::timeout(timeout, all).await {
        Ok(result) => {
            result.with_context(|| format!("watching {}", resource.qualified()))?;
        }
        Err(_) => tracing::info!(kind = %resource.api.kind, "timed out waiting for Ready"),
    }
    let latest = latest.lock().expect("poisoned");
    let mut not_ready = Vec::new();
    for (namespace, name) in names {
        let scope = if resource.namespaced { namespace.clone() } else { None };
        let message = match latest.get(&(scope, name.clone())) {
            Some(None) => continue,
            Some(Some(why)) => why.clone(),
            None => readiness_message(None),
        };
        not_ready.push(NotReady {
            object: resource.describe(namespace.as_deref(), name),
            message,
        });
    }
    Ok(not_ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_needs_current_generation() {
        let ready = json!({"metadata": {"generation": 2},
            "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}});
        assert!(is_ready(&ready));
        let stale = json!({"metadata": {"generation": 3},
            "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}});
        assert!(!is_ready(&stale));
        let no_generation = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(is_ready(&no_generation));
        let not = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "DoesNotExist", "message": "gone"}]}});
        assert!(!is_ready(&not));
        assert_eq!(readiness_message(Some(&not)), "Ready=False DoesNotExist: gone");
        assert_eq!(readiness_message(None), "not seen");
    }

    /// The barrier against a real API server: it passes once its watch has delivered the Secret at the
    /// resourceVersion the write returned, and it does not pass for a version the watch never delivers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn barrier_waits_for_the_watch() {
        use cmarchive_e2e::local::LocalCluster;
        use cmarchive_e2e::provider::{Cluster as _, ClusterSpec};
        use kube::api::PostParams;
        let cluster = LocalCluster::start(&ClusterSpec::named("barrier"))
            .await
            .expect("local cluster");
        let client = cluster.client();
        let namespaces = BTreeSet::from(["default".to_owned()]);
        let barrier = SecretBarrier::open(&client, &namespaces).await.expect("watch");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        let mut secret = Secret::default();
        secret.metadata.name = Some("barrier-probe".into());
        let created = secrets.create(&PostParams::default(), &secret).await.expect("create");
        let rv: u64 = created
            .metadata
            .resource_version
            .expect("rv")
            .parse()
            .expect("numeric rv");
        let expected = [("default".to_owned(), "barrier-probe".to_owned(), rv)];
        barrier
            .wait(&expected, Duration::from_secs(60))
            .await
            .expect("barrier passes");

        let barrier = SecretBarrier::open(&client, &namespaces).await.expect("watch");
        let never = [("default".to_owned(), "barrier-probe".to_owned(), rv + 1_000_000)];
        let error = barrier
            .wait(&never, Duration::from_secs(2))
            .await
            .expect_err("must not pass");
        assert!(error.to_string().contains("has not seen 1 restored Secret"), "{error}");
    }
}
