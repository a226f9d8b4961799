//! The offline commands as a person runs them: keygen, pack --from-file/--from-dir, inspect, unpack, and what
//! happens with a wrong key, a truncated file or a flipped byte (exit 1, one line, no object printed).

use assert_cmd::Command;
use cmarchive_e2e::fixtures::{self, Ca, Certificate, IssuerRef};
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn cmarchive() -> Command {
    let mut cmd = Command::cargo_bin("cmarchive").unwrap();
    for var in [
        "CMARCHIVE_AGE_RECIPIENTS",
        "CMARCHIVE_AGE_KEY_FILE",
        "CMARCHIVE_AGE_KEY",
        "CMARCHIVE_PASSPHRASE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A temp folder with an identity (`key.txt`) and its public key.
struct Workspace {
    dir: tempfile::TempDir,
    recipient: String,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let out = cmarchive()
            .arg("keygen")
            .arg(dir.path().join("key.txt"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        let recipient = stderr.trim().strip_prefix("Public key: ").unwrap().to_owned();
        Workspace { dir, recipient }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn key(&self) -> PathBuf {
        self.path("key.txt")
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// Packs `dump` (written to a file) into `name`.
    /// `cmarchive inspect ARCHIVE -i KEY ARGS…`: its stdout, after asserting success.
    fn inspect(&self, archive: &Path, args: &[&str]) -> String {
        let out = cmarchive()
            .arg("inspect")
            .arg(archive)
            .arg("-i")
            .arg(self.key())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn pack(&self, name: &str, dump: &str) -> PathBuf {
        self.pack_with(name, dump, &["-r".as_ref(), self.recipient.as_ref()])
    }

    /// Packs `dump` (written to a file) into `name`, encrypted as `keys` (flags) say.
    fn pack_with(&self, name: &str, dump: &str, keys: &[&std::ffi::OsStr]) -> PathBuf {
        let input = self.write(&format!("{name}.input"), dump);
        let archive = self.path(name);
        cmarchive()
            .args(["pack"])
            .arg(&archive)
            .arg("--from-file")
            .arg(&input)
            .args(keys)
            .assert()
            .success();
        archive
    }
}

/// What `kubectl get namespaces,secrets,clusterissuers,certificates,orders -A -o json` prints for a small but
/// real setup: a CA ClusterIssuer with its key pair, one Certificate with its issued TLS Secret, live-cluster
/// metadata noise, and an Order that must not be archived.
fn kubectl_dump() -> Value {
    let ca = Ca::new("test CA").unwrap();
    let cert = Certificate::new("prod", "web", IssuerRef::cluster_issuer("ca"), "web.example.com");
    let now = jiff::Timestamp::now();
    let leaf = ca
        .issue(&cert.leaf_spec(
            now - jiff::SignedDuration::from_hours(1),
            now + jiff::SignedDuration::from_hours(24 * 60),
        ))
        .unwrap();
    let mut items = vec![
        fixtures::namespace("prod"),
        fixtures::namespace("cert-manager"),
        ca.secret("cert-manager", "ca-key"),
        fixtures::ca_issuer(None, "ca", "ca-key"),
        cert.to_json(),
        cert.issued_secret(&ca, &leaf),
        json!({"apiVersion": "acme.cert-manager.io/v1", "kind": "Order",
               "metadata": {"name": "web-1-123", "namespace": "prod"}, "spec": {}}),
    ];
    for (i, item) in items.iter_mut().enumerate() {
        let metadata = item["metadata"].as_object_mut().unwrap();
        metadata.insert("uid".into(), json!(format!("00000000-0000-0000-0000-00000000000{i}")));
        metadata.insert("resourceVersion".into(), json!("4711"));
        metadata.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        metadata.insert("managedFields".into(), json!([{"manager": "kubectl"}]));
    }
    // Strings YAML 1.1 readers would take for other types must survive unpack → kubectl.
    items[4]["metadata"]["annotations"] =
        json!({"example.com/enabled": "yes", "example.com/mode": "0755", "example.com/off": "off"});
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

/// A tool the interoperability tests run must be there (`scripts/install-deps` installs it).
fn assert_installed(tool: &str, probe: &str) {
    let found = std::process::Command::new(tool)
        .arg(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "`{tool}` is not installed: run scripts/install-deps");
}

fn stdout_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `inspect` judges each archived Certificate as cert-manager would right after a restore: a fresh one stays, one
/// past two thirds of its life is renewed, one whose Secret holds a certificate for other names is reissued.
#[test]
fn inspect_predicts_renewal_and_mismatch_while_the_others_stay() {
    let ws = Workspace::new();
    let ca = Ca::new("prediction CA").unwrap();
    let now = jiff::Timestamp::now();
    let day = jiff::SignedDuration::from_hours(24);
    let issuer = IssuerRef::cluster_issuer("ca");
    let fresh = Certificate::new("prod", "fresh", issuer.clone(), "fresh.example.com").duration("2160h");
    let due = Certificate::new("prod", "due", issuer.clone(), "due.example.com").duration("2160h");
    let renamed = Certificate::new("prod", "renamed", issuer, "new-name.example.com").duration("2160h");
    let other_names = Certificate::new(
        "prod",
        "renamed",
        IssuerRef::cluster_issuer("ca"),
        "old-name.example.com",
    );
    let mut items = vec![
        fixtures::namespace("prod"),
        fixtures::namespace("cert-manager"),
        ca.secret("cert-manager", "ca-key"),
        fixtures::ca_issuer(None, "ca", "ca-key"),
    ];
    for (crt, leaf_of, not_before) in [
        (&fresh, &fresh, now - day),
        (&due, &due, now - day * 80),
        (&renamed, &other_names, now - day),
    ] {
        let leaf = ca.issue(&leaf_of.leaf_spec(not_before, not_before + day * 90)).unwrap();
        items.push(crt.to_json());
        items.push(crt.issued_secret(&ca, &leaf));
    }
    let archive = ws.pack(
        "predict.cmar",
        &json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    );
    let manifest = serde_json::from_str::<Value>(&ws.inspect(&archive, &["-o", "json"])).unwrap();
    let outcomes: std::collections::BTreeMap<String, (String, String)> =
        manifest["reissuancePrediction"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["certificate"]["name"].as_str().unwrap().to_owned();
                let reason = p["reason"].as_str().unwrap_or_default().to_owned();
                (name, (p["outcome"].as_str().unwrap().to_owned(), reason))
            })
            .collect();
    assert_eq!(outcomes["fresh"], ("stays".to_owned(), String::new()), "{outcomes:?}");
    assert_eq!(
        outcomes["due"],
        ("reissued".to_owned(), "Renewing".to_owned()),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes["renamed"],
        ("reissued".to_owned(), "SecretMismatch".to_owned()),
        "{outcomes:?}"
    );

    let table = ws.inspect(&archive, &[]);
    assert!(
        table.contains("1 of 3 certificates stay, 2 will be reissued"),
        "{table}"
    );
    assert!(table.contains("Certificate/prod/due  Renewing:"), "{table}");
    assert!(table.contains("Certificate/prod/renamed  SecretMismatch:"), "{table}");
    assert!(!table.contains("Certificate/prod/fresh"), "{table}");
}

#[test]
fn keygen_writes_a_private_file_and_never_overwrites() {
    let ws = Workspace::new();
    let text = fs::read_to_string(ws.key()).unwrap();
    assert!(text.contains(&format!("# public key: {}", ws.recipient)));
    assert!(text.lines().last().unwrap().starts_with("AGE-SECRET-KEY-1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(ws.key()).unwrap().permissions().mode() & 0o777, 0o600);
    }
    cmarchive()
        .arg("keygen")
        .arg(ws.key())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("already exists"));
    assert_eq!(fs::read_to_string(ws.key()).unwrap(), text);

    let out = cmarchive().arg("keygen").output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("AGE-SECRET-KEY-1"));
    assert!(String::from_utf8(out.stderr).unwrap().starts_with("Public key: age1"));
}

#[test]
fn pack_inspect_unpack_round_trip_of_a_kubectl_list() {
    let ws = Workspace::new();
    let dump = kubectl_dump();
    let archive = ws.pack("backup.cmar", &dump.to_string());

    // inspect -o json is manifest.json plus the prediction; every entry is there, the Order is excluded.
    let manifest = serde_json::from_str::<Value>(&ws.inspect(&archive, &["-o", "json"])).unwrap();
    assert_eq!(manifest["format"], "cmarchive");
    let phases: Vec<&str> = manifest["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["namespaces", "secrets", "issuers", "certificates"]);
    assert!(
        manifest["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "Order")
    );
    assert_eq!(manifest["certificates"].as_array().unwrap().len(), 1);
    // Issued an hour ago for 60 days: it stays today ...
    let predicted = &manifest["reissuancePrediction"]["certificates"];
    assert_eq!(predicted.as_array().unwrap().len(), 1, "{predicted}");
    assert_eq!(predicted[0]["certificate"]["name"], "web");
    assert_eq!(predicted[0]["outcome"], "stays", "{predicted}");
    // ... and is due 50 days from now (past two thirds of its life).
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 50)).to_string();
    let inspect_later = |format: &str| ws.inspect(&archive, &["--at", &later, "-o", format]);
    let later_json: Value = serde_json::from_str(&inspect_later("json")).unwrap();
    let predicted = &later_json["reissuancePrediction"]["certificates"][0];
    assert_eq!(predicted["outcome"], "reissued", "{predicted}");
    assert_eq!(predicted["reason"], "Renewing", "{predicted}");
    let later_table = inspect_later("table");
    assert!(
        later_table.contains("0 of 1 certificates stay, 1 will be reissued")
            && later_table.contains("Certificate/prod/web  Renewing:"),
        "{later_table}"
    );

    // The human summary names phases and counts.
    let summary = ws.inspect(&archive, &[]);
    assert!(
        summary.contains("secrets") && summary.contains("excluded: 1"),
        "{summary}"
    );

    // unpack -o json: one List in phase order, sanitized.
    let list = stdout_json(
        cmarchive()
            .arg("unpack")
            .arg(&archive)
            .arg("-i")
            .arg(ws.key())
            .args(["-o", "json"]),
    );
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"Namespace"));
    assert_eq!(kinds.last(), Some(&"Certificate"));
    assert!(!kinds.contains(&"Order"));
    assert!(
        items
            .iter()
            .all(|i| i["metadata"].get("uid").is_none() && i["metadata"].get("managedFields").is_none())
    );
    let input_secret = dump["items"][5].clone();
    let output_secret = items.iter().find(|i| i["metadata"]["name"] == "web-tls").unwrap();
    assert_eq!(
        output_secret["data"], input_secret["data"],
        "key material must be untouched"
    );

    // unpack (YAML) parses back to exactly the same objects.
    let out = cmarchive()
        .arg("unpack")
        .arg(&archive)
        .arg("-i")
        .arg(ws.key())
        .output()
        .unwrap();
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).unwrap();
    let documents: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert_eq!(&documents, items);
    let certificate = documents.iter().find(|d| d["kind"] == "Certificate").unwrap();
    assert_eq!(certificate["metadata"]["annotations"]["example.com/enabled"], "yes");
    assert_eq!(certificate["metadata"]["annotations"]["example.com/mode"], "0755");

    // Packing the unpacked YAML again (multi-document YAML input) gives the same objects.
    let again = ws.pack("again.cmar", &yaml);
    let list2 = stdout_json(
        cmarchive()
            .arg("unpack")
            .arg(&again)
            .arg("-i")
            .arg(ws.key())
            .args(["-o", "json"]),
    );
    assert_eq!(list2["items"], list["items"]);
}

#[test]
fn unpack_into_a_folder() {
    let ws = Workspace::new();
    let archive = ws.pack("backup.cmar", &kubectl_dump().to_string());
    let out_dir = ws.path("restored");
    let unpack_command = |extra: &[&str]| {
        let mut command = cmarchive();
        command
            .arg("unpack")
            .arg(&archive)
            .arg("-i")
            .arg(ws.key())
            .arg("--dir")
            .arg(&out_dir)
            .args(extra);
        command
    };
    let unpack = |extra: &[&str]| unpack_command(extra).assert();
    unpack(&[]).success().stdout("");

    let secret = out_dir.join("03-secrets/core/secret/prod/web-tls.yaml");
    let certificate = out_dir.join("05-certificates/cert-manager.io/certificate/prod/web.yaml");
    assert!(secret.is_file() && certificate.is_file());
    assert!(out_dir.join("manifest.json").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&out_dir), 0o700);
        assert_eq!(mode(secret.parent().unwrap()), 0o700);
        // Overwriting resets a mode someone widened meanwhile: truncation alone would keep it.
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
        unpack(&["--force"]).success();
        assert_eq!(mode(&secret), 0o600);
    }

    // A folder with files in it is refused unless --force.
    unpack(&[])
        .code(1)
        .stderr(predicates::str::contains("not empty"))
        .stderr(predicates::str::contains("--force"));
    unpack(&["--force"]).success();

    // With --force, a link at a Secret's path (or on its way) is refused, never written through; a FIFO there
    // does not make the command wait for a reader.
    #[cfg(unix)]
    {
        let outside = ws.path("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), "untouched").unwrap();
        fs::remove_file(&secret).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), &secret).unwrap();
        unpack(&["--force"])
            .code(1)
            .stderr(predicates::str::contains("web-tls.yaml: is a symbolic link"))
            .stderr(predicates::str::contains("hint: remove it"));
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "untouched");
        fs::remove_file(&secret).unwrap();
        let phase = out_dir.join("05-certificates");
        fs::remove_dir_all(&phase).unwrap();
        std::os::unix::fs::symlink(&outside, &phase).unwrap();
        unpack(&["--force"])
            .code(1)
            .stderr(predicates::str::contains("05-certificates: is a symbolic link"));
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "nothing written outside");
        fs::remove_file(&phase).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&secret)
                .status()
                .unwrap()
                .success()
        );
        unpack_command(&["--force"])
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .code(1)
            .stderr(predicates::str::contains("web-tls.yaml: is a FIFO"));
    }
}

