//! The reader fuzz harness, shared by the cargo-fuzz target (`fuzz_targets/read_archive.rs`, nightly) and the
//! bounded smoke test that runs on stable (`crates/archive/tests/reader_fuzz_smoke.rs`).
//!
//! Random bytes almost never get past age's authentication, so most inputs are *sealed* here first, with a fixed
//! test key: the first byte picks whether the rest is the raw file, a plaintext tar (compressed and encrypted
//! here) or a zstd stream (encrypted here). That way the fuzzer reaches the zstd, tar, path and manifest checks.
//! The property: `read_archive` never panics, and whatever it accepts is self-consistent.

use cmarchive_archive::{Identities, Interaction, ReadLimits, read_archive};
use std::io::Write;

/// Throwaway key made for this harness only.
pub const TEST_IDENTITY: &str = "AGE-SECRET-KEY-1EN3EWQRCH5HKW5DRJ2XTK33U2LN0UGQRMEYWCWGVTUCK8ANC3G8QNCWT8W";
/// Its public key.
pub const TEST_RECIPIENT: &str = "age1p0nj6yxm92dwwp0sffsmrkv8ynqfawnww3wdrzfpeglxc360jvlskyj48q";

/// Runs one input through the reader.
pub fn fuzz_one(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let input = match mode % 3 {
        0 => rest.to_vec(),
        1 => seal(&zstd::encode_all(rest, 1).expect("compressing in memory")),
        _ => seal(rest),
    };
    let mut identities = Identities::new(Interaction::none());
    identities.add_key(TEST_IDENTITY).expect("the test key parses");
    let limits = ReadLimits {
        max_decompressed: 16 << 20,
        max_entries: 10_000,
    };
    if let Ok(archive) = read_archive(input.as_slice(), &identities, &limits) {
        let listed: usize = archive.manifest.phases.iter().map(|p| p.entries.len()).sum();
        assert_eq!(listed, archive.objects.len());
        for object in &archive.objects {
            assert_eq!(
                cmarchive_archive::object::ObjectKey::of(&object.object().expect("verified objects parse")).as_ref(),
                Some(&object.entry.key)
            );
        }
        let stored = serde_json::from_slice::<serde_json::Value>(&archive.manifest_json).expect("manifest is JSON");
        assert_eq!(stored["format"], "cmarchive");
    }
}

/// Encrypts `plaintext` to the test key, as the writer's outer layer does.
pub fn seal(plaintext: &[u8]) -> Vec<u8> {
    let recipient: age::x25519::Recipient = TEST_RECIPIENT.parse().expect("the test recipient parses");
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    let mut writer = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .expect("one recipient")
        .wrap_output(&mut out)
        .expect("writing to memory");
    writer.write_all(plaintext).expect("writing to memory");
    writer.finish().expect("writing to memory");
    out
}

/// The plaintext tar of a small valid archive: the seed the mutations start from.
pub fn valid_tar() -> Vec<u8> {
    use cmarchive_archive::manifest::{PhaseName, Source};
    use cmarchive_archive::plan::{Plan, PlannedObject, PlannedPhase};
    use serde_json::json;
    let object = |object: serde_json::Value| {
        PlannedObject::new(&object, vec!["seed".into()]).expect("the seed objects have identities")
    };
    let plan = Plan {
        phases: vec![
            PlannedPhase {
                name: PhaseName::Secrets,
                objects: vec![object(json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "web-tls", "namespace": "prod"}, "data": {"tls.crt": "YQ=="}}))],
            },
            PlannedPhase {
                name: PhaseName::Certificates,
                objects: vec![object(
                    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "metadata": {"name": "web", "namespace": "prod"}, "spec": {"secretName": "web-tls"}}),
                )],
            },
        ],
        ..Plan::default()
    };
    let mut recipients = cmarchive_archive::Recipients::new(Interaction::none());
    recipients.add(TEST_RECIPIENT).expect("the test recipient parses");
    let meta = cmarchive_archive::ManifestMeta {
        tool_version: "seed".into(),
        created: jiff::Timestamp::UNIX_EPOCH,
        source: Source {
            kind: "file".into(),
            cluster_resource_namespace: "cert-manager".into(),
            ..Source::default()
        },
        options: Default::default(),
    };
    let mut sealed = Vec::new();
    cmarchive_archive::write_archive(&mut sealed, &recipients, &Default::default(), meta, &plan).expect("seed writes");
    let identity: age::x25519::Identity = TEST_IDENTITY.parse().expect("the test key parses");
    let compressed = age::decrypt(&identity, &sealed).expect("seed decrypts");
    zstd::decode_all(compressed.as_slice()).expect("seed decompresses")
}
