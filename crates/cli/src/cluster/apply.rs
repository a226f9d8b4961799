//! Writing archived objects, a phase at a time: a create for what is missing, server-side apply for what exists.
//! Both under cmarchive's field manager; SSA makes a re-run after a failure safe: applying the same object again
//! changes nothing and creates no duplicate. Conflicts with another field manager are reported
//! and left alone unless the person asks for `--force-conflicts`.

use crate::cluster::discovery::CertManagerApis;
use crate::cluster::error::{api_message, conflict_fields, is_code};
use crate::cluster::raw::{Resource, resource_version};
use anyhow::{Context as _, Result, bail};
use cmarchive_archive::certmanager::keystores::PasswordBook;
use cmarchive_archive::certmanager::kinds;
use cmarchive_archive::certmanager::regenerated::left_to_cert_manager;
use cmarchive_archive::object::ObjectKey;
use futures::{StreamExt as _, stream};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use tokio::sync::Mutex;

/// `(apiVersion, kind, namespace, name)`: one object, as the applier remembers what it saw of it.
type ObjectId = (String, String, Option<String>, String);

/// Applies in flight within one phase: enough to keep a kube-apiserver busy (its default allows 200 mutating
/// requests in flight), few enough to leave room for the controllers restoring alongside.
pub const CONCURRENT_APPLIES: usize = 64;

/// What happened (or, in a dry run, would happen) to one object.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "result", content = "detail")]
pub enum Outcome {
    /// It did not exist.
    Created,
    /// It existed and some fields changed.
    Changed,
    /// It existed and nothing changed.
    Unchanged,
    /// It existed and was left alone on purpose (e.g. a CRD).
    Kept(String),
    /// Another field manager owns a field we set; left alone.
    Conflict(String),
    /// The API server refused.
    Failed(String),
}

impl Outcome {
    /// Whether the phase may go on.
    pub fn is_ok(&self) -> bool {
        !matches!(self, Outcome::Conflict(_) | Outcome::Failed(_))
    }

    fn word(&self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Outcome::Created, false) => "created",
            (Outcome::Created, true) => "would be created",
            (Outcome::Changed, false) => "changed",
            (Outcome::Changed, true) => "would change",
            (Outcome::Unchanged, _) => "unchanged",
            (Outcome::Kept(_), _) => "kept",
            (Outcome::Conflict(_), _) => "CONFLICT",
            (Outcome::Failed(_), _) => "FAILED",
        }
    }
}

/// One applied object.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// `Kind ns/name`.
    pub object: String,
    /// Namespace (for the barrier).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// What happened.
    pub outcome: Outcome,
    /// resourceVersion the server returned, when it wrote something.
    pub resource_version: Option<u64>,
    /// Whether this was a dry run.
    #[serde(skip)]
    pub dry_run: bool,
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<16} {}", self.outcome.word(self.dry_run), self.object)?;
        match &self.outcome {
            Outcome::Kept(why) | Outcome::Conflict(why) | Outcome::Failed(why) => {
                write!(f, ": {why}")
            }
            _ => Ok(()),
        }
    }
}

/// Applies objects, resolving each one's resource once.
pub struct Applier {
    /// The cluster written to.
    pub client: kube::Client,
    apis: CertManagerApis,
    resources: Mutex<HashMap<(String, String), Resource>>,
    /// What existed before the restore (without server bookkeeping), `None` for each object found missing.
    /// A dry run fills it; the real run compares against it instead of reading every object first.
    seen: std::sync::Mutex<HashMap<ObjectId, Option<Value>>>,
    /// Server-side dry run (`dryRun=All`): validated and admitted, never stored.
    pub dry_run: bool,
    /// Take over conflicting fields.
    pub force: bool,
    /// The passwords of the keystores cert-manager writes into TLS Secrets, to judge a conflict on one by what it
    /// holds.
    keystore_passwords: std::sync::Arc<PasswordBook>,
}

/// An object ready to restore, kept as its JSON bytes with its identity: parsed only while its request is built,
/// so a restore of tens of thousands of objects holds them at the size of the archive, not of parsed values.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Identity (what the object's own fields say).
    pub key: ObjectKey,
    /// The object's JSON.
    pub bytes: Vec<u8>,
}

impl Prepared {
    /// Serialises `object` once; `None` when it lacks an identity.
    pub fn new(object: &Value) -> Option<Prepared> {
        Some(Prepared {
            key: ObjectKey::of(object)?,
            bytes: cmarchive_archive::object::to_json_exact(object),
        })
    }

    /// The object, parsed.
    pub fn object(&self) -> Result<Value> {
        serde_json::from_slice(&self.bytes).with_context(|| format!("{} is not valid JSON", self.key))
    }
}