#[test]
fn pack_from_a_folder_and_from_stdin_to_stdout() {
    let ws = Workspace::new();
    let dump = kubectl_dump();
    let folder = ws.path("dump");
    fs::create_dir_all(folder.join("nested")).unwrap();
    let items = dump["items"].as_array().unwrap();
    fs::write(
        folder.join("a.json"),
        json!({"apiVersion": "v1", "kind": "List", "items": items[..3]}).to_string(),
    )
    .unwrap();
    let rest: Vec<String> = items[3..].iter().map(|i| serde_saphyr::to_string(i).unwrap()).collect();
    fs::write(folder.join("nested/b.yaml"), rest.join("---\n")).unwrap();
    fs::write(folder.join("notes.txt"), "ignored").unwrap();
    let from_dir = ws.path("dir.cmar");
    cmarchive()
        .arg("pack")
        .arg(&from_dir)
        .arg("--from-dir")
        .arg(&folder)
        .args(["-r", &ws.recipient])
        .assert()
        .success();

    // stdin → stdout, armored, then unpack from stdin.
    let out = cmarchive()
        .args(["pack", "-", "--from-file", "-", "-a", "-r", &ws.recipient])
        .write_stdin(dump.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    let from_stdin = stdout_json(
        cmarchive()
            .args(["unpack", "-", "-o", "json", "-i"])
            .arg(ws.key())
            .write_stdin(out.stdout),
    );
    let from_folder = stdout_json(
        cmarchive()
            .arg("unpack")
            .arg(&from_dir)
            .arg("-i")
            .arg(ws.key())
            .args(["-o", "json"]),
    );
    assert_eq!(from_stdin["items"], from_folder["items"]);
}

/// `restore --from-file/--from-dir` up to the point where it would contact the cluster: the kubeconfig named does
/// not exist, so an error about it proves that planning and the reissuance gate let the restore through, and any
/// other error that it stopped before contacting anything.
#[test]
fn restore_from_plain_objects_is_planned_and_gated_before_any_cluster_is_contacted() {
    let ws = Workspace::new();
    let kubeconfig = ws.path("no-such-kubeconfig");
    let restore = |args: &[&std::ffi::OsStr], stdin: Option<Vec<u8>>| {
        let mut cmd = cmarchive();
        cmd.arg("restore").args(args).arg("--kubeconfig").arg(&kubeconfig);
        if let Some(stdin) = stdin {
            cmd.write_stdin(stdin);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let reached_the_cluster =
        |stderr: &str| stderr.contains("cannot read kubeconfig") && stderr.contains("no-such-kubeconfig");

    // The guide's backup: `kubectl get -A -o json issuer,clusterissuer,cert`, no Secrets.
    let dump = kubectl_dump();
    let guide: Vec<&Value> = dump["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| ["Issuer", "ClusterIssuer", "Certificate"].contains(&o["kind"].as_str().unwrap()))
        .collect();
    let backup = ws.write(
        "backup.json",
        &json!({"apiVersion": "v1", "kind": "List", "items": guide}).to_string(),
    );
    let (code, stderr) = restore(&["--from-file".as_ref(), backup.as_os_str()], None);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("prediction: cert-manager will reissue Certificate/prod/web (DoesNotExist:"),
        "the Certificate is named with cert-manager's reason: {stderr}"
    );
    assert!(
        stderr.contains("1 Certificate(s) would be reissued by cert-manager") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-reissue"), "the way on is named: {stderr}");
    assert!(
        !reached_the_cluster(&stderr),
        "refused before contacting the cluster: {stderr}"
    );
    let (code, stderr) = restore(
        &["--from-file".as_ref(), backup.as_os_str(), "--allow-reissue".as_ref()],
        None,
    );
    assert!(
        code == Some(1) && reached_the_cluster(&stderr),
        "--allow-reissue goes ahead: {stderr}"
    );
    let (code, stderr) = restore(
        &["--from-file".as_ref(), backup.as_os_str(), "--dry-run".as_ref()],
        None,
    );
    assert!(
        code == Some(1) && reached_the_cluster(&stderr) && stderr.contains("dry run: a restore would stop here"),
        "a dry run reports the prediction and goes on checking: {stderr}"
    );

    // An archive is gated the same way: packed without the leaf's Secret, it is refused before the cluster.
    let mut without_tls = dump.clone();
    without_tls["items"]
        .as_array_mut()
        .unwrap()
        .retain(|o| o["metadata"]["name"] != "web-tls");
    let broken = ws.pack("without-tls.cmar", &without_tls.to_string());
    let key = ws.key();
    let (code, stderr) = restore(&[broken.as_os_str(), "-i".as_ref(), key.as_os_str()], None);
    assert!(
        code == Some(1) && stderr.contains("1 Certificate(s) would be reissued") && !reached_the_cluster(&stderr),
        "{stderr}"
    );

    // What `unpack` prints, YAML on stdin or a List from a file, and what `unpack --dir` writes: every Secret is
    // there, so nothing is predicted and nothing stops the restore.
    let archive = ws.pack("full.cmar", &dump.to_string());
    let unpacked = |format: &str| {
        let out = cmarchive()
            .arg("unpack")
            .arg(&archive)
            .arg("-i")
            .arg(ws.key())
            .args(["-o", format])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let (code, stderr) = restore(&["--from-file".as_ref(), "-".as_ref()], Some(unpacked("yaml")));
    assert!(code == Some(1) && reached_the_cluster(&stderr), "{stderr}");
    assert!(
        !stderr.contains("prediction:") && !stderr.contains("warning:"),
        "{stderr}"
    );
    let list = ws.path("unpacked.json");
    fs::write(&list, unpacked("json")).unwrap();
    let folder = ws.path("unpacked");
    cmarchive()
        .arg("unpack")
        .arg(&archive)
        .arg("-i")
        .arg(ws.key())
        .arg("--dir")
        .arg(&folder)
        .assert()
        .success();
    for args in [
        ["--from-file", list.to_str().unwrap()],
        ["--from-dir", folder.to_str().unwrap()],
    ] {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let (code, stderr) = restore(&args, None);
        assert!(code == Some(1) && reached_the_cluster(&stderr), "{args:?}: {stderr}");
        assert!(!stderr.contains("prediction:"), "{stderr}");
    }

    // Bad input: one line naming the file, nothing contacted.
    let empty = ws.write("empty.json", "\n");
    let (code, stderr) = restore(&["--from-file".as_ref(), empty.as_os_str()], None);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("empty.json: the input is empty") && !stderr.contains("--allow-empty"),
        "{stderr}"
    );
    let orders = ws.write(
        "orders.json",
        &json!({"apiVersion": "acme.cert-manager.io/v1", "kind": "Order",
                "metadata": {"namespace": "prod", "name": "web-1"}, "spec": {}})
        .to_string(),
    );
    let (code, stderr) = restore(&["--from-file".as_ref(), orders.as_os_str()], None);
    assert!(
        code == Some(1) && stderr.contains("orders.json: nothing to restore"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("cmarchive: error")).count(),
        1,
        "{stderr}"
    );
    assert!(!reached_the_cluster(&stderr));

    // Plain objects need no keys, and an archive is not mixed with them.
    for args in [
        vec!["--from-file", "backup.json", "-i", "key.txt"],
        vec!["a.cmar", "--from-file", "backup.json"],
        vec![],
    ] {
        let out = cmarchive().arg("restore").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("--from-file"), "{args:?}: {stderr}");
    }
}

#[test]
fn keys_from_the_environment() {
    let ws = Workspace::new();
    let input = ws.write("dump.json", &kubectl_dump().to_string());
    let archive = ws.path("env.cmar");
    cmarchive()
        .arg("pack")
        .arg(&archive)
        .arg("--from-file")
        .arg(&input)
        .env(
            "CMARCHIVE_AGE_RECIPIENTS",
            format!("{}, {}", ws.recipient, Workspace::new().recipient),
        )
        .assert()
        .success();
    cmarchive()
        .arg("inspect")
        .arg(&archive)
        .env("CMARCHIVE_AGE_KEY_FILE", ws.key())
        .assert()
        .success();
    let key = fs::read_to_string(ws.key()).unwrap();
    cmarchive()
        .arg("inspect")
        .arg(&archive)
        .env("CMARCHIVE_AGE_KEY", key)
        .assert()
        .success();
}

#[test]
fn recipients_file_and_ssh_recipient() {
    let ws = Workspace::new();
    let ssh_pub = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../archive/tests/testkeys/ed25519.pub"
    ))
    .unwrap();
    let recipients = ws.write("team.txt", &format!("# the team\n{}\n{}", ws.recipient, ssh_pub));
    let input = ws.write("dump.json", &kubectl_dump().to_string());
    let archive = ws.path("team.cmar");
    cmarchive()
        .arg("pack")
        .arg(&archive)
        .arg("--from-file")
        .arg(&input)
        .arg("-R")
        .arg(&recipients)
        .assert()
        .success();
    cmarchive()
        .arg("inspect")
        .arg(&archive)
        .args([
            "-i",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../archive/tests/testkeys/ed25519"),
        ])
        .assert()
        .success();
}

/// Runs a reading command on a damaged archive: exit 1, one error line naming the file, nothing on stdout.
fn assert_refused(ws: &Workspace, archive: &Path, key: &Path, expect: &str) {
    for command in [
        &["unpack"][..],
        &["unpack", "-o", "json"],
        &["inspect"],
        &["inspect", "-o", "json"],
    ] {
        let out = cmarchive()
            .args(command)
            .arg(archive)
            .arg("-i")
            .arg(key)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        assert!(
            out.stdout.is_empty(),
            "{command:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{command:?}: {stderr}");
        assert!(stderr.contains(expect), "{command:?}: {stderr}");
        assert!(stderr.contains(&archive.display().to_string()), "{stderr}");
    }
    let dir = ws.path("never");
    let out = cmarchive()
        .arg("unpack")
        .arg(archive)
        .arg("-i")
        .arg(key)
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.exists(), "nothing may be written from a damaged archive");
}

