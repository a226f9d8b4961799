//! SIGINT and SIGTERM are normal events for a command run during an outage or by a CI job that gets cancelled.
//!
//! A command that can stop at a safe point (`restore`) says so with [`cooperate`] and learns of the first signal
//! from [`first`]; it then finishes or abandons what is in flight, puts the cluster back the way it must be and
//! exits with [`Signal::exit_code`]. Any other signal — a command that never cooperates (`pack`) or a second
//! Ctrl-C — runs the registered last words (remove a partial archive, scale a paused controller back) and exits
//! at once.

use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// A signal that ends a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (a CI job cancelled, a Pod deleted).
    Terminate,
}

impl Signal {
    /// The shell's convention: 128 + the signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Work that must still happen when the process exits on a signal, e.g. scaling a paused controller back.
type LastWords = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// How long the last words may take: a second Ctrl-C means "now".
const LAST_WORDS_BOUND: Duration = Duration::from_secs(15);

struct State {
    first: watch::Sender<Option<Signal>>,
    cooperative: AtomicBool,
    last_words: Mutex<Vec<(u64, LastWords)>>,
    partial_files: Mutex<Vec<PathBuf>>,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| State {
        first: watch::channel(None).0,
        cooperative: AtomicBool::new(false),
        last_words: Mutex::default(),
        partial_files: Mutex::default(),
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Catches SIGINT and SIGTERM for the rest of the process, on a thread of its own so that a command blocked in
/// synchronous work (writing an archive) is reached too.
pub fn install() {
    let (ready, installed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::warn!(error = %e, "cannot catch signals");
                let _ = ready.send(());
                return;
            }
        };
        runtime.block_on(listen(ready));
    });
    if spawned.is_ok() {
        // Handlers are in place before the command does anything worth protecting.
        let _ = installed.recv();
    }
}

async fn listen(ready: std::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        tracing::warn!("cannot catch SIGINT and SIGTERM");
        let _ = ready.send(());
        return;
    };
    let _ = ready.send(());
    loop {
        let signal = tokio::select! {
            _ = int.recv() => Signal::Interrupt,
            _ = term.recv() => Signal::Terminate,
        };
        let state = state();
        let first = state.first.borrow().is_none();
        if first && state.cooperative.load(Ordering::SeqCst) {
            say(&format!(
                "cmarchive: {}: stopping at the next safe point (again to stop at once)",
                signal.name()
            ));
            state.first.send_replace(Some(signal));
            continue;
        }
        state.first.send_replace(Some(signal));
        say(&format!("cmarchive: {}: stopping now", signal.name()));
        last_words().await;
        std::process::exit(signal.exit_code());
    }
}

/// One line on stderr that cannot panic: `eprintln!` does when stderr is a pipe whose reader is gone (a cancelled
/// CI job), and a panic here would kill this thread and leave every later signal caught and ignored.
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs every registered last word (bounded) and removes the partial files still registered.
async fn last_words() {
    let state = state();
    let words: Vec<BoxFuture<'static, ()>> = lock(&state.last_words).iter().map(|(_, w)| w()).collect();
    if tokio::time::timeout(LAST_WORDS_BOUND, futures::future::join_all(words))
        .await
        .is_err()
    {
        say(&format!(
            "cmarchive: gave up on cleaning up after {}s",
            LAST_WORDS_BOUND.as_secs()
        ));
    }
    for path in lock(&state.partial_files).drain(..) {
        if std::fs::remove_file(&path).is_ok() {
            say(&format!(
                "cmarchive: removed the unfinished {}; no archive was written",
                path.display()
            ));
        }
    }
}

/// While the returned guard lives, the first signal is left to the caller (see [`first`]); a second one still
/// exits at once.
pub fn cooperate() -> Cooperation {
    state().cooperative.store(true, Ordering::SeqCst);
    Cooperation(())
}

/// See [`cooperate`].
pub struct Cooperation(());

impl Drop for Cooperation {
    fn drop(&mut self) {
        state().cooperative.store(false, Ordering::SeqCst);
    }
}

/// Resolves at the first SIGINT or SIGTERM (at once if one has arrived already).
pub async fn first() -> Signal {
    let mut receiver = state().first.subscribe();
    match receiver.wait_for(Option::is_some).await {
        Ok(signal) => signal.expect("waited for Some"),
        // The sender lives in a static and is never dropped.
        Err(_) => std::future::pending().await,
    }
}

/// Registers work to do if the process exits on a signal; unregistered when the guard drops.
pub fn on_exit(words: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static) -> LastWordsGuard {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    lock(&state().last_words).push((id, Box::new(words)));
    LastWordsGuard(id)
}

/// See [`on_exit`].
pub struct LastWordsGuard(u64);

impl Drop for LastWordsGuard {
    fn drop(&mut self) {
        lock(&state().last_words).retain(|(id, _)| *id != self.0);
    }
}

/// Runs `finish` (typically a rename of `partial` into place) unless a signal is removing `partial`: the two never
/// overlap, so an archive is either complete under its name or not there at all.
pub fn with_partial_file<T>(partial: &Path, write: impl FnOnce() -> T, finish: impl FnOnce(T) -> T) -> T {
    lock(&state().partial_files).push(partial.to_owned());
    let written = write();
    let mut files = lock(&state().partial_files);
    files.retain(|p| p != partial);
    finish(written)
}

/// The command line as typed, quoted for a POSIX shell, to tell a person the exact command that finishes a job.
pub fn command_line() -> String {
    std::env::args_os()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@,+%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
    }

    #[test]
    fn arguments_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("--kubeconfig=/a/b.yaml"), "--kubeconfig=/a/b.yaml");
        assert_eq!(shell_quote("my backup.cmar"), "'my backup.cmar'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
