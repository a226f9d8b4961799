//! The whole command-line surface of `cmarchive`, and nothing else: every flag is defined and documented here so
//! that `--help`, the shell completions and the docs cannot drift apart.
//!
//! Conventions: the archive is always a positional argument (`-` = stdin/stdout) and `-o` always
//! means an output format. Key flags follow age and rage: `-r`, `-R`, `-p`, `-a`, `-i`, `-j`.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use cmarchive_archive::certmanager::{LabelSelector, NamespaceMapping, RestoreFilter};
use std::path::PathBuf;

/// Exit code: everything worked.
pub const EXIT_OK: i32 = 0;
/// Exit code: an error stopped the command (bad input, wrong key, damaged archive, cluster error, …).
pub const EXIT_ERROR: i32 = 1;
/// Exit code: the command finished, but a certificate was (or would be) reissued. Used by `verify` and `restore`.
pub const EXIT_REISSUED: i32 = 2;

/// The exit code of a verification's conclusion.
pub fn exit_code(conclusion: cmarchive_archive::certmanager::evidence::Conclusion) -> i32 {
    use cmarchive_archive::certmanager::evidence::Conclusion;
    match conclusion {
        Conclusion::Reissued => EXIT_REISSUED,
        Conclusion::Incomplete => EXIT_ERROR,
        Conclusion::Same => EXIT_OK,
    }
}

/// Back up cert-manager into one encrypted file and restore it elsewhere without reissuing a certificate.
#[derive(Debug, Parser)]
#[command(
    name = "cmarchive",
    version = env!("CMARCHIVE_VERSION"),
    about,
    propagate_version = true,
    after_help = "Exit codes: 0 success, 1 error, 2 a certificate was (or would be) reissued, 130/143 stopped by SIGINT/SIGTERM (restore: run it again to finish).\n\
                  Installed as `kubectl-cmarchive` on PATH it also runs as `kubectl cmarchive`."
)]
pub struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace. RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Format of log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a new age identity (X25519), like age-keygen.
    ///
    /// Writes the identity to FILE (created with mode 0600, never overwritten) or to stdout, and prints the
    /// public key ("recipient") to stderr when writing to a file.
    Keygen(KeygenArgs),

    /// Write an encrypted archive of cert-manager's objects, from a cluster or from `kubectl get` output.
    ///
    /// Archives the Issuers, ClusterIssuers and Certificates, the Namespaces they live in, every Secret they
    /// reference, and the ServiceAccounts issuers authenticate as (Vault Kubernetes/AWS auth, Route53 Kubernetes
    /// auth) with the Role and RoleBinding letting cert-manager create their tokens (never a token).
    Pack(PackArgs),

    /// Decrypt and verify an archive, then print its objects (YAML for `kubectl apply -f -`) or write them to a
    /// folder.
    Unpack(UnpackArgs),

    /// Decrypt and verify an archive, then summarize it: source, phases, warnings, exclusions.
    Inspect(InspectArgs),

    /// Restore an archive into a cluster, phase by phase, then verify that nothing was reissued.
    Restore(RestoreArgs),

    /// Compare a live cluster with an archive: is every certificate still the one that was archived?
    Verify(VerifyArgs),

    /// Print a shell completion script to stdout.
    Completions(CompletionsArgs),

    /// Write the man pages: cmarchive(1) to stdout, or a page per command into a folder.
    Man(ManArgs),
}

/// `cmarchive keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the identity (mode 0600; refuses to overwrite). Stdout when absent or `-`.
    pub file: Option<PathBuf>,
}

/// Who can open the archive: at least one of `-r`, `-R`, `-p`, `-j` (or `CMARCHIVE_AGE_RECIPIENTS`).
#[derive(Debug, Args, Default)]
pub struct RecipientArgs {
    /// Encrypt to this recipient: an age public key (`age1…`), an SSH public key (`ssh-ed25519 …`,
    /// `ssh-rsa …`) or an age plugin recipient (`age1yubikey1…`). Repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Encrypt to every recipient listed in this file (one per line, `#` comments; `-` = stdin). Repeatable.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_files: Vec<String>,

