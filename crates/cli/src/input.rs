//! Offline input for `pack --from-file/--from-dir`: whatever `kubectl get -o json|yaml` printed.
//!
//! Accepted: a `List` (or a typed list such as `SecretList`, whose items may lack `apiVersion`/`kind`), a single
//! object, several concatenated JSON documents, or multi-document YAML. YAML is read the way kubectl reads it
//! (YAML 1.1 scalars: an unquoted `yes` is a boolean), so a dump means the same to cmarchive as to kubectl.

use crate::error::{CliError, Result};
use cmarchive_archive::certmanager::{Candidate, JsonObject};
use rayon::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A dump's bytes: a large regular file mapped from the page cache, anything else read.
///
/// Mapping shares the page cache: a dump read into memory is copied into as many fresh pages, which the kernel
/// zeroes first (slowly on virtual machines), and they stay on the heap while it parses.
pub enum DumpBytes {
    /// A mapped regular file.
    Mapped(memmap2::Mmap),
    /// A small file, a pipe, or a file that cannot be mapped.
    Read(Vec<u8>),
}

impl std::ops::Deref for DumpBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            DumpBytes::Mapped(map) => map,
            DumpBytes::Read(bytes) => bytes,
        }
    }
}

/// Files smaller than this are read: mapping (and unmapping, which stops every thread's core) costs more than
/// copying a few pages, and `--from-dir` reads thousands of small files at once.
const MAP_AT_LEAST: u64 = 1 << 20;

/// The bytes of the dump at `path`; see [`DumpBytes`].
pub fn read_dump(path: &Path) -> std::io::Result<DumpBytes> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_file() && metadata.len() >= MAP_AT_LEAST {
        // SAFETY: the map is private and read-only, and nothing in cmarchive writes the file. Were another process
        // to truncate it during the pack, reading a lost page would end cmarchive with SIGBUS before its temporary
        // archive is renamed into place; were one to rewrite it, the parse would see a mix of old and new bytes,
        // as a `read` racing that writer would. Dumps are files written before cmarchive started.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) };
        // Some file systems cannot map; those files are read instead.
        if let Ok(map) = map {
            return Ok(DumpBytes::Mapped(map));
        }
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(DumpBytes::Read(bytes))
}

/// Parses one dump into objects (lists flattened).
#[cfg(test)]
pub fn parse_dump(name: &str, bytes: &[u8]) -> Result<Vec<Value>> {
    struct Keep;
    impl Prepare for Keep {
        type Output = Value;
        fn value(&self, object: Value) -> Value {
            object
        }
    }
    parse_dump_into(name, bytes, &Keep)
}

/// What a caller makes of each object as it is parsed, on the core that parsed it.
pub trait Prepare: Sync {
    /// What is kept of an object.
    type Output: Send;
    /// Keeps what is needed of `object`.
    fn value(&self, object: Value) -> Self::Output;
    /// [`Prepare::value`] of a Secret read from JSON text, which may keep its content as text.
    fn secret(&self, object: JsonObject<'_>) -> Self::Output {
        self.value(object.into_value())
    }
}

/// Planning candidates, Secrets kept as text: what `pack` holds.
pub struct Candidates;

impl Prepare for Candidates {
    type Output = Candidate;
    fn value(&self, object: Value) -> Candidate {
        Candidate::new(object)
    }
    fn secret(&self, object: JsonObject<'_>) -> Candidate {
        Candidate::from_json(object)
    }
}

