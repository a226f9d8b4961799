//! Lossless object access: requests go out through kube's request builders, answers come back as plain JSON.
//! kube's `DynamicObject` types `metadata`, so anything it does not model would be lost; a backup must keep every
//! field a newer cert-manager or Kubernetes adds.

use crate::cluster::error::{ClusterError, api_message, is_code};
use crate::cluster::retry;
use anyhow::{Context as _, Result};
use cmarchive_archive::certmanager::kinds::{self, ApiKind};
use kube::api::{ApiResource, GetParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde_json::Value;

/// The field manager of every cmarchive write, so `kubectl get --show-managed-fields` says who set a field.
pub const FIELD_MANAGER: &str = "cmarchive";

/// Page size of LISTs: small enough to keep the API server's memory in check, big enough to be few requests.
pub const PAGE_SIZE: u32 = 250;

/// One resource type, resolved by discovery (or known ahead, for core types).
#[derive(Clone, Debug)]
pub struct Resource {
    /// Group, version, kind and plural.
    pub api: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl Resource {
    /// A resource known without discovery.
    pub fn known(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Resource {
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Resource {
            api: ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version,
                kind: kind.to_owned(),
                plural: plural.to_owned(),
            },
            namespaced,
        }
    }

    /// A resource from cmarchive's table of the kinds it knows ahead of discovery.
    pub fn of(kind: &ApiKind) -> Resource {
        Resource::known(kind.group(), kind.version(), kind.kind, kind.plural, kind.namespaced)
    }

    /// Core Secrets.
    pub fn secrets() -> Resource {
        Resource::of(&kinds::SECRET)
    }

    /// Core Namespaces.
    pub fn namespaces() -> Resource {
        Resource::of(&kinds::NAMESPACE)
    }

    /// CustomResourceDefinitions.
    pub fn crds() -> Resource {
        Resource::of(&kinds::CUSTOM_RESOURCE_DEFINITION)
    }

    /// Core ServiceAccounts.
    pub fn service_accounts() -> Resource {
        Resource::of(&kinds::SERVICE_ACCOUNT)
    }

    /// RBAC Roles.
    pub fn roles() -> Resource {
        Resource::of(&kinds::ROLE)
    }

    /// RBAC RoleBindings.
    pub fn role_bindings() -> Resource {
        Resource::of(&kinds::ROLE_BINDING)
    }

    /// apps/v1 Deployments.
    pub fn deployments() -> Resource {
        Resource::of(&kinds::DEPLOYMENT)
    }

    /// `plural.group`, the way RBAC and error messages name a resource.
    pub fn qualified(&self) -> String {
        if self.api.group.is_empty() {
            self.api.plural.clone()
        } else {
            format!("{}.{}", self.api.plural, self.api.group)
        }
    }

    /// URL path of the collection, in `namespace` when the resource is namespaced and one is given.
    pub fn url(&self, namespace: Option<&str>) -> String {
        let mut url = if self.api.group.is_empty() {
            format!("/api/{}", self.api.version)
        } else {
            format!("/apis/{}/{}", self.api.group, self.api.version)
        };
        if let (true, Some(ns)) = (self.namespaced, namespace) {
            url.push_str("/namespaces/");
            url.push_str(ns);
        }
        url.push('/');
        url.push_str(&self.api.plural);
        url
    }

    fn request(&self, namespace: Option<&str>) -> Request {
        Request::new(self.url(namespace))
    }

    /// `Kind ns/name` for messages.
    pub fn describe(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{} {ns}/{name}", self.api.kind),
            _ => format!("{} {name}", self.api.kind),
        }
    }

    fn forbidden(&self, verb: &str, namespace: Option<&str>, what: String, error: &kube::Error) -> ClusterError {
        let scope = match namespace {
            Some(ns) if self.namespaced => format!(" in namespace {ns}"),
            _ if self.namespaced => " in all namespaces".to_owned(),
            _ => String::new(),
        };
        ClusterError::Forbidden {
            verb: verb.to_owned(),
            what,
            resource: self.qualified(),
            scope,
            message: api_message(error),
        }
    }

    /// GET one object by name; `None` when it does not exist. A 403 becomes [`ClusterError::Forbidden`].
    pub async fn get(
        &self,
        client: &kube::Client,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        let answer = retry::transient(&self.describe(namespace, name), || async {
            let request = self
                .request(namespace)
                .get(name, &GetParams::default())
                .map_err(kube::Error::BuildRequest)?;
            client.request::<Value>(request).await
        })
        .await;
        match answer {
            Ok(mut object) => {
                self.fill_type(&mut object);
                Ok(Some(object))
            }
            Err(e) if is_code(&e, 404) => Ok(None),
            Err(e) if is_code(&e, 403) => Err(self.forbidden("get", namespace, self.describe(namespace, name), &e)),
            Err(e) => Err(ClusterError::Other(
                anyhow::Error::new(e).context(format!("cannot get {}", self.describe(namespace, name))),
            )),
        }
    }

    /// LIST all objects, page by page (`limit`/`continue`), with `apiVersion`/`kind` filled in on every item
    /// (list items omit them).
    pub async fn list(
        &self,
        client: &kube::Client,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut continue_token: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(PAGE_SIZE);
            if let Some(selector) = label_selector {
                params = params.labels(selector);
            }
            if let Some(token) = &continue_token {
                params = params.continue_token(token);
            }
            let answer = retry::transient(&self.qualified(), || async {
                let request = self
                    .request(namespace)
                    .list(&params)
                    .map_err(kube::Error::BuildRequest)?;
                client.request::<Value>(request).await
            })
            .await;
            let page = match answer {
                Ok(page) => page,
                Err(e) if is_code(&e, 403) => {
                    let what = match namespace {
                        Some(ns) => format!("{} in namespace {ns}", self.qualified()),
                        None => self.qualified(),
                    };
                    return Err(self.forbidden("list", namespace, what, &e).into());
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot list {}", self.qualified()));
                }
            };
            let Value::Object(mut page) = page else {
                anyhow::bail!("listing {} returned something that is not a list", self.qualified());
            };
            if let Some(Value::Array(page_items)) = page.remove("items") {
                for mut item in page_items {
                    self.fill_type(&mut item);
                    items.push(item);
                }
            }
            continue_token = page
                .get("metadata")
                .and_then(|m| m.get("continue"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if continue_token.is_none() {
                return Ok(items);
            }
        }
    }

    /// Server-side apply of one object; returns the object as the server stored (or, with `dry_run`, would store) it
    /// and whether that created it, which spares a GET per object to find out. Transient errors are retried: the
    /// same apply sent twice stores the same object.
    pub async fn apply(
        &self,
        client: &kube::Client,
        object: &Value,
        dry_run: bool,
        force: bool,
    ) -> std::result::Result<Stored, kube::Error> {
        retry::transient(&describe_object(object), || {
            self.apply_once(client, object, dry_run, force)
        })
        .await
    }

    async fn apply_once(
        &self,
        client: &kube::Client,
        object: &Value,
        dry_run: bool,
        force: bool,
    ) -> std::result::Result<Stored, kube::Error> {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.dry_run = dry_run;
        params.force = force;
        let request = self
            .request(namespace)
            .patch(name, &params, &Patch::Apply(object))
            .map_err(kube::Error::BuildRequest)?;
        let response = client.send(request.map(kube::client::Body::from)).await?;
        let status = response.status();
        let body = response.into_body().collect_bytes().await?;
        if status.is_client_error() || status.is_server_error() {
            let error = serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
                kube::core::Status::failure(String::from_utf8_lossy(&body).trim(), "").with_code(status.as_u16())
            });
            return Err(kube::Error::Api(error.boxed()));
        }
        let mut stored: Value = serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
        self.fill_type(&mut stored);
        // An apply that creates answers 201; one that patches an existing object 200 (dry run alike).
        Ok(Stored {
            created: status == http::StatusCode::CREATED,
            object: stored,
        })
    }

    /// Creates one object (POST), owned by cmarchive's field manager. The API server spends a fraction of a
    /// server-side apply's CPU on a create, and a restore into a fresh cluster creates nearly everything;
    /// objects that exist go through [`Resource::apply`] instead.
    pub async fn create(
        &self,
        client: &kube::Client,
        object: &Value,
        dry_run: bool,
    ) -> std::result::Result<Value, kube::Error> {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
        let params = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
        // A create whose answer was lost is sent again and meets 409, which the caller turns into an apply.
        let mut stored = retry::transient(&describe_object(object), || async {
            let request = self
                .request(namespace)
                .create(&params, body.clone())
                .map_err(kube::Error::BuildRequest)?;
            client.request::<Value>(request).await
        })
        .await?;
        self.fill_type(&mut stored);
        Ok(stored)
    }

    /// Sets `apiVersion` and `kind` when the server left them out, and drops `metadata.managedFields`: nothing
    /// cmarchive does reads them, no archive keeps them, and on Secrets they are a good part of what a pack of
    /// thousands holds in memory.
    pub fn fill_type(&self, object: &mut Value) {
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        if let Value::Object(map) = object {
            if !map.get("apiVersion").is_some_and(Value::is_string) {
                map.insert("apiVersion".into(), Value::String(self.api.api_version.clone()));
            }
            if !map.get("kind").is_some_and(Value::is_string) {
                map.insert("kind".into(), Value::String(self.api.kind.clone()));
            }
        }
    }
}

