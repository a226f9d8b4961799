//! An archive that never touched a disk: a [`Plan`] turned into the [`VerifiedArchive`] a reader would have
//! returned for the archive `write_archive` makes of it. `restore --from-file` plans plain objects with the code
//! `pack` uses and restores the result through the same path as a real archive.
//!
//! The manifest comes from [`build_manifest`], so its entries, checksums and certificate facts are the ones the
//! written archive would hold; each object keeps the bytes that were hashed.

use crate::error::Result;
use crate::manifest::MANIFEST_PATH;
use crate::plan::Plan;
use crate::reader::{VerifiedArchive, VerifiedObject};
use crate::writer::{ManifestMeta, build_manifest};

/// The archive `plan` would be once written and read back, built in memory.
pub fn archive_from_plan(meta: ManifestMeta, plan: Plan) -> Result<VerifiedArchive> {
    let manifest = build_manifest(meta, &plan)?;
    let manifest_json = serde_json::to_vec(&manifest).map_err(|e| crate::error::ArchiveError::InvalidObject {
        what: MANIFEST_PATH.to_owned(),
        reason: e.to_string(),
    })?;
    let mut objects = Vec::with_capacity(plan.object_count());
    // build_manifest keeps the plan's phases and their order: entries and objects pair up one to one.
    for (phase, planned) in manifest.phases.iter().zip(plan.phases) {
        debug_assert_eq!(phase.name, planned.name);
        for (entry, object) in phase.entries.iter().zip(planned.objects) {
            objects.push(VerifiedObject {
                phase: phase.name,
                entry: entry.clone(),
                bytes: object.into_bytes(),
            });
        }
    }
    Ok(VerifiedArchive {
        manifest,
        manifest_json,
        objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certmanager::{self, Candidate, SelectOptions};
    use crate::manifest::Source;
    use serde_json::json;
    use sha2::{Digest as _, Sha256};

    #[test]
    fn entries_describe_the_bytes_they_come_with() {
        let objects = [
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                   "metadata": {"namespace": "a", "name": "selfsigned"}, "spec": {"selfSigned": {}}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                   "metadata": {"namespace": "a", "name": "web"},
                   "spec": {"secretName": "web-tls", "issuerRef": {"name": "selfsigned"}}}),
        ];
        let candidates: Vec<Candidate> = objects.iter().map(|o| Candidate::new(o.clone())).collect();
        let plan = certmanager::plan_candidates(
            candidates,
            &SelectOptions {
                cluster_resource_namespace: "cert-manager".into(),
                ..SelectOptions::default()
            },
        );
        let meta = ManifestMeta {
            tool_version: "test".into(),
            created: jiff::Timestamp::UNIX_EPOCH,
            source: Source::default(),
            options: Default::default(),
        };
        let expected = build_manifest(meta.clone(), &plan).unwrap();
        let archive = archive_from_plan(meta, plan).unwrap();
        assert_eq!(archive.manifest, expected);
        let entries: Vec<_> = expected.phases.iter().flat_map(|p| &p.entries).collect();
        assert_eq!(archive.objects.len(), entries.len());
        assert!(
            archive.objects.len() >= 3,
            "Namespace, Issuer, Certificate: {:?}",
            archive.objects
        );
        for (object, entry) in archive.objects.iter().zip(entries) {
            assert_eq!(&object.entry, entry);
            assert_eq!(hex::encode(Sha256::digest(&object.bytes)), entry.sha256);
            assert_eq!(object.object().unwrap()["metadata"]["name"], entry.key.name.as_str());
        }
        let reread: crate::manifest::Manifest = serde_json::from_slice(&archive.manifest_json).unwrap();
        assert_eq!(reread, archive.manifest);
    }
}
