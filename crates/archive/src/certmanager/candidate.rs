//! An input object reduced, as soon as it is read, to what planning needs: the bytes the archive would store, the
//! parts the selection reads, and the leaf certificate of a TLS Secret.
//!
//! A pack of tens of thousands of Secrets used to hold every parsed object until the selection had run, and then
//! the serialized copy of each next to it. Built on the core that parsed the object, a [`Candidate`] lets the
//! parsed value go at once; what stays is about the size of the stored JSON. A candidate made from a parsed object
//! and one made from its JSON text store the same bytes and show the selection the same view (tested below);
//! `plan` itself goes through candidates, so the plan tests in `tests/certmanager_plan.rs` cover the rest.

use super::certinfo::{self, LeafCertificate};
use super::kinds::{self, Kind, NEXT_PRIVATE_KEY_LABEL, SERVICE_ACCOUNT_NAME_ANNOTATION};
use super::sanitize::trim_collected;
use crate::object::ObjectKey;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One input object prepared for [`plan_candidates`](super::phases::plan_candidates).
#[derive(Clone, Debug)]
pub struct Candidate {
    /// What the selection reads: the object trimmed like [`trim_collected`]; of a Secret, only what the selection
    /// reads of one ([`secret_view`]: never its content; the leaf below is all planning needs of that).
    pub(crate) view: Value,
    /// The sanitized object as the archive stores it; `None` without an identity (the selection skips those).
    pub(crate) stored: Option<(ObjectKey, Vec<u8>)>,
    /// For a Secret: its `tls.crt`'s first certificate, or why there is none (boxed: most candidates have none,
    /// and a pack holds one candidate per input object).
    pub(crate) leaf: Option<Box<Result<LeafCertificate, String>>>,
    /// For a Secret: the keys of `data` whose values are not base64 strings (the API server refuses them).
    pub(crate) undecodable: Vec<String>,
}

impl Candidate {
    /// Reduces `object`; cheap for everything but Secrets, whose content is serialized here and dropped.
    pub fn new(mut object: Value) -> Candidate {
        trim_collected(&mut object);
        let stored = ObjectKey::of(&object).map(|key| (key, without_status(&mut object, crate::object::to_json_exact)));
        if kinds::classify(&object) == Kind::Secret {
            let leaf = certinfo::tls_leaf(&object);
            let undecodable = match object.get(DATA) {
                Some(Value::Object(data)) => data
                    .iter()
                    .filter(|(_, value)| !value.as_str().is_some_and(is_base64))
                    .map(|(key, _)| key.clone())
                    .collect(),
                _ => Vec::new(),
            };
            return Candidate {
                view: secret_view(object),
                stored,
                leaf: Some(Box::new(leaf)),
                undecodable,
            };
        }
        Candidate {
            view: object,
            stored,
            leaf: None,
            undecodable: Vec::new(),
        }
    }

    /// The object as the selection sees it.
    pub fn view(&self) -> &Value {
        &self.view
    }
}

/// `write` of a trimmed object as `sanitize` leaves it: trimming kept one status field for the selection, which
/// `sanitize` drops (it is the map's last entry, so taking it out and back leaves the order as it was).
fn without_status(object: &mut Value, write: impl FnOnce(&Value) -> Vec<u8>) -> Vec<u8> {
    let status = object.as_object_mut().and_then(|map| map.remove("status"));
    let bytes = write(object);
    if let (Some(status), Some(map)) = (status, object.as_object_mut()) {
        map.insert("status".into(), status);
    }
    bytes
}

/// An object read from JSON text, its top-level `data` and `stringData` left as that text.
///
/// A Secret's content is most of a backup's bytes. Parsed into a `Value`, every value became a `String` that was
/// serialized again, escaping checked byte by byte; kept as text it is only copied, without its whitespace, into
/// the stored JSON. Everything else is parsed as usual, so the selection sees the same object.
pub struct JsonObject<'a> {
    /// The top-level fields in their order; `data` and `stringData` hold `null` where they were.
    fields: Map<String, Value>,
    data: Option<&'a RawValue>,
    string_data: Option<&'a RawValue>,
}

impl<'a> JsonObject<'a> {
    /// Parses `text` when it is a JSON object; fails where `serde_json::from_str` would (with another message:
    /// callers that report errors parse again to report serde_json's own).
    pub fn parse(text: &'a str) -> serde_json::Result<JsonObject<'a>> {
        serde_json::from_str(text)
    }

    /// The fields other than `data` and `stringData` (which read `null` here), for callers that fill in what a
    /// typed list left out.
    pub fn fields_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.fields
    }

