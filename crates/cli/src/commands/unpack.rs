//! `cmarchive unpack`: a verified archive's objects as YAML (for `kubectl apply -f -`), as one JSON `List`, or as
//! one file per object in phase-numbered folders.

use crate::cli::{UnpackArgs, UnpackFormat};
use crate::commands;
use crate::error::{CliError, Result};
use cmarchive_archive::{CheckedArchive, ObjectRef, paths};
use serde_json::Value;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Prints or writes the objects of an already verified archive, in restore order.
pub fn run(args: &UnpackArgs, archive: &CheckedArchive) -> Result<()> {
    match &args.dir {
        Some(dir) => write_dir(dir, args.output, args.force, &args.archive, archive),
        None => {
            let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
            match args.output {
                // Rendered whole before the first byte goes out: YAML is the one output a rendering error could
                // otherwise cut short.
                UnpackFormat::Yaml => {
                    let text = yaml_documents(&args.archive, archive)?;
                    out.write_all(text.as_bytes()).map_err(stdout())?;
                }
                // The stored bytes as they are: nothing can fail between the checks and the output but stdout.
                UnpackFormat::Json => write_json_list(&mut out, &args.archive, archive)?,
            }
            out.flush().map_err(stdout())
        }
    }
}

fn to_yaml(object: &Value) -> Result<String> {
    serde_saphyr::to_string(object).map_err(|e| CliError::Usage(format!("cannot render an object as YAML: {e}")))
}

/// What a failed write to stdout says.
fn stdout() -> impl FnOnce(io::Error) -> CliError {
    CliError::io("writing to stdout")
}

/// A verified object, parsed (it parsed when the archive was verified, so this does not fail in practice).
fn parsed(object: &ObjectRef<'_>) -> Result<Value> {
    object.object().map_err(|e| CliError::Usage(e.to_string()))
}

/// The archive's objects as multi-document YAML, parsing one object at a time. Strings that YAML 1.1 readers
/// (kubectl) would take for booleans or numbers (`yes`, `on`, `0755`, …) are quoted by the serializer, so the
/// documents read back as the same objects.
fn yaml_documents(name: &str, archive: &CheckedArchive) -> Result<String> {
    let mut text = String::new();
    commands::for_each_object(name, archive, |object| {
        if !text.is_empty() {
            text.push_str("---\n");
        }
        text.push_str(&to_yaml(&parsed(&object)?)?);
        Ok(())
    })?;
    Ok(text)
}

/// A `v1` `List` whose items are the stored objects byte for byte, one per line, each written as the second pass
/// hands it out: no parsing and no re-rendering, so this costs what copying the bytes costs.
fn write_json_list(out: &mut impl Write, name: &str, archive: &CheckedArchive) -> Result<()> {
    out.write_all(br#"{"apiVersion":"v1","kind":"List","metadata":{},"items":["#)
        .map_err(stdout())?;
    let mut first = true;
    commands::for_each_object(name, archive, |object| {
        out.write_all(if first { b"\n" } else { b",\n" }).map_err(stdout())?;
        first = false;
        out.write_all(object.bytes).map_err(stdout())
    })?;
    out.write_all(b"\n]}\n").map_err(stdout())
}

fn write_dir(dir: &Path, format: UnpackFormat, force: bool, name: &str, archive: &CheckedArchive) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                return Err(CliError::DirNotEmpty(dir.to_owned()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(dir)?,
        Err(e) => {
            return Err(CliError::Io {
                context: format!("reading {}", dir.display()),
                source: e,
            });
        }
    }
    let mut written = 0usize;
    commands::for_each_object(name, archive, |object| {
        // The reader already proved the path safe (relative, no `..`, under objects/).
        let relative = object
            .entry
            .path
            .strip_prefix(&format!("{}/", paths::OBJECTS_DIR))
            .unwrap_or(&object.entry.path);
        let mut path: PathBuf = dir.join(relative);
        let text = match format {
            UnpackFormat::Yaml => {
                path.set_extension("yaml");
                to_yaml(&parsed(&object)?)?
            }
            UnpackFormat::Json => {
                let mut text =
                    serde_json::to_string_pretty(&parsed(&object)?).map_err(|e| CliError::Usage(e.to_string()))?;
                text.push('\n');
                text
            }
        };
        if let Some(parent) = path.parent() {
            make_dir(parent)?;
        }
        let secret = object.entry.key.kind == "Secret" && object.entry.key.api_version == "v1";
        write_file(&path, text.as_bytes(), if secret { 0o600 } else { 0o644 }, force)?;
        written += 1;
        Ok(())
    })?;
    write_file(&dir.join("manifest.json"), &archive.manifest_json, 0o644, force)?;
    eprintln!("wrote {written} objects to {}", dir.display());
    Ok(())
}

fn make_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(CliError::io(format!("creating {}", dir.display())))
}

fn write_file(path: &Path, data: &[u8], mode: u32, overwrite: bool) -> Result<()> {
    commands::create_file(path, mode, overwrite)?
        .write_all(data)
        .map_err(CliError::io(format!("writing {}", path.display())))
}