#[test]
fn wrong_key_truncated_file_and_flipped_byte_are_refused() {
    let ws = Workspace::new();
    let archive = ws.pack("backup.cmar", &kubectl_dump().to_string());
    let bytes = fs::read(&archive).unwrap();

    let other = Workspace::new();
    assert_refused(&ws, &archive, &other.key(), "no identity matched");

    let truncated = ws.path("truncated.cmar");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&ws, &truncated, &ws.key(), "truncated");

    let flipped = ws.path("flipped.cmar");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x04;
    fs::write(&flipped, &damaged).unwrap();
    assert_refused(&ws, &flipped, &ws.key(), "authentication failed");
}

#[test]
fn helpful_errors() {
    let ws = Workspace::new();
    let archive = ws.pack("backup.cmar", &kubectl_dump().to_string());
    // age habit on the wrong command.
    cmarchive()
        .arg("unpack")
        .arg(&archive)
        .args(["-r", &ws.recipient])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("did you mean -i"));
    // No recipients at all.
    let input = ws.write("dump.json", "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[]}");
    cmarchive()
        .arg("pack")
        .arg(ws.path("x.cmar"))
        .arg("--from-file")
        .arg(&input)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no recipients"))
        .stderr(predicates::str::contains("hint:"));
    assert!(!ws.path("x.cmar").exists());
    // An existing archive is not overwritten without --force.
    cmarchive()
        .arg("pack")
        .arg(&archive)
        .arg("--from-file")
        .arg(&input)
        .args(["-r", &ws.recipient])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("--force"));
    // The archive is private to its owner from the start, and no temporary file is left beside it.
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(fs::metadata(&archive).unwrap().permissions().mode() & 0o777, 0o600);
        let dir = archive.parent().unwrap();
        let left: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
    // No key for a key-encrypted archive.
    cmarchive()
        .arg("inspect")
        .arg(&archive)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("-i"));
    // Of several broken files in a folder (parsed in parallel), the first in file order is named, every time.
    let folder = ws.path("broken");
    fs::create_dir_all(&folder).unwrap();
    for name in ["a.json", "b.json", "c.json", "d.json"] {
        fs::write(folder.join(name), "{\"kind\": ").unwrap();
    }
    for _ in 0..3 {
        cmarchive()
            .arg("pack")
            .arg(ws.path("y.cmar"))
            .arg("--from-dir")
            .arg(&folder)
            .args(["-r", &ws.recipient])
            .assert()
            .code(1)
            .stderr(predicates::str::contains("a.json"))
            .stderr(predicates::str::contains("invalid JSON"));
    }
    assert!(!ws.path("y.cmar").exists());
}

