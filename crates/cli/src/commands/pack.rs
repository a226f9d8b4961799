//! `cmarchive pack`: collect objects (from files here, from a cluster in `pack_cluster`), plan them into phases,
//! and write the encrypted archive. Output goes to a temporary file renamed into place only when complete, so a
//! failed pack never leaves something that looks like an archive.

use crate::cli::PackArgs;
use crate::commands::pack_cluster;
use crate::error::{CliError, Result};
use crate::planning::{PlanOptions, plan_objects};
use crate::{input, keys};
use cmarchive_archive::certmanager::Candidate;
use cmarchive_archive::manifest::{Exclusion, Source, Warning};
use cmarchive_archive::writer::{ManifestMeta, WriteOptions, WriteProgress, write_archive_with_progress};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// What a collector (files or cluster) hands to the shared planning and writing path.
#[derive(Debug, Default)]
pub struct Collected {
    /// Objects as read (lists already flattened), in any order, each reduced to what planning needs as soon as
    /// it was read.
    pub objects: Vec<Candidate>,
    /// Where they came from.
    pub source: Source,
    /// Objects the collector saw and left out on purpose.
    pub excluded: Vec<Exclusion>,
    /// Problems found while collecting (a referenced Secret that does not exist, …).
    pub warnings: Vec<Warning>,
}

/// Runs `pack`.
pub fn run(args: &PackArgs) -> Result<()> {
    let to_stdout = args.archive == "-";
    if to_stdout && io::stdout().is_terminal() && !args.armor {
        return Err(CliError::BinaryToTerminal);
    }
    let stdin_users = args.from_file.iter().filter(|f| *f == "-").count()
        + args.recipients.recipients_files.iter().filter(|f| *f == "-").count();
    if stdin_users > 1 {
        return Err(CliError::Usage(
            "only one of --from-file and -R can read stdin (`-`)".into(),
        ));
    }
    let archive_path = PathBuf::from(&args.archive);
    if !to_stdout && !args.force && archive_path.exists() {
        return Err(CliError::OutputExists(archive_path));
    }
    let recipients = keys::recipients(&args.recipients)?;

    let collected = if args.is_offline() {
        collect_files(args)?
    } else {
        pack_cluster::collect(args)?
    };
    let meta = ManifestMeta {
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        created: jiff::Timestamp::now(),
        source: collected.source.clone(),
        options: recorded_options(args),
    };
    let plan = plan_objects(
        collected,
        &PlanOptions {
            include_crds: args.include_crds,
            include_certificaterequests: args.include_certificaterequests,
        },
    );
    let options = WriteOptions {
        zstd_level: args.compression_level,
        armor: args.armor,
    };

    let bar = progress_bar(plan.object_count() as u64);
    let mut on_progress = |p: WriteProgress| {
        if let Some(bar) = &bar {
            bar.set_position(p.written as u64);
        }
    };
    let manifest = if to_stdout {
        let stdout = io::stdout().lock();
        write_archive_with_progress(stdout, &recipients, &options, meta, &plan, &mut on_progress).map_err(|source| {
            CliError::Archive {
                path: "-".into(),
                source,
            }
        })?
    } else {
        write_file_atomically(&archive_path, args.force, |file| {
            write_archive_with_progress(
                io::BufWriter::new(file),
                &recipients,
                &options,
                meta,
                &plan,
                &mut on_progress,
            )
            .map_err(|source| CliError::Archive {
                path: args.archive.clone(),
                source,
            })
        })?
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let counts: Vec<String> = manifest
        .phases
        .iter()
        .map(|p| format!("{} {}", p.entries.len(), p.name))
        .collect();
    eprintln!(
        "packed {} objects ({}) into {}{}",
        plan.object_count(),
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        },
        if to_stdout { "stdout" } else { &args.archive },
        match manifest.warnings.len() {
            0 => String::new(),
            n => format!("; {n} warnings, see `cmarchive inspect`"),
        }
    );
    Ok(())
}