    /// Encrypt with a passphrase (scrypt) instead of keys. Prompts on a terminal; for automation use
    /// `--passphrase-file` or `CMARCHIVE_PASSPHRASE`. Cannot be combined with other recipients.
    #[arg(short = 'p', long)]
    pub passphrase: bool,

    /// Read the passphrase from the first line of this file (implies `-p` when packing).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Encrypt to the default recipient of the age plugin `age-plugin-PLUGIN` (found on PATH). Repeatable.
    #[arg(short = 'j', value_name = "PLUGIN")]
    pub plugins: Vec<String>,
}

/// How an archive is opened: `-i` identities (or `CMARCHIVE_AGE_KEY_FILE`), a passphrase, or a plugin.
#[derive(Debug, Args, Default)]
pub struct IdentityArgs {
    /// Decrypt with the keys in this file: an age identity file (several keys allowed), an SSH private key (a
    /// passphrase-protected one is asked for its passphrase) or a passphrase-encrypted age identity. Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identities: Vec<String>,

    /// Decrypt with the default identity of the age plugin `age-plugin-PLUGIN`. Repeatable.
    #[arg(short = 'j', value_name = "PLUGIN")]
    pub plugins: Vec<String>,

    /// For passphrase-encrypted archives: read the passphrase from the first line of this file instead of
    /// prompting (`CMARCHIVE_PASSPHRASE` works too).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Refuse archives that decompress to more than this many bytes, or whose compressed tar (held while the
    /// archive is verified) is larger (suffixes K, M, G, T: powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = parse_size)]
    pub max_size: u64,

    /// Accept the archive only if its signature (`pack --sign`) is by a key this file allows: OpenSSH's
    /// `allowed_signers` format, as for `ssh-keygen -Y verify`. Checked before anything is decrypted.
    #[arg(long, value_name = "FILE")]
    pub signers: Option<PathBuf>,

    /// With --signers: the signature file. Default: ARCHIVE.sig (required when the archive is stdin).
    #[arg(long, value_name = "FILE", requires = "signers")]
    pub signature: Option<PathBuf>,
}

/// Parses `2G`, `512M`, `1024` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix {c:?}; use K, M, G or T")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512M or 2G"))?;
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("{s} is too large"))
}

/// Parses `90s`, `5m`, `1h30m` (jiff's friendly durations, ISO 8601 too) or `300` (seconds); at least a second.
pub fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let duration = match s.parse::<u64>() {
        Ok(seconds) => std::time::Duration::from_secs(seconds),
        Err(_) => s
            .parse::<jiff::SignedDuration>()
            .ok()
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .ok_or_else(|| format!("{s:?} is not a duration like 90s, 5m or 1h30m"))?,
    };
    if duration < std::time::Duration::from_secs(1) {
        return Err(format!("{s:?} is too short; wait at least 1s"));
    }
    Ok(duration)
}

/// Which cluster to talk to, the way kubectl chooses it.
#[derive(Debug, Args, Default, Clone)]
pub struct ClusterArgs {
    /// Path of the kubeconfig file. Default: `KUBECONFIG` (a `:`-separated list), then `~/.kube/config`, then
    /// the in-cluster service account.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// kubeconfig context to use instead of the current one.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// Which archived objects `unpack`, `inspect`, `restore` and `verify` work on. The picked objects bring what they need:
/// the Secrets they reference, the issuer each Certificate names (a ClusterIssuer and its Secrets only when a
/// picked Certificate uses it), and their Namespaces and CRDs.
#[derive(Debug, Args, Default, Clone)]
pub struct SelectionArgs {
    /// Only the archived objects in this namespace (repeatable), plus what they need. Cluster-scoped objects
    /// come only as dependencies.
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,