/// A key given to the wrong flag, or instead of its file, is named for what it is; a secret key is never echoed
/// (a failed open would print the "file name") and nothing is written.
#[test]
fn misplaced_keys_are_named_and_never_echoed() {
    let ws = Workspace::new();
    let archive = ws.pack("backup.cmar", &kubectl_dump().to_string());
    let secret = fs::read_to_string(ws.key())
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned();
    let body = &secret["AGE-SECRET-KEY-1".len()..][..10];
    let recipients = ws.write("team.txt", &format!("# the team\n{}\n", ws.recipient));
    let input = ws.write("dump.json", &kubectl_dump().to_string());
    let out = ws.path("new.cmar");
    let key = ws.key();
    // The key file's whole text given as a value (`-i "$(cat key.txt)"`: comments first), and the key in lower
    // case (age accepts it): both still secret keys.
    let pasted = fs::read_to_string(&key).unwrap();
    let lower = secret.to_lowercase();
    let cases: [(&str, &str, &std::ffi::OsStr, &str); 10] = [
        (
            "unpack",
            "-i",
            ws.recipient.as_ref(),
            "-i takes a secret key file, and the value given is a public key",
        ),
        (
            "unpack",
            "-i",
            secret.as_ref(),
            "-i takes a key file, not the key itself",
        ),
        (
            "inspect",
            "-i",
            recipients.as_os_str(),
            "team.txt: line 2 is a public key (a recipient)",
        ),
        ("pack", "-r", secret.as_ref(), "a secret key was given as a recipient"),
        (
            "pack",
            "-R",
            key.as_os_str(),
            "key.txt: line 3 is a secret key, not a recipient",
        ),
        (
            "pack",
            "-R",
            ws.recipient.as_ref(),
            "-R takes a file of recipients; to encrypt to one given on the command line, use -r",
        ),
        (
            "unpack",
            "-i",
            pasted.as_ref(),
            "-i takes a key file, not the key itself",
        ),
        ("pack", "-r", pasted.as_ref(), "a secret key was given as a recipient"),
        ("pack", "-r", lower.as_ref(), "a secret key was given as a recipient"),
        (
            "pack",
            "-R",
            lower.as_ref(),
            "-R takes a file of recipients, and the value given is a secret key",
        ),
    ];
    for (command, flag, value, expected) in cases {
        let mut cmd = cmarchive();
        if command == "pack" {
            cmd.arg("pack").arg(&out).arg("--from-file").arg(&input);
        } else {
            cmd.arg(command).arg(&archive);
        }
        let run = cmd.arg(flag).arg(value).output().unwrap();
        let what = format!("{command} {flag}");
        let stderr = String::from_utf8(run.stderr).unwrap();
        assert_eq!(run.status.code(), Some(1), "{what}: {stderr}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
        let echoed = stderr.to_ascii_uppercase().contains(body);
        assert!(!echoed, "{what} echoed the secret key: {stderr}");
        assert!(run.stdout.is_empty(), "{what} printed something");
        assert!(!out.exists(), "{what} wrote an archive");
    }
    // The same mistake in the environment: the key file's text where its name belongs.
    let run = cmarchive()
        .arg("unpack")
        .arg(&archive)
        .env("CMARCHIVE_AGE_KEY_FILE", &pasted)
        .output()
        .unwrap();
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CMARCHIVE_AGE_KEY_FILE takes a key file, not the key itself"),
        "{stderr}"
    );
    assert!(
        !stderr.to_ascii_uppercase().contains(body),
        "echoed the secret key: {stderr}"
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn completions_and_kubectl_plugin_name() {
    cmarchive()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicates::str::contains("cmarchive"));
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-cmarchive");
    // A link, not a copy: a copy just written can be "busy" when run while another test forks a child, which
    // holds the copy's file descriptor until it execs.
    #[cfg(unix)]
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("cmarchive"), &plugin).unwrap();
    #[cfg(not(unix))]
    fs::copy(assert_cmd::cargo::cargo_bin("cmarchive"), &plugin).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&plugin).args(args).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
        (out.status.code(), text)
    };
    let (code, help) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(help.contains("Usage: kubectl cmarchive [OPTIONS] <COMMAND>"), "{help}");
    let (code, help) = run(&["pack", "--help"]);
    assert_eq!(code, Some(0));
    assert!(help.contains("Usage: kubectl cmarchive pack [OPTIONS]"), "{help}");
    assert!(
        help.contains("\n  kubectl cmarchive pack backup.cmar -r age1…"),
        "examples: {help}"
    );
    assert!(!help.contains("  cmarchive pack"), "examples: {help}");
    let (code, error) = run(&["pack"]);
    assert_eq!(code, Some(1));
    assert!(error.contains("Usage: kubectl cmarchive pack <ARCHIVE>"), "{error}");
}