/// `Kind ns/name` of an object to be written, for retry logs.
fn describe_object(object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    match text("/metadata/namespace") {
        "" => format!("{} {}", text("/kind"), text("/metadata/name")),
        ns => format!("{} {ns}/{}", text("/kind"), text("/metadata/name")),
    }
}

/// The answer to a server-side apply.
pub struct Stored {
    /// The object did not exist before.
    pub created: bool,
    /// The object as stored.
    pub object: Value,
}

/// `metadata.resourceVersion` as a number; etcd revisions in practice, compared only to wait for our own writes.
pub fn resource_version(object: &Value) -> Option<u64> {
    object.pointer("/metadata/resourceVersion")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_for_core_group_and_namespaces() {
        assert_eq!(Resource::secrets().url(Some("a")), "/api/v1/namespaces/a/secrets");
        assert_eq!(Resource::secrets().url(None), "/api/v1/secrets");
        assert_eq!(Resource::namespaces().url(Some("ignored")), "/api/v1/namespaces");
        let issuers = Resource::of(&kinds::ISSUER);
        assert_eq!(issuers.url(Some("x")), "/apis/cert-manager.io/v1/namespaces/x/issuers");
        assert_eq!(issuers.qualified(), "issuers.cert-manager.io");
    }

    #[test]
    fn list_items_get_their_type_back() {
        let mut item = json!({"metadata": {"name": "a", "managedFields": [{"manager": "kubectl"}]}});
        Resource::secrets().fill_type(&mut item);
        assert_eq!(item["metadata"], json!({"name": "a"}));
        assert_eq!(item["apiVersion"], "v1");
        assert_eq!(item["kind"], "Secret");
        let mut typed = json!({"apiVersion": "x/v9", "kind": "Y"});
        Resource::secrets().fill_type(&mut typed);
        assert_eq!(typed["apiVersion"], "x/v9");
    }

    #[test]
    fn resource_versions_parse() {
        assert_eq!(
            resource_version(&json!({"metadata": {"resourceVersion": "42"}})),
            Some(42)
        );
        assert_eq!(resource_version(&json!({"metadata": {}})), None);
    }
}