/// Reads `--from-file` and `--from-dir` inputs.
fn collect_files(args: &PackArgs) -> Result<Collected> {
    let mut objects = Vec::new();
    let mut inputs = Vec::new();
    for name in &args.from_file {
        let bytes = if name == "-" {
            if io::stdin().is_terminal() {
                return Err(CliError::Usage(
                    "--from-file - reads stdin, but stdin is a terminal; pipe `kubectl get … -o json` in".into(),
                ));
            }
            let mut bytes = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(CliError::io("reading stdin"))?;
            input::DumpBytes::Read(bytes)
        } else {
            input::read_dump(Path::new(name)).map_err(CliError::io(format!("reading {name}")))?
        };
        objects.extend(input::parse_dump_into(name, &bytes, &input::Candidates)?);
        inputs.push(name.clone());
    }
    for dir in &args.from_dir {
        // Files are read and parsed on every core; their objects are kept in file order (the first of two
        // objects with one identity wins, so the order is part of the result), and of several broken files the
        // first is reported.
        let parsed: Vec<Result<Vec<Candidate>>> = input::dump_files(dir)?
            .par_iter()
            .map(|file| {
                let bytes = input::read_dump(file).map_err(CliError::io(format!("reading {}", file.display())))?;
                input::parse_dump_into(&file.display().to_string(), &bytes, &input::Candidates)
            })
            .collect();
        for file in parsed {
            objects.extend(file?);
        }
        inputs.push(dir.display().to_string());
    }
    let kind = if args.from_file.is_empty() { "dir" } else { "file" };
    Ok(Collected {
        objects,
        source: Source {
            kind: kind.into(),
            cluster_resource_namespace: args
                .cluster_resource_namespace
                .clone()
                .unwrap_or_else(|| "cert-manager".into()),
            inputs,
            ..Source::default()
        },
        ..Collected::default()
    })
}

/// The options worth keeping in the manifest (never key material or recipients).
fn recorded_options(args: &PackArgs) -> BTreeMap<String, Value> {
    let mut o = BTreeMap::new();
    o.insert("armor".into(), json!(args.armor));
    o.insert("compressionLevel".into(), json!(args.compression_level));
    o.insert("includeCrds".into(), json!(args.include_crds));
    o.insert(
        "includeCertificaterequests".into(),
        json!(args.include_certificaterequests),
    );
    if !args.namespaces.is_empty() {
        o.insert("namespaces".into(), json!(args.namespaces));
    }
    if let Some(selector) = &args.selector {
        o.insert("selector".into(), json!(selector));
    }
    if let Some(ns) = &args.cluster_resource_namespace {
        o.insert("clusterResourceNamespace".into(), json!(ns));
    }
    if args.strict {
        o.insert("strict".into(), json!(true));
    }
    o
}

/// Writes through `write` into `PATH.partial-PID` (mode 0600) and renames it to `path` only on success.
pub fn write_file_atomically<T>(path: &Path, overwrite: bool, write: impl FnOnce(&fs::File) -> Result<T>) -> Result<T> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&partial)
        .map_err(CliError::io(format!("creating {}", partial.display())))?;
    // A signal while writing removes the partial file; it never lands between the last write and the rename.
    let result = crate::interrupt::with_partial_file(
        &partial,
        || {
            write(&file).and_then(|value| {
                (&file)
                    .flush()
                    .and_then(|()| file.sync_all())
                    .map_err(CliError::io(format!("writing {}", partial.display())))?;
                Ok(value)
            })
        },
        |written| {
            let value = written?;
            if !overwrite && path.exists() {
                return Err(CliError::OutputExists(path.to_owned()));
            }
            fs::rename(&partial, path).map_err(CliError::io(format!("renaming to {}", path.display())))?;
            Ok(value)
        },
    );
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// A bar on stderr when a person watches; nothing in pipes and CI logs.
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() || total < 200 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} packing {pos}/{len} objects {wide_bar} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}
