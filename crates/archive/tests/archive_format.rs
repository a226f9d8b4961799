//! The archive format end to end through the public API: round trips over random object sets, every recipient
//! kind and both encodings, and one test per way an archive can be wrong.

use age::secrecy::{ExposeSecret, SecretString};
use cmarchive_archive::crypto::generate_key;
use cmarchive_archive::manifest::{MANIFEST_PATH, PhaseName, Source};
use cmarchive_archive::plan::{Plan, PlannedObject, PlannedPhase};
use cmarchive_archive::{
    ArchiveError, Identities, Interaction, ManifestMeta, ReadLimits, Recipients, VerifiedArchive, WriteOptions,
    read_archive, write_archive,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testkeys");

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}/{name}")).unwrap()
}

fn key_text(name: &str) -> String {
    String::from_utf8(key_file(name)).unwrap()
}

fn meta() -> ManifestMeta {
    ManifestMeta {
        tool_version: "0.0.0-test".into(),
        created: "2026-01-02T03:04:05Z".parse().unwrap(),
        source: Source {
            kind: "file".into(),
            cluster_resource_namespace: "cert-manager".into(),
            ..Source::default()
        },
        options: BTreeMap::new(),
    }
}

fn secret(namespace: &str, name: &str, data: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"controller.cert-manager.io/fao": "true"}},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": data, "tls.key": data},
    })
}

fn certificate(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"secretName": format!("{name}-tls"), "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}},
    })
}

fn plan(phases: Vec<(PhaseName, Vec<Value>)>) -> Plan {
    Plan {
        phases: phases
            .into_iter()
            .map(|(name, objects)| PlannedPhase {
                name,
                objects: objects
                    .into_iter()
                    .map(|object| PlannedObject::new(&object, vec!["test".into()]).unwrap())
                    .collect(),
            })
            .collect(),
        ..Plan::default()
    }
}

fn small_plan() -> Plan {
    plan(vec![
        (PhaseName::Secrets, vec![secret("prod", "web-tls", "YWJj")]),
        (PhaseName::Certificates, vec![certificate("prod", "web")]),
    ])
}

/// A plan big enough to span several 64 KiB age chunks even after compression (random base64 data).
fn big_plan() -> Plan {
    let mut rng_state = 0x1234_5678_u64;
    let objects = (0..40)
        .map(|i| {
            let data: String = (0..8000)
                .map(|_| {
                    rng_state = rng_state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(rng_state >> 58) as usize],
                    )
                })
                .collect();
            secret("prod", &format!("s{i}"), &data)
        })
        .collect();
    plan(vec![(PhaseName::Secrets, objects)])
}

struct Keys {
    recipients: Recipients,
    identities: Identities,
}

fn x25519() -> Keys {
    let key = generate_key(jiff::Timestamp::UNIX_EPOCH);
    let mut recipients = Recipients::new(Interaction::none());
    recipients.add(&key.recipient).unwrap();
    let mut identities = Identities::new(Interaction::none());
    identities
        .add_file("key.txt", key.identity_file.expose_secret().as_bytes())
        .unwrap();
    Keys { recipients, identities }
}

fn write(plan: &Plan, recipients: &Recipients, armor: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write_archive(
        &mut out,
        recipients,
        &WriteOptions { zstd_level: 3, armor },
        meta(),
        plan,
    )
    .unwrap();
    out
}

fn read(bytes: &[u8], identities: &Identities) -> Result<VerifiedArchive, ArchiveError> {
    read_archive(bytes, identities, &ReadLimits::default())
}

#[derive(Clone, Copy, Debug)]
enum RecipientKind {
    X25519,
    SshEd25519,
    SshRsa,
    Passphrase,
    Several,
}

fn keys_for(kind: RecipientKind) -> Keys {
    let mut recipients = Recipients::new(Interaction::none());
    let mut identities = Identities::new(Interaction::none());
    match kind {
        RecipientKind::X25519 => return x25519(),
        RecipientKind::SshEd25519 => {
            recipients.add(&key_text("ed25519.pub")).unwrap();
            identities.add_file("ed25519", &key_file("ed25519")).unwrap();
        }
        RecipientKind::SshRsa => {
            recipients.add(&key_text("rsa.pub")).unwrap();
            identities.add_file("rsa", &key_file("rsa")).unwrap();
        }
        RecipientKind::Passphrase => {
            // A low scrypt work factor keeps the property test fast; the format is the same.
            recipients = Recipients::passphrase_with_work_factor(SecretString::from("hunter2".to_owned()), 4);
            identities.set_passphrase(SecretString::from("hunter2".to_owned()));
        }
        RecipientKind::Several => {
            let other = generate_key(jiff::Timestamp::UNIX_EPOCH);
            let file = format!("# team\n{}\n\n{}\n", other.recipient, key_text("ed25519.pub").trim());
            recipients.add_file("team.txt", file.as_bytes()).unwrap();
            recipients.add(&key_text("rsa.pub")).unwrap();
            // Any one of the recipients' keys opens it.
            identities.add_file("rsa", &key_file("rsa")).unwrap();
        }
    }
    Keys { recipients, identities }
}