/// [`parse_dump`], handing each object to `prepare` on the core that parsed it: the items of a large `List` are
/// parsed on every core, and a caller that keeps only part of each object never holds them all parsed at once.
pub fn parse_dump_into<P: Prepare>(name: &str, bytes: &[u8], prepare: &P) -> Result<Vec<P::Output>> {
    let bad = |reason: String| CliError::Input {
        path: name.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
        let (line, column) = position(valid, valid.len());
        bad(format!("not UTF-8 text (at line {line} column {column})"))
    })?;
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let mut objects = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // A first pass only finds where each document starts and ends, and the items of a List (and checks the
        // syntax of all of them).
        let documents = split_documents(trimmed).map_err(|e| bad(json_problem("", text, trimmed, &e)))?;
        for (document, list) in documents {
            match list {
                // Items are parsed, flattened and prepared on every core, then kept in their order; of several
                // broken items the first is reported, whichever core found it.
                Some(list) => {
                    let item_kind = list.kind.strip_suffix("List").filter(|k| !k.is_empty());
                    let prepared: Vec<Result<Vec<P::Output>>> = list
                        .items
                        .par_iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let defaults = |fields: &mut Map<String, Value>| {
                                fill_list_type(fields, item_kind, list.api_version.as_ref())
                            };
                            prepare_document(name, item.get(), defaults, prepare).map_err(|e| {
                                bad(json_problem(&format!(" in item {i} of the List"), text, item.get(), &e))
                            })?
                        })
                        .collect();
                    // One allocation for all of them: a pack holds one candidate per object.
                    objects.reserve(prepared.iter().map(|item| item.as_ref().map_or(0, Vec::len)).sum());
                    for item in prepared {
                        objects.extend(item?);
                    }
                }
                None => objects.extend(
                    prepare_document(name, document, |_| {}, prepare)
                        .map_err(|e| bad(json_problem("", text, document, &e)))??,
                ),
            }
        }
    } else {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(trimmed).map_err(|e| bad(yaml_problem(text, trimmed, &e)))?;
        let mut flat = Vec::new();
        for document in documents {
            flatten(name, document, &mut flat)?;
        }
        objects.extend(flat.into_iter().map(|object| prepare.value(object)));
    }
    Ok(objects)
}

/// Line and column (1-based, columns in characters) of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Where `part` (a slice of the file's `text`) starts in the file, as line and column.
fn start_of(text: &str, part: &str) -> (usize, usize) {
    let offset = (part.as_ptr() as usize)
        .checked_sub(text.as_ptr() as usize)
        .filter(|offset| *offset <= text.len())
        .unwrap_or(0);
    position(text, offset)
}

/// A JSON error met while parsing `part` of the file's `text`, placed in the file. serde_json says what is wrong
/// in its own words, never quoting the input (a Secret's data must not reach logs); `within` names the List item.
fn json_problem(within: &str, text: &str, part: &str, error: &serde_json::Error) -> String {
    let (start_line, start_column) = start_of(text, part);
    let (line, column) = match error.line() {
        0 | 1 => (start_line, start_column + error.column().saturating_sub(1)),
        line => (start_line + line - 1, error.column()),
    };
    let message = error.to_string();
    let what = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => &message,
    };
    format!("invalid JSON{within} at line {line} column {column}: {what}")
}

/// A YAML error, placed in the file. Only the line, column and kind of problem are said: serde_saphyr's own
/// message quotes the lines around the error, which in a dump are Secret data.
fn yaml_problem(text: &str, trimmed: &str, error: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    // The error itself, out of the wrappers that add the quoted lines and the alias's places.
    let mut inner = error;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let problem = match inner {
        E::Budget { .. }
        | E::AliasReplayCounterOverflow { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            "anchors and aliases expand to too much (a \"billion laughs\" document is refused)".to_owned()
        }
        // The parser's own messages name the construct, not the content.
        E::ExternalMessage { msg, .. } => msg.clone(),
        E::Eof { .. } => "the document ends early".to_owned(),
        E::DuplicateMappingKey { .. } => "a key appears twice in one mapping".to_owned(),
        E::UnknownAnchor { .. } => "an alias names an anchor that is not defined".to_owned(),
        _ => "content that is not plain YAML data".to_owned(),
    };
    match error.location() {
        Some(location) => {
            let (start_line, start_column) = start_of(text, trimmed);
            let line = start_line + location.line() as usize - 1;
            let column = if location.line() <= 1 {
                start_column + location.column() as usize - 1
            } else {
                location.column() as usize
            };
            format!("invalid YAML at line {line} column {column}: {problem}")
        }
        None => format!("invalid YAML: {problem}"),
    }
}

