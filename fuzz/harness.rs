//! The reader fuzz harness, shared by the cargo-fuzz target (`fuzz_targets/read_archive.rs`, nightly) and the
//! bounded smoke test that runs on stable (`crates/archive/tests/reader_fuzz_smoke.rs`).
//!
//! Random bytes almost never get past age's authentication, so most inputs are *sealed* here first, with a fixed
//! test key: the first byte picks whether the rest is the raw file, a plaintext tar (compressed and encrypted
//! here) or a zstd stream (encrypted here). That way the fuzzer reaches the zstd, tar, path and manifest checks.
//! The property: `read_archive` never panics, and whatever it accepts is self-consistent. [`fuzz_unpack_dir`]
//! covers `unpack --dir` into folders seeded with links.

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

/// `unpack --dir --force` of the seed archive into a folder seeded, as `data` says, with what someone else could
/// have put there: symbolic links to a file and a folder outside, a dangling one, a hard link to the file outside,
/// a FIFO, plain files and folders, at the places the unpack writes to or on their way. The property: nothing
/// outside changes (no write through a link, no file created at a dangling link's target, no chmod), it never
/// hangs on a FIFO, and it either writes every object as a regular file or fails leaving no temporary file.
pub fn fuzz_unpack_dir(data: &[u8]) {
    use cmarchive_archive::folder::FolderWriter;
    use cmarchive_archive::manifest::MANIFEST_PATH;
    use cmarchive_archive::paths::unpacked_path;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    let mut identities = Identities::new(Interaction::none());
    identities.add_key(TEST_IDENTITY).expect("the test key parses");
    let sealed = seal(&zstd::encode_all(valid_tar().as_slice(), 1).expect("compressing in memory"));
    let archive = read_archive(sealed.as_slice(), &identities, &ReadLimits::default()).expect("the seed reads");

    let base = tempfile::tempdir().expect("a temporary folder");
    let target = base.path().join("target");
    let outside = base.path().join("outside");
    fs::create_dir_all(&target).expect("making the target");
    fs::create_dir_all(&outside).expect("making the outside folder");
    let victim = outside.join("victim");
    fs::write(&victim, b"untouched").expect("writing the victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).expect("chmod");

    let files: Vec<&str> = archive
        .objects
        .iter()
        .map(|o| unpacked_path(&o.entry.path))
        .chain([MANIFEST_PATH])
        .collect();
    let mut places: Vec<String> = vec!["other".into()];
    for file in &files {
        let mut prefix = String::new();
        for component in file.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            if !places.contains(&prefix) {
                places.push(prefix.clone());
            }
        }
    }
    for seed in data.chunks(2) {
        let place = target.join(&places[usize::from(seed[0]) % places.len()]);
        if let Some(parent) = place.parent() {
            // Only through plain folders: a seeded link on the way must not send the seeding outside either.
            if !parent.ancestors().any(|a| a.is_symlink()) {
                let _ = fs::create_dir_all(parent);
            }
        }
        if place.ancestors().skip(1).any(|a| a.is_symlink()) || place.symlink_metadata().is_ok() {
            continue;
        }
        let _ = match seed.get(1).copied().unwrap_or(0) % 7 {
            0 => symlink(&victim, &place),
            1 => symlink(&outside, &place),
            2 => symlink(outside.join("created-through-a-link"), &place),
            3 => fs::hard_link(&victim, &place),
            4 => rustix::fs::mknodat(
                rustix::fs::CWD,
                &place,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .map_err(std::io::Error::from),
            5 => fs::write(&place, b"old"),
            _ => fs::create_dir(&place),
        };
    }

    let result = FolderWriter::open(&target, true).and_then(|mut folder| {
        for object in &archive.objects {
            let mode = if object.entry.key.kind == "Secret" {
                0o600
            } else {
                0o644
            };
            folder.write(unpacked_path(&object.entry.path), &object.bytes, mode)?;
        }
        folder.write(MANIFEST_PATH, &archive.manifest_json, 0o644)?;
        folder.commit()
    });

    let outside_now: Vec<_> = fs::read_dir(&outside)
        .expect("listing outside")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(outside_now, ["victim"], "something was created outside");
    assert_eq!(fs::read(&victim).expect("reading the victim"), b"untouched");
    let mode = fs::metadata(&victim).expect("the victim").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the file outside was chmodded");
    match result {
        Ok(written) => {
            assert_eq!(written, files.len());
            for object in &archive.objects {
                let path = target.join(unpacked_path(&object.entry.path));
                let metadata = path.symlink_metadata().expect("every object is written");
                assert!(metadata.is_file(), "{} is not a regular file", path.display());
                assert_eq!(fs::read(&path).expect("reading back"), object.bytes);
            }
        }
        Err(_) => {
            let mut pending = vec![target.clone()];
            while let Some(folder) = pending.pop() {
                for entry in fs::read_dir(&folder).expect("listing the target") {
                    let entry = entry.expect("an entry");
                    let name = entry.file_name();
                    assert!(
                        !name.to_string_lossy().contains(".cmarchive-"),
                        "a temporary file was left: {}",
                        entry.path().display()
                    );
                    if entry.file_type().expect("a type").is_dir() {
                        pending.push(entry.path());
                    }
                }
            }
        }
    }
}