fn arb_object() -> impl Strategy<Value = (PhaseName, Value)> {
    let text = prop_oneof![
        "[a-zA-Z0-9+/=]{0,64}",
        Just("yes".to_owned()),
        Just("0755".to_owned()),
        Just("null".to_owned()),
        "\\PC{0,16}",
    ];
    (
        0usize..4,
        proptest::option::of("[a-z][a-z0-9-]{0,12}"),
        "[a-z0-9][a-z0-9.-]{0,30}",
        text,
        any::<i64>(),
        any::<bool>(),
    )
        .prop_map(|(kind, namespace, name, text, number, flag)| {
            let (phase, api_version, kind, namespace) = match kind {
                0 => (PhaseName::Namespaces, "v1", "Namespace", None),
                1 => (
                    PhaseName::Secrets,
                    "v1",
                    "Secret",
                    Some(namespace.unwrap_or_else(|| "default".into())),
                ),
                2 => (PhaseName::Issuers, "cert-manager.io/v1", "ClusterIssuer", None),
                _ => (PhaseName::Certificates, "cert-manager.io/v1", "Certificate", namespace),
            };
            let mut metadata = json!({"name": name, "annotations": {"note": text}});
            if let Some(ns) = namespace {
                metadata["namespace"] = json!(ns);
            }
            let object = json!({
                "apiVersion": api_version, "kind": kind, "metadata": metadata,
                "spec": {"n": number, "flag": flag, "list": [text, number], "nested": {"empty": {}}},
            });
            (phase, object)
        })
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    proptest::collection::vec(arb_object(), 0..12).prop_map(|objects| {
        let mut by_phase: BTreeMap<PhaseName, Vec<Value>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (phase, object) in objects {
            let key = cmarchive_archive::object::ObjectKey::of(&object).unwrap();
            if seen.insert(key) {
                by_phase.entry(phase).or_default().push(object);
            }
        }
        plan(by_phase.into_iter().collect())
    })
}

fn arb_kind() -> impl Strategy<Value = RecipientKind> {
    prop_oneof![
        Just(RecipientKind::X25519),
        Just(RecipientKind::SshEd25519),
        Just(RecipientKind::SshRsa),
        Just(RecipientKind::Passphrase),
        Just(RecipientKind::Several),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(plan in arb_plan(), kind in arb_kind(), armor in any::<bool>()) {
        let keys = keys_for(kind);
        let mut bytes = Vec::new();
        let written = write_archive(&mut bytes, &keys.recipients, &WriteOptions { zstd_level: 1, armor }, meta(), &plan).unwrap();
        prop_assert_eq!(armor, bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        let archive = read(&bytes, &keys.identities).unwrap();
        prop_assert_eq!(&archive.manifest, &written);
        prop_assert_eq!(serde_json::from_slice::<Value>(&archive.manifest_json).unwrap(), serde_json::to_value(&written).unwrap());
        let expected: Vec<Value> = plan.phases.iter().flat_map(|p| p.objects.iter().map(|o| o.object())).collect();
        let got: Vec<Value> = archive.objects.iter().map(|o| o.object().unwrap()).collect();
        prop_assert_eq!(got, expected);
        for object in &archive.objects {
            prop_assert_eq!(&object.bytes, &serde_json::to_vec(&object.object().unwrap()).unwrap());
            prop_assert_eq!(object.entry.size, object.bytes.len() as u64);
            prop_assert_eq!(&object.entry.sha256, &hex::encode(Sha256::digest(&object.bytes)));
        }
    }
}

#[test]
fn long_names_survive_through_pax_headers() {
    let name = format!("{}.example.com", "a".repeat(230));
    let namespace = "n".repeat(63);
    let keys = x25519();
    let bytes = write(
        &plan(vec![(PhaseName::Secrets, vec![secret(&namespace, &name, "eA==")])]),
        &keys.recipients,
        false,
    );
    let archive = read(&bytes, &keys.identities).unwrap();
    assert_eq!(archive.objects[0].object().unwrap()["metadata"]["name"], name);
    assert!(
        archive.objects[0].entry.path.len() > 255,
        "{}",
        archive.objects[0].entry.path
    );
}

#[test]
fn identity_file_with_several_keys() {
    let first = generate_key(jiff::Timestamp::UNIX_EPOCH);
    let second = generate_key(jiff::Timestamp::UNIX_EPOCH);
    let mut recipients = Recipients::new(Interaction::none());
    recipients.add(&second.recipient).unwrap();
    let file = format!(
        "{}\n{}",
        first.identity_file.expose_secret(),
        second.identity_file.expose_secret()
    );
    let mut identities = Identities::new(Interaction::none());
    assert_eq!(identities.add_file("keys.txt", file.as_bytes()).unwrap(), 2);
    read(&write(&small_plan(), &recipients, false), &identities).unwrap();
}

#[test]
fn passphrase_protected_ssh_key() {
    let mut recipients = Recipients::new(Interaction::none());
    recipients.add(&key_text("ed25519_protected.pub")).unwrap();
    let bytes = write(&small_plan(), &recipients, true);

    let asking = Interaction::none().with_passphrase_prompt(|_| Some(SecretString::from("correct horse".to_owned())));
    let mut identities = Identities::new(asking);
    identities
        .add_file("ed25519_protected", &key_file("ed25519_protected"))
        .unwrap();
    read(&bytes, &identities).unwrap();

    let mut no_prompt = Identities::new(Interaction::none());
    let err = no_prompt
        .add_file("ed25519_protected", &key_file("ed25519_protected"))
        .unwrap_err();
    assert!(err.to_string().contains("passphrase"), "{err}");

    let wrong = Interaction::none().with_passphrase_prompt(|_| Some(SecretString::from("wrong".to_owned())));
    let err = Identities::new(wrong)
        .add_file("ed25519_protected", &key_file("ed25519_protected"))
        .unwrap_err();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
}

#[test]
fn the_manifest_is_the_first_entry_and_paths_follow_the_layout() {
    let key = generate_key(jiff::Timestamp::UNIX_EPOCH);
    let mut recipients = Recipients::new(Interaction::none());
    recipients.add(&key.recipient).unwrap();
    let bytes = write(&small_plan(), &recipients, false);
    let secret = key.identity_file.expose_secret().lines().last().unwrap().to_owned();
    let tar = open_to_tar(&bytes, &secret);
    let mut archive = tar::Archive::new(tar.as_slice());
    let paths: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        paths,
        [
            MANIFEST_PATH,
            "objects/03-secrets/core/secret/prod/web-tls.json",
            "objects/05-certificates/cert-manager.io/certificate/prod/web.json"
        ]
    );
}

// ---- failure classes: each read must fail, with the right error, before returning anything ----

fn expect_err(bytes: &[u8], identities: &Identities) -> ArchiveError {
    match read(bytes, identities) {
        Ok(_) => panic!("a damaged archive was accepted"),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "error messages are one line: {message:?}");
            e
        }
    }
}