/// Drops the fields the server sets on every write, so "did anything change" compares what matters.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            metadata.remove(field);
        }
    }
    object
}

impl Applier {
    /// An applier for one cluster.
    pub fn new(client: kube::Client, apis: CertManagerApis, dry_run: bool, force: bool) -> Applier {
        Applier {
            client,
            apis,
            resources: Mutex::default(),
            seen: std::sync::Mutex::default(),
            dry_run,
            force,
            keystore_passwords: std::sync::Arc::default(),
        }
    }

    /// Judges conflicts on keystores with these passwords (see [`left_to_cert_manager`]).
    pub fn with_keystore_passwords(mut self, passwords: std::sync::Arc<PasswordBook>) -> Applier {
        self.keystore_passwords = passwords;
        self
    }

    /// Hands what this (dry-run) applier saw to the applier of the real run.
    pub fn carry_over_to(&self, real: &Applier) {
        let seen = self.seen.lock().expect("not poisoned").clone();
        real.seen.lock().expect("not poisoned").extend(seen);
    }

    fn remember(&self, id: &ObjectId, before: Option<Value>) {
        self.seen.lock().expect("not poisoned").insert(id.clone(), before);
    }

    /// Whether the dry run found this object missing.
    fn found_missing(&self, id: &ObjectId) -> bool {
        matches!(self.seen.lock().expect("not poisoned").get(id), Some(None))
    }

    /// Whether `stored` is what the dry run found before (false when it did not look).
    fn same_as_before(&self, id: &ObjectId, stored: &Value) -> bool {
        let seen = self.seen.lock().expect("not poisoned");
        matches!(seen.get(id), Some(Some(before)) if *before == comparable(stored))
    }

    /// The resource an object belongs to, from a known table or by discovery.
    pub async fn resource_of(&self, object: &Value) -> Result<Resource> {
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        self.resource_for(api_version, kind).await
    }