/// `--version` names the commit the binary was built from: the one the build was told, else this checkout's.
#[test]
fn version_names_the_commit() {
    let version = cmarchive().arg("--version").output().unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    let commit = option_env!("CMARCHIVE_BUILD_COMMIT")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let head = std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("git: the tests run in a clone");
            String::from_utf8(head.stdout).unwrap().trim().to_owned()
        });
    assert_eq!(
        version.trim(),
        format!("cmarchive {} (commit {})", env!("CARGO_PKG_VERSION"), &commit[..12])
    );
}

/// The man pages come from the same definition as --help: one per command, each naming its flags.
#[test]
fn man_pages() {
    let page = cmarchive().arg("man").output().unwrap();
    assert!(page.status.success());
    let page = String::from_utf8(page.stdout).unwrap();
    assert!(page.starts_with(".ie") && page.contains(".SH SUBCOMMANDS"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    cmarchive().arg("man").arg(&pages).assert().success();
    let pack = fs::read_to_string(pages.join("cmarchive-pack.1")).unwrap();
    assert!(pack.contains("\\-\\-include\\-crds"), "{pack}");
    for command in [
        "keygen",
        "pack",
        "unpack",
        "inspect",
        "restore",
        "verify",
        "completions",
        "man",
    ] {
        assert!(pages.join(format!("cmarchive-{command}.1")).exists(), "{command}");
    }
}

/// The promise of docs/FORMAT.md: an archive opens with stock tools, manifest.json first.
#[test]
fn opens_by_hand_with_age_zstd_and_tar() {
    for tool in ["age", "zstd", "tar"] {
        assert_installed(tool, "--version");
    }
    let ws = Workspace::new();
    let archive = ws.pack("backup.cmar", &kubectl_dump().to_string());
    let shell = |pipeline: String| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&pipeline)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{pipeline}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let listing = shell(format!(
        "age -d -i '{}' '{}' | zstd -d | tar t",
        ws.key().display(),
        archive.display()
    ));
    let listing = String::from_utf8(listing).unwrap();
    assert_eq!(listing.lines().next(), Some("manifest.json"), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l == "objects/03-secrets/core/secret/prod/web-tls.json"),
        "{listing}"
    );

    // inspect -o json prints manifest.json as stored, plus only the prediction.
    let stored = shell(format!(
        "age -d -i '{}' '{}' | zstd -d | tar xO manifest.json",
        ws.key().display(),
        archive.display()
    ));
    let printed = cmarchive()
        .arg("inspect")
        .arg(&archive)
        .arg("-i")
        .arg(ws.key())
        .args(["-o", "json"])
        .output()
        .unwrap()
        .stdout;
    let mut printed: Value = serde_json::from_slice(&printed).unwrap();
    let prediction = printed.as_object_mut().unwrap().remove("reissuancePrediction");
    assert!(prediction.is_some_and(|p| p["certificates"].is_array()));
    assert_eq!(printed, serde_json::from_slice::<Value>(&stored).unwrap());
}