#[test]
fn wrong_key() {
    let bytes = write(&small_plan(), &x25519().recipients, false);
    let err = expect_err(&bytes, &x25519().identities);
    assert!(matches!(err, ArchiveError::NoMatchingIdentity), "{err}");
    assert!(err.to_string().contains("-i"));
}

#[test]
fn no_key() {
    let bytes = write(&small_plan(), &x25519().recipients, false);
    let err = expect_err(&bytes, &Identities::new(Interaction::none()));
    assert!(matches!(err, ArchiveError::NoIdentities), "{err}");
}

#[test]
fn wrong_and_missing_passphrase() {
    let recipients = Recipients::passphrase_with_work_factor(SecretString::from("right".to_owned()), 4);
    let bytes = write(&small_plan(), &recipients, false);
    let mut wrong = Identities::new(Interaction::none());
    wrong.set_passphrase(SecretString::from("wrong".to_owned()));
    assert!(matches!(expect_err(&bytes, &wrong), ArchiveError::WrongPassphrase));
    assert!(matches!(
        expect_err(&bytes, &Identities::new(Interaction::none())),
        ArchiveError::PassphraseRequired
    ));
}

#[test]
fn truncated_anywhere() {
    let keys = x25519();
    for armor in [false, true] {
        for plan in [small_plan(), big_plan()] {
            let bytes = write(&plan, &keys.recipients, armor);
            for cut in [
                10,
                100,
                bytes.len() / 3,
                bytes.len() / 2,
                bytes.len() - 20,
                // An armored file that only lost its final newline is still complete.
                bytes.len() - 1 - usize::from(armor),
            ] {
                let err = expect_err(&bytes[..cut], &keys.identities);
                assert!(
                    matches!(
                        err,
                        ArchiveError::Truncated | ArchiveError::AuthenticationFailed { at_end: true }
                    ),
                    "armor={armor} cut={cut}/{}: {err}",
                    bytes.len()
                );
                assert!(err.to_string().contains("truncated"), "{err}");
            }
        }
    }
}

#[test]
fn truncated_at_a_chunk_boundary_says_truncated() {
    let keys = x25519();
    let bytes = write(&big_plan(), &keys.recipients, false);
    // age payload chunks are 64 KiB + 16 bytes of tag; cut right after the first full chunk.
    let header_end = bytes.windows(4).position(|w| w == b"\n---").unwrap();
    let payload_start = header_end + bytes[header_end + 1..].iter().position(|b| *b == b'\n').unwrap() + 2 + 16;
    let cut = payload_start + 65536 + 16;
    assert!(cut < bytes.len(), "big_plan must span several chunks");
    assert!(matches!(
        expect_err(&bytes[..cut], &keys.identities),
        ArchiveError::Truncated
    ));
}

#[test]
fn flipped_byte_is_an_authentication_failure() {
    let keys = x25519();
    let bytes = write(&big_plan(), &keys.recipients, false);
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    let err = expect_err(&damaged, &keys.identities);
    assert!(
        matches!(err, ArchiveError::AuthenticationFailed { at_end: false }),
        "{err}"
    );

    let small = write(&small_plan(), &keys.recipients, false);
    let mut damaged = small.clone();
    let last = damaged.len() - 5;
    damaged[last] ^= 0x80;
    let err = expect_err(&damaged, &keys.identities);
    assert!(err.to_string().contains("modified"), "{err}");
}

