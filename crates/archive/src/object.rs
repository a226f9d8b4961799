//! Identity of a Kubernetes object held as JSON.
//!
//! Objects stay `serde_json::Value` end to end so that a backup never drops a field a newer cert-manager added.

use crate::text::escape_controls;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Names one object; used for manifest entries, exclusions, warnings and error messages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectKey {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// An identity from its four parts, for readers that find them side by side with other fields.
    pub fn new(api_version: String, kind: String, namespace: Option<String>, name: String) -> ObjectKey {
        ObjectKey {
            api_version,
            kind,
            namespace,
            name,
        }
    }

    /// Reads the identity fields of an object; `None` when `apiVersion`, `kind` or `metadata.name` is missing.
    pub fn of(object: &Value) -> Option<ObjectKey> {
        let api_version = object.get("apiVersion")?.as_str()?.to_owned();
        let kind = object.get("kind")?.as_str()?.to_owned();
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?.to_owned();
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .map(str::to_owned);
        Some(ObjectKey {
            api_version,
            kind,
            namespace,
            name,
        })
    }

    /// [`ObjectKey::of`] straight from JSON bytes, without building the object. The whole text is read the way
    /// `serde_json::from_slice::<Value>` reads it (UTF-8, escapes, number range, nesting limit), so bytes this
    /// accepts always parse as a `Value` later; only the identity fields are kept. `Err` when the bytes are not JSON
    /// a `Value` accepts, or name an identity field twice (readers disagree on which of two values counts);
    /// `Ok(None)` when they are JSON but not a Kubernetes object.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<Option<ObjectKey>, String> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let head = serde::Deserialize::deserialize(&mut deserializer)
            .and_then(|head: identity::Head| deserializer.end().map(|()| head))
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => e.to_string(),
                _ => format!("not JSON: {e}"),
            })?;
        let identity::Head {
            api_version: Some(api_version),
            kind: Some(kind),
            name: Some(name),
            namespace,
        } = head
        else {
            return Ok(None);
        };
        Ok(Some(ObjectKey {
            api_version,
            kind,
            namespace: namespace.filter(|ns| !ns.is_empty()),
            name,
        }))
    }

    /// The API group: empty for the core group.
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }
}

/// Any JSON value, read and dropped: deserializing it checks exactly what deserializing a `Value` checks (strings,
/// escapes, number range, nesting) without building anything.
pub(crate) struct AnyJson;

impl<'de> serde::Deserialize<'de> for AnyJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyJson)
    }
}