    /// The resource of `apiVersion` and `kind`, from a known table or by discovery (cached).
    pub async fn resource_for(&self, api_version: &str, kind: &str) -> Result<Resource> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(found) = self.resources.lock().await.get(&key) {
            return Ok(found.clone());
        }
        // Kinds whose shape never changes are known ahead; cert-manager's come from discovery.
        let core = [
            kinds::SECRET,
            kinds::NAMESPACE,
            kinds::SERVICE_ACCOUNT,
            kinds::ROLE,
            kinds::ROLE_BINDING,
            kinds::CUSTOM_RESOURCE_DEFINITION,
        ];
        let known = match core.iter().find(|k| k.api_version == api_version && k.kind == kind) {
            Some(k) => Some(Resource::of(k)),
            None if api_version == self.apis.issuers.api.api_version => self.apis.for_kind(kind).cloned(),
            None => None,
        };
        let resource = match known {
            Some(r) => r,
            None => {
                let list = self
                    .client
                    .list_api_group_resources(api_version)
                    .await
                    .with_context(|| format!("the cluster does not serve {api_version} (needed for {kind})"))?;
                let Some(found) = list.resources.iter().find(|r| r.kind == kind && !r.name.contains('/')) else {
                    bail!("the cluster serves {api_version} but not kind {kind}: install its CRD first");
                };
                let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
                Resource::known(group, version, kind, &found.name, found.namespaced)
            }
        };
        self.resources.lock().await.insert(key, resource.clone());
        Ok(resource)
    }

    /// Restores one object (or dry-runs it) and says what changed: created when missing, server-side applied when
    /// it exists. One request per new object; a dry run also reads an object that exists, to show what would change.
    pub async fn apply(&self, object: &Value) -> Result<Applied> {
        let resource = self.resource_of(object).await?;
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let id: ObjectId = (
            resource.api.api_version.clone(),
            resource.api.kind.clone(),
            namespace.clone(),
            name.clone(),
        );
        let mut applied = Applied {
            object: resource.describe(namespace.as_deref(), &name),
            namespace: namespace.clone(),
            name: name.clone(),
            kind: resource.api.kind.clone(),
            outcome: Outcome::Unchanged,
            resource_version: None,
            dry_run: self.dry_run,
        };
        // CRDs are only ever created: an existing CRD belongs to whoever installed cert-manager.
        if resource.api.kind == "CustomResourceDefinition" && resource.get(&self.client, None, &name).await?.is_some() {
            applied.outcome = Outcome::Kept("exists already; CRDs are only created when missing".into());
            return Ok(applied);
        }
        // What does not exist yet is created: a fraction of a server-side apply's cost to the API server, and a
        // restore into a fresh cluster creates nearly everything. What exists is server-side applied.
        if self.dry_run || self.found_missing(&id) {
            match resource.create(&self.client, object, self.dry_run).await {
                Ok(stored) => {
                    self.remember(&id, None);
                    applied.resource_version = resource_version(&stored);
                    applied.outcome = Outcome::Created;
                    return Ok(applied);
                }
                // It exists (or appeared since the dry run): apply below.
                Err(e) if is_code(&e, 409) => {}
                // A dry run cannot see the Namespaces an earlier phase would create: nothing in them exists yet.
                Err(e) if self.dry_run && is_code(&e, 404) => {
                    self.remember(&id, None);
                    applied.outcome = Outcome::Created;
                    return Ok(applied);
                }
                Err(e) => {
                    applied.outcome = Outcome::Failed(api_message(&e));
                    return Ok(applied);
                }
            }
        }
        // A Secret whose only conflicts are fields cert-manager re-encoded from the same certificate and key is
        // applied again without them (see `regenerated`); this loops at most once, as those keys are then gone.
        let mut object = std::borrow::Cow::Borrowed(object);
        loop {
            match resource.apply(&self.client, &object, self.dry_run, self.force).await {
                Ok(stored) if stored.created => {
                    self.remember(&id, None);
                    applied.resource_version = resource_version(&stored.object);
                    applied.outcome = Outcome::Created;
                }
                Ok(stored) => {
                    applied.resource_version = resource_version(&stored.object);
                    applied.outcome = if self.dry_run {
                        // A dry run bumps nothing, so compare with what is stored now.
                        let before = resource.get(&self.client, namespace.as_deref(), &name).await?;
                        let before = before.as_ref().map(comparable);
                        let unchanged = before.as_ref() == Some(&comparable(&stored.object));
                        self.remember(&id, before);
                        if unchanged {
                            Outcome::Unchanged
                        } else {
                            Outcome::Changed
                        }
                    } else {
                        // Taking over field ownership is not a change a person cares about; content is.
                        if self.same_as_before(&id, &stored.object) {
                            Outcome::Unchanged
                        } else {
                            Outcome::Changed
                        }
                    };
                }
                Err(e) if is_code(&e, 409) => {
                    if resource.api.kind == "Secret"
                        && let Some(stored) = resource.get(&self.client, namespace.as_deref(), &name).await?
                        && let Some(keys) = left_to_cert_manager(
                            &conflict_fields(&e),
                            &object,
                            &stored,
                            self.keystore_passwords
                                .of(namespace.as_deref().unwrap_or_default(), &name),
                        )
                    {
                        tracing::info!(object = %applied.object, ?keys, "left to cert-manager: re-encoded from the same certificate and key");
                        let mut reduced = object.into_owned();
                        if let Some(data) = reduced.get_mut("data").and_then(Value::as_object_mut) {
                            for key in &keys {
                                data.remove(key);
                            }
                        }
                        object = std::borrow::Cow::Owned(reduced);
                        continue;
                    }
                    applied.outcome = Outcome::Conflict(format!(
                        "{} (rerun with --force-conflicts to take over)",
                        api_message(&e)
                    ));
                }
                Err(e) => applied.outcome = Outcome::Failed(api_message(&e)),
            }
            break;
        }
        Ok(applied)
    }

    /// Applies the objects of one phase, [`CONCURRENT_APPLIES`] at a time (each parsed only while in flight);
    /// results in input order.
    pub async fn apply_all(&self, objects: &[Prepared], progress: &(dyn Fn(&Applied) + Sync)) -> Result<Vec<Applied>> {
        let results: Vec<Result<Applied>> = stream::iter(objects.iter())
            .map(|prepared| async move {
                let object = prepared.object()?;
                let applied = self.apply(&object).await;
                if let Ok(applied) = &applied {
                    progress(applied);
                }
                applied
            })
            .buffered(CONCURRENT_APPLIES)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_bookkeeping_is_not_a_change() {
        let before =
            json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]}, "data": {"k": "v"}});
        let after =
            json!({"metadata": {"name": "a", "resourceVersion": "2", "managedFields": [2]}, "data": {"k": "v"}});
        assert_eq!(comparable(&before), comparable(&after));
        let changed = json!({"metadata": {"name": "a"}, "data": {"k": "w"}});
        assert_ne!(comparable(&before), comparable(&changed));
    }

    #[test]
    fn outcome_words() {
        assert_eq!(Outcome::Created.word(true), "would be created");
        assert!(!Outcome::Conflict(String::new()).is_ok());
        assert!(Outcome::Kept(String::new()).is_ok());
    }
}