#[test]
fn not_an_archive() {
    let keys = x25519();
    for (input, hint) in [
        (&b""[..], "empty"),
        (&b"hello world, this is not an archive"[..], "not an age"),
        (&[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0][..], "zstd"),
        (&br#"{"apiVersion":"v1"}"#[..], "JSON"),
    ] {
        let err = expect_err(input, &keys.identities);
        assert!(matches!(err, ArchiveError::NotAnArchive(_)), "{err}");
        assert!(err.to_string().contains(hint), "{err}");
    }
}

#[test]
fn too_large() {
    let keys = x25519();
    let bytes = write(&big_plan(), &keys.recipients, false);
    let err = read_archive(
        bytes.as_slice(),
        &keys.identities,
        &ReadLimits {
            max_decompressed: 100_000,
            ..ReadLimits::default()
        },
    )
    .err()
    .unwrap();
    assert!(matches!(err, ArchiveError::TooLarge { limit: 100_000 }), "{err}");
}

#[test]
fn the_kept_compressed_copy_is_capped_too() {
    // A zstd skippable frame decompresses to nothing, so only the cap on the compressed copy the reader keeps for
    // its second pass can refuse it.
    let f = fixture();
    let tar = f.valid_tar().finish();
    let mut compressed = zstd::encode_all(tar.as_slice(), 3).unwrap();
    let skipped = vec![0u8; 300_000];
    compressed.extend_from_slice(&0x184D_2A50_u32.to_le_bytes());
    compressed.extend_from_slice(&(skipped.len() as u32).to_le_bytes());
    compressed.extend_from_slice(&skipped);
    let sealed = seal_compressed(&compressed, &f.recipient);
    read(&sealed, &f.identities).expect("a skippable frame is valid zstd");
    let limit = tar.len() as u64 + 1024;
    let limits = ReadLimits {
        max_decompressed: limit,
        ..ReadLimits::default()
    };
    let err = read_archive(sealed.as_slice(), &f.identities, &limits).err().unwrap();
    assert!(
        matches!(err, ArchiveError::TooLarge { limit: l } if l == limit),
        "{err}"
    );
}

// Hand-made tars, sealed with zstd + age exactly like the writer does, to reach the checks behind the crypto.

struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }

    fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        if path.len() > 100 {
            // Too long for the name field: the tar crate writes it in an extension header.
            self.0.append_data(&mut header, path, data).unwrap();
            return self;
        }
        set_raw_path(&mut header, path);
        self.0.append(&header, data).unwrap();
        self
    }

    fn special(mut self, path: &str, kind: tar::EntryType) -> Self {
        let mut header = tar::Header::new_ustar();
        header.set_size(0);
        header.set_entry_type(kind);
        set_raw_path(&mut header, path);
        if kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
            header.set_cksum();
        }
        self.0.append(&header, &[][..]).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// Writes the name field directly: the tar crate (rightly) refuses `..` and absolute paths.
fn set_raw_path(header: &mut tar::Header, path: &str) {
    let name = &mut header.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_cksum();
}

fn seal(tar: &[u8], recipient: &str) -> Vec<u8> {
    seal_compressed(&zstd::encode_all(tar, 3).unwrap(), recipient)
}

/// Encrypts an already compressed stream to `recipient`, as the writer's last layer does.
fn seal_compressed(compressed: &[u8], recipient: &str) -> Vec<u8> {
    let recipient: age::x25519::Recipient = recipient.parse().unwrap();
    let mut out = Vec::new();
    let mut writer = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .unwrap()
        .wrap_output(&mut out)
        .unwrap();
    writer.write_all(compressed).unwrap();
    writer.finish().unwrap();
    out
}

/// Decrypts and decompresses by hand, the way `age -d | zstd -d` would.
fn open_to_tar(bytes: &[u8], identity: &str) -> Vec<u8> {
    let identity: age::x25519::Identity = identity.parse().unwrap();
    let plain = age::decrypt(&identity, bytes).unwrap();
    zstd::decode_all(plain.as_slice()).unwrap()
}

/// A valid archive's tar, plus the key that opens re-sealed variants of it.
struct Fixture {
    recipient: String,
    identities: Identities,
    manifest: Value,
    secret_path: String,
    secret_json: Vec<u8>,
    cert_path: String,
    cert_json: Vec<u8>,
}

fn fixture() -> Fixture {
    let key = generate_key(jiff::Timestamp::UNIX_EPOCH);
    let mut recipients = Recipients::new(Interaction::none());
    recipients.add(&key.recipient).unwrap();
    let mut identities = Identities::new(Interaction::none());
    identities
        .add_file("key.txt", key.identity_file.expose_secret().as_bytes())
        .unwrap();
    let plan = small_plan();
    let manifest = cmarchive_archive::writer::build_manifest(meta(), &plan).unwrap();
    let entries: Vec<_> = manifest.phases.iter().flat_map(|p| &p.entries).collect();
    Fixture {
        recipient: key.recipient,
        identities,
        manifest: serde_json::to_value(&manifest).unwrap(),
        secret_path: entries[0].path.clone(),
        secret_json: plan.phases[0].objects[0].bytes().to_vec(),
        cert_path: entries[1].path.clone(),
        cert_json: plan.phases[1].objects[0].bytes().to_vec(),
    }
}

impl Fixture {
    fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.manifest).unwrap()
    }

    fn valid_tar(&self) -> TarBuilder {
        TarBuilder::new()
            .file(MANIFEST_PATH, &self.manifest_bytes())
            .file(&self.secret_path, &self.secret_json)
            .file(&self.cert_path, &self.cert_json)
    }

    /// The Secret's JSON with one byte changed: same size, another checksum.
    fn altered_secret(&self) -> Vec<u8> {
        let mut altered = self.secret_json.clone();
        let i = altered.iter().position(|b| *b == b'Y').unwrap();
        altered[i] = b'Z';
        altered
    }

    fn read(&self, tar: Vec<u8>) -> ArchiveError {
        expect_err(&seal(&tar, &self.recipient), &self.identities)
    }
}

impl Fixture {
    /// Reads the archive and checks it holds exactly the fixture's two objects, byte for byte, in manifest order.
    fn read_back(&self, tar: Vec<u8>) -> VerifiedArchive {
        let archive = read(&seal(&tar, &self.recipient), &self.identities).unwrap();
        let got: Vec<(&str, &[u8])> = archive
            .objects
            .iter()
            .map(|o| (o.entry.path.as_str(), o.bytes.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (self.secret_path.as_str(), self.secret_json.as_slice()),
                (self.cert_path.as_str(), self.cert_json.as_slice())
            ]
        );
        archive
    }
}

#[test]
fn hand_made_valid_archive_reads() {
    let f = fixture();
    let archive = f.read_back(f.valid_tar().finish());
    assert_eq!(archive.manifest_json, f.manifest_bytes());
}