    /// A core `v1` Secret, which [`Candidate::from_json`] keeps as text.
    pub fn is_secret(&self) -> bool {
        let kind = self.fields.get("kind").and_then(Value::as_str);
        let api_version = self.fields.get("apiVersion").and_then(Value::as_str);
        kind == Some("Secret") && api_version == Some("v1")
    }

    /// The whole object as a `Value`, as `serde_json::from_str` would have parsed it.
    pub fn into_value(self) -> Value {
        let mut fields = self.fields;
        for (key, raw) in [(DATA, self.data), (STRING_DATA, self.string_data)] {
            if let (Some(raw), Some(slot)) = (raw, fields.get_mut(key)) {
                *slot = serde_json::from_str(raw.get()).expect("the text passed `accepts` when it was read");
            }
        }
        Value::Object(fields)
    }
}

/// Whether a full parse of the object would accept `text` where it sat (one level down): capturing raw text only
/// checks its syntax, while a parse also refuses numbers out of range, lone surrogates and nesting deeper than
/// serde_json's limit. It costs one copy of the text (to wrap it, below, in a buffer reused per thread) and a parse
/// that borrows strings without escapes instead of copying them.
fn accepts(text: &RawValue) -> serde_json::Result<()> {
    // Inside one array, so the nesting limit counts the enclosing object as the full parse does.
    // The copy goes to a buffer each thread keeps: a fresh one per Secret costs page faults on every Secret.
    thread_local! {
        static WRAPPED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    WRAPPED.with_borrow_mut(|wrapped| {
        wrapped.clear();
        wrapped.push('[');
        wrapped.push_str(text.get());
        wrapped.push(']');
        let checked = serde_json::from_str::<crate::object::AnyJson>(wrapped).map(|_| ());
        if wrapped.capacity() > SCRATCH_KEPT {
            *wrapped = String::new();
        }
        checked
    })
}

/// Largest buffer [`accepts`] keeps between calls: one outsized Secret must not pin its size for the whole run.
const SCRATCH_KEPT: usize = 1 << 20;

const DATA: &str = "data";
const STRING_DATA: &str = "stringData";

impl<'de> serde::Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = JsonObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut object = JsonObject {
                    fields: Map::new(),
                    data: None,
                    string_data: None,
                };
                // A repeated key keeps its first place and its last value, as in a parsed `Value`.
                while let Some(key) = map.next_key::<String>()? {
                    let raw = match key.as_str() {
                        DATA => &mut object.data,
                        STRING_DATA => &mut object.string_data,
                        _ => {
                            let value = map.next_value()?;
                            object.fields.insert(key, value);
                            continue;
                        }
                    };
                    let text: &RawValue = map.next_value()?;
                    accepts(text).map_err(serde::de::Error::custom)?;
                    *raw = Some(text);
                    object.fields.insert(key, Value::Null);
                }
                Ok(object)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

impl Candidate {
    /// [`Candidate::new`] of a parsed object, keeping a Secret's content as text (the stored JSON holds the same
    /// values, though escapes in them stay as they were written).
    pub fn from_json(object: JsonObject<'_>) -> Candidate {
        if !object.is_secret() {
            return Candidate::new(object.into_value());
        }
        let JsonObject {
            fields,
            data,
            string_data,
        } = object;
        let mut view = Value::Object(fields);
        trim_collected(&mut view);
        let stored = ObjectKey::of(&view).map(|key| {
            let bytes = without_status(&mut view, |view| {
                stored_with_text(view.as_object().expect("parsed as an object"), data, string_data)
            });
            (key, bytes)
        });
        let leaf = certinfo::tls_leaf_of(
            data.and_then(|d| text_value(d, certinfo::TLS_CRT)).as_deref(),
            string_data.and_then(|d| text_value(d, certinfo::TLS_CRT)).as_deref(),
        );
        let undecodable = data
            .and_then(|data| serde_json::from_str::<Undecodable>(data.get()).ok())
            .map_or_else(Vec::new, |found| found.0);
        Candidate {
            view: secret_view(view),
            stored,
            leaf: Some(Box::new(leaf)),
            undecodable,
        }
    }
}