    /// Only the archived objects whose labels match this selector (kubectl syntax: `a=b,c!=d,e in (x,y),!f`),
    /// plus what they need. Without -n, ClusterIssuers are matched by their labels too.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", value_parser = parse_selector)]
    pub selector: Option<LabelSelector>,
}

impl SelectionArgs {
    /// The selection as the archive crate takes it.
    pub fn filter(&self) -> RestoreFilter {
        RestoreFilter {
            namespaces: self.namespaces.iter().cloned().collect(),
            selector: self.selector.clone(),
        }
    }
}

fn parse_selector(text: &str) -> Result<LabelSelector, String> {
    LabelSelector::parse(text)
}

/// Checks one `--namespace-mapping` value on its own, so that a typo is a usage error before any archive is read.
fn parse_namespace_mapping(text: &str) -> Result<String, String> {
    NamespaceMapping::parse([text]).map(|_| text.to_owned())
}

/// `cmarchive pack`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    cmarchive pack backup.cmar -r age1…                     # whole cluster\n  \
    cmarchive pack backup.cmar -R team.txt -n prod -n stage  # two namespaces\n  \
    kubectl get issuers,certificates,secrets -A -o json | cmarchive pack backup.cmar --from-file - -r age1…\n  \
    cmarchive pack secrets.cmar -r age1… --secrets-only       # GitOps: Git holds issuers and Certificates")]
pub struct PackArgs {
    /// Where to write the archive; `-` writes to stdout (refused on a terminal unless `--armor`).
    #[arg(value_name = "ARCHIVE")]
    pub archive: String,

    /// Recipients.
    #[command(flatten)]
    pub recipients: RecipientArgs,

    /// Write ASCII-armored (PEM-style) text instead of binary.
    #[arg(short = 'a', long)]
    pub armor: bool,

    /// zstd compression level (1 fastest … 19 smallest).
    #[arg(long, value_name = "LEVEL", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub compression_level: i32,

    /// Overwrite ARCHIVE if it exists.
    #[arg(long)]
    pub force: bool,

    /// Sign the archive with this OpenSSH private key (sshsig, namespace `cmarchive`, as `ssh-keygen -Y sign`
    /// does); the signature goes to ARCHIVE.sig. Readers check it with --signers.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,

    /// With --sign: where to write the signature. Default: ARCHIVE.sig (required when ARCHIVE is `-`).
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub signature: Option<PathBuf>,

    /// Pack offline from what `kubectl get -o json|yaml` printed: a List, a single object or multi-document
    /// YAML. `-` reads stdin. Repeatable. No cluster is contacted.
    #[arg(long, value_name = "FILE", conflicts_with_all = CLUSTER_ONLY_FLAGS)]
    pub from_file: Vec<String>,

    /// Pack offline from every `.json`, `.yaml` and `.yml` file under this folder (recursively). Repeatable.
    #[arg(long, value_name = "DIR", conflicts_with_all = CLUSTER_ONLY_FLAGS)]
    pub from_dir: Vec<PathBuf>,

    /// Which cluster to read.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Only these namespaces (repeatable). Default: all namespaces.
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
        conflicts_with = "all_namespaces"
    )]
    pub namespaces: Vec<String>,

    /// All namespaces (the default; accepted for kubectl muscle memory).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Only Issuers, ClusterIssuers and Certificates matching this label selector (Secrets they reference are
    /// still included).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Also archive cert-manager's CustomResourceDefinitions (restored only where missing).
    #[arg(long)]
    pub include_crds: bool,

    /// Also archive CertificateRequests (not recommended: identity fields and approval rarely survive a move).
    #[arg(long, conflicts_with = "secrets_only")]
    pub include_certificaterequests: bool,

    /// GitOps: archive only the Secrets the issuers and Certificates reference (and their Namespaces), not the
    /// issuers and Certificates themselves, which Git re-creates. The manifest still records every Certificate's
    /// leaf certificate, so after `restore` and the GitOps sync `cmarchive verify` proves nothing was reissued.
    #[arg(long)]
    pub secrets_only: bool,

    /// Namespace where ClusterIssuer Secrets live. Default: read from the cert-manager Deployment, else
    /// `cert-manager`.
    #[arg(long, value_name = "NS")]
    pub cluster_resource_namespace: Option<String>,

    /// Fail instead of warning when a referenced Secret is missing, something cannot be read, or a Secret's
    /// `data` is not base64.
    #[arg(long)]
    pub strict: bool,

    /// Pack an input file that is empty (by default an error: a failed `kubectl get > dump.json` leaves one).
    #[arg(long)]
    pub allow_empty: bool,
}

