//! The whole command-line surface of `cmarchive`, and nothing else: every flag is defined and documented here so
//! that `--help`, the shell completions and the docs cannot drift apart.
//!
//! Conventions: the archive is always a positional argument (`-` = stdin/stdout) and `-o` always
//! means an output format. Key flags follow age and rage: `-r`, `-R`, `-p`, `-a`, `-i`, `-j`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit code: everything worked.
pub const EXIT_OK: i32 = 0;
/// Exit code: an error stopped the command (bad input, wrong key, damaged archive, cluster error, …).
pub const EXIT_ERROR: i32 = 1;
/// Exit code: the command finished, but a certificate was (or would be) reissued. Used by `verify` and `restore`.
#[allow(dead_code)]
pub const EXIT_REISSUED: i32 = 2;

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
    cmarchive unpack backup.cmar -i key.txt --dir restored/")]
pub struct UnpackArgs {
    /// The archive; `-` reads stdin.
    #[arg(value_name = "ARCHIVE")]
    pub archive: String,

    /// Keys.
    #[command(flatten)]
    pub identity: IdentityArgs,

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

    /// Output format; `json`/`yaml` print the manifest plus `reissuancePrediction` (what cert-manager will do).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    /// Predict reissuance as of this time (RFC 3339, e.g. 2027-01-31T00:00:00Z) instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<jiff::Timestamp>,
}

/// `cmarchive restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive; `-` reads stdin.
    #[arg(value_name = "ARCHIVE")]
    pub archive: String,

    /// Keys.
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Which cluster to restore into.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Check everything (CRDs, permissions, conflicts, a server-side dry-run apply) and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Take ownership of fields another field manager owns (server-side apply `--force-conflicts`).
    #[arg(long)]
    pub force_conflicts: bool,

    /// How long to wait for each phase (issuers Ready, Certificates Ready), e.g. `90s`, `5m`.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,

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
}