/// Parses one JSON document (an object, a list, an array of them), gives it the fields `defaults` fills in, and
/// prepares what it holds. A Secret is parsed with its content left as text; anything else as a `Value`.
fn prepare_document<P: Prepare>(
    name: &str,
    text: &str,
    defaults: impl Fn(&mut Map<String, Value>),
    prepare: &P,
) -> serde_json::Result<Result<Vec<P::Output>>> {
    let value = match text.starts_with('{').then(|| JsonObject::parse(text)) {
        Some(Ok(mut object)) => {
            defaults(object.fields_mut());
            if object.is_secret() {
                return Ok(Ok(vec![prepare.secret(object)]));
            }
            object.into_value()
        }
        // Errors come from a plain parse, so they read the same whichever way the object went.
        _ => {
            let mut value: Value = serde_json::from_str(text)?;
            if let Some(fields) = value.as_object_mut() {
                defaults(fields);
            }
            value
        }
    };
    let mut flat = Vec::new();
    Ok(flatten(name, value, &mut flat).map(|()| flat.into_iter().map(|object| prepare.value(object)).collect()))
}

/// A JSON document that is a `List` (`kind` ending in `List`, an `items` array), items still unparsed.
struct RawList<'a> {
    api_version: Option<Value>,
    kind: String,
    items: Vec<&'a RawValue>,
}

/// The fields of a document that make it a `List`.
#[derive(serde::Deserialize)]
struct Shape<'a> {
    #[serde(rename = "apiVersion")]
    api_version: Option<Value>,
    kind: Option<String>,
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
}

impl<'a> Shape<'a> {
    /// The document `text` read as this shape, as a [`RawList`]; `None` for anything else (objects, arrays, lists
    /// without items).
    fn into_list(self, text: &str) -> Option<RawList<'a>> {
        // serde would also fill the shape from an array, by position.
        if !text.starts_with('{') {
            return None;
        }
        let kind = self.kind.filter(|k| k.ends_with("List"))?;
        Some(RawList {
            api_version: self.api_version,
            kind,
            items: self.items?,
        })
    }
}

/// The JSON documents of `text` in order, each with its items when it is a `List`.
///
/// Most dumps are one `List`: read as a [`Shape`] straight from the stream, its items are found in the same pass
/// that finds the document (finding the documents first and then the items scanned every byte of a dump twice,
/// on one core). A document that is not shaped so (a bare string, a repeated field, …) sends the whole text the
/// long way, which says exactly what and where anything is wrong.
fn split_documents(text: &str) -> serde_json::Result<Vec<(&str, Option<RawList<'_>>)>> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Shape<'_>>();
    let mut documents = Vec::new();
    let mut start = 0;
    while let Some(shape) = stream.next() {
        let Ok(shape) = shape else {
            return split_documents_slowly(text);
        };
        let end = stream.byte_offset();
        let document = text[start..end].trim_start();
        start = end;
        documents.push((document, shape.into_list(document)));
    }
    Ok(documents)
}

/// [`split_documents`] one step at a time: the documents first, then each one's shape.
fn split_documents_slowly(text: &str) -> serde_json::Result<Vec<(&str, Option<RawList<'_>>)>> {
    let documents: Vec<&RawValue> = serde_json::Deserializer::from_str(text)
        .into_iter::<&RawValue>()
        .collect::<std::result::Result<_, _>>()?;
    Ok(documents
        .into_iter()
        .map(|document| {
            let text = document.get();
            let list = serde_json::from_str::<Shape<'_>>(text)
                .ok()
                .and_then(|shape| shape.into_list(text));
            (text, list)
        })
        .collect())
}

