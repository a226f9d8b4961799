//! `cmarchive-bench`: the measuring half of `scripts/bench` and `scripts/bench-archive`.
//!
//! - `gen-secrets DIR --bytes N [--list FILE]` writes Secret-like JSON objects (PEM-shaped certificates, keys and
//!   a small pool of CA bundles, base64 in `data` like a real `kubernetes.io/tls` Secret) for the archive
//!   throughput benchmark; one file per object under DIR and, optionally, all of them as one `v1` `List`.
//! - `cluster --certs 1000,5000 …` starts local clusters (the e2e `LocalCluster`), fills a source cluster with N
//!   Certificates whose TLS Secrets are pre-generated with rcgen (so cert-manager adopts them instead of issuing),
//!   and measures in one run: packing (`cmarchive pack` against `kubectl get | zstd | age` and the guide's jq
//!   pipeline), restoring into fresh clusters (`cmarchive restore` with and without verify against
//!   `kubectl apply -f` and `kubectl apply --server-side -f` of the unpacked YAML), the API server's floor (raw
//!   parallel creates of the same objects from this process) and the peak RSS of every command.
//!
//! Every metric is one line `name value unit` on stdout; a table of ratios follows. Progress goes to stderr.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cmarchive_e2e::fixtures::{self, Ca, Certificate, IssuerRef};
use cmarchive_e2e::local::{LocalCluster, LocalOptions, client_for};
use cmarchive_e2e::provider::{Cluster, ClusterSpec};
use futures::StreamExt as _;
use serde_json::{Value, json};

/// The benchmark driver behind scripts/bench and scripts/bench-archive.
#[derive(Debug, clap::Parser)]
#[command(name = "cmarchive-bench")]
enum Bench {
    /// Writes Secret-like JSON objects for the archive throughput benchmark.
    GenSecrets(GenSecretsArgs),
    /// Measures pack and restore on local clusters against what a user would do instead.
    Cluster(ClusterArgs),
}

#[derive(Debug, clap::Args)]
struct GenSecretsArgs {
    /// Folder for one file per object (must be empty or missing).
    dir: PathBuf,
    /// Total size to write: `500M`, `2G`, `1000` (powers of 1000).
    #[arg(long, default_value = "500M", value_parser = parse_size)]
    bytes: u64,
    /// Also write every object as one `v1` `List` to this file.
    #[arg(long)]
    list: Option<PathBuf>,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Certificate counts to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    certs: Vec<usize>,
    /// Namespaces the Certificates are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// CA Issuers per namespace.
    #[arg(long, default_value_t = 2)]
    issuers_per_namespace: usize,
    /// Runs per pack measurement (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Parallel requests of the raw floor.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The cmarchive binary under test.
    #[arg(long, default_value = "target/release/cmarchive")]
    cmarchive: String,
    /// The kubectl to compare with.
    #[arg(long, default_value = "kubectl")]
    kubectl: String,
    /// Work folder.
    #[arg(long, default_value = "target/bench")]
    work: PathBuf,
    /// Measurements to leave out.
    #[arg(long, value_delimiter = ',', value_parser = ["restore-verify", "restore-no-verify", "apply", "apply-ssa", "floor"])]
    skip: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    match <Bench as clap::Parser>::parse() {
        Bench::GenSecrets(args) => gen_secrets(&args),
        Bench::Cluster(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(cluster_bench(&args))
        }
    }
}

/// `500M`, `2G`, `1000` (powers of 1000: throughput is reported in MB/s).
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1_000),
        Some('M' | 'm') => (&s[..s.len() - 1], 1_000_000),
        Some('G' | 'g') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 500M or 2G"))?;
    Ok(n * mult)
}

// ----- gen-secrets ------------------------------------------------------------------------------------------

