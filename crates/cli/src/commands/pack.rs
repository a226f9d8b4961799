//! `cmarchive pack`: collect objects (from files here, from a cluster in `pack_cluster`), plan them into phases,
//! and write the encrypted archive. Output goes to a temporary file renamed into place only when complete, so a
//! failed pack never leaves something that looks like an archive.

use crate::cli::PackArgs;
use crate::commands::pack_cluster;
use crate::error::{CliError, Result};
use crate::planning::{Collected, PlanOptions, plan_objects};
use crate::{input, keys, signing};
use cmarchive_archive::certmanager::Candidate;
use cmarchive_archive::certmanager::select::codes;
use cmarchive_archive::manifest::{SECRETS_ONLY_OPTION, Source, Warning};
use cmarchive_archive::writer::{ManifestMeta, WriteOptions, WriteProgress, write_archive_with_progress};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

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
    let signing = match &args.sign {
        Some(key) => {
            let path = signing::signature_path(&args.archive, args.signature.as_deref())?;
            if !args.force && path.exists() {
                return Err(CliError::OutputExists(path));
            }
            Some((signing::signing_key(key)?, path))
        }
        None => None,
    };
    let sign = |copy: Option<Vec<u8>>| match (&signing, copy) {
        (Some((key, path)), Some(bytes)) => signing::write_signature(key, &bytes, path, args.force),
        _ => Ok(()),
    };

    let collected = if args.is_offline() {
        let files = Files {
            files: &args.from_file,
            dirs: &args.from_dir,
            cluster_resource_namespace: args.cluster_resource_namespace.as_deref(),
            allow_empty: Some(args.allow_empty),
        };
        collect_files(&files)?
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
            secrets_only: args.secrets_only,
        },
    );
    let undecodable: Vec<&Warning> = plan
        .warnings
        .iter()
        .filter(|w| w.code == codes::INVALID_SECRET_DATA)
        .collect();
    if args.strict && !undecodable.is_empty() {
        return Err(CliError::Strict(format!(
            "{} Secret(s) with data that is not base64, first {}",
            undecodable.len(),
            undecodable[0].message
        )));
    }
    for warning in undecodable {
        note!("warning: {}", warning.message);
    }
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
    // With --sign, the bytes written are kept and signed; the signature is in place before the archive is.
    let manifest = if to_stdout {
        let mut stdout = signing::Copying::new(io::stdout().lock(), signing.is_some());
        let manifest = write_archive_with_progress(&mut stdout, &recipients, &options, meta, &plan, &mut on_progress)
            .map_err(|source| CliError::Archive {
            path: "-".into(),
            source,
        })?;
        sign(stdout.copy)?;
        manifest
    } else {
        write_file_atomically(&archive_path, args.force, |file| {
            let mut out = signing::Copying::new(io::BufWriter::new(file), signing.is_some());
            let manifest = write_archive_with_progress(&mut out, &recipients, &options, meta, &plan, &mut on_progress)
                .map_err(|source| CliError::Archive {
                    path: args.archive.clone(),
                    source,
                })?;
            sign(out.copy)?;
            Ok(manifest)
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

/// Plain-object inputs: `--from-file` and `--from-dir` of `pack` and `restore`.
pub struct Files<'a> {
    /// `--from-file` (`-` = stdin).
    pub files: &'a [String],
    /// `--from-dir`.
    pub dirs: &'a [PathBuf],
    /// Where the source's ClusterIssuer Secrets live (default `cert-manager`).
    pub cluster_resource_namespace: Option<&'a str>,
    /// `--allow-empty`; `None` where the command does not offer it (an empty input is always refused).
    pub allow_empty: Option<bool>,
}

/// Reads `--from-file` and `--from-dir` inputs.
pub fn collect_files(args: &Files<'_>) -> Result<Collected> {
    let mut objects = Vec::new();
    let mut inputs = Vec::new();
    for name in args.files {
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
        refuse_empty(name, &bytes, args.allow_empty)?;
        objects.extend(input::parse_dump_into(name, &bytes, &input::Candidates)?);
        inputs.push(name.clone());
    }
    for dir in args.dirs {
        // Files are read and parsed on every core; their objects are kept in file order (the first of two
        // objects with one identity wins, so the order is part of the result), and of several broken files the
        // first is reported.
        let parsed: Vec<Result<Vec<Candidate>>> = input::dump_files(dir)?
            .par_iter()
            .map(|file| {
                let bytes = input::read_dump(file).map_err(CliError::io(format!("reading {}", file.display())))?;
                refuse_empty(&file.display().to_string(), &bytes, args.allow_empty)?;
                input::parse_dump_into(&file.display().to_string(), &bytes, &input::Candidates)
            })
            .collect();
        for file in parsed {
            objects.extend(file?);
        }
        inputs.push(dir.display().to_string());
    }
    let kind = if args.files.is_empty() { "dir" } else { "file" };
    Ok(Collected {
        objects,
        source: Source {
            kind: kind.into(),
            cluster_resource_namespace: args.cluster_resource_namespace.unwrap_or("cert-manager").to_owned(),
            inputs,
            ..Source::default()
        },
        ..Collected::default()
    })
}

/// An input with nothing in it is refused unless `--allow-empty`: it is what a failed `kubectl get … > FILE` leaves,
/// and packed it would be a backup of nothing that looks like a backup.
fn refuse_empty(name: &str, bytes: &[u8], allow_empty: Option<bool>) -> Result<()> {
    if allow_empty == Some(true) || bytes.iter().any(|b| !b.is_ascii_whitespace()) {
        return Ok(());
    }
    let remedy = match allow_empty {
        Some(_) => "; pass --allow-empty to pack it anyway",
        None => "",
    };
    Err(CliError::Input {
        path: name.to_owned(),
        reason: format!("the input is empty (a failed `kubectl get … > FILE` leaves an empty file){remedy}"),
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
    if args.secrets_only {
        o.insert(SECRETS_ONLY_OPTION.into(), json!(true));
    }
    o
}

/// Writes through `write` into a temporary file beside `path` (mode 0600, removed on failure) and moves it to
/// `path` only on success; without `overwrite` the move itself refuses an existing file, so nothing that appeared
/// meanwhile is replaced.
pub fn write_file_atomically<T>(path: &Path, overwrite: bool, write: impl FnOnce(&fs::File) -> Result<T>) -> Result<T> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let prefix = format!(".{name}.partial-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
    let file = builder
        .tempfile_in(dir)
        .map_err(CliError::io(format!("creating a temporary file in {}", dir.display())))?;
    let partial = file.path().to_owned();
    let file = std::cell::RefCell::new(Some(file));
    // A signal while writing removes the temporary file; it never lands between the last write and the move.
    crate::interrupt::with_partial_file(
        &partial,
        || {
            let slot = file.borrow();
            let file = slot.as_ref().expect("the file stays until it is moved").as_file();
            let value = write(file)?;
            (&*file)
                .flush()
                .and_then(|()| file.sync_all())
                .map_err(CliError::io(format!("writing {}", partial.display())))?;
            Ok(value)
        },
        |written| {
            let value = written?;
            let file = file.borrow_mut().take().expect("moved once");
            let persisted = if overwrite {
                file.persist(path)
            } else {
                file.persist_noclobber(path)
            };
            match persisted {
                Ok(_) => Ok(value),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(CliError::OutputExists(path.to_owned()))
                }
                Err(e) => Err(CliError::io(format!("moving the archive to {}", path.display()))(
                    e.error,
                )),
            }
        },
    )
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
