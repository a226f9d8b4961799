//! The assertion at the heart of cmarchive: a restore reissued nothing.
//!
//! Before: a [`Snapshot`] of the source — for every Certificate, its Secret's bytes and the leaf's serial and
//! fingerprint. After: the same snapshot of the target, taken only once cert-manager has demonstrably looked at
//! every restored Certificate ([`wait_settled`] watches conditions, then [`barrier`] proves the controller has
//! worked past them). [`compare`] lists the evidence of reissuance per Certificate: a different leaf, changed
//! Secret bytes, CertificateRequests, an `Issuing` condition, a `status.revision` set by an issuance. The same
//! evidence, awaited with [`wait_reissued`], is what every negative control must produce.
//!
//! This is an independent test oracle on purpose: it does not use `cmarchive_archive::certmanager::evidence`,
//! which decides the same question inside `cmarchive verify`. Sharing that code would let a bug in it pass its own
//! test; keep the two apart even where they look alike.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::fixtures;
use crate::scenarios::objects::{self, condition, condition_true_and_current, kinds};

/// Namespace and name of a Certificate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CertificateId {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl CertificateId {
    /// `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> CertificateId {
        CertificateId {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn of(obj: &Value) -> CertificateId {
        CertificateId::new(
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
            obj["metadata"]["name"].as_str().unwrap_or_default(),
        )
    }
}

impl std::fmt::Display for CertificateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What identifies a leaf certificate: serial, SHA-256 of the DER, end of validity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeafIdentity {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER encoding, lowercase hex.
    pub sha256: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
}

/// The identity of the first certificate of a PEM chain (`tls.crt` holds the leaf first).
pub fn leaf_identity(pem_chain: &[u8]) -> Result<LeafIdentity> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_chain).context("tls.crt is not PEM")?;
    let cert = pem.parse_x509().context("tls.crt is not an X.509 certificate")?;
    let not_after = jiff::Timestamp::from_second(cert.validity().not_after.timestamp())?.to_string();
    Ok(LeafIdentity {
        serial: hex::encode(cert.raw_serial()),
        sha256: hex::encode(Sha256::digest(&pem.contents)),
        not_after,
    })
}

/// Data keys whose bytes legitimately change without reissuance: cert-manager re-encodes JKS and PKCS#12
/// keystores (fresh random salt) whenever it re-applies a Secret it did not write itself, as after any restore.
pub const REENCODED_KEYS: &[&str] = &["keystore.jks", "truststore.jks", "keystore.p12", "truststore.p12"];

/// A Secret as far as reissuance is concerned.
#[derive(Clone, Debug, Serialize)]
pub struct SecretState {
    /// Every data key with its decoded bytes.
    pub data: BTreeMap<String, Vec<u8>>,
    /// The leaf in `tls.crt`, when it parses.
    pub leaf: Option<LeafIdentity>,
    /// UIDs the Secret's owner references point at.
    pub owner_uids: Vec<String>,
}

impl SecretState {
    fn of(secret: &Value) -> SecretState {
        let data: BTreeMap<String, Vec<u8>> = secret["data"]
            .as_object()
            .map(|m| {
                m.keys()
                    .filter_map(|k| Some((k.clone(), fixtures::secret_data(secret, k)?)))
                    .collect()
            })
            .unwrap_or_default();
        let leaf = data.get("tls.crt").and_then(|pem| leaf_identity(pem).ok());
        let owner_uids = secret["metadata"]["ownerReferences"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["uid"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        SecretState { data, leaf, owner_uids }
    }
}

/// One Certificate and everything that tells whether it was (re)issued.
#[derive(Clone, Debug, Serialize)]
pub struct CertificateState {
    /// The Certificate's UID in its cluster.
    pub uid: String,
    /// `spec.secretName`.
    pub secret_name: String,
    /// `Ready=True` for the current generation.
    pub ready: bool,
    /// Reason of an `Issuing=True` condition.
    pub issuing: Option<String>,
    /// `status.revision`: set only by an issuance in this cluster (a restore never carries status over).
    pub revision: Option<i64>,
    /// Kinds of the Certificate's owners (`Ingress` for ingress-shim).
    pub owner_kinds: Vec<String>,
    /// The Secret, when it exists.
    pub secret: Option<SecretState>,
    /// CertificateRequests for this Certificate (by their `cert-manager.io/certificate-name` annotation), `name uid`.
    pub requests: BTreeSet<String>,
}

/// Every Certificate of some namespaces, at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// Certificates by id.
    pub certificates: BTreeMap<CertificateId, CertificateState>,
}

/// Reads every Certificate of `namespaces`, its Secret and its CertificateRequests.
pub async fn snapshot(client: &kube::Client, namespaces: &[String]) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    for ns in namespaces {
        let requests = objects::list(client, kinds::CERTIFICATE_REQUEST, Some(ns)).await?;
        let mut by_cert: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for cr in &requests {
            if let Some(crt) = cr["metadata"]["annotations"]["cert-manager.io/certificate-name"].as_str() {
                by_cert.entry(crt.to_owned()).or_default().insert(format!(
                    "{} {}",
                    cr["metadata"]["name"].as_str().unwrap_or_default(),
                    cr["metadata"]["uid"].as_str().unwrap_or_default()
                ));
            }
        }
        for crt in objects::list(client, kinds::CERTIFICATE, Some(ns)).await? {
            let id = CertificateId::of(&crt);
            let secret_name = crt["spec"]["secretName"].as_str().unwrap_or_default().to_owned();
            let secret = objects::get(client, kinds::SECRET, Some(ns), &secret_name).await?;
            let state = certificate_state(&crt, secret.as_ref(), by_cert.remove(&id.name).unwrap_or_default());
            snap.certificates.insert(id, state);
        }
    }
    Ok(snap)
}