/// splitmix64: a tiny deterministic generator, so two runs bench the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A PEM block whose DER is `prefix` (shared structure: algorithm identifiers, issuer name) followed by random
/// bytes (keys, signatures, serials), which is how real certificates and keys compress.
fn pem_block(label: &str, prefix: &[u8], random_len: usize, rng: &mut Rng) -> String {
    let mut der = prefix.to_vec();
    let start = der.len();
    der.resize(start + random_len, 0);
    rng.fill(&mut der[start..]);
    let b64 = BASE64.encode(&der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

fn gen_secrets(args: &GenSecretsArgs) -> anyhow::Result<()> {
    let dir = args.dir.clone();
    let target = args.bytes;
    let mut rng = Rng(args.seed);
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} is not empty", dir.display());
    }
    let mut list = match &args.list {
        Some(path) => {
            let mut w =
                std::io::BufWriter::new(std::fs::File::create(path).with_context(|| path.display().to_string())?);
            w.write_all(b"{\"apiVersion\":\"v1\",\"kind\":\"List\",\"metadata\":{},\"items\":[\n")?;
            Some(w)
        }
        None => None,
    };
    // Eight issuers, each with a CA bundle and a DER prefix its leaves share.
    let issuers: Vec<(String, String, Vec<u8>)> = (0..8)
        .map(|i| {
            let mut prefix = vec![0u8; 180];
            rng.fill(&mut prefix);
            let ca = pem_block("CERTIFICATE", &prefix[..120], 700, &mut rng);
            (format!("issuer-{i}"), ca, prefix)
        })
        .collect();
    let key_prefix: Vec<u8> = {
        let mut p = vec![0u8; 26];
        rng.fill(&mut p);
        p
    };
    let namespaces = 32;
    let (mut written, mut count) = (0u64, 0u64);
    for ns in 0..namespaces {
        let ns = format!("ns-{ns:02}");
        std::fs::create_dir_all(dir.join(&ns))?;
        for (issuer, _, _) in &issuers {
            let object = fixtures::self_signed_issuer(Some(&ns), issuer);
            let bytes = serde_json::to_vec_pretty(&object)?;
            std::fs::write(dir.join(&ns).join(format!("{issuer}.json")), &bytes)?;
            emit(&mut list, &bytes, &mut written, &mut count)?;
        }
    }
    while written < target {
        let ns = format!("ns-{:02}", rng.below(namespaces));
        let certificate = format!("cert-{count:07}");
        let name = format!("{certificate}-tls");
        let (issuer, ca, prefix) = &issuers[rng.below(issuers.len() as u64) as usize];
        let rsa = rng.below(2) == 0;
        let cert = pem_block("CERTIFICATE", prefix, 350 + rng.below(900) as usize, &mut rng);
        let key = if rsa {
            pem_block("PRIVATE KEY", &key_prefix, 1190, &mut rng)
        } else {
            pem_block("PRIVATE KEY", &key_prefix[..12], 126, &mut rng)
        };
        let host = format!("svc-{count}.{ns}.example.com");
        let object = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"controller.cert-manager.io/fao": "true"},
                "annotations": {
                    "cert-manager.io/alt-names": host,
                    "cert-manager.io/certificate-name": certificate,
                    "cert-manager.io/common-name": host,
                    "cert-manager.io/ip-sans": "",
                    "cert-manager.io/issuer-group": "cert-manager.io",
                    "cert-manager.io/issuer-kind": "Issuer",
                    "cert-manager.io/issuer-name": issuer,
                    "cert-manager.io/uri-sans": "",
                },
            },
            "type": "kubernetes.io/tls",
            "data": {
                "ca.crt": BASE64.encode(ca),
                "tls.crt": BASE64.encode(format!("{cert}{ca}")),
                "tls.key": BASE64.encode(key),
            },
        });
        // The Certificate that owns the Secret: cmarchive packs only Secrets something references.
        let owner = json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": certificate, "namespace": ns},
            "spec": {
                "secretName": name,
                "commonName": host,
                "dnsNames": [host],
                "issuerRef": {"name": issuer, "kind": "Issuer", "group": "cert-manager.io"},
                "privateKey": {"algorithm": if rsa { "RSA" } else { "ECDSA" }},
            },
        });
        for (file, object) in [(&name, &object), (&certificate, &owner)] {
            let bytes = serde_json::to_vec_pretty(object)?;
            std::fs::write(dir.join(&ns).join(format!("{file}.json")), &bytes)?;
            emit(&mut list, &bytes, &mut written, &mut count)?;
        }
    }
    if let Some(mut w) = list {
        w.write_all(b"\n]}\n")?;
        w.flush()?;
    }
    eprintln!("gen-secrets: {count} objects, {written} bytes in {}", dir.display());
    println!("{count} {written}");
    Ok(())
}