impl<'de> serde::de::Visitor<'de> for AnyJson {
    type Value = AnyJson;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_i64<E>(self, _: i64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_u64<E>(self, _: u64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_f64<E>(self, _: f64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_str<E>(self, _: &str) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_unit<E>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
        while seq.next_element::<AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
        while map.next_entry::<AnyJson, AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }
}

/// The one-pass reader behind [`ObjectKey::from_json`]: every value is visited with `deserialize_any`, as a `Value`
/// would be, and the identity fields are kept on the way.
mod identity {
    use super::AnyJson;
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// The identity fields found (`None`: absent or not a string).
    #[derive(Default)]
    pub(super) struct Head {
        pub(super) api_version: Option<String>,
        pub(super) kind: Option<String>,
        pub(super) name: Option<String>,
        pub(super) namespace: Option<String>,
    }

    /// A value that counts when it is a string; anything else is read and dropped.
    struct Text(Option<String>);

    /// The `metadata` value: its `name` and `namespace` when it is an object.
    #[derive(Default)]
    struct Metadata {
        name: Option<String>,
        namespace: Option<String>,
    }

    /// The keys that matter, told apart without copying any key.
    enum Key {
        ApiVersion,
        Kind,
        Metadata,
        Name,
        Namespace,
        Other,
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl Visitor<'_> for KeyVisitor {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a key")
                }
                fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                    Ok(match key {
                        "apiVersion" => Key::ApiVersion,
                        "kind" => Key::Kind,
                        "metadata" => Key::Metadata,
                        "name" => Key::Name,
                        "namespace" => Key::Namespace,
                        _ => Key::Other,
                    })
                }
            }
            deserializer.deserialize_str(KeyVisitor)
        }
    }

    /// Visits any value the way [`AnyJson`] does; `T::default()` for anything but what `T` looks for.
    macro_rules! any_other_value {
        ($t:ty, $default:expr) => {
            fn visit_bool<E>(self, _: bool) -> Result<$t, E> {
                Ok($default)
            }
            fn visit_i64<E>(self, _: i64) -> Result<$t, E> {
                Ok($default)
            }
            fn visit_u64<E>(self, _: u64) -> Result<$t, E> {
                Ok($default)
            }
            fn visit_f64<E>(self, _: f64) -> Result<$t, E> {
                Ok($default)
            }
            fn visit_unit<E>(self) -> Result<$t, E> {
                Ok($default)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<$t, A::Error> {
                AnyJson.visit_seq(seq).map(|_| $default)
            }
        };
    }

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct TextVisitor;
            impl<'de> Visitor<'de> for TextVisitor {
                type Value = Text;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                any_other_value!(Text, Text(None));
                fn visit_str<E>(self, text: &str) -> Result<Text, E> {
                    Ok(Text(Some(text.to_owned())))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text, A::Error> {
                    AnyJson.visit_map(map).map(|_| Text(None))
                }
            }
            deserializer.deserialize_any(TextVisitor)
        }
    }

    /// Stores a field's value, refusing a second one: a later reader could take either.
    fn once<T, E: de::Error>(slot: &mut Option<T>, seen: &mut bool, field: &str, value: T) -> Result<(), E> {
        if std::mem::replace(seen, true) {
            return Err(E::custom(format_args!("the identity field {field} appears twice")));
        }
        *slot = Some(value);
        Ok(())
    }

    impl<'de> Deserialize<'de> for Metadata {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct MetadataVisitor;
            impl<'de> Visitor<'de> for MetadataVisitor {
                type Value = Metadata;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                any_other_value!(Metadata, Metadata::default());
                fn visit_str<E>(self, _: &str) -> Result<Metadata, E> {
                    Ok(Metadata::default())
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                    let mut metadata = Metadata::default();
                    let (mut name, mut namespace) = (None, None);
                    let (mut seen_name, mut seen_namespace) = (false, false);
                    while let Some(key) = map.next_key::<Key>()? {
                        match key {
                            Key::Name => once(&mut name, &mut seen_name, "metadata.name", map.next_value::<Text>()?)?,
                            Key::Namespace => once(
                                &mut namespace,
                                &mut seen_namespace,
                                "metadata.namespace",
                                map.next_value::<Text>()?,
                            )?,
                            _ => {
                                map.next_value::<AnyJson>()?;
                            }
                        }
                    }
                    metadata.name = name.and_then(|t| t.0);
                    metadata.namespace = namespace.and_then(|t| t.0);
                    Ok(metadata)
                }
            }
            deserializer.deserialize_any(MetadataVisitor)
        }
    }

    impl<'de> Deserialize<'de> for Head {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct HeadVisitor;
            impl<'de> Visitor<'de> for HeadVisitor {
                type Value = Head;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                any_other_value!(Head, Head::default());
                fn visit_str<E>(self, _: &str) -> Result<Head, E> {
                    Ok(Head::default())
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
                    let (mut api_version, mut kind, mut metadata) = (None, None, None);
                    let mut seen = [false; 3];
                    while let Some(key) = map.next_key::<Key>()? {
                        match key {
                            Key::ApiVersion => {
                                once(&mut api_version, &mut seen[0], "apiVersion", map.next_value::<Text>()?)?
                            }
                            Key::Kind => once(&mut kind, &mut seen[1], "kind", map.next_value::<Text>()?)?,
                            Key::Metadata => {
                                once(&mut metadata, &mut seen[2], "metadata", map.next_value::<Metadata>()?)?
                            }
                            _ => {
                                map.next_value::<AnyJson>()?;
                            }
                        }
                    }
                    let metadata = metadata.unwrap_or_default();
                    Ok(Head {
                        api_version: api_version.and_then(|t: Text| t.0),
                        kind: kind.and_then(|t: Text| t.0),
                        name: metadata.name,
                        namespace: metadata.namespace,
                    })
                }
            }
            deserializer.deserialize_any(HeadVisitor)
        }
    }
}