/// Flags that only make sense when reading a live cluster.
const CLUSTER_ONLY_FLAGS: [&str; 5] = ["kubeconfig", "context", "namespaces", "all_namespaces", "selector"];

impl PackArgs {
    /// Whether this run reads files instead of a cluster.
    pub fn is_offline(&self) -> bool {
        !self.from_file.is_empty() || !self.from_dir.is_empty()
    }
}

/// Output format of `unpack`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UnpackFormat {
    /// Multi-document YAML, in restore order (pipe into `kubectl apply -f -`).
    Yaml,
    /// One `v1` `List` holding every object in restore order, one object per line exactly as stored.
    Json,
}

/// `cmarchive unpack`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    cmarchive unpack backup.cmar -i key.txt | kubectl apply --server-side -f -\n  \
    cmarchive unpack backup.cmar -i key.txt --dir restored/\n  \
    cmarchive unpack backup.cmar -i key.txt -n team-a           # one namespace and what it needs")]
pub struct UnpackArgs {
    /// The archive; `-` reads stdin.
    #[arg(value_name = "ARCHIVE")]
    pub archive: String,

    /// Keys.
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Which objects.
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = UnpackFormat::Yaml)]
    pub output: UnpackFormat,

    /// Write one file per object into this folder (phase-numbered subfolders, Secrets mode 0600, folders 0700)
    /// instead of printing.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// With `--dir`: write into a folder that is not empty.
    #[arg(long, requires = "dir")]
    pub force: bool,
}

/// Output format of `inspect`, `restore` and `verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A summary for people.
    Table,
    /// JSON for programs.
    Json,
    /// YAML for programs and people.
    Yaml,
}

/// `cmarchive inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The archive; `-` reads stdin.
    #[arg(value_name = "ARCHIVE")]
    pub archive: String,

    /// Keys.
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Which objects (the summary, manifest and prediction then cover only those).
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Output format; `json`/`yaml` print the manifest plus `reissuancePrediction` (what cert-manager will do).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    /// Predict reissuance as of this time (RFC 3339, e.g. 2027-01-31T00:00:00Z) instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<jiff::Timestamp>,
}

/// `cmarchive restore`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).multiple(true).args(["archive", "from_file", "from_dir"])))]
#[command(after_help = "Examples:\n  \
    cmarchive restore backup.cmar -i key.txt --dry-run\n  \
    cmarchive restore backup.cmar -i key.txt                                  # everything\n  \
    cmarchive restore backup.cmar -i key.txt -n team-a                        # one team, with what it needs\n  \
    cmarchive restore backup.cmar -i key.txt -l 'app in (web,api)'            # by label\n  \
    cmarchive restore backup.cmar -i key.txt --namespace-mapping team-a:team-z  # into another namespace\n  \
    cmarchive unpack backup.cmar -i key.txt | cmarchive restore --from-file -\n  \
    cmarchive restore --from-file backup.json --allow-reissue   # the guide's backup: no Secrets, all reissued\n\n\
    Before writing anything, restore predicts what cert-manager will do with every Certificate. When one would be\n\
    reissued (its Secret is missing from the input, holds another key, does not match the spec, …; a renewal that\n\
    is due anyway does not count), it names each with cert-manager's reason and stops, unless --allow-reissue.")]
pub struct RestoreArgs {
    /// The archive; `-` reads stdin. Exactly one of ARCHIVE, --from-file and --from-dir.
    #[arg(value_name = "ARCHIVE", conflicts_with_all = ["from_file", "from_dir"])]
    pub archive: Option<String>,

    /// Restore plain objects instead of an archive: what `cmarchive unpack` prints (YAML or `-o json`), a
    /// `kubectl get -o json|yaml` dump or cert-manager's guide-style `backup.json`. `-` reads stdin. Repeatable.
    /// Planned exactly as `pack --from-file` plans it (phases, sanitizing, exclusions); no keys are needed.
    #[arg(long, value_name = "FILE", conflicts_with_all = IDENTITY_FLAGS)]
    pub from_file: Vec<String>,