/// Appends one object to the optional `List` file and counts it.
fn emit(
    list: &mut Option<impl std::io::Write>,
    bytes: &[u8],
    written: &mut u64,
    count: &mut u64,
) -> anyhow::Result<()> {
    if let Some(w) = list.as_mut() {
        if *count > 0 {
            w.write_all(b",\n")?;
        }
        w.write_all(bytes)?;
    }
    *written += bytes.len() as u64;
    *count += 1;
    Ok(())
}

// ----- cluster benchmark ------------------------------------------------------------------------------------

/// One measured command: wall time from here, CPU and peak RSS from GNU time, and the CPU the cluster's own
/// processes (etcd, kube-apiserver, controllers) spent meanwhile.
#[derive(Clone, Debug, Default)]
struct Sample {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
    server_cpu: f64,
}

struct Tools {
    cmarchive: String,
    kubectl: String,
    work: PathBuf,
    recipient: String,
    identity: PathBuf,
    concurrency: usize,
}

/// Total user+system CPU seconds of `pids` and their waited-for children (from /proc/PID/stat).
fn cpu_seconds(pids: &[u32]) -> f64 {
    // USER_HZ, the unit of these fields, is 100 on every Linux architecture this runs on.
    const TICKS: f64 = 100.0;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split(' ').collect();
            // fields[0] is state (field 3); utime/stime/cutime/cstime are fields 14..17.
            let sum: f64 = fields[11..15].iter().filter_map(|f| f.parse::<f64>().ok()).sum();
            Some(sum / TICKS)
        })
        .sum()
}

/// Runs `argv` under `/usr/bin/time -v` with KUBECONFIG set; fails when it exits non-zero.
fn timed(
    tools: &Tools,
    label: &str,
    kubeconfig: Option<&Path>,
    server: &[u32],
    argv: &[&str],
) -> anyhow::Result<Sample> {
    let time_file = tools.work.join(format!("{label}.time"));
    let log_file = tools.work.join(format!("{label}.log"));
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v").arg("-o").arg(&time_file).args(argv);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    cmd.stdout(std::fs::File::create(&log_file)?)
        .stderr(std::fs::File::create(log_file.with_extension("err"))?);
    let server_before = cpu_seconds(server);
    let started = Instant::now();
    let status = cmd.status().context("running /usr/bin/time (Debian package `time`)")?;
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server) - server_before;
    let report = std::fs::read_to_string(&time_file).unwrap_or_default();
    if !status.success() {
        let err = std::fs::read_to_string(log_file.with_extension("err")).unwrap_or_default();
        bail!("{label}: {argv:?} failed ({status}):\n{}\n{report}", tail(&err, 30));
    }
    let field = |name: &str| -> f64 {
        report
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(name)
                    .map(|v| v.trim().parse::<f64>().unwrap_or(0.0))
            })
            .unwrap_or(0.0)
    };
    Ok(Sample {
        wall,
        cpu: field("User time (seconds):") + field("System time (seconds):"),
        rss_mb: field("Maximum resident set size (kbytes):") / 1024.0,
        server_cpu,
    })
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn sh(script: &str) -> Vec<String> {
    vec!["bash".into(), "-c".into(), format!("set -euo pipefail; {script}")]
}

/// Metrics in the order they were measured, printed as `name value unit`.
#[derive(Default)]
struct Report {
    lines: Vec<(String, f64, &'static str)>,
}

impl Report {
    fn put(&mut self, name: &str, value: f64, unit: &'static str) {
        println!("{name} {value:.3} {unit}");
        let _ = std::io::stdout().flush();
        self.lines.push((name.to_owned(), value, unit));
    }
    fn sample(&mut self, name: &str, s: &Sample) {
        self.put(&format!("{name}.wall"), s.wall, "s");
        self.put(&format!("{name}.cpu"), s.cpu, "s");
        self.put(&format!("{name}.server_cpu"), s.server_cpu, "s");
        self.put(&format!("{name}.rss"), s.rss_mb, "MB");
    }
    fn get(&self, name: &str) -> Option<f64> {
        self.lines.iter().rev().find(|(n, _, _)| n == name).map(|(_, v, _)| *v)
    }
}

fn median(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let mid = samples[samples.len() / 2].clone();
    Sample {
        rss_mb: samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
        ..mid
    }
}

async fn cluster_bench(args: &ClusterArgs) -> anyhow::Result<()> {
    let sizes = &args.certs;
    let namespaces = args.namespaces;
    let issuers_per_ns = args.issuers_per_namespace;
    let repeat = args.repeat as usize;
    let skip = &args.skip;
    std::fs::create_dir_all(&args.work)?;
    let work = args.work.canonicalize()?;
    let cmarchive = args.cmarchive.clone();
    let identity = work.join("key.txt");
    let _ = std::fs::remove_file(&identity);
    let out = Command::new(&cmarchive)
        .arg("keygen")
        .arg(&identity)
        .output()
        .context("running cmarchive keygen")?;
    let recipient = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "no age1 recipient in keygen output: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let tools = Tools {
        cmarchive,
        kubectl: args.kubectl.clone(),
        work: work.clone(),
        recipient,
        identity,
        concurrency: args.concurrency,
    };
    let mut report = Report::default();
    for &n in sizes {
        run_size(&tools, &mut report, n, namespaces, issuers_per_ns, repeat, skip).await?;
    }
    print_table(&report, sizes);
    Ok(())
}