fn certificate_state(crt: &Value, secret: Option<&Value>, requests: BTreeSet<String>) -> CertificateState {
    let issuing = condition(crt, "Issuing")
        .filter(|c| c["status"] == "True")
        .map(|c| c["reason"].as_str().unwrap_or("Issuing").to_owned());
    CertificateState {
        uid: crt["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
        secret_name: crt["spec"]["secretName"].as_str().unwrap_or_default().to_owned(),
        ready: condition_true_and_current(crt, "Ready"),
        issuing,
        revision: crt["status"]["revision"].as_i64(),
        owner_kinds: crt["metadata"]["ownerReferences"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["kind"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        secret: secret.map(SecretState::of),
        requests,
    }
}

/// One sign that a Certificate was (or is being) issued in the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// The Certificate is not in the target at all.
    CertificateMissing,
    /// Its Secret is not in the target.
    SecretMissing,
    /// The leaf certificate is a different one.
    LeafChanged {
        /// Serial before.
        before: String,
        /// Serial after.
        after: String,
    },
    /// A data key's bytes differ or the key is gone (keystores excepted, see [`REENCODED_KEYS`]).
    DataChanged {
        /// The key.
        key: String,
    },
    /// CertificateRequests that did not exist before.
    NewRequests {
        /// `name uid` of each.
        requests: Vec<String>,
    },
    /// `Issuing=True`, with cert-manager's reason (`DoesNotExist`, `IncorrectIssuer`, `Renewing`, …).
    Issuing {
        /// The condition's reason.
        reason: String,
    },
    /// `status.revision` moved: an issuance completed.
    Revision {
        /// The new revision.
        revision: i64,
    },
}

/// Where the "after" snapshot was taken, which decides how `status.revision` and requests compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// After = another cluster restored from before: any revision and any request there is new.
    OtherCluster,
    /// After = the same cluster later: only a higher revision and requests not seen before count.
    SameCluster,
}

/// Evidence of reissuance, per Certificate of `before` (empty = not reissued).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparison {
    /// Evidence by Certificate; every Certificate of `before` has an entry.
    pub certificates: BTreeMap<CertificateId, Vec<Evidence>>,
}

