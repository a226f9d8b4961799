//! `cmarchive --version` names the commit it was built from, taken from the first of: `CMARCHIVE_BUILD_COMMIT`
//! (for builds without the repository, such as a container build), the `.cargo_vcs_info.json` that `cargo package`
//! writes (`cargo install` from a registry), and git (a clone, `cargo install --git`). Without any of them the
//! version stands alone.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CMARCHIVE_BUILD_COMMIT");
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let commit = std::env::var("CMARCHIVE_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(packaged_commit)
        .or_else(git_commit);
    let long = match commit {
        Some(commit) => format!(
            "{version} (commit {})",
            commit.trim().get(..12).unwrap_or(commit.trim())
        ),
        None => version,
    };
    println!("cargo:rustc-env=CMARCHIVE_VERSION={long}");
}

fn packaged_commit() -> Option<String> {
    let path = Path::new(".cargo_vcs_info.json");
    let text = std::fs::read_to_string(path).ok()?;
    println!("cargo:rerun-if-changed={}", path.display());
    let info: serde_json::Value = serde_json::from_str(&text).ok()?;
    info.pointer("/git/sha1")?.as_str().map(str::to_owned)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// HEAD's commit, when this crate is part of the checked-out tree (not merely inside some unrelated repository,
/// such as a home folder kept in git). Cargo runs the build again when HEAD moves: a checkout changes HEAD, a
/// commit the branch it names, whose file (in a worktree's common directory) a fresh clone does not have yet: its
/// folder is watched until it appears.
fn git_commit() -> Option<String> {
    git(&["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let commit = git(&["rev-parse", "HEAD"])?;
    let watch = |name: &str, or_its_folder: bool| {
        let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", name]) else {
            return;
        };
        let path = Path::new(&path);
        let existing = match path.parent() {
            _ if path.exists() => Some(path),
            Some(folder) if or_its_folder && folder.exists() => Some(folder),
            _ => None,
        };
        if let Some(existing) = existing {
            println!("cargo:rerun-if-changed={}", existing.display());
        }
    };
    watch("HEAD", false);
    watch("packed-refs", false);
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&branch, true);
    }
    Some(commit)
}