/// Whether a Secret's `data` value decodes the way the API server decodes it (Go's padded standard base64, line
/// breaks skipped, trailing bits not checked).
fn is_base64(text: &str) -> bool {
    use base64::Engine;
    const LIKE_GO: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
    );
    thread_local! {
        static DECODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let cleaned;
    let text = if text.contains(['\r', '\n']) {
        cleaned = text.replace(['\r', '\n'], "");
        cleaned.as_str()
    } else {
        text
    };
    DECODED.with_borrow_mut(|decoded| {
        decoded.clear();
        let ok = LIKE_GO.decode_vec(text, decoded).is_ok();
        if decoded.capacity() > SCRATCH_KEPT {
            *decoded = Vec::new();
        }
        ok
    })
}

/// The keys of a `data` object given as text whose values are not base64 strings, read without copying the values.
struct Undecodable(Vec<String>);

impl<'de> serde::Deserialize<'de> for Undecodable {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Undecodable;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Undecodable, A::Error> {
                let mut found = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !map.next_value::<Decodes>()?.0 {
                        found.push(key);
                    }
                }
                Ok(Undecodable(found))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// Whether one value is a base64 string.
struct Decodes(bool);

impl<'de> serde::Deserialize<'de> for Decodes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Visitor;
        struct Value;
        impl<'de> Visitor<'de> for Value {
            type Value = Decodes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            // A string is checked where it lies; anything else is no base64 (and is read to its end).
            fn visit_str<E>(self, text: &str) -> Result<Decodes, E> {
                Ok(Decodes(is_base64(text)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Decodes, E> {
                Ok(Decodes(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Decodes, E> {
                Ok(Decodes(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Decodes, E> {
                Ok(Decodes(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Decodes, E> {
                Ok(Decodes(false))
            }
            fn visit_unit<E>(self) -> Result<Decodes, E> {
                Ok(Decodes(false))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Decodes, A::Error> {
                crate::object::AnyJson.visit_seq(seq).map(|_| Decodes(false))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Decodes, A::Error> {
                crate::object::AnyJson.visit_map(map).map(|_| Decodes(false))
            }
        }
        deserializer.deserialize_any(Value)
    }
}

/// The view of a Secret: its identity, its `type`, and of its labels and annotations the two the selection reads
/// (the next-private-key label and the service-account name). cert-manager writes eight annotations on every
/// Secret it issues, and the views of a large pack would otherwise hold them all twice. The stored JSON keeps
/// them all.
fn secret_view(object: Value) -> Value {
    let Value::Object(mut fields) = object else {
        return object;
    };
    let mut view = Map::new();
    for field in ["apiVersion", "kind", "type"] {
        if let Some(value) = fields.remove(field) {
            view.insert(field.to_owned(), value);
        }
    }
    if let Some(Value::Object(mut metadata)) = fields.remove("metadata") {
        let mut lean = Map::new();
        for field in ["name", "namespace"] {
            if let Some(value) = metadata.remove(field) {
                lean.insert(field.to_owned(), value);
            }
        }
        for (field, only) in [
            ("labels", NEXT_PRIVATE_KEY_LABEL),
            ("annotations", SERVICE_ACCOUNT_NAME_ANNOTATION),
        ] {
            let value = metadata
                .get_mut(field)
                .and_then(Value::as_object_mut)
                .and_then(|map| map.remove(only));
            if let Some(value) = value {
                lean.insert(
                    field.to_owned(),
                    Value::Object(Map::from_iter([(only.to_owned(), value)])),
                );
            }
        }
        view.insert("metadata".to_owned(), Value::Object(lean));
    }
    Value::Object(view)
}

/// The string at `key` of a JSON object given as text (`None` when it is not an object or the value not a string,
/// as `Value::get` and `as_str` would say).
fn text_value(object: &RawValue, key: &str) -> Option<String> {
    let map: std::collections::HashMap<std::borrow::Cow<'_, str>, &RawValue> =
        serde_json::from_str(object.get()).ok()?;
    serde_json::from_str(map.get(key)?.get()).ok()
}

/// Compact JSON of `fields`, with the `data` and `stringData` text in their places (written as serde_json's
/// compact formatter writes a map: no spaces, keys and values separated by `:` and entries by `,`).
fn stored_with_text(fields: &Map<String, Value>, data: Option<&RawValue>, string_data: Option<&RawValue>) -> Vec<u8> {
    crate::object::write_exact(|out| {
        out.push(b'{');
        for (index, (key, value)) in fields.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key).expect("writing to memory");
            out.push(b':');
            let text = match key.as_str() {
                DATA => data,
                STRING_DATA => string_data,
                _ => None,
            };
            match text {
                Some(text) => minify_into(text.get(), out),
                None => serde_json::to_writer(&mut *out, value).expect("writing to memory"),
            }
        }
        out.push(b'}');
    })
}

/// Copies valid JSON `text` into `out` without the whitespace between tokens. Strings are copied as they are, a
/// run at a time (the next quote or backslash is found with memchr), so long base64 values cost a copy.
fn minify_into(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.extend_from_slice(&bytes[start..i]);
                i += 1;
                start = i;
            }
            b'"' => {
                i += 1;
                // Inside a string: on to the closing quote, stepping over escapes.
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                        Some(at) if bytes[i + at] == b'\\' => i = (i + at + 2).min(bytes.len()),
                        Some(at) => {
                            i += at + 1;
                            break;
                        }
                        None => {
                            i = bytes.len();
                            break;
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certmanager::sanitize::sanitize;
    use crate::certmanager::sanitize::tests::{arb_json, arb_object};
    use proptest::prelude::*;
    use serde_json::json;

    /// A candidate through both doors: from a parsed value, and from the pretty-printed text a dump holds.
    fn both(object: &Value) -> (Candidate, Candidate) {
        let text = serde_json::to_string_pretty(object).unwrap();
        let parsed = JsonObject::parse(&text).unwrap();
        assert_eq!(parsed.into_value(), *object, "into_value gives back the parsed object");
        (
            Candidate::new(object.clone()),
            Candidate::from_json(JsonObject::parse(&text).unwrap()),
        )
    }

    fn assert_same(object: &Value) {
        let (from_value, from_text) = both(object);
        let (key, bytes) = from_value.stored.as_ref().expect("identity");
        assert_eq!(
            serde_json::from_slice::<Value>(bytes).unwrap(),
            sanitize(object),
            "stored JSON is the sanitized object"
        );
        // serde_json escapes the same way pretty or compact, so the text path stores the very same bytes.
        assert_eq!(from_text.stored.as_ref(), Some(&(key.clone(), bytes.clone())));
        assert_eq!(from_text.view, from_value.view);
        assert_eq!(from_text.leaf, from_value.leaf);
    }

    fn secret(data: Value, string_data: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "tls", "namespace": "shop", "resourceVersion": "7", "uid": "u"},
            "data": data, "type": "kubernetes.io/tls", "stringData": string_data, "status": {"x": 1},
        })
    }

    #[test]
    fn secrets_lose_their_content_from_the_view_only() {
        let object = secret(json!({"tls.key": "a2V5"}), json!({"note": "clear"}));
        let (from_value, from_text) = both(&object);
        assert!(from_value.view.get("data").is_none() && from_value.view.get("stringData").is_none());
        assert_eq!(from_value.view["type"], "kubernetes.io/tls");
        assert_eq!(from_value.leaf, Some(Box::new(Err("no tls.crt".into()))));
        let stored: Value = serde_json::from_slice(&from_text.stored.unwrap().1).unwrap();
        assert_eq!(stored["data"]["tls.key"], "a2V5");
        assert_eq!(stored["stringData"]["note"], "clear");
        assert!(stored.get("status").is_none());
        assert_same(&object);
    }

    #[test]
    fn secret_views_keep_only_what_the_selection_reads() {
        let mut object = secret(json!({"tls.key": "a2V5"}), Value::Null);
        object["metadata"]["labels"] = json!({"app": "shop", NEXT_PRIVATE_KEY_LABEL: "true"});
        object["metadata"]["annotations"] = json!({
            "cert-manager.io/certificate-name": "web",
            SERVICE_ACCOUNT_NAME_ANNOTATION: "builder",
        });
        let expected = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {
                "name": "tls", "namespace": "shop",
                "labels": {NEXT_PRIVATE_KEY_LABEL: "true"},
                "annotations": {SERVICE_ACCOUNT_NAME_ANNOTATION: "builder"},
            },
        });
        let (from_value, from_text) = both(&object);
        assert_eq!(from_value.view, expected);
        assert_eq!(from_text.view, expected);
        // The stored JSON keeps everything the view leaves out.
        let stored: Value = serde_json::from_slice(&from_text.stored.unwrap().1).unwrap();
        assert_eq!(stored["metadata"]["labels"]["app"], "shop");
        assert_eq!(
            stored["metadata"]["annotations"]["cert-manager.io/certificate-name"],
            "web"
        );
        // Without the two, no empty maps are made up.
        let plain = secret(json!({}), Value::Null);
        let view = Candidate::new(plain).view;
        assert_eq!(view["metadata"], json!({"name": "tls", "namespace": "shop"}));
        assert_same(&object);
    }

    #[test]
    fn the_leaf_is_read_from_data_or_string_data() {
        let issued = rcgen::generate_simple_self_signed(vec!["web.shop.example".into()]).unwrap();
        let pem = issued.cert.pem();
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pem);
        let expected = certinfo::parse_leaf(pem.as_bytes()).unwrap();
        for object in [
            secret(json!({"tls.crt": encoded}), Value::Null),
            secret(json!({"other": 1}), json!({"tls.crt": pem})),
            secret(json!({"tls.crt": 5}), json!({"tls.crt": pem})),
        ] {
            let (from_value, from_text) = both(&object);
            assert_eq!(from_value.leaf, Some(Box::new(Ok(expected.clone()))), "{object}");
            assert_eq!(from_text.leaf, from_value.leaf, "{object}");
        }
        // An empty tls.crt in data hides the one in stringData, as in `secret_data`.
        let hidden = secret(json!({"tls.crt": ""}), json!({"tls.crt": pem}));
        assert_eq!(both(&hidden).1.leaf, Some(Box::new(Err("no tls.crt".into()))));
        assert_same(&hidden);
    }

    #[test]
    fn only_core_v1_secrets_keep_text_and_objects_without_identity_store_nothing() {
        let mut other = secret(json!({"a": "b"}), Value::Null);
        other["apiVersion"] = json!("example.com/v1");
        let text = other.to_string();
        assert!(!JsonObject::parse(&text).unwrap().is_secret());
        assert_same(&other);
        let nameless = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "b"}});
        let (from_value, from_text) = both(&nameless);
        assert!(from_value.stored.is_none() && from_text.stored.is_none());
        assert!(JsonObject::parse("[1]").is_err());
    }

    #[test]
    fn text_is_refused_wherever_a_full_parse_refuses_it() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let objects = |value: &str| {
            [
                format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"s"}},"data":{{"x":{value}}}}}"#),
                format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c"}},"stringData":[{value}]}}"#),
                format!(r#"{{"data":{{"x":{value}}},"data":{{"a":"b"}}}}"#),
            ]
        };
        let mut refused = 0;
        for value in [
            "1e400".to_owned(),
            r#""\ud800""#.to_owned(),
            r#""\ud83d\ude00 é \" \\ \/""#.to_owned(),
            "-0.5e-3".to_owned(),
            nested(124),
            nested(125),
            nested(126),
            nested(127),
        ] {
            for text in objects(&value) {
                let full = serde_json::from_str::<Value>(&text);
                let ours = JsonObject::parse(&text);
                assert_eq!(ours.is_ok(), full.is_ok(), "{text}");
                if let (Ok(ours), Ok(full)) = (ours, full) {
                    assert_eq!(ours.into_value(), full);
                } else {
                    refused += 1;
                }
            }
        }
        // Out of range, lone surrogate, and nesting at the limit: each refused in all three shapes.
        assert!(refused >= 9, "{refused}");
    }

    #[test]
    fn minify_keeps_strings_whole() {
        let text = "{ \"a b\" : [ 1 ,\n\t\"x \\\" \\\\\" ] ,\r\n \"c\\\\\":\"\" }";
        let mut out = Vec::new();
        minify_into(text, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a b":[1,"x \" \\"],"c\\":""}"#);
        let reparsed: Value = serde_json::from_str(text).unwrap();
        let mut out = Vec::new();
        minify_into(text, &mut out);
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), reparsed);
    }

    proptest! {
        #[test]
        fn both_doors_store_the_same(object in arb_object()) {
            assert_same(&object);
        }

        #[test]
        fn secret_content_with_any_characters(
            data in prop::collection::btree_map("[a-z.\"\\\\é]{1,6}", "[ -~\u{0}-\u{1f}é☃\"\\\\]{0,24}", 0..5),
            string_data in arb_json(),
            repeated in any::<bool>(),
        ) {
            let data: Map<String, Value> = data.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let object = secret(Value::Object(data.clone()), string_data);
            assert_same(&object);
            // A key given twice keeps its first place and its last value, whichever way it is read.
            if repeated {
                let text = object.to_string().replacen("\"kind\":\"Secret\"", "\"data\":{},\"kind\":\"Secret\"", 1);
                let from_text = Candidate::from_json(JsonObject::parse(&text).unwrap());
                let from_value = Candidate::new(serde_json::from_str(&text).unwrap());
                prop_assert_eq!(from_text.stored, from_value.stored);
            }
        }
    }
}