    /// Restore plain objects from every `.json`, `.yaml` and `.yml` file under this folder (recursively), e.g.
    /// what `cmarchive unpack --dir` wrote. Repeatable.
    #[arg(long, value_name = "DIR", conflicts_with_all = IDENTITY_FLAGS)]
    pub from_dir: Vec<PathBuf>,

    /// With --from-file/--from-dir: the namespace where the source cluster's cert-manager kept ClusterIssuer
    /// Secrets (moved to the target's on restore). Default: `cert-manager`.
    #[arg(long, value_name = "NS", conflicts_with = "archive")]
    pub source_cluster_resource_namespace: Option<String>,

    /// Go ahead although cert-manager is predicted to reissue some Certificates. Without it such a restore names
    /// them with cert-manager's reason and stops (exit 1) before anything is written; a renewal that is due
    /// needs no permission. With it their reissue is reported as predicted, not counted as a failure.
    #[arg(long)]
    pub allow_reissue: bool,

    /// Keys.
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Which cluster to restore into.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Which objects (prediction and verification then cover only those).
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Restore the objects of namespace OLD into NEW, creating NEW from OLD's Namespace object (labels and
    /// annotations kept). Repeatable; a comma-separated list works too. References cert-manager resolves in an
    /// object's own namespace follow; the cluster resource namespace follows --cluster-resource-namespace
    /// instead and cannot be mapped. An object of the same name already in NEW (not written by cmarchive) stops
    /// the restore before anything is written, --force-conflicts or not.
    #[arg(long = "namespace-mapping", visible_alias = "namespace-mappings", value_name = "OLD:NEW", value_parser = parse_namespace_mapping)]
    pub namespace_mappings: Vec<String>,

    /// Check everything (CRDs, permissions, conflicts, a server-side dry-run apply) and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Take ownership of fields another field manager owns (server-side apply `--force-conflicts`).
    #[arg(long)]
    pub force_conflicts: bool,

    /// How long to wait for each phase (issuers Ready, Certificates Ready), e.g. `90s`, `5m`, `1h30m`; a bare
    /// number is seconds.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,

    /// The target is the cluster the archive came from: keep `ownerReferences` (except on Secrets owned by
    /// their Certificate).
    #[arg(long)]
    pub same_cluster: bool,

    /// Scale the cert-manager controller to zero during the restore and back afterwards (closes the
    /// Secret-before-Certificate race completely).
    #[arg(long)]
    pub pause_controller: bool,

    /// Skip the verification at the end.
    #[arg(long)]
    pub no_verify: bool,

    /// Namespace where the target's cert-manager keeps ClusterIssuer Secrets (archived ones are moved there).
    #[arg(long, value_name = "NS")]
    pub cluster_resource_namespace: Option<String>,

    /// Report format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,
}

/// Flags that open an archive: meaningless for plain objects.
const IDENTITY_FLAGS: [&str; 5] = ["identities", "plugins", "passphrase_file", "signers", "signature"];

/// `cmarchive verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The archive; `-` reads stdin.
    #[arg(value_name = "ARCHIVE")]
    pub archive: String,

    /// Keys.
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Which cluster to compare.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Which objects (verify the Certificates of a selective restore only).
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Namespace where the target's cert-manager keeps ClusterIssuer Secrets.
    #[arg(long, value_name = "NS")]
    pub cluster_resource_namespace: Option<String>,

    /// Count CertificateRequests created after this time (RFC 3339) as reissuance. Default: the archive's
    /// creation time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<jiff::Timestamp>,

    /// Report format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,
}

/// `cmarchive completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `cmarchive man`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    cmarchive man | man -l -\n  \
    cmarchive man ~/.local/share/man/man1")]