impl Comparison {
    /// Certificates with any evidence of reissuance.
    pub fn reissued(&self) -> BTreeSet<CertificateId> {
        self.certificates
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Certificates reissued although not in `expected`.
    pub fn unexpected(&self, expected: &BTreeSet<CertificateId>) -> BTreeSet<CertificateId> {
        self.reissued().difference(expected).cloned().collect()
    }

    /// A line per reissued Certificate, for failure messages.
    pub fn describe(&self) -> String {
        self.certificates
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(id, e)| format!("{id}: {}", serde_json::to_string(e).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Compares every Certificate of `before` with the same one in `after`.
pub fn compare(before: &Snapshot, after: &Snapshot, baseline: Baseline) -> Comparison {
    let mut out = Comparison::default();
    for (id, b) in &before.certificates {
        let mut evidence = Vec::new();
        match after.certificates.get(id) {
            None => evidence.push(Evidence::CertificateMissing),
            Some(a) => {
                compare_secrets(b.secret.as_ref(), a.secret.as_ref(), &mut evidence);
                let new: Vec<String> = match baseline {
                    Baseline::OtherCluster => a.requests.iter().cloned().collect(),
                    Baseline::SameCluster => a.requests.difference(&b.requests).cloned().collect(),
                };
                if !new.is_empty() {
                    evidence.push(Evidence::NewRequests { requests: new });
                }
                if let Some(reason) = &a.issuing {
                    evidence.push(Evidence::Issuing { reason: reason.clone() });
                }
                let moved = match baseline {
                    Baseline::OtherCluster => a.revision,
                    Baseline::SameCluster => a.revision.filter(|r| Some(*r) > b.revision),
                };
                if let Some(revision) = moved {
                    evidence.push(Evidence::Revision { revision });
                }
            }
        }
        out.certificates.insert(id.clone(), evidence);
    }
    out
}

fn compare_secrets(before: Option<&SecretState>, after: Option<&SecretState>, evidence: &mut Vec<Evidence>) {
    let (Some(b), Some(a)) = (before, after) else {
        if before.is_some() {
            evidence.push(Evidence::SecretMissing);
        }
        return;
    };
    if let (Some(lb), Some(la)) = (&b.leaf, &a.leaf)
        && lb.sha256 != la.sha256
    {
        evidence.push(Evidence::LeafChanged {
            before: lb.serial.clone(),
            after: la.serial.clone(),
        });
    }
    for (key, bytes) in &b.data {
        if REENCODED_KEYS.contains(&key.as_str()) {
            continue;
        }
        if a.data.get(key) != Some(bytes) {
            evidence.push(Evidence::DataChanged { key: key.clone() });
        }
    }
}

/// Waits until every Certificate in `ids` exists, is `Ready` for its current generation and has no `Issuing`
/// condition; those in `reissue_expected` must in addition carry a `status.revision` (their reissuance done).
pub async fn wait_settled(
    client: &kube::Client,
    ids: &BTreeSet<CertificateId>,
    reissue_expected: &BTreeSet<CertificateId>,
    timeout: Duration,
) -> Result<()> {
    let mut pending = String::new();
    let result = objects::watch_until(client, kinds::CERTIFICATE, timeout, "certificates settle", |_, all| {
        let waiting: Vec<String> = ids
            .iter()
            .filter(|id| {
                let Some(crt) = all.get(&(id.namespace.clone(), id.name.clone())) else {
                    return true;
                };
                let issuing = condition(crt, "Issuing").is_some_and(|c| c["status"] == "True");
                let reissued = crt["status"]["revision"].as_i64().is_some();
                !condition_true_and_current(crt, "Ready") || issuing || (reissue_expected.contains(id) && !reissued)
            })
            .map(|id| id.to_string())
            .collect();
        pending = waiting.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        waiting.is_empty().then_some(())
    })
    .await;
    result.with_context(|| format!("still waiting for: {pending}"))
}

/// Waits until every Certificate in `ids` shows reissuance: an `Issuing=True` condition seen on any event, or a
/// `status.revision`. Latches per Certificate, so a fast issuance that sets and clears `Issuing` between two
/// looks still counts. Returns the reason seen per Certificate.
pub async fn wait_reissued(
    client: &kube::Client,
    ids: &BTreeSet<CertificateId>,
    timeout: Duration,
) -> Result<BTreeMap<CertificateId, String>> {
    let mut seen: BTreeMap<CertificateId, String> = BTreeMap::new();
    let latch = |crt: &Value, seen: &mut BTreeMap<CertificateId, String>| {
        let id = CertificateId::of(crt);
        if !ids.contains(&id) || seen.contains_key(&id) {
            return;
        }
        if let Some(c) = condition(crt, "Issuing").filter(|c| c["status"] == "True") {
            seen.insert(id, c["reason"].as_str().unwrap_or("Issuing").to_owned());
        } else if let Some(r) = crt["status"]["revision"].as_i64() {
            seen.insert(id, format!("revision {r}"));
        }
    };
    let mut missing = String::new();
    let res = objects::watch_until(
        client,
        kinds::CERTIFICATE,
        timeout,
        "certificates are reissued",
        |changed, all| {
            match changed {
                Some(crt) => latch(crt, &mut seen),
                None => all.values().for_each(|crt| latch(crt, &mut seen)),
            }
            missing = ids
                .iter()
                .filter(|id| !seen.contains_key(*id))
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            (seen.len() == ids.len()).then(|| seen.clone())
        },
    )
    .await;
    res.with_context(|| format!("no sign of reissuance for: {missing}"))
}

/// Waits until cert-manager has made up its mind about every Certificate in `ids`: either it shows reissuance
/// (latched as in [`wait_reissued`]) or it is Ready for its current generation without `Issuing`. For restores
/// whose outcome is being measured rather than asserted (the guide's recipe).
pub async fn wait_decided(client: &kube::Client, ids: &BTreeSet<CertificateId>, timeout: Duration) -> Result<()> {
    let mut reissued: BTreeSet<CertificateId> = BTreeSet::new();
    let latch = |crt: &Value, seen: &mut BTreeSet<CertificateId>| {
        let id = CertificateId::of(crt);
        let issuing = condition(crt, "Issuing").is_some_and(|c| c["status"] == "True");
        if ids.contains(&id) && (issuing || crt["status"]["revision"].as_i64().is_some()) {
            seen.insert(id);
        }
    };
    let mut pending = String::new();
    let res = objects::watch_until(
        client,
        kinds::CERTIFICATE,
        timeout,
        "cert-manager decides",
        |changed, all| {
            match changed {
                Some(crt) => latch(crt, &mut reissued),
                None => all.values().for_each(|crt| latch(crt, &mut reissued)),
            }
            let undecided: Vec<String> = ids
                .iter()
                .filter(|id| {
                    if reissued.contains(*id) {
                        return false;
                    }
                    let Some(crt) = all.get(&(id.namespace.clone(), id.name.clone())) else {
                        return true;
                    };
                    !condition_true_and_current(crt, "Ready")
                })
                .map(|id| id.to_string())
                .collect();
            pending = undecided.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            undecided.is_empty().then_some(())
        },
    )
    .await;
    res.with_context(|| format!("undecided: {pending}"))
}

/// Namespace of the barrier Certificates, outside every scenario.
pub const BARRIER_NAMESPACE: &str = "cmarchive-e2e-barrier";

/// Proves the cert-manager controller has worked through everything queued before this call: creates a fresh
/// Certificate and waits until it is Ready. Its events enter cert-manager's work queues after those of every
/// object restored earlier, and issuing it takes several rounds through the trigger, key-manager,
/// request-manager, issuer and issuing controllers; once it is Ready, the earlier Certificates have been looked
/// at. This replaces the "sleep a bit and hope" a weaker test would use.
pub async fn barrier(client: &kube::Client, timeout: Duration) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("barrier-{}-{n}", std::process::id());
    objects::apply(client, &fixtures::namespace(BARRIER_NAMESPACE)).await?;
    objects::apply(
        client,
        &fixtures::self_signed_issuer(Some(BARRIER_NAMESPACE), "barrier"),
    )
    .await?;
    let crt = fixtures::Certificate::new(
        BARRIER_NAMESPACE,
        &name,
        fixtures::IssuerRef::issuer("barrier"),
        "barrier.cmarchive.test",
    );
    objects::apply(client, &crt.to_json()).await?;
    let id = CertificateId::new(BARRIER_NAMESPACE, &name);
    objects::watch_until(
        client,
        kinds::CERTIFICATE,
        timeout,
        "the barrier certificate is Ready",
        |_, all| {
            let crt = all.get(&(id.namespace.clone(), id.name.clone()))?;
            condition_true_and_current(crt, "Ready").then_some(())
        },
    )
    .await?;
    objects::delete(client, kinds::CERTIFICATE, Some(BARRIER_NAMESPACE), &name).await?;
    Ok(())
}

/// Fails unless exactly `expected` were reissued among the Certificates of `before`.
pub fn assert_reissued_exactly(cmp: &Comparison, expected: &BTreeSet<CertificateId>) -> Result<()> {
    let unexpected = cmp.unexpected(expected);
    let missing: BTreeSet<_> = expected.difference(&cmp.reissued()).cloned().collect();
    if !unexpected.is_empty() {
        bail!("reissued although they should not be:\n{}", cmp.describe());
    }
    if !missing.is_empty() {
        bail!(
            "expected to be reissued but unchanged: {}",
            missing.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{Ca, Certificate, IssuerRef, LeafSpec};
    use serde_json::json;

    fn state(secret: Option<&Value>) -> CertificateState {
        let crt = json!({"metadata": {"name": "web", "namespace": "a", "uid": "u1", "generation": 1},
            "spec": {"secretName": "web-tls"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]}});
        certificate_state(&crt, secret, BTreeSet::new())
    }

    fn fixture() -> (Ca, Certificate, Value) {
        let ca = Ca::new("t").unwrap();
        let crt = Certificate::new("a", "web", IssuerRef::issuer("ca"), "web.example.com");
        let leaf = ca
            .issue(&LeafSpec::valid_for(
                &["web.example.com"],
                jiff::SignedDuration::from_hours(100),
            ))
            .unwrap();
        let secret = crt.issued_secret(&ca, &leaf);
        (ca, crt, secret)
    }

    fn snap(s: CertificateState) -> Snapshot {
        Snapshot {
            certificates: [(CertificateId::new("a", "web"), s)].into(),
        }
    }

    #[test]
    fn identical_snapshots_show_nothing() {
        let (_, _, secret) = fixture();
        let before = snap(state(Some(&secret)));
        let cmp = compare(&before, &before.clone(), Baseline::OtherCluster);
        assert!(cmp.reissued().is_empty(), "{}", cmp.describe());
    }

    #[test]
    fn a_new_leaf_is_caught() {
        let (ca, crt, secret) = fixture();
        let leaf = ca
            .issue(&LeafSpec::valid_for(
                &["web.example.com"],
                jiff::SignedDuration::from_hours(100),
            ))
            .unwrap();
        let other = crt.issued_secret(&ca, &leaf);
        let cmp = compare(
            &snap(state(Some(&secret))),
            &snap(state(Some(&other))),
            Baseline::OtherCluster,
        );
        let ev = &cmp.certificates[&CertificateId::new("a", "web")];
        assert!(matches!(ev[0], Evidence::LeafChanged { .. }), "{ev:?}");
        assert!(ev.contains(&Evidence::DataChanged { key: "tls.key".into() }));
    }

    #[test]
    fn missing_secret_requests_issuing_and_revision_are_caught() {
        let (_, _, secret) = fixture();
        let before = snap(state(Some(&secret)));
        let mut after = state(None);
        after.requests.insert("web-1 abc".into());
        after.issuing = Some("DoesNotExist".into());
        after.revision = Some(1);
        let cmp = compare(&before, &snap(after), Baseline::OtherCluster);
        let ev = &cmp.certificates[&CertificateId::new("a", "web")];
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert_eq!(ev[0], Evidence::SecretMissing);
    }

    #[test]
    fn keystores_may_be_reencoded_but_other_keys_may_not_change() {
        let (_, _, mut secret) = fixture();
        secret["data"]["keystore.p12"] = json!("AAAA");
        let before = snap(state(Some(&secret)));
        secret["data"]["keystore.p12"] = json!("BBBB");
        assert!(
            compare(&before, &snap(state(Some(&secret))), Baseline::OtherCluster)
                .reissued()
                .is_empty()
        );
        secret["data"]["ca.crt"] = json!("Q0hBTkdFRA==");
        let cmp = compare(&before, &snap(state(Some(&secret))), Baseline::OtherCluster);
        assert_eq!(
            cmp.certificates[&CertificateId::new("a", "web")],
            vec![Evidence::DataChanged { key: "ca.crt".into() }]
        );
    }

    #[test]
    fn same_cluster_baseline_ignores_old_requests_and_revision() {
        let (_, _, secret) = fixture();
        let mut b = state(Some(&secret));
        b.requests.insert("web-1 u".into());
        b.revision = Some(1);
        let cmp = compare(&snap(b.clone()), &snap(b.clone()), Baseline::SameCluster);
        assert!(cmp.reissued().is_empty());
        let cmp = compare(&snap(b.clone()), &snap(b), Baseline::OtherCluster);
        assert_eq!(cmp.reissued().len(), 1);
    }

    #[test]
    fn expectations_cut_both_ways() {
        let mut cmp = Comparison::default();
        let a = CertificateId::new("n", "a");
        let b = CertificateId::new("n", "b");
        cmp.certificates.insert(a.clone(), vec![Evidence::SecretMissing]);
        cmp.certificates.insert(b.clone(), vec![]);
        assert!(assert_reissued_exactly(&cmp, &[a.clone()].into()).is_ok());
        assert!(assert_reissued_exactly(&cmp, &BTreeSet::new()).is_err());
        assert!(assert_reissued_exactly(&cmp, &[a, b].into()).is_err());
    }

    #[test]
    fn leaf_identity_reads_the_first_certificate() {
        let (ca, _, secret) = fixture();
        let chain = [
            fixtures::secret_data(&secret, "tls.crt").unwrap(),
            ca.cert_pem.clone().into_bytes(),
        ]
        .concat();
        let id = leaf_identity(&chain).unwrap();
        let leaf_only = leaf_identity(&fixtures::secret_data(&secret, "tls.crt").unwrap()).unwrap();
        assert_eq!(id, leaf_only);
        assert_ne!(id, leaf_identity(ca.cert_pem.as_bytes()).unwrap());
        assert_eq!(id.sha256.len(), 64);
    }
}