#[test]
fn unknown_major_version() {
    let mut f = fixture();
    f.manifest["formatVersion"] = json!("2.0");
    f.manifest["phases"] = json!("a v2 manifest may look entirely different");
    let err = f.read(f.valid_tar().finish());
    assert!(matches!(err, ArchiveError::UnsupportedVersion { .. }), "{err}");
    assert!(err.to_string().contains("2.0"));
}

#[test]
fn newer_minor_version_reads() {
    let mut f = fixture();
    f.manifest["formatVersion"] = json!("1.7");
    f.manifest["someFutureField"] = json!({"x": 1});
    let archive = f.read_back(f.valid_tar().finish());
    assert_eq!(archive.manifest.format_version, "1.7");
}

#[test]
fn other_format_name_and_bad_schema() {
    let mut f = fixture();
    f.manifest["format"] = json!("velero");
    assert!(matches!(f.read(f.valid_tar().finish()), ArchiveError::NotAnArchive(_)));
    let mut f = fixture();
    f.manifest["phases"][0]["entries"][0]["size"] = json!("big");
    assert!(matches!(
        f.read(f.valid_tar().finish()),
        ArchiveError::InvalidManifest(_)
    ));
}

/// The manifest is parsed while the entries after it are read: an unreadable manifest is still what is reported,
/// however broken the rest is.
#[test]
fn a_broken_manifest_wins_over_everything_after_it() {
    let mut f = fixture();
    f.manifest["phases"][0]["entries"][0]["sha256"] = json!(7);
    let broken_rest = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.secret_path, &f.altered_secret())
        .file("objects/03-secrets/core/secret/prod/extra.json", b"{}")
        .file("../escape.json", b"{}")
        .finish();
    let err = f.read(broken_rest);
    assert!(matches!(&err, ArchiveError::InvalidManifest(_)), "{err}");
    // Cut short after the manifest's age chunk, past an unlisted entry too large to compress.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..400_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let broken_rest = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file("objects/03-secrets/core/secret/prod/extra.json", &noise)
        .finish();
    let sealed = seal(&broken_rest, &f.recipient);
    assert!(sealed.len() > 200_000, "{}", sealed.len());
    let err = expect_err(&sealed[..sealed.len() - 100_000], &f.identities);
    assert!(matches!(&err, ArchiveError::InvalidManifest(_)), "{err}");
}

#[test]
fn checksum_mismatch() {
    let f = fixture();
    let altered = f.altered_secret();
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.secret_path, &altered)
        .file(&f.cert_path, &f.cert_json)
        .finish();
    let err = f.read(tar);
    assert!(
        matches!(&err, ArchiveError::ChecksumMismatch { path } if *path == f.secret_path),
        "{err}"
    );
    assert!(err.to_string().contains("objects/"));
}

#[test]
fn size_mismatch() {
    let f = fixture();
    let mut longer = f.secret_json.clone();
    longer.push(b' ');
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.secret_path, &longer)
        .file(&f.cert_path, &f.cert_json)
        .finish();
    assert!(matches!(f.read(tar), ArchiveError::SizeMismatch { .. }));
}

#[test]
fn unsafe_paths_links_and_devices() {
    let f = fixture();
    for path in [
        "/etc/cron.d/x",
        "../escape.json",
        "objects/../../x.json",
        "objects//x.json",
    ] {
        let tar = f.valid_tar().file(path, b"{}").finish();
        let err = f.read(tar);
        assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{path}: {err}");
    }
    for kind in [
        tar::EntryType::Symlink,
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
        tar::EntryType::Directory,
    ] {
        let tar = f.valid_tar().special("objects/extra", kind).finish();
        let err = f.read(tar);
        assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{kind:?}: {err}");
    }
    // The manifest itself may not point outside either.
    let mut bad = fixture();
    bad.manifest["phases"][0]["entries"][0]["path"] = json!("../../x.json");
    assert!(matches!(
        bad.read(bad.valid_tar().finish()),
        ArchiveError::UnsafePath { .. }
    ));
}

#[test]
fn duplicate_missing_and_unexpected_entries() {
    let f = fixture();
    let duplicate = f.valid_tar().file(&f.secret_path, &f.secret_json).finish();
    assert!(matches!(f.read(duplicate), ArchiveError::DuplicateEntry { .. }));

    let second_manifest = f.valid_tar().file(MANIFEST_PATH, &f.manifest_bytes()).finish();
    assert!(matches!(f.read(second_manifest), ArchiveError::DuplicateEntry { .. }));

    let missing = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.secret_path, &f.secret_json)
        .finish();
    let err = f.read(missing);
    assert!(
        matches!(&err, ArchiveError::MissingEntry { path } if *path == f.cert_path),
        "{err}"
    );

    let unexpected = f
        .valid_tar()
        .file("objects/03-secrets/core/secret/prod/extra.json", b"{}")
        .finish();
    assert!(matches!(f.read(unexpected), ArchiveError::UnexpectedEntry { .. }));
}

#[test]
fn entries_in_another_order_than_the_manifest_read_in_restore_order() {
    let f = fixture();
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.cert_path, &f.cert_json)
        .file(&f.secret_path, &f.secret_json)
        .finish();
    let archive = read(&seal(&tar, &f.recipient), &f.identities).unwrap();
    let paths: Vec<&str> = archive.objects.iter().map(|o| o.entry.path.as_str()).collect();
    assert_eq!(paths, [f.secret_path.as_str(), f.cert_path.as_str()]);
    assert_eq!(archive.objects[0].bytes, f.secret_json);
    assert_eq!(archive.objects[1].bytes, f.cert_json);
}