pub struct ManArgs {
    /// Write cmarchive.1 and cmarchive-COMMAND.1 for every command into this folder (created when missing).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("1X").is_err());
    }

    #[test]
    fn timeouts_parse() {
        use std::time::Duration;
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("300"), Ok(Duration::from_secs(300)));
        for bad in ["", "5x", "-5m", "0s", "soon"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} was accepted");
        }
        let err = Cli::try_parse_from(["cmarchive", "restore", "a.cmar", "--timeout", "5 minutes please"])
            .expect_err("not a duration");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
    }

    #[test]
    fn selection_flags_parse_for_the_commands_that_read_an_archive() {
        for command in ["restore", "inspect", "unpack", "verify"] {
            let cli = Cli::try_parse_from([
                "cmarchive",
                command,
                "a.cmar",
                "-n",
                "team-a",
                "--namespace",
                "team-b",
                "-l",
                "app in (web,api),!legacy",
            ])
            .unwrap_or_else(|e| panic!("{command}: {e}"));
            let selection = match cli.command {
                Command::Restore(args) => args.selection,
                Command::Inspect(args) => args.selection,
                Command::Unpack(args) => args.selection,
                Command::Verify(args) => args.selection,
                _ => unreachable!(),
            };
            assert_eq!(selection.namespaces, ["team-a", "team-b"]);
            let filter = selection.filter();
            assert_eq!(filter.flags(), "-n team-a -n team-b -l 'app in (web,api),!legacy'");
            assert_eq!(filter.selector.unwrap().requirements().len(), 2);
        }
        let err = Cli::try_parse_from(["cmarchive", "inspect", "a.cmar", "-l", "app in web"])
            .expect_err("a malformed selector is a usage error");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
        assert!(err.to_string().contains("in parentheses"), "{err}");
    }

    #[test]
    fn namespace_mappings_parse_repeated_or_as_a_list() {
        let cli = Cli::try_parse_from([
            "cmarchive",
            "restore",
            "a.cmar",
            "--namespace-mapping",
            "team-a:team-z",
            "--namespace-mappings",
            "b:y,c:x",
        ])
        .unwrap();
        let Command::Restore(args) = cli.command else {
            unreachable!()
        };
        let mapping = NamespaceMapping::parse(args.namespace_mappings.iter().map(String::as_str)).unwrap();
        assert_eq!(mapping.to_string(), "b:y,c:x,team-a:team-z");
        for bad in ["team-a", "team-a:Team", "a:a"] {
            let err =
                Cli::try_parse_from(["cmarchive", "restore", "a.cmar", "--namespace-mapping", bad]).expect_err(bad);
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}: {err}");
        }
        let err = Cli::try_parse_from(["cmarchive", "inspect", "a.cmar", "--namespace-mapping", "a:b"])
            .expect_err("mapping is a restore flag");
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument, "{err}");
    }

    #[test]
    fn offline_pack_rejects_cluster_flags() {
        for flag in ["--from-file", "--from-dir"] {
            let err = Cli::try_parse_from(["cmarchive", "pack", "a.cmar", flag, "x", "-n", "prod"])
                .expect_err("a namespace selects from a cluster, not from a file");
            assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict, "{err}");
            let text = err.to_string();
            assert!(text.contains(flag) && text.contains("--namespace"), "{text}");
        }
        // The same flags without the cluster-only one parse.
        assert!(Cli::try_parse_from(["cmarchive", "pack", "a.cmar", "--from-file", "x", "-r", "age1x"]).is_ok());
    }

    #[test]
    fn restore_takes_an_archive_or_plain_objects() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["cmarchive", "restore"], args].concat());
        let restore = |args: &[&str]| match parse(args).map(|cli| cli.command) {
            Ok(Command::Restore(r)) => r,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(restore(&["a.cmar", "-i", "k"]).archive.as_deref(), Some("a.cmar"));
        let from = restore(&["--from-file", "-", "--from-file", "b.json", "--allow-reissue"]);
        assert_eq!(
            (from.archive, from.from_file.len(), from.allow_reissue),
            (None, 2, true)
        );
        assert_eq!(restore(&["--from-dir", "d"]).from_dir.len(), 1);
        let kind = |args: &[&str]| parse(args).expect_err("refused").kind();
        use clap::error::ErrorKind;
        assert_eq!(kind(&[]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["a.cmar", "--from-file", "b.json"]), ErrorKind::ArgumentConflict);
        assert_eq!(kind(&["a.cmar", "--from-dir", "d"]), ErrorKind::ArgumentConflict);
        for flag in ["-i", "--signers", "--passphrase-file", "-j"] {
            assert_eq!(
                kind(&["--from-file", "b.json", flag, "x"]),
                ErrorKind::ArgumentConflict,
                "{flag}"
            );
        }
    }
}