#[test]
fn passphrase_from_a_file_and_from_the_environment() {
    let ws = Workspace::new();
    let dump = kubectl_dump().to_string();
    let input = ws.write("dump.json", &dump);
    let passphrase = ws.write("pass.txt", "correct horse battery staple\n");
    let archive = ws.pack_with(
        "pass.cmar",
        &dump,
        &["--passphrase-file".as_ref(), passphrase.as_os_str()],
    );
    cmarchive()
        .arg("inspect")
        .arg(&archive)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .assert()
        .success();
    cmarchive()
        .arg("inspect")
        .arg(&archive)
        .env("CMARCHIVE_PASSPHRASE", "correct horse battery staple")
        .assert()
        .success();
    let out = cmarchive()
        .arg("unpack")
        .arg(&archive)
        .env("CMARCHIVE_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8(out.stderr).unwrap().contains("wrong passphrase"));
    // Without a passphrase and without a terminal to ask on: say how to pass one.
    cmarchive()
        .arg("inspect")
        .arg(&archive)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("--passphrase-file"));
    // A passphrase does not mix with keys.
    cmarchive()
        .arg("pack")
        .arg(ws.path("mixed.cmar"))
        .arg("--from-file")
        .arg(&input)
        .arg("-p")
        .args(["-r", &ws.recipient])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("cannot be combined"));
    // The passphrase typed where its file belongs is not a file: said, and never echoed, for both directions.
    let typed = [
        ("pack", "correct horse battery staple".to_owned()),
        ("unpack", "correct horse battery staple".to_owned()),
        // Longer than a file name may be, and "under" a file: neither is a file, and both fail differently.
        ("unpack", "horse".repeat(60)),
        ("unpack", format!("{}/horse battery", input.display())),
    ];
    for (command, value) in typed {
        let mut cmd = cmarchive();
        if command == "pack" {
            cmd.arg("pack")
                .arg(ws.path("typed.cmar"))
                .arg("--from-file")
                .arg(&input);
        } else {
            cmd.arg("unpack").arg(&archive);
        }
        let run = cmd.arg("--passphrase-file").arg(&value).output().unwrap();
        let stderr = String::from_utf8(run.stderr).unwrap();
        assert_eq!(run.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("--passphrase-file names no readable file"),
            "{command}: {stderr}"
        );
        assert!(!stderr.contains("horse"), "{command} echoed the passphrase: {stderr}");
        assert!(run.stdout.is_empty(), "{command} printed something");
    }
    assert!(!ws.path("typed.cmar").exists());
}

