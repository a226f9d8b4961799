//! `cmarchive unpack`: a verified archive's objects as YAML (for `kubectl apply -f -`), as one JSON `List`, or as
//! one file per object in phase-numbered folders; `-n`/`-l` narrow it to a selection (and what it needs).

use crate::cli::{UnpackArgs, UnpackFormat};
use crate::commands::{self, selection};
use crate::error::{CliError, Result};
use cmarchive_archive::certmanager::Kept;
use cmarchive_archive::folder::FolderWriter;
use cmarchive_archive::manifest::MANIFEST_PATH;
use cmarchive_archive::{CheckedArchive, ObjectRef, paths};
use serde_json::Value;
use std::io::{self, Write};
use std::path::Path;

/// Prints or writes the objects of an already verified archive, in restore order.
pub fn run(args: &UnpackArgs, archive: &CheckedArchive) -> Result<()> {
    let (kept, manifest_json) = selection::kept_while_streaming(&args.archive, archive, &args.selection)?;
    let selected = Selected {
        name: &args.archive,
        archive,
        kept: kept.as_ref(),
    };
    match &args.dir {
        Some(dir) => write_dir(dir, args.output, args.force, &selected, &manifest_json),
        None => {
            let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
            match args.output {
                // Rendered whole before the first byte goes out: YAML is the one output a rendering error could
                // otherwise cut short.
                UnpackFormat::Yaml => {
                    let text = yaml_documents(&selected)?;
                    out.write_all(text.as_bytes()).map_err(stdout())?;
                }
                // The stored bytes as they are: nothing can fail between the checks and the output but stdout.
                UnpackFormat::Json => write_json_list(&mut out, &selected)?,
            }
            out.flush().map_err(stdout())
        }
    }
}

/// The archive with the objects `-n`/`-l` keep (`kept: None`: all of them).
struct Selected<'a> {
    name: &'a str,
    archive: &'a CheckedArchive,
    kept: Option<&'a Kept>,
}

impl Selected<'_> {
    /// [`commands::for_each_object`] over the selected objects only.
    fn for_each(&self, mut visit: impl FnMut(ObjectRef<'_>) -> Result<()>) -> Result<()> {
        commands::for_each_object(self.name, self.archive, |object| {
            if self.kept.is_none_or(|kept| kept.contains_key(&object.entry.key)) {
                visit(object)
            } else {
                Ok(())
            }
        })
    }
}

fn to_yaml(object: &Value) -> Result<String> {
    serde_saphyr::to_string(object).map_err(|e| CliError::render("an object as YAML")(&e))
}

/// What a failed write to stdout says.
fn stdout() -> impl FnOnce(io::Error) -> CliError {
    CliError::stdout
}

/// A verified object, parsed (it parsed when the archive was verified, so this does not fail in practice).
fn parsed(object: &ObjectRef<'_>) -> Result<Value> {
    object.object().map_err(|e| CliError::render("an object")(&e))
}

/// The archive's objects as multi-document YAML, parsing one object at a time. Strings that YAML 1.1 readers
/// (kubectl) would take for booleans or numbers (`yes`, `on`, `0755`, …) are quoted by the serializer, so the
/// documents read back as the same objects.
fn yaml_documents(selected: &Selected<'_>) -> Result<String> {
    let mut text = String::new();
    selected.for_each(|object| {
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
fn write_json_list(out: &mut impl Write, selected: &Selected<'_>) -> Result<()> {
    out.write_all(br#"{"apiVersion":"v1","kind":"List","metadata":{},"items":["#)
        .map_err(stdout())?;
    let mut first = true;
    selected.for_each(|object| {
        out.write_all(if first { b"\n" } else { b",\n" }).map_err(stdout())?;
        first = false;
        out.write_all(object.bytes).map_err(stdout())
    })?;
    out.write_all(b"\n]}\n").map_err(stdout())
}

/// One file per object under `dir` (phase folders as in the archive, without `objects/`), then `manifest.json`.
/// Written through [`FolderWriter`]: nothing in `dir` is followed or opened but files it creates, and the files
/// take their names only once all are written.
fn write_dir(
    dir: &Path,
    format: UnpackFormat,
    force: bool,
    selected: &Selected<'_>,
    manifest_json: &[u8],
) -> Result<()> {
    let mut folder = FolderWriter::open(dir, force).map_err(CliError::Folder)?;
    selected.for_each(|object| {
        // The reader proved the path to be the one cmarchive derives from the object's identity.
        let relative = paths::unpacked_path(&object.entry.path);
        let (relative, text) = match format {
            UnpackFormat::Yaml => {
                let stem = relative.strip_suffix(".json").unwrap_or(relative);
                (format!("{stem}.yaml"), to_yaml(&parsed(&object)?)?)
            }
            UnpackFormat::Json => {
                let mut text = serde_json::to_string_pretty(&parsed(&object)?)
                    .map_err(|e| CliError::render("an object as JSON")(&e))?;
                text.push('\n');
                (relative.to_owned(), text)
            }
        };
        let secret = object.entry.key.kind == "Secret" && object.entry.key.api_version == "v1";
        folder
            .write(&relative, text.as_bytes(), if secret { 0o600 } else { 0o644 })
            .map_err(CliError::Folder)
    })?;
    folder
        .write(MANIFEST_PATH, manifest_json, 0o644)
        .map_err(CliError::Folder)?;
    let written = folder.commit().map_err(CliError::Folder)? - 1;
    eprintln!("wrote {written} objects to {}", dir.display());
    Ok(())
}