#[test]
fn the_first_failure_in_tar_order_is_reported() {
    // Checksums are checked off the reading thread; a mismatch still wins over whatever comes after it...
    let f = fixture();
    let altered = f.altered_secret();
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.secret_path, &altered)
        .file("objects/03-secrets/core/secret/prod/extra.json", b"{}")
        .finish();
    let err = f.read(tar);
    assert!(
        matches!(&err, ArchiveError::ChecksumMismatch { path } if *path == f.secret_path),
        "{err}"
    );
    // ...and loses to what comes before it.
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file("objects/03-secrets/core/secret/prod/extra.json", b"{}")
        .file(&f.secret_path, &altered)
        .finish();
    assert!(matches!(f.read(tar), ArchiveError::UnexpectedEntry { .. }));
    // A mismatch before a cut: the archive reports the mismatch, not the truncation. The entry after it spans
    // many of age's 64 KiB chunks, so the mismatch sits in a chunk that authenticates and the cut comes later.
    let mut f = fixture();
    let mut long_cert = f.cert_json.clone();
    // Whitespace JSON allows after the object, varied enough that zstd cannot shrink it below a few chunks.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    long_cert.extend((0..1_000_000).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        [b' ', b'\t', b'\n', b'\r'][(state >> 60) as usize & 3]
    }));
    f.manifest["phases"][1]["entries"][0]["size"] = json!(long_cert.len());
    f.manifest["phases"][1]["entries"][0]["sha256"] = json!(hex::encode(sha2::Sha256::digest(&long_cert)));
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.secret_path, &altered)
        .file(&f.cert_path, &long_cert)
        .finish();
    let sealed = seal(&tar, &f.recipient);
    let err = expect_err(&sealed[..sealed.len() - 100_000], &f.identities);
    assert!(matches!(&err, ArchiveError::ChecksumMismatch { .. }), "{err}");
    // The same cut without the mismatch is a truncation.
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.secret_path, &f.secret_json)
        .file(&f.cert_path, &long_cert)
        .finish();
    let sealed = seal(&tar, &f.recipient);
    let err = expect_err(&sealed[..sealed.len() - 100_000], &f.identities);
    assert!(
        matches!(
            &err,
            ArchiveError::Truncated | ArchiveError::AuthenticationFailed { at_end: true }
        ),
        "{err}"
    );
}

#[test]
fn manifest_must_come_first() {
    let f = fixture();
    let tar = TarBuilder::new()
        .file(&f.secret_path, &f.secret_json)
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.cert_path, &f.cert_json)
        .finish();
    let err = f.read(tar);
    assert!(matches!(err, ArchiveError::NotAnArchive(_)), "{err}");
    assert!(err.to_string().contains("manifest.json"));
}

#[test]
fn object_must_match_its_manifest_entry() {
    let mut f = fixture();
    // The secret's bytes at the path of another name, which the manifest claims it holds.
    let other = "objects/03-secrets/core/secret/prod/other.json";
    f.manifest["phases"][0]["entries"][0]["name"] = json!("other");
    f.manifest["phases"][0]["entries"][0]["path"] = json!(other);
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(other, &f.secret_json)
        .file(&f.cert_path, &f.cert_json)
        .finish();
    let err = f.read(tar);
    assert!(matches!(err, ArchiveError::InvalidObject { .. }), "{err}");
    assert!(err.to_string().contains("holds Secret/prod/web-tls"), "{err}");
}

#[test]
fn trailing_garbage_after_the_tar() {
    let f = fixture();
    let mut tar = f.valid_tar().finish();
    tar.extend_from_slice(b"surprise");
    let err = f.read(tar);
    assert!(matches!(err, ArchiveError::Malformed(_)), "{err}");
    assert!(err.to_string().contains("data after the end of its tar"), "{err}");
}

#[test]
fn too_many_entries() {
    let keys = x25519();
    let bytes = write(&small_plan(), &keys.recipients, false);
    let limits = ReadLimits {
        max_entries: 2,
        ..ReadLimits::default()
    };
    let err = read_archive(bytes.as_slice(), &keys.identities, &limits).err().unwrap();
    assert!(matches!(err, ArchiveError::TooManyEntries { limit: 2 }), "{err}");
}

// ---- hostile archives: well-formed encryption around content crafted to break what comes after the checks ----

impl Fixture {
    /// The fixture with the Secret's stored JSON replaced by `json` (manifest size and checksum to match).
    fn with_secret_json(mut self, json: Vec<u8>) -> Fixture {
        self.manifest["phases"][0]["entries"][0]["size"] = json!(json.len());
        self.manifest["phases"][0]["entries"][0]["sha256"] = json!(hex::encode(Sha256::digest(&json)));
        self.secret_json = json;
        self
    }
}

/// Objects whose checksums match but which no output step could parse (nesting past serde_json's limit, a
/// number out of range, a lone surrogate, invalid UTF-8 in a string) are refused by the check itself, so nothing
/// is printed, written or applied; the same holds for the manifest's fields this version does not read.
#[test]
fn objects_an_output_could_not_parse_are_refused_by_the_check() {
    let secret = |value: &[u8]| {
        let mut json =
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"web-tls","namespace":"prod"},"data":{"x":"#
                .to_vec();
        json.extend_from_slice(value);
        json.extend_from_slice(b"}}");
        json
    };
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for (value, expect) in [
        (deep.as_bytes(), "recursion limit"),
        (&b"1e400"[..], "number out of range"),
        (&br#""\ud800""#[..], "escape"),
        (&b"\"\xff\xfe\""[..], "invalid unicode"),
    ] {
        let f = fixture().with_secret_json(secret(value));
        let err = f.read(f.valid_tar().finish());
        assert!(matches!(err, ArchiveError::InvalidObject { .. }), "{expect}: {err}");
        assert!(err.to_string().contains(expect), "{err}");
        assert!(err.to_string().contains(&f.secret_path), "{err}");
    }
    let mut f = fixture();
    f.manifest["someFutureField"] = json!([1]);
    let manifest = f.manifest_bytes();
    let manifest = String::from_utf8(manifest)
        .unwrap()
        .replace("[1]", "1e400")
        .into_bytes();
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &manifest)
        .file(&f.secret_path, &f.secret_json)
        .file(&f.cert_path, &f.cert_json)
        .finish();
    let err = f.read(tar);
    assert!(matches!(err, ArchiveError::InvalidManifest(_)), "{err}");
}