async fn start_cluster(name: &str) -> anyhow::Result<LocalCluster> {
    let started = Instant::now();
    let options = LocalOptions {
        cert_manager_log_level: 1,
        ..LocalOptions::default()
    };
    let cluster = LocalCluster::start_with(&ClusterSpec::named(name), options).await?;
    eprintln!("bench: cluster {name} up in {:.1}s", started.elapsed().as_secs_f64());
    Ok(cluster)
}

/// The source cluster's content: namespaces, one CA Issuer per (namespace, index) with its CA Secret, one CA
/// ClusterIssuer, and `n` Certificates spread round-robin over namespaces and issuers, each with the TLS Secret
/// cert-manager would have written (leaf signed by the issuer's CA, valid 90 days, far from renewal).
fn source_objects(n: usize, namespaces: usize, issuers_per_ns: usize) -> anyhow::Result<Vec<Vec<Value>>> {
    let (mut ns_objs, mut secrets, mut issuers, mut certs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let cluster_ca = Ca::new("bench cluster CA")?;
    secrets.push(cluster_ca.secret("cert-manager", "bench-cluster-ca"));
    issuers.push(fixtures::ca_issuer(None, "bench-cluster-ca", "bench-cluster-ca"));
    let mut cas: Vec<(String, String, Ca)> = Vec::new();
    for i in 0..namespaces {
        let ns = format!("bench-{i:02}");
        ns_objs.push(fixtures::namespace(&ns));
        for j in 0..issuers_per_ns {
            let name = format!("ca-{j}");
            let ca = Ca::new(&format!("{ns} {name}"))?;
            secrets.push(ca.secret(&ns, &format!("{name}-key")));
            issuers.push(fixtures::ca_issuer(Some(&ns), &name, &format!("{name}-key")));
            cas.push((ns.clone(), name, ca));
        }
    }
    let not_before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let not_after = not_before + jiff::SignedDuration::from_hours(2160);
    for k in 0..n {
        // Every (issuers_per_ns + 1)-th certificate in a namespace uses the ClusterIssuer.
        let (ns, issuer_name, ca) = &cas[k % cas.len()];
        let use_cluster = (k / cas.len()) % (issuers_per_ns + 1) == issuers_per_ns;
        let (issuer_ref, ca) = if use_cluster {
            (IssuerRef::cluster_issuer("bench-cluster-ca"), &cluster_ca)
        } else {
            (IssuerRef::issuer(issuer_name), ca)
        };
        let cert = Certificate::new(
            ns,
            &format!("cert-{k:05}"),
            issuer_ref,
            &format!("cert-{k:05}.{ns}.example.com"),
        )
        .duration("2160h");
        let leaf = ca.issue(&cert.leaf_spec(not_before, not_after))?;
        secrets.push(cert.issued_secret(ca, &leaf));
        certs.push(cert.to_json());
    }
    Ok(vec![ns_objs, secrets, issuers, certs])
}

/// The collection path of an object (`/api/v1/namespaces/x/secrets`, `/apis/cert-manager.io/v1/clusterissuers`).
fn collection_path(obj: &Value) -> anyhow::Result<String> {
    let api_version = obj["apiVersion"].as_str().context("object without apiVersion")?;
    let kind = obj["kind"].as_str().context("object without kind")?;
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let plural = format!("{}s", kind.to_lowercase());
    Ok(match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}"),
        None => format!("{base}/{plural}"),
    })
}