/// Serializes a value into a `Vec` of exactly its length. `serde_json::to_vec` grows its buffer by doubling and
/// keeps the slack, up to half of each allocation; across the tens of thousands of objects a pack or a restore
/// holds as bytes, that slack was tens of megabytes.
pub fn to_json_exact(value: &Value) -> Vec<u8> {
    write_exact(|out| serde_json::to_writer(out, value).expect("a JSON value serializes"))
}

/// Runs `write` into this thread's scratch buffer and returns a copy of exactly the bytes written (see
/// [`to_json_exact`]).
pub(crate) fn write_exact(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        write(scratch);
        scratch.as_slice().to_vec()
    })
}

impl fmt::Display for ObjectKey {
    /// `Kind/namespace/name` or `Kind/name`, the way a person searches for it in kubectl output.
    /// Control characters are escaped: an identity may come from an untrusted archive, and every message that
    /// names an object shows it this way.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = escape_controls;
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", shown(&self.kind), shown(ns), shown(&self.name)),
            None => write!(f, "{}/{}", shown(&self.kind), shown(&self.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The byte-level reader must agree with [`ObjectKey::of`] on every shape, odd ones included.
    #[test]
    fn from_json_agrees_with_of() {
        let cases = [
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "ns", "labels": {"x": "y"}}, "data": {"k": "dg=="}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "ca"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": ""}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": 7}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": null}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": null}),
            json!({"apiVersion": 1, "kind": "Secret", "metadata": {"name": "a"}}),
            json!({"kind": "Secret", "metadata": {"name": "a"}}),
            json!([1, 2]),
            json!("text"),
        ];
        for value in cases {
            let bytes = serde_json::to_vec(&value).unwrap();
            assert_eq!(ObjectKey::from_json(&bytes), Ok(ObjectKey::of(&value)), "{value}");
        }
        assert!(
            ObjectKey::from_json(b"{\"apiVersion\": ")
                .unwrap_err()
                .starts_with("not JSON")
        );
    }

    /// Whatever a full parse refuses anywhere in the object (nesting past serde_json's limit, a number out of
    /// range, a lone surrogate, invalid UTF-8 in a string) is refused here too, so a checked object always parses;
    /// and an identity field given twice is refused, since readers differ on which one counts.
    #[test]
    fn from_json_refuses_what_a_full_parse_refuses() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let object = |value: &str| {
            format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"s","namespace":"n"}},"data":{{"x":{value}}}}}"#)
                .into_bytes()
        };
        let mut invalid_utf8 = object(r#""ab""#);
        let at = invalid_utf8.windows(2).position(|w| w == b"ab").unwrap();
        invalid_utf8[at] = 0xff;
        let cases = [
            object("1e400"),
            object(r#""\ud800""#),
            object(&nested(125)),
            invalid_utf8,
            object(r#""ok""#),
            object(&nested(120)),
            br#"{"kind":"Secret","apiVersion":[1e400],"metadata":{"name":"a"}}"#.to_vec(),
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","labels":{"x":"\udfff"}}}"#.to_vec(),
        ];
        for bytes in cases {
            let full = serde_json::from_slice::<Value>(&bytes);
            let ours = ObjectKey::from_json(&bytes);
            assert_eq!(ours.is_ok(), full.is_ok(), "{}", String::from_utf8_lossy(&bytes));
            if let Ok(value) = full {
                assert_eq!(ours.unwrap(), ObjectKey::of(&value));
            }
        }
        for twice in [
            r#"{"apiVersion":"v1","kind":"Secret","kind":"Namespace","metadata":{"name":"a"}}"#,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","name":"b"}}"#,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","namespace":"x","namespace":"y"}}"#,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"},"metadata":{"name":"b"}}"#,
        ] {
            let error = ObjectKey::from_json(twice.as_bytes()).unwrap_err();
            assert!(error.contains("appears twice"), "{twice}: {error}");
        }
    }

    #[test]
    fn identities_show_control_characters_escaped() {
        let key = ObjectKey::new("v1".into(), "Secret".into(), Some("n\u{1b}[2J".into()), "a\nb".into());
        assert_eq!(key.to_string(), "Secret/n\\u{1b}[2J/a\\nb");
    }
}