/// Phases and paths come from each object's own kind and identity: a manifest that puts a Secret among the
/// Certificates (restored after them, so cert-manager would reissue) or gives an object any path but its own is
/// refused, whatever the tar holds.
#[test]
fn phases_and_paths_are_derived_from_the_objects() {
    // The Secret listed in the certificates phase, at the path that phase would give it.
    let mut f = fixture();
    let secret_entry = f.manifest["phases"][0]["entries"][0].clone();
    let moved = "objects/05-certificates/core/secret/prod/web-tls.json";
    let mut entry = secret_entry.clone();
    entry["path"] = json!(moved);
    f.manifest["phases"] = json!([
        {"name": "certificates", "entries": [f.manifest["phases"][1]["entries"][0].clone(), entry]}
    ]);
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, &f.manifest_bytes())
        .file(&f.cert_path, &f.cert_json)
        .file(moved, &f.secret_json)
        .finish();
    let err = f.read(tar);
    assert!(matches!(err, ArchiveError::InvalidManifest(_)), "{err}");
    assert!(
        err.to_string()
            .contains("Secret/prod/web-tls is listed in phase certificates, but a Secret belongs to phase secrets"),
        "{err}"
    );

    // Paths that are safe as tar paths but not the object's own: the manifest's name, a file where another
    // entry needs a folder, a component longer than a file name may be.
    let long = format!("objects/03-secrets/core/secret/prod/{}.json", "w".repeat(300));
    for path in [
        "objects/manifest.json",
        "objects/03-secrets/core/secret/prod/web-tls.json/x.json",
        "objects/03-secrets/core/secret/prod.json",
        long.as_str(),
    ] {
        let mut f = fixture();
        f.manifest["phases"][0]["entries"][0]["path"] = json!(path);
        let tar = TarBuilder::new()
            .file(MANIFEST_PATH, &f.manifest_bytes())
            .file(path, &f.secret_json)
            .file(&f.cert_path, &f.cert_json)
            .finish();
        let err = f.read(tar);
        assert!(matches!(err, ArchiveError::InvalidManifest(_)), "{path}: {err}");
        assert!(
            err.to_string()
                .contains("but its path is objects/03-secrets/core/secret/prod/web-tls.json"),
            "{err}"
        );
    }

    // Kinds cmarchive never archives have no phase at all.
    let mut f = fixture();
    f.manifest["phases"][1]["entries"][0]["apiVersion"] = json!("acme.cert-manager.io/v1");
    f.manifest["phases"][1]["entries"][0]["kind"] = json!("Order");
    let err = f.read(f.valid_tar().finish());
    assert!(err.to_string().contains("never archives a Order"), "{err}");
}

/// The age file with its header: the line after the version line is where a stanza can be added.
fn header_end(bytes: &[u8]) -> usize {
    bytes.windows(4).position(|w| w == b"\n---").unwrap() + 1
}