/// Creates every object with plain POSTs, `concurrency` in flight, phase after phase (an object that exists
/// already is fine). This is the floor: no reads, no apply merge, no waits.
async fn raw_create(client: &kube::Client, phases: &[Vec<Value>], concurrency: usize) -> anyhow::Result<usize> {
    let mut created = 0;
    for phase in phases {
        let results: Vec<anyhow::Result<bool>> = futures::stream::iter(phase.iter())
            .map(|obj| async move {
                let body = serde_json::to_vec(obj)?;
                let request = http::Request::post(collection_path(obj)?)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body)?;
                match client.request_text(request).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(e) => Err(anyhow::Error::from(e).context(format!(
                        "creating {}/{}",
                        obj["kind"].as_str().unwrap_or("?"),
                        obj["metadata"]["name"].as_str().unwrap_or("?")
                    ))),
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for r in results {
            created += usize::from(r?);
        }
    }
    Ok(created)
}

/// The objects of an archive as `cmarchive unpack -o json` prints them, grouped into phases by kind.
fn unpacked_phases(list: &Value) -> Vec<Vec<Value>> {
    let order = ["Namespace", "Secret", "Issuer", "ClusterIssuer", "Certificate"];
    let mut phases: Vec<Vec<Value>> = vec![Vec::new(); 4];
    for item in list["items"].as_array().into_iter().flatten() {
        let kind = item["kind"].as_str().unwrap_or("");
        let i = match order.iter().position(|k| *k == kind) {
            Some(0) => 0,
            Some(1) => 1,
            Some(2 | 3) => 2,
            _ => 3,
        };
        phases[i].push(item.clone());
    }
    phases
}

/// The latest timestamp among the items at `path`: `pointer` into each item, or `ready` for the Ready
/// condition's `lastTransitionTime`. Without `now`, waits (up to 10 minutes) until every item is Ready first, so
/// that variants which do not wait themselves are measured up to the same point.
async fn latest(
    client: &kube::Client,
    path: &str,
    pointer: &str,
    now: bool,
) -> anyhow::Result<Option<jiff::Timestamp>> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let text = client.request_text(http::Request::get(path).body(Vec::new())?).await?;
        let list: Value = serde_json::from_str(&text)?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let stamps: Vec<Option<jiff::Timestamp>> = items
            .iter()
            .map(|item| {
                let value = if pointer == "ready" {
                    item.pointer("/status/conditions")?
                        .as_array()?
                        .iter()
                        .find(|c| c["type"] == "Ready" && c["status"] == "True")?
                        .get("lastTransitionTime")?
                } else {
                    item.pointer(pointer)?
                };
                value.as_str()?.parse().ok()
            })
            .collect();
        if now || stamps.iter().all(Option::is_some) || Instant::now() > deadline {
            return Ok(stamps.into_iter().flatten().max());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn count(client: &kube::Client, path: &str) -> anyhow::Result<usize> {
    let text = client.request_text(http::Request::get(path).body(Vec::new())?).await?;
    let v: Value = serde_json::from_str(&text)?;
    Ok(v["items"].as_array().map_or(0, Vec::len))
}

async fn run_size(
    tools: &Tools,
    report: &mut Report,
    n: usize,
    namespaces: usize,
    issuers_per_ns: usize,
    repeat: usize,
    skip: &[String],
) -> anyhow::Result<()> {
    let dir = tools.work.join(format!("n{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let tools = &Tools {
        work: dir.clone(),
        recipient: tools.recipient.clone(),
        identity: tools.identity.clone(),
        cmarchive: tools.cmarchive.clone(),
        kubectl: tools.kubectl.clone(),
        concurrency: tools.concurrency,
    };
    let p = |m: &str| format!("n{n}.{m}");

    eprintln!("bench: N={n}: generating {n} certificates with rcgen");
    let gen_started = Instant::now();
    let objects = source_objects(n, namespaces, issuers_per_ns)?;
    report.put(&p("generate"), gen_started.elapsed().as_secs_f64(), "s");

    let source = start_cluster("bench-source").await?;
    // The source's controller is stopped: pack measures reading, not a controller reconciling thousands of
    // Certificates in the background.
    source.stop_cert_manager().await?;
    let populate = Instant::now();
    raw_create(&source.client(), &objects, tools.concurrency).await?;
    report.put(&p("populate"), populate.elapsed().as_secs_f64(), "s");
    let kc = source.kubeconfig().to_owned();
    let server = source.pids();

    // ----- pack, interleaved repeats
    let archive = dir.join("backup.cmar");
    let r = &tools.recipient;
    let kubectl = &tools.kubectl;
    let get = format!("{kubectl} get -A -o json issuer,clusterissuer,cert,secret");
    let jq = r#"jq 'walk(if type == "object" and has("metadata") then .metadata |= (del(.uid) | del(.resourceVersion)) else . end)'"#;
    let variants: Vec<(&str, Vec<String>)> = vec![
        (
            "pack.cmarchive",
            vec![
                tools.cmarchive.clone(),
                "pack".into(),
                archive.display().to_string(),
                "-r".into(),
                r.clone(),
                "-A".into(),
                "--force".into(),
            ],
        ),
        (
            "pack.kubectl_zstd_age",
            sh(&format!(
                "{get} | zstd -3 -q | age -r {r} > {}/kubectl.json.zst.age",
                dir.display()
            )),
        ),
        (
            "pack.guide_jq",
            sh(&format!(
                "{get} | {jq} | zstd -3 -q | age -r {r} > {}/guide.json.zst.age",
                dir.display()
            )),
        ),
    ];
    let mut samples: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    for round in 0..repeat {
        for (name, argv) in &variants {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let s = timed(tools, &format!("{name}.{round}"), Some(&kc), &server, &argv)?;
            eprintln!("bench: N={n} {name} round {round}: {:.2}s", s.wall);
            samples.entry(name).or_default().push(s);
        }
    }
    for (name, s) in samples {
        report.sample(&p(name), &median(s));
    }
    report.put(
        &p("archive.size"),
        std::fs::metadata(&archive)?.len() as f64 / 1e6,
        "MB",
    );
    report.put(
        &p("kubectl_zstd_age.size"),
        std::fs::metadata(dir.join("kubectl.json.zst.age"))?.len() as f64 / 1e6,
        "MB",
    );
    drop(source);

    // ----- what the restores read: YAML for kubectl, JSON objects for the floor
    let yaml = dir.join("unpacked.yaml");
    let json_list = dir.join("unpacked.json");
    let id = tools.identity.display().to_string();
    let s = timed(
        tools,
        "unpack.yaml",
        None,
        &[],
        &sh(&format!(
            "{} unpack {} -i {id} > {}",
            tools.cmarchive,
            archive.display(),
            yaml.display()
        ))
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    )?;
    report.sample(&p("unpack.yaml"), &s);
    let status = Command::new(&tools.cmarchive)
        .args(["unpack", &archive.display().to_string(), "-i", &id, "-o", "json"])
        .stdout(std::fs::File::create(&json_list)?)
        .status()?;
    if !status.success() {
        bail!("cmarchive unpack -o json failed");
    }
    let list: Value = serde_json::from_slice(&std::fs::read(&json_list)?)?;
    let phases = unpacked_phases(&list);
    let total: usize = phases.iter().map(Vec::len).sum();
    report.put(&p("objects"), total as f64, "objects");

    // ----- restores, each into a fresh cluster
    let restores: Vec<(&str, Option<Vec<String>>)> = vec![
        (
            "restore-verify",
            Some(vec![
                tools.cmarchive.clone(),
                "restore".into(),
                archive.display().to_string(),
                "-i".into(),
                id.clone(),
            ]),
        ),
        (
            "restore-no-verify",
            Some(vec![
                tools.cmarchive.clone(),
                "restore".into(),
                archive.display().to_string(),
                "-i".into(),
                id.clone(),
                "--no-verify".into(),
            ]),
        ),
        (
            "apply",
            Some(vec![
                kubectl.clone(),
                "apply".into(),
                "-f".into(),
                yaml.display().to_string(),
            ]),
        ),
        (
            "apply-ssa",
            Some(vec![
                kubectl.clone(),
                "apply".into(),
                "--server-side".into(),
                "-f".into(),
                yaml.display().to_string(),
            ]),
        ),
        ("floor", None),
    ];
    for (name, argv) in restores {
        if skip.iter().any(|s| s == name) {
            continue;
        }
        let target = start_cluster(&format!("bench-{name}")).await?;
        let server = target.pids();
        let started_at = jiff::Timestamp::now();
        let s = match argv {
            Some(argv) => {
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                timed(tools, name, Some(target.kubeconfig()), &server, &argv)?
            }
            None => {
                let client = client_for(target.kubeconfig()).await?;
                let before = cpu_seconds(&server);
                let started = Instant::now();
                raw_create(&client, &phases, tools.concurrency).await?;
                let wall = started.elapsed().as_secs_f64();
                Sample {
                    wall,
                    cpu: 0.0,
                    rss_mb: 0.0,
                    server_cpu: cpu_seconds(&server) - before,
                }
            }
        };
        eprintln!("bench: N={n} {name}: {:.2}s", s.wall);
        report.sample(&p(name), &s);
        // Where the time went, from the server's own timestamps (1 s resolution): when the last Secret and the
        // last Certificate were created, and when the last Certificate became Ready, after the command started.
        let client = target.client();
        for (what, path, pointer) in [
            ("last_secret_created", "/api/v1/secrets", "/metadata/creationTimestamp"),
            (
                "last_certificate_created",
                "/apis/cert-manager.io/v1/certificates",
                "/metadata/creationTimestamp",
            ),
            (
                "last_certificate_ready",
                "/apis/cert-manager.io/v1/certificates",
                "ready",
            ),
        ] {
            let now = name == "restore-verify" || what != "last_certificate_ready";
            if let Some(at) = latest(&client, path, pointer, now).await? {
                report.put(
                    &p(&format!("{name}.{what}")),
                    at.duration_since(started_at).as_secs_f64(),
                    "s",
                );
            }
        }
        // Did anything get reissued? Give the controller a moment, then count CertificateRequests.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let crs = count(&client, "/apis/cert-manager.io/v1/certificaterequests")
            .await
            .unwrap_or(0);
        report.put(&p(&format!("{name}.certificaterequests")), crs as f64, "objects");
        drop(target);
    }
    Ok(())
}

fn print_table(report: &Report, sizes: &[usize]) {
    let ratio = |n: usize, a: &str, b: &str| -> String {
        match (report.get(&format!("n{n}.{a}")), report.get(&format!("n{n}.{b}"))) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
            _ => "-".into(),
        }
    };
    let rows: [(&str, &str, &str, &str); 9] = [
        (
            "pack time: cmarchive / kubectl get \\| zstd \\| age",
            "pack.cmarchive.wall",
            "pack.kubectl_zstd_age.wall",
            "<= 1.0",
        ),
        (
            "pack time: cmarchive / guide jq pipeline",
            "pack.cmarchive.wall",
            "pack.guide_jq.wall",
            "-",
        ),
        (
            "restore speed-up: kubectl apply / cmarchive restore",
            "apply.wall",
            "restore-verify.wall",
            ">= 5",
        ),
        (
            "restore speed-up: kubectl apply / restore --no-verify",
            "apply.wall",
            "restore-no-verify.wall",
            ">= 5",
        ),
        (
            "restore speed-up: kubectl apply --server-side / restore --no-verify",
            "apply-ssa.wall",
            "restore-no-verify.wall",
            "-",
        ),
        (
            "restore time: cmarchive restore / raw floor",
            "restore-verify.wall",
            "floor.wall",
            "<= 1.5",
        ),
        (
            "restore time: restore --no-verify / raw floor",
            "restore-no-verify.wall",
            "floor.wall",
            "<= 1.5",
        ),
        (
            "restore time: kubectl apply / raw floor",
            "apply.wall",
            "floor.wall",
            "-",
        ),
        (
            "time until every Certificate is Ready: cmarchive restore / raw floor",
            "restore-verify.last_certificate_ready",
            "floor.last_certificate_ready",
            "-",
        ),
    ];
    let mut out = String::new();
    let _ = write!(out, "\n| ratio | target |");
    for n in sizes {
        let _ = write!(out, " N={n} |");
    }
    let _ = write!(out, "\n| --- | --- |");
    for _ in sizes {
        out.push_str(" --- |");
    }
    for (label, a, b, target) in rows {
        let _ = write!(out, "\n| {label} | {target} |");
        for &n in sizes {
            let _ = write!(out, " {} |", ratio(n, a, b));
        }
    }
    let _ = write!(out, "\n| peak RSS, MB: pack / restore | < 200 at 10k |");
    for &n in sizes {
        let get = |m: &str| {
            report
                .get(&format!("n{n}.{m}"))
                .map_or("-".into(), |v| format!("{v:.0}"))
        };
        let _ = write!(out, " {} / {} |", get("pack.cmarchive.rss"), get("restore-verify.rss"));
    }
    println!("{out}");
}
