//! The `cmarchive` command: parse the command line, set up logging, run one command, turn its error into one line
//! (plus a remedy line when there is one) and an exit code. See `cli.rs` for the surface and the exit codes.

/// `eprintln!` for a line that shows text from an archive or a cluster: the whole line goes out with control
/// characters escaped, so whatever its fields hold it stays one inert line.
macro_rules! note {
    ($($arg:tt)*) => {
        eprintln!("{}", cmarchive_archive::text::escape_controls(&format!($($arg)*)))
    };
}

mod cli;
mod cluster;
mod commands;
mod error;
mod input;
mod interrupt;
mod keys;
mod planning;
mod signing;

use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command, EXIT_ERROR, EXIT_OK, LogFormat};
use cmarchive_archive::text::escape_controls_keep_lines;
use error::CliError;
use std::ffi::OsString;

/// cmarchive builds and drops hundreds of thousands of small JSON maps and strings per archive; with glibc's
/// allocator that was a quarter of a pack's time and left the heap fragmented. Heap profilers (heaptrack) see only
/// the system allocator: `RUSTFLAGS=--cfg=cmarchive_system_alloc` builds without mimalloc for them.
#[cfg(not(cmarchive_system_alloc))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 in `mi_option_t` of the mimalloc v3 the `mimalloc` crate links).
#[cfg(not(cmarchive_system_alloc))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// When freed memory goes back to the OS. A command that talks to a cluster holds objects for network-bound
/// stretches: returning freed pages at once keeps its peak low at no cost in time. A command that only reads and
/// writes files is CPU-bound and frees and reallocates its whole input in bursts: pages returned at once would be
/// faulted back (and zeroed by the kernel) moments later, so a short delay lets them be reused. A
/// `MIMALLOC_PURGE_DELAY` the user set wins. docs/PERFORMANCE.md has the measurements.
#[cfg(not(cmarchive_system_alloc))]
#[allow(unsafe_code)]
fn tune_allocator(command: &Command) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let delay_ms = match command {
        Command::Pack(pack) if pack.is_offline() => 100,
        Command::Unpack(_) | Command::Inspect(_) => 100,
        _ => 0,
    };
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table and takes no pointers. The store is
    // not atomic, so this runs in `main` before any other thread exists; mimalloc reads the option on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay_ms) }
}

#[cfg(cmarchive_system_alloc)]
fn tune_allocator(_: &Command) {}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(code) => std::process::exit(code),
    };
    tune_allocator(&cli.command);
    init_logging(cli.verbose, cli.log_format);
    // The commands that write: a signal must not leave a partial archive or a paused controller behind.
    if matches!(cli.command, Command::Pack(_) | Command::Restore(_)) {
        interrupt::install();
    }
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(CliError::StdoutClosed) => EXIT_OK,
        Err(e) => {
            tracing::debug!(error = ?e, "command failed");
            // Errors name objects and quote servers; a message with several lines by design keeps its lines.
            eprintln!("cmarchive: error: {}", escape_controls_keep_lines(&e.to_string()));
            if let Some(remedy) = e.remedy() {
                eprintln!("cmarchive: hint: {}", escape_controls_keep_lines(&remedy));
            }
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}

/// Parses argv; answers to `kubectl-cmarchive` as `kubectl cmarchive`. Usage errors exit 1 (exit 2 is reserved
/// for "a certificate was reissued"), with a hint when age habits meet the wrong command.
fn parse(args: &[OsString]) -> Result<Cli, i32> {
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut command = Cli::command();
    if invoked_as.starts_with("kubectl-cmarchive") {
        command = as_kubectl_plugin(command);
    }
    let matches = command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    match matches {
        Ok(cli) => Ok(cli),
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return Err(EXIT_OK); // --help, --version
            }
            if let Some(hint) = flag_hint(&e, args) {
                eprintln!("\ntip: {hint}");
            }
            Err(EXIT_ERROR)
        }
    }
}

/// The command as krew installs it: usage lines and examples say `kubectl cmarchive`.
fn as_kubectl_plugin(command: clap::Command) -> clap::Command {
    const NAME: &str = "kubectl cmarchive";
    command
        .bin_name(NAME)
        .display_name(NAME)
        .mut_subcommands(|sub| match sub.get_after_help() {
            Some(examples) => {
                let examples = examples.to_string().replace("cmarchive ", &format!("{NAME} "));
                sub.after_help(examples)
            }
            None => sub,
        })
}