/// A header far larger than any age writes is refused before the age crate reads it (it parses a header again
/// after every line, which took tens of seconds for headers of hundreds of kilobytes); a large but real one reads.
#[test]
fn oversized_age_headers_are_refused_early() {
    let f = fixture();
    let sealed = seal(&f.valid_tar().finish(), &f.recipient);
    let end = header_end(&sealed);
    let mut crafted = sealed[..end].to_vec();
    crafted.extend_from_slice(b"-> huge-stanza\n");
    for _ in 0..(512 * 1024 / 65) {
        crafted.extend_from_slice(&[b'A'; 64]);
        crafted.push(b'\n');
    }
    crafted.extend_from_slice(b"AAAA\n");
    crafted.extend_from_slice(&sealed[end..]);
    let started = std::time::Instant::now();
    let err = expect_err(&crafted, &f.identities);
    assert!(matches!(err, ArchiveError::HeaderTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("64K"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // As many lines, each as short as a stanza can be.
    let mut crafted = sealed[..end].to_vec();
    for _ in 0..100_000 {
        crafted.extend_from_slice(b"-> x\n\n");
    }
    crafted.extend_from_slice(&sealed[end..]);
    let started = std::time::Instant::now();
    let err = expect_err(&crafted, &f.identities);
    assert!(matches!(err, ArchiveError::HeaderTooLarge { .. }), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // 300 recipients: a header of about 30 KB and 600 lines, as a large team's archive could have.
    let mut recipients = Recipients::new(Interaction::none());
    let mine = generate_key(jiff::Timestamp::UNIX_EPOCH);
    recipients.add(&mine.recipient).unwrap();
    for _ in 0..299 {
        recipients
            .add(&generate_key(jiff::Timestamp::UNIX_EPOCH).recipient)
            .unwrap();
    }
    let bytes = write(&small_plan(), &recipients, false);
    assert!(header_end(&bytes) > 25_000, "{}", header_end(&bytes));
    let mut identities = Identities::new(Interaction::none());
    identities
        .add_file("key.txt", mine.identity_file.expose_secret().as_bytes())
        .unwrap();
    read(&bytes, &identities).unwrap();
}

/// A passphrase archive's header with its scrypt work factor changed to `log_n` (the MAC no longer matches, which
/// is checked only after the work).
fn passphrase_archive_asking(log_n: u8) -> Vec<u8> {
    let recipients = Recipients::passphrase_with_work_factor(SecretString::from("pw".to_owned()), 4);
    let bytes = write(&small_plan(), &recipients, false);
    let text_end = header_end(&bytes);
    let header = String::from_utf8(bytes[..text_end].to_vec()).unwrap();
    let header = header.replacen(" 4\n", &format!(" {log_n}\n"), 1);
    assert!(header.contains("-> scrypt ") && header.contains(&format!(" {log_n}\n")));
    let mut crafted = header.into_bytes();
    crafted.extend_from_slice(&bytes[text_end..]);
    crafted
}

/// A passphrase archive may not demand unbounded scrypt work: above the fixed cap it is refused before any work,
/// and a work factor whose memory the process cannot get is an error, not an abort inside scrypt.
#[test]
fn scrypt_work_is_capped_and_its_memory_checked_first() {
    let mut identities = Identities::new(Interaction::none());
    identities.set_passphrase(SecretString::from("pw".to_owned()));
    let over = cmarchive_archive::crypto::MAX_SCRYPT_WORK_FACTOR + 1;
    let started = std::time::Instant::now();
    let err = expect_err(&passphrase_archive_asking(over), &identities);
    assert!(
        matches!(err, ArchiveError::ExcessiveWork { required, max: 20 } if required == over),
        "{err}"
    );
    assert!(err.to_string().contains("2G of memory"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // 2^36 needs 64 TiB: no machine gives it, and asking must not end the process.
    identities.set_max_scrypt_work_factor(36);
    let err = expect_err(&passphrase_archive_asking(36), &identities);
    assert!(matches!(err, ArchiveError::ScryptMemory { log_n: 36 }), "{err}");
    assert!(err.to_string().contains("64T of memory"), "{err}");
}

/// Problems that are not a cut-off file are named for what they are, not reported as truncation; limits are shown
/// in the unit the flag takes; no Rust type names leak.
#[test]
fn messages_say_what_is_actually_wrong() {
    let f = fixture();
    // A tar header claiming 1 TiB for the manifest.
    let manifest = f.manifest_bytes();
    let mut header = tar::Header::new_gnu();
    header.set_path(MANIFEST_PATH).unwrap();
    header.set_size(1 << 40);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut tar = header.as_bytes().to_vec();
    tar.extend_from_slice(&manifest);
    tar.resize(tar.len().next_multiple_of(512) + 1024, 0);
    let err = f.read(tar);
    assert!(matches!(err, ArchiveError::EntryTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("claims 1T"), "{err}");

    // A tar that stops inside an entry, inside a complete age file and zstd stream.
    let tar = f.valid_tar().finish();
    let cut = tar.len() - 1024 - 300;
    let err = f.read(tar[..cut].to_vec());
    assert!(matches!(err, ArchiveError::ContentEndsEarly { inner: "tar" }), "{err}");
    assert!(!err.to_string().contains("truncated"), "{err}");
    // A zstd stream cut short, then sealed whole.
    let compressed = zstd::encode_all(f.valid_tar().finish().as_slice(), 3).unwrap();
    let sealed = seal_compressed(&compressed[..compressed.len() - 10], &f.recipient);
    let err = expect_err(&sealed, &f.identities);
    assert!(
        matches!(err, ArchiveError::ContentEndsEarly { inner: "zstd stream" }),
        "{err}"
    );

    // A passphrase stanza beside an X25519 one.
    let sealed = seal(&f.valid_tar().finish(), &f.recipient);
    let first_line = sealed.iter().position(|b| *b == b'\n').unwrap() + 1;
    let mut mixed = sealed[..first_line].to_vec();
    mixed.extend_from_slice(b"-> scrypt c2FsdHNhbHRzYWx0c2FsdA 10\nYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE\n");
    mixed.extend_from_slice(&sealed[first_line..]);
    let err = expect_err(&mixed, &f.identities);
    assert!(err.to_string().contains("passphrase (scrypt) stanza beside"), "{err}");
    assert!(!err.to_string().contains("truncated"), "{err}");

    // Whitespace before the armor line (age refuses it too).
    let armored = write(&small_plan(), &x25519().recipients, true);
    let mut spaced = b"\n  ".to_vec();
    spaced.extend_from_slice(&armored);
    let err = expect_err(&spaced, &f.identities);
    assert!(
        err.to_string().contains("whitespace before its `-----BEGIN AGE"),
        "{err}"
    );

    // A manifest that is JSON but not an object.
    let tar = TarBuilder::new()
        .file(MANIFEST_PATH, b"[1]")
        .file(&f.secret_path, &f.secret_json)
        .finish();
    let err = f.read(tar);
    assert!(err.to_string().contains("manifest.json is not a JSON object"), "{err}");
    let mut bad = fixture();
    bad.manifest["phases"][0]["entries"][0] = json!(7);
    let err = bad.read(bad.valid_tar().finish());
    assert!(!err.to_string().contains("struct"), "{err}");
    assert!(err.to_string().contains("expected an object"), "{err}");

    // The size cap, in the unit it is given in.
    let keys = x25519();
    let bytes = write(&big_plan(), &keys.recipients, false);
    let limits = ReadLimits {
        max_decompressed: 10 << 10,
        ..ReadLimits::default()
    };
    let err = read_archive(bytes.as_slice(), &keys.identities, &limits).err().unwrap();
    assert!(err.to_string().contains("more than 10K (--max-size)"), "{err}");
}