/// An archive written through the library with whatever strings a hostile writer chooses (age gives secrecy, not
/// authorship: anyone with the public key can write one).
fn crafted_archive(ws: &Workspace, name: &str, plan: &cmarchive_archive::plan::Plan) -> PathBuf {
    let mut recipients = cmarchive_archive::Recipients::new(cmarchive_archive::Interaction::none());
    recipients.add(&ws.recipient).unwrap();
    let meta = cmarchive_archive::ManifestMeta {
        tool_version: "0.1.0\u{1b}[2J".into(),
        created: jiff::Timestamp::UNIX_EPOCH,
        source: cmarchive_archive::manifest::Source {
            kind: "file".into(),
            cluster_resource_namespace: "cert-manager".into(),
            ..Default::default()
        },
        options: Default::default(),
    };
    let mut bytes = Vec::new();
    cmarchive_archive::write_archive(&mut bytes, &recipients, &Default::default(), meta, plan).unwrap();
    let path = ws.path(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Strings from an archive reach the terminal with their control characters escaped: no escape sequence clears
/// the screen, no line feed draws a line that cmarchive never printed.
#[test]
fn archive_strings_are_shown_escaped() {
    use cmarchive_archive::manifest::{Exclusion, PhaseName, Warning};
    use cmarchive_archive::object::ObjectKey;
    use cmarchive_archive::plan::{Plan, PlannedObject, PlannedPhase};
    let ws = Workspace::new();
    let evil = "evil\u{1b}[2J\u{1b}]0;owned\u{7}";
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": evil}});
    let plan = Plan {
        phases: vec![PlannedPhase {
            name: PhaseName::Namespaces,
            objects: vec![PlannedObject::new(&namespace, vec!["held\u{1b}[31m".into()]).unwrap()],
        }],
        excluded: vec![Exclusion {
            key: ObjectKey::new("v1".into(), "Secret".into(), Some("ns".into()), "x".into()),
            reason: "skipped\nall checks passed\u{9b}2J".into(),
        }],
        warnings: vec![Warning {
            code: "Code\u{1b}[1m".into(),
            object: Some(ObjectKey::of(&namespace).unwrap()),
            message: "look\r\u{1b}[Kall checks passed".into(),
        }],
        certificates: Vec::new(),
    };
    let archive = crafted_archive(&ws, "evil.cmar", &plan);
    let table = ws.inspect(&archive, &[]);
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{9b}') && !table.contains('\r'),
        "{table:?}"
    );
    assert!(table.contains("evil\\u{1b}[2J"), "{table}");
    assert!(table.contains("skipped\\nall checks passed"), "{table}");
    assert!(!table.lines().any(|l| l.starts_with("all checks passed")), "{table}");
    // The machine-readable forms keep the data as it is (JSON escapes it).
    let json: Value = serde_json::from_str(&ws.inspect(&archive, &["-o", "json"])).unwrap();
    assert_eq!(json["warnings"][0]["code"], "Code\u{1b}[1m");
}

/// Errors in a dump name the file, line and column, and never quote it: the lines around a YAML error are
/// usually Secret data, and stderr ends up in CI logs. A YAML bomb is refused in one short line.
#[test]
fn input_errors_name_the_place_and_never_quote_the_input() {
    let ws = Workspace::new();
    let pack = |name: &str, contents: &str| {
        let input = ws.write(name, contents);
        let out = cmarchive()
            .arg("pack")
            .arg(ws.path("x.cmar"))
            .arg("--from-file")
            .arg(&input)
            .args(["-r", &ws.recipient])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    };
    let yaml =
        "apiVersion: v1\nkind: Secret\ndata:\n  tls.key: SECRETVALUE123\n  bad: [unclosed\nmetadata:\n  name: x\n";
    let stderr = pack("broken.yaml", yaml);
    assert!(!stderr.contains("SECRETVALUE"), "{stderr}");
    assert!(
        stderr.contains("broken.yaml: invalid YAML at line 6 column 9"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Leading blank lines count: the place is the file's, not the parser's.
    let stderr = pack("late.yaml", &format!("\n\n{yaml}"));
    assert!(stderr.contains("at line 8 column 9"), "{stderr}");

    let mut bomb = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (name, previous) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        let alias = format!("*{previous},").repeat(9);
        bomb.push_str(&format!("{name}: &{name} [{}]\n", alias.trim_end_matches(',')));
    }
    let stderr = pack("bomb.yaml", &bomb);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.len() < 300 && stderr.contains("billion laughs"), "{stderr}");

    let json = "{\"kind\": \"List\", \"items\": [\n  {\"apiVersion\": \"v1\", \"kind\": \"Secret\",\n   \"data\": {\"k\": \"SECRETVALUE\"}, \"n\": 1e999}]}";
    let stderr = pack("broken.json", json);
    assert!(!stderr.contains("SECRETVALUE"), "{stderr}");
    assert!(
        stderr.contains("broken.json: invalid JSON in item 0 of the List at line 3 column 43: number out of range"),
        "{stderr}"
    );
}

/// A 0-byte dump is an error (what a failed `kubectl get > dump.json` leaves) unless asked for; a Secret whose
/// data is not base64 is packed with a warning, or refused with --strict.
#[test]
fn empty_dumps_and_undecodable_secret_data() {
    let ws = Workspace::new();
    let empty = ws.write("empty.json", "\n");
    let pack = |extra: &[&str], input: &Path| {
        cmarchive()
            .arg("pack")
            .arg(ws.path("out.cmar"))
            .arg("--from-file")
            .arg(input)
            .args(["-r", &ws.recipient, "--force"])
            .args(extra)
            .assert()
    };
    pack(&[], &empty)
        .code(1)
        .stderr(predicates::str::contains("empty.json: the input is empty"))
        .stderr(predicates::str::contains("--allow-empty"));
    pack(&["--allow-empty"], &empty).success();

    let mut dump = kubectl_dump();
    dump["items"][5]["data"]["extra"] = json!("not base64!!");
    let input = ws.write("dump.json", &dump.to_string());
    pack(&[], &input).success().stderr(predicates::str::contains(
        "warning: Secret/prod/web-tls: data \"extra\" is not base64",
    ));
    let manifest = stdout_json(
        cmarchive()
            .arg("inspect")
            .arg(ws.path("out.cmar"))
            .arg("-i")
            .arg(ws.key())
            .args(["-o", "json"]),
    );
    let codes: Vec<&Value> = manifest["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["code"])
        .collect();
    assert!(codes.contains(&&json!("InvalidSecretData")), "{codes:?}");
    pack(&["--strict"], &input).code(1).stderr(predicates::str::contains(
        "--strict: 1 Secret(s) with data that is not base64",
    ));
}

/// `unpack | head`: a reader that goes away ends the command quietly with exit 0, as with other tools.
#[test]
fn a_closed_stdout_ends_unpack_quietly() {
    let ws = Workspace::new();
    let archive = ws.pack("backup.cmar", &kubectl_dump().to_string());
    for format in ["yaml", "json"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("cmarchive"))
            .arg("unpack")
            .arg(&archive)
            .arg("-i")
            .arg(ws.key())
            .args(["-o", format])
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

const SIGNING_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../archive/tests/testkeys/ed25519");
const SIGNING_PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../archive/tests/testkeys/ed25519.pub");

/// `pack --sign` writes a detached sshsig signature that `ssh-keygen -Y verify` accepts, and one `ssh-keygen -Y sign`
/// makes is accepted too; with `--signers`, an unsigned archive, one signed by a key the file does not allow, or one
/// changed after signing is refused before anything is printed, written or applied.
#[test]
fn signed_archives() {
    assert_installed("ssh-keygen", "-?");
    let ws = Workspace::new();
    // ssh-keygen refuses keys others may read.
    let key = ws.path("signing_key");
    fs::copy(SIGNING_KEY, &key).unwrap();
    #[cfg(unix)]
    fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let public = fs::read_to_string(SIGNING_PUBLIC).unwrap();
    let signers = ws.write(
        "allowed_signers",
        &format!("alice@example.com namespaces=\"cmarchive\" {public}"),
    );
    let input = ws.write("dump.json", &kubectl_dump().to_string());
    let archive = ws.path("backup.cmar");
    let pack = |archive: &Path, key: &str| {
        cmarchive()
            .arg("pack")
            .arg(archive)
            .arg("--from-file")
            .arg(&input)
            .args(["-r", &ws.recipient, "--force", "--sign", key])
            .assert()
            .success();
    };
    pack(&archive, key.to_str().unwrap());
    let signature = ws.path("backup.cmar.sig");
    assert!(
        fs::read_to_string(&signature)
            .unwrap()
            .starts_with("-----BEGIN SSH SIGNATURE-----")
    );

    let ssh_verify = |archive: &Path, signature: &Path| {
        std::process::Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", "cmarchive", "-I", "alice@example.com", "-f"])
            .arg(&signers)
            .arg("-s")
            .arg(signature)
            .stdin(fs::File::open(archive).unwrap())
            .output()
            .unwrap()
    };
    let verified = ssh_verify(&archive, &signature);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let read = |command: &[&str], archive: &Path| {
        cmarchive()
            .args(command)
            .arg(archive)
            .arg("-i")
            .arg(ws.key())
            .arg("--signers")
            .arg(&signers)
            .output()
            .unwrap()
    };
    for command in [&["inspect"][..], &["unpack", "-o", "json"]] {
        let out = read(command, &archive);
        assert!(
            out.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // ssh-keygen's own signature of the same file.
    fs::remove_file(&signature).unwrap();
    let signed = std::process::Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "cmarchive", "-f"])
        .arg(&key)
        .arg(&archive)
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    assert!(read(&["inspect"], &archive).status.success());

    let refused = |archive: &Path, expect: &str| {
        for command in [&["inspect"][..], &["unpack"], &["unpack", "-o", "json"]] {
            let out = read(command, archive);
            assert_eq!(out.status.code(), Some(1), "{command:?}");
            assert!(out.stdout.is_empty(), "{command:?} printed something");
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert!(stderr.contains(expect), "{command:?}: {stderr}");
        }
        let dir = ws.path("never");
        let out = cmarchive()
            .arg("unpack")
            .arg(archive)
            .arg("-i")
            .arg(ws.key())
            .arg("--signers")
            .arg(&signers)
            .arg("--dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            !dir.exists(),
            "nothing may be written from an archive whose signature failed"
        );
        // restore stops before it looks for a cluster.
        let out = cmarchive()
            .arg("restore")
            .arg(archive)
            .arg("-i")
            .arg(ws.key())
            .arg("--signers")
            .arg(&signers)
            .arg("--kubeconfig")
            .arg(ws.path("no-such-kubeconfig"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(expect), "restore");
    };
    // Unsigned.
    let unsigned = ws.path("unsigned.cmar");
    fs::copy(&archive, &unsigned).unwrap();
    refused(&unsigned, "unsigned.cmar is not signed");
    // Signed by a key the file does not allow.
    let other_key = ws.path("other_key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .unwrap();
    assert!(made.success());
    let other = ws.path("other.cmar");
    pack(&other, other_key.to_str().unwrap());
    refused(&other, "which the allowed signers do not allow");
    // Changed after signing (here: another archive under the signed one's signature).
    let swapped = ws.path("swapped.cmar");
    fs::copy(&other, &swapped).unwrap();
    fs::copy(ws.path("backup.cmar.sig"), ws.path("swapped.cmar.sig")).unwrap();
    refused(&swapped, "does not match the archive");
    let not_verified = ssh_verify(&swapped, &ws.path("swapped.cmar.sig"));
    assert!(!not_verified.status.success());
}

/// A passphrase archive whose scrypt work factor needs more memory than the process may have ends with a message,
/// not an abort inside scrypt (a container's memory limit, here `ulimit -v`).
#[cfg(unix)]
#[test]
fn scrypt_beyond_the_memory_limit_is_a_message_not_an_abort() {
    let ws = Workspace::new();
    let passphrase = ws.write("pw", "correct horse\n");
    let dump = kubectl_dump().to_string();
    let archive = ws.pack_with("p.cmar", &dump, &["--passphrase-file".as_ref(), passphrase.as_os_str()]);
    // The same archive asking for 2^20 (1G): within the cap, beyond the limit below. Its header MAC no longer
    // matches, which would only show after the work.
    let bytes = fs::read(&archive).unwrap();
    let end = bytes.windows(4).position(|w| w == b"\n---").unwrap();
    let header = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let stanza = header.lines().find(|l| l.starts_with("-> scrypt ")).unwrap();
    let (start, _) = stanza.rsplit_once(' ').unwrap();
    let asking = header.replacen(stanza, &format!("{start} 20"), 1);
    let mut crafted = asking.into_bytes();
    crafted.extend_from_slice(&bytes[end..]);
    fs::write(&archive, crafted).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 700000 && exec \"$0\" inspect \"$1\" --passphrase-file \"$2\"")
        .arg(assert_cmd::cargo::cargo_bin("cmarchive"))
        .arg(&archive)
        .arg(&passphrase)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs 1G of memory for scrypt"), "{stderr}");
}

/// SIGINT and SIGTERM while `pack` writes its archive leave nothing behind: no archive, no temporary file, and
/// the shell's exit code. The moment is chosen by watching: an age plugin on PATH that announces it was started
/// (which happens while the archive is being written, into its temporary file) and then never answers.
#[test]
fn an_interrupted_pack_leaves_no_file() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::{Duration, Instant};
    let ws = Workspace::new();
    let input = ws.write("dump.json", &kubectl_dump().to_string());
    let bin = ws.path("bin");
    fs::create_dir(&bin).unwrap();
    let plugin = bin.join("age-plugin-hold");
    // The shell keeps its stdout open while `cat` waits: age reads no answer, and no end of one either.
    fs::write(&plugin, "#!/bin/sh\ntouch \"$HOLD_STARTED\"\ncat >/dev/null\n").unwrap();
    fs::set_permissions(&plugin, fs::Permissions::from_mode(0o755)).unwrap();
    let out = ws.path("out");
    fs::create_dir(&out).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    for (signal, code) in [
        (rustix::process::Signal::INT, 130),
        (rustix::process::Signal::TERM, 143),
    ] {
        let started = ws.path(&format!("plugin-started-{code}"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cmarchive"))
            .arg("pack")
            .arg(out.join("backup.cmar"))
            .arg("--from-file")
            .arg(&input)
            .args(["-r", &ws.recipient, "-j", "hold"])
            .env("PATH", &path)
            .env("HOLD_STARTED", &started)
            .env_remove("CMARCHIVE_AGE_RECIPIENTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !started.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("pack ended ({status}) before the plugin started");
            }
            assert!(Instant::now() < deadline, "the plugin was never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let written: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            written.len() == 1 && written[0].starts_with(".backup.cmar.partial-"),
            "the archive is being written into its temporary file: {written:?}"
        );
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let result = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("stopping now"), "{stderr}");
        let left: Vec<_> = fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{signal:?} left {left:?}");
    }
}

/// `pack --secrets-only` (GitOps) from a dump: the archive holds the Namespaces and Secrets only, lists the issuer
/// and the Certificate as left to Git, records the option and still the Certificate's leaf facts for `verify`;
/// `inspect` says so.
#[test]
fn secrets_only_leaves_issuers_and_certificates_to_git() {
    let ws = Workspace::new();
    let archive = ws.pack_with(
        "secrets.cmar",
        &kubectl_dump().to_string(),
        &["--secrets-only".as_ref(), "-r".as_ref(), ws.recipient.as_ref()],
    );
    let input = ws.path("secrets.cmar.input");

    let manifest = serde_json::from_str::<Value>(&ws.inspect(&archive, &["-o", "json"])).unwrap();
    let phases: Vec<&str> = manifest["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["namespaces", "secrets"]);
    assert_eq!(manifest["options"]["secretsOnly"], true);
    let facts = manifest["certificates"].as_array().unwrap();
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!(facts[0]["name"], "web");
    let left_to_git: Vec<String> = manifest["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"].as_str().unwrap().starts_with("secrets-only"))
        .map(|e| format!("{}/{}", e["kind"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .collect();
    assert_eq!(left_to_git, ["Certificate/web", "ClusterIssuer/ca"]);

    let summary = ws.inspect(&archive, &[]);
    assert!(
        summary.contains("mode:     secrets-only (GitOps)")
            && summary.contains("certificates recorded for verify (expected from Git): 1"),
        "{summary}"
    );

    // CertificateRequests belong to the Certificates Git re-creates.
    cmarchive()
        .arg("pack")
        .arg(ws.path("refused.cmar"))
        .arg("--from-file")
        .arg(&input)
        .args(["--secrets-only", "--include-certificaterequests", "-r", &ws.recipient])
        .assert()
        .failure();
}