fn flatten(name: &str, document: Value, out: &mut Vec<Value>) -> Result<()> {
    match document {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for item in items {
                flatten(name, item, out)?;
            }
            Ok(())
        }
        Value::Object(mut map) => {
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or("").to_owned();
            if kind.ends_with("List") && map.get("items").is_some_and(Value::is_array) {
                let Some(Value::Array(items)) = map.remove("items") else {
                    unreachable!()
                };
                return flatten_list(name, map.remove("apiVersion"), &kind, items, out);
            }
            let object = Value::Object(map);
            if cmarchive_archive::object::ObjectKey::of(&object).is_none() {
                return Err(CliError::Input {
                    path: name.to_owned(),
                    reason:
                        "an object without apiVersion, kind or metadata.name; is this `kubectl get -o json` output?"
                            .into(),
                });
            }
            out.push(object);
            Ok(())
        }
        other => Err(CliError::Input {
            path: name.to_owned(),
            reason: format!("expected Kubernetes objects, found {}", kind_of(&other)),
        }),
    }
}

/// Flattens the items of a list of `kind`; typed lists (`SecretList`) leave the type off their items, which get
/// it back here.
fn flatten_list(
    name: &str,
    api_version: Option<Value>,
    kind: &str,
    items: Vec<Value>,
    out: &mut Vec<Value>,
) -> Result<()> {
    let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
    for mut item in items {
        if let Some(fields) = item.as_object_mut() {
            fill_list_type(fields, item_kind, api_version.as_ref());
        }
        flatten(name, item, out)?;
    }
    Ok(())
}

/// Gives an item of a typed list the `kind` (`Secret` for a `SecretList`) and `apiVersion` it left off.
fn fill_list_type(item: &mut Map<String, Value>, item_kind: Option<&str>, api_version: Option<&Value>) {
    let Some(item_kind) = item_kind else {
        return;
    };
    if !item.contains_key("kind") {
        item.insert("kind".into(), Value::String(item_kind.to_owned()));
    }
    if let (false, Some(v)) = (item.contains_key("apiVersion"), api_version) {
        item.insert("apiVersion".into(), v.clone());
    }
}

/// Whether `path` is the manifest of an unpacked archive.
fn is_unpacked_manifest(path: &Path) -> bool {
    use cmarchive_archive::manifest::{FORMAT_NAME, MANIFEST_PATH};
    path.file_name().is_some_and(|n| n == MANIFEST_PATH)
        && std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .is_some_and(|manifest| manifest.get("format").and_then(Value::as_str) == Some(FORMAT_NAME))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        _ => "something else",
    }
}