/// "did you mean -i?": the age flags for the other direction.
fn flag_hint(error: &clap::Error, args: &[OsString]) -> Option<&'static str> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let subcommand = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy())
        .find(|a| !a.starts_with('-'))?;
    let flag = flag.split('=').next().unwrap_or_default();
    match (subcommand.as_ref(), flag) {
        ("unpack" | "inspect" | "restore" | "verify", "-r" | "--recipient" | "-R" | "--recipients-file") => {
            Some("-r/-R name who may open a new archive (for `pack`); to open this one, did you mean -i KEY_FILE?")
        }
        ("pack", "-i" | "--identity") => Some(
            "-i names a key to open archives; `pack` encrypts to public keys: did you mean -r RECIPIENT or -R FILE?",
        ),
        (_, "--output") | (_, "-o") if subcommand == "pack" => {
            Some("`pack` takes the archive as a positional argument: cmarchive pack backup.cmar …")
        }
        _ => None,
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    // Below -v only cmarchive's own warnings: a library's log line (kube-client's "failed with status 500") says
    // less than the error cmarchive reports for the same event.
    let default = match verbose {
        0 => "off,cmarchive=warn,cmarchive_archive=warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Log lines carry names and messages from clusters and archives: written with their control characters
    // escaped, and so without colours of their own.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| EscapedStderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Standard error for log lines, control characters escaped (line feeds stay: they end the lines).
struct EscapedStderr;

impl std::io::Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(escape_controls_keep_lines(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn run(command: Command) -> Result<i32, CliError> {
    match command {
        Command::Keygen(args) => commands::keygen::run(&args).map(|()| EXIT_OK),
        Command::Pack(args) => commands::pack::run(&args).map(|()| EXIT_OK),
        Command::Unpack(args) => {
            let archive = commands::check_archive_named(&args.archive, &args.identity)?;
            commands::unpack::run(&args, &archive).map(|()| EXIT_OK)
        }
        Command::Inspect(args) => {
            let archive = commands::open_archive(&args.archive, &args.identity)?;
            let archive = commands::selection::narrow(&args.archive, archive, &args.selection)?;
            commands::inspect::run(&args, &archive).map(|()| EXIT_OK)
        }
        Command::Restore(args) => {
            let archive = match &args.archive {
                Some(archive) => commands::open_archive(archive, &args.identity)?,
                None => commands::plain_objects::open(&args)?,
            };
            commands::restore::run(&args, archive)
        }
        Command::Verify(args) => {
            let archive = commands::open_archive(&args.archive, &args.identity)?;
            let archive = commands::selection::narrow(&args.archive, archive, &args.selection)?;
            commands::verify::run(&args, &archive)
        }
        Command::Man(args) => commands::man::run(&args).map(|()| EXIT_OK),
        Command::Completions(args) => {
            let mut command = Cli::command();
            clap_complete::generate(args.shell, &mut command, "cmarchive", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
    }
}

#[cfg(all(test, not(cmarchive_system_alloc)))]
mod tests {
    use super::*;

    /// Index 15 is the purge delay: no other option defaults to 1000 (ms), and tuning sets it per command. The
    /// check runs in a child process of this test binary holding this one test, so the option's plain store does
    /// not race with other tests allocating on their threads (the premise `tune_allocator`'s SAFETY note states for
    /// main).
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_option_is_the_one_tuned() {
        const CHILD: &str = "CMARCHIVE_TEST_ALLOCATOR_CHILD";
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        if std::env::var_os(CHILD).is_none() {
            let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--exact",
                    "tests::purge_delay_option_is_the_one_tuned",
                    "--test-threads=1",
                ])
                .env(CHILD, "1")
                .status()
                .expect("running the test binary");
            assert!(status.success(), "the allocator check failed in its own process");
            return;
        }
        // SAFETY: reading an option takes no pointers.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let command = |args: &[&str]| {
            let matches = Cli::command().try_get_matches_from(args).expect("the arguments parse");
            Cli::from_arg_matches(&matches).expect("the arguments parse").command
        };
        assert_eq!(get(), 1000);
        tune_allocator(&command(&[
            "cmarchive",
            "pack",
            "b.cmar",
            "-r",
            "age1x",
            "--from-file",
            "in.json",
        ]));
        assert_eq!(get(), 100, "an offline pack reuses freed pages for a moment");
        tune_allocator(&command(&["cmarchive", "pack", "b.cmar", "-r", "age1x", "-A"]));
        assert_eq!(get(), 0, "a cluster pack returns freed pages at once");
    }
}