/// Every `.json`, `.yaml` and `.yml` file under `dir`, sorted, recursively (hidden entries skipped, and the
/// `manifest.json` that `unpack --dir` writes beside the objects: it describes them, it is not one).
pub fn dump_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(CliError::io(format!("reading {}", current.display())))?;
        for entry in entries {
            let entry = entry.map_err(CliError::io(format!("reading {}", current.display())))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let file_type = entry
                .file_type()
                .map_err(CliError::io(format!("reading {}", path.display())))?;
            if file_type.is_dir() {
                pending.push(path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "yaml" | "yml"))
                && !(current == dir && is_unpacked_manifest(&path))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_dumps_are_mapped_small_ones_read_and_both_parse_alike() {
        let dir = tempfile::tempdir().unwrap();
        let secret = |i: usize| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{i}"), "namespace": "ns"},
                "data": {"tls.key": "QUJD".repeat(1024)},
            })
        };
        let list = |n: usize| serde_json::json!({"apiVersion": "v1", "kind": "List", "items": (0..n).map(secret).collect::<Vec<_>>()});
        let (large, small) = (dir.path().join("large.json"), dir.path().join("small.json"));
        std::fs::write(&large, serde_json::to_vec_pretty(&list(300)).unwrap()).unwrap();
        std::fs::write(&small, serde_json::to_vec_pretty(&list(2)).unwrap()).unwrap();
        assert!(std::fs::metadata(&large).unwrap().len() >= MAP_AT_LEAST);

        let mapped = read_dump(&large).unwrap();
        assert!(matches!(mapped, DumpBytes::Mapped(_)));
        assert_eq!(&*mapped, std::fs::read(&large).unwrap().as_slice());
        let parsed = parse_dump("large.json", &mapped).unwrap();
        assert_eq!(parsed, list(300)["items"].as_array().unwrap().clone());

        let read = read_dump(&small).unwrap();
        assert!(matches!(read, DumpBytes::Read(_)));
        assert_eq!(parse_dump("small.json", &read).unwrap(), parsed[..2]);
        // A pipe cannot be mapped; it is read.
        let (rx, mut tx) = std::io::pipe().unwrap();
        std::thread::spawn(move || std::io::Write::write_all(&mut tx, b"[]"));
        let from_pipe = read_dump(Path::new(&format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&rx)
        )));
        assert!(matches!(from_pipe.unwrap(), DumpBytes::Read(bytes) if bytes == b"[]"));
    }

    #[test]
    fn typed_secret_lists_are_read_as_text_with_their_item_kind() {
        let dump = br#"{"apiVersion":"v1","kind":"SecretList","items":[
            {"metadata":{"name":"a","namespace":"n","resourceVersion":"3"},"data":{"k": "dg=="}}]}"#;
        let candidates = parse_dump_into("d", dump, &Candidates).unwrap();
        let plan = cmarchive_archive::certmanager::plan_candidates(candidates, &Default::default());
        // Not referenced by anything, so left out, but seen as the Secret it is.
        let excluded: Vec<String> = plan.excluded.iter().map(|e| e.key.to_string()).collect();
        assert_eq!(excluded, ["Secret/n/a"]);
        let one = parse_dump_into("d", dump, &Candidates).unwrap().remove(0);
        assert_eq!(one.view()["kind"], "Secret");
        assert!(one.view().get("data").is_none());
    }

    #[test]
    fn content_a_full_parse_refuses_is_refused_with_serde_json_s_message() {
        let map =
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"n"},"data":{"x":1e400}}"#;
        let error = parse_dump("d", map).unwrap_err().to_string();
        assert!(
            error.starts_with("d: invalid JSON at line 1 column 95: number out of range"),
            "{error}"
        );
        let list = br#"{"kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"n"},"data":{"x":"\ud800"}}]}"#;
        let error = parse_dump_into("d", list, &Candidates).unwrap_err().to_string();
        assert!(error.contains("invalid JSON in item 0 of the List"), "{error}");
    }

    #[test]
    fn typed_lists_get_their_item_kind() {
        let dump = br#"{"apiVersion":"v1","kind":"SecretList","items":[{"metadata":{"name":"a","namespace":"n"}}]}"#;
        let objects = parse_dump("d", dump).unwrap();
        assert_eq!(objects[0]["kind"], "Secret");
        assert_eq!(objects[0]["apiVersion"], "v1");
    }

    #[test]
    fn multi_document_yaml_and_yaml11_booleans() {
        let dump = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: \"yes\"}\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n  labels: {on: yes}\n";
        let objects = parse_dump("d", dump.as_bytes()).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["data"]["x"], "yes");
        // Unquoted YAML 1.1 `yes` is a boolean, as kubectl reads it.
        assert_eq!(objects[1]["metadata"]["labels"]["on"], true);
    }

    #[test]
    fn concatenated_documents_and_nested_lists_keep_their_order() {
        let items: Vec<String> = (0..50)
            .map(|i| format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c{i}"}}}}"#))
            .collect();
        let dump = format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}
            {{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"ns"}}}}
            {{"kind":"List","items":[{{"apiVersion":"v1","kind":"SecretList","items":[{{"metadata":{{"name":"s","namespace":"n"}}}}]}}]}}
            [{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"last"}}}}]"#,
            items.join(",")
        );
        let objects = parse_dump("d", dump.as_bytes()).unwrap();
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        let mut expected: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
        expected.extend(["ns", "s", "last"].map(str::to_owned));
        assert_eq!(names, expected);
        assert_eq!(objects[51]["kind"], "Secret");
        // A List whose `items` is not an array is an object like any other, and is refused for lacking a name.
        assert!(parse_dump("d", br#"{"apiVersion":"v1","kind":"List","items":{}}"#).is_err());
        let broken = parse_dump("d", br#"{"apiVersion":"v1","kind":"List","items":[{"a":]}"#).unwrap_err();
        assert!(broken.to_string().contains("invalid JSON"), "{broken}");
        // Items the syntax pass accepts but values refuse: the first in order is named.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let namespace = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#;
        let dump = format!(r#"{{"kind":"List","items":[{namespace},1e400,{deep}]}}"#);
        let error = parse_dump("d", dump.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("item 1 of the List"), "{error}");
        // Whatever the problem, the first item that has one is the one reported.
        let dump = format!(r#"{{"kind":"List","items":[{namespace},{{}},1e400]}}"#);
        let error = parse_dump("d", dump.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("without apiVersion"), "{error}");
        // An array shaped like a List's fields is not a List.
        assert!(
            parse_dump(
                "d",
                br#"["v1","SecretList",[{"metadata":{"name":"s","namespace":"n"}}]]"#
            )
            .is_err()
        );
    }

    /// The one-pass split and the long way agree on every shape of input: where each document is, and which are
    /// Lists with which items.
    #[test]
    fn one_pass_document_split_agrees_with_the_long_way() {
        let inputs = [
            r#"{"apiVersion":"v1","kind":"List","items":[{"a":1}, {"b":[2]}]}"#,
            r#"{"kind":"SecretList","apiVersion":"v1","items":[]}  {"kind":"Secret","metadata":{"name":"x"}}"#,
            "\n{\"kind\": \"List\", \"items\": [ {\"x\": \"y\"} ]}\n\n[{\"kind\":\"Secret\"}]  \"text\" 7 null",
            r#"{"kind":"List","kind":"List","items":[{}]}"#,
            r#"{"kind":5,"items":[{}]}"#,
            r#"{"kind":"List","items":{"not":"an array"}}"#,
            r#"["v1","SecretList",[{"a":1}]]"#,
            r#"{"kind":"List","items":[{"a":1}]} {"broken":"#,
            "",
        ];
        let shown = |split: serde_json::Result<Vec<(&str, Option<RawList<'_>>)>>| {
            split
                .map(|documents| {
                    documents
                        .into_iter()
                        .map(|(text, list)| {
                            let list = list.map(|l| {
                                let items: Vec<&str> = l.items.iter().map(|i| i.get()).collect();
                                (l.api_version, l.kind, items.join("|"))
                            });
                            (text.to_owned(), list)
                        })
                        .collect::<Vec<_>>()
                })
                .map_err(|e| e.to_string())
        };
        for input in inputs {
            assert_eq!(
                shown(split_documents(input)),
                shown(split_documents_slowly(input)),
                "{input}"
            );
        }
        let lists = shown(split_documents(inputs[2])).unwrap();
        assert_eq!(lists.len(), 5);
        assert_eq!(lists[0].1.as_ref().map(|l| l.2.as_str()), Some(r#"{"x": "y"}"#));
        assert!(lists[1..].iter().all(|(_, list)| list.is_none()));
    }

    #[test]
    fn rejects_non_objects() {
        assert!(parse_dump("d", b"[1]").is_err());
        assert!(parse_dump("d", br#"{"kind":"Secret"}"#).is_err());
    }
}
