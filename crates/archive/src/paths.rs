//! Tar paths: generated from an object's identity when writing, and checked (never trusted) when reading.
//!
//! Layout: `objects/<NN-phase>/<group or core>/<kind>/<namespace or _cluster>/<name>.json`. The phase number makes
//! `tar t` and `ls` show restore order. Every component is made safe for any filesystem: only `[A-Za-z0-9._-]`
//! stays as is, everything else is percent-encoded, and over-long names are shortened with a hash suffix.

use crate::manifest::{MANIFEST_PATH, PhaseName};
use crate::object::ObjectKey;
use sha2::{Digest, Sha256};

/// Prefix of every object path.
pub const OBJECTS_DIR: &str = "objects";
/// Folder standing in for the namespace of cluster-scoped objects (a real namespace cannot start with `_`, and
/// [`safe_component`] escapes a leading `_` anyway).
pub const CLUSTER_SCOPED_DIR: &str = "_cluster";
/// Folder standing in for the empty core API group.
pub const CORE_GROUP_DIR: &str = "core";
/// Longest component kept verbatim; longer ones are cut and get a hash suffix so paths stay unique and fit the
/// 255-byte file name limit of common filesystems when unpacked with `--dir`.
const MAX_COMPONENT: usize = 200;

/// `01-crds`, `02-namespaces`, …: the folder of a phase.
pub fn phase_dir(phase: PhaseName) -> String {
    format!("{:02}-{}", phase.ordinal(), phase.as_str())
}

/// The tar path of an object in a phase.
pub fn object_path(phase: PhaseName, key: &ObjectKey) -> String {
    let group = match key.group() {
        "" => CORE_GROUP_DIR.to_owned(),
        group => safe_component(group),
    };
    let namespace = match &key.namespace {
        Some(ns) => safe_component(ns),
        None => CLUSTER_SCOPED_DIR.to_owned(),
    };
    format!(
        "{OBJECTS_DIR}/{}/{group}/{}/{namespace}/{}.json",
        phase_dir(phase),
        safe_component(&key.kind.to_ascii_lowercase()),
        safe_component(&key.name)
    )
}

/// Makes one path component out of arbitrary text: no separators, no `.`/`..`, no control characters, no leading
/// `_`, at most [`MAX_COMPONENT`] bytes. Distinct inputs give distinct outputs (up to a 64-bit hash collision for
/// names that had to be shortened).
pub fn safe_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, byte) in text.bytes().enumerate() {
        let keep = byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.' || (byte == b'_' && i > 0);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if text.is_empty() {
        out.push('%');
    } else if text.bytes().all(|b| b == b'.') {
        // "." and ".." must not become path components; encode the dots so the name stays readable.
        out = "%2E".repeat(text.len());
    }
    if out.len() > MAX_COMPONENT {
        let mut cut = MAX_COMPONENT - 20;
        // Never split a %XX escape.
        while out.as_bytes()[cut - 1] == b'%' || out.as_bytes()[cut - 2] == b'%' {
            cut -= 1;
        }
        let digest = hex::encode(&Sha256::digest(text.as_bytes())[..8]);
        out.truncate(cut);
        out.push('~');
        out.push_str(&digest);
    }
    out
}

/// Checks a path read from a tar entry or from the manifest; returns why it is unsafe.
///
/// Only relative paths of plain components are accepted: no leading `/`, no `.` or `..`, no empty component, no
/// backslash, NUL or other control characters, and nothing longer than 4096 bytes.
pub fn check_entry_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.len() > 4096 {
        return Err("path longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.contains('\\') {
        return Err("backslash in path");
    }
    if path.chars().any(char::is_control) {
        return Err("control character in path");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component"),
            "." | ".." => return Err("`.` or `..` in path"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that a manifest entry's path is an object path: safe, under `objects/`, ending in `.json`.
pub fn check_object_path(path: &str) -> Result<(), &'static str> {
    check_entry_path(path)?;
    if path == MANIFEST_PATH || !path.starts_with(&format!("{OBJECTS_DIR}/")) || !path.ends_with(".json") {
        return Err("object paths must look like objects/…/NAME.json");
    }
    Ok(())
}

/// Where an object's file goes in a folder it is unpacked into: its tar path without the leading `objects/`,
/// so the phase folders sit beside `manifest.json`.
pub fn unpacked_path(path: &str) -> &str {
    path.strip_prefix(OBJECTS_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn layout() {
        assert_eq!(
            object_path(PhaseName::Secrets, &key("v1", "Secret", Some("prod"), "web-tls")),
            "objects/03-secrets/core/secret/prod/web-tls.json"
        );
        assert_eq!(
            object_path(
                PhaseName::Issuers,
                &key("cert-manager.io/v1", "ClusterIssuer", None, "letsencrypt")
            ),
            "objects/04-issuers/cert-manager.io/clusterissuer/_cluster/letsencrypt.json"
        );
    }

    #[test]
    fn hostile_names_stay_inside() {
        assert_eq!(safe_component(".."), "%2E%2E");
        assert_eq!(safe_component("."), "%2E");
        assert_eq!(safe_component(""), "%");
        assert_eq!(safe_component("a/b"), "a%2Fb");
        assert_eq!(safe_component("_cluster"), "%5Fcluster");
        assert_eq!(safe_component("x_y"), "x_y");
        let long = "a".repeat(300);
        let short = safe_component(&long);
        assert!(short.len() <= MAX_COMPONENT);
        assert_ne!(short, safe_component(&"a".repeat(301)));
    }

    #[test]
    fn rejects_unsafe_paths() {
        for bad in ["/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b", "", "a/\u{0}"] {
            assert!(check_entry_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_object_path("manifest.json").is_err());
        assert!(check_object_path("objects/03-secrets/core/secret/a/b.json").is_ok());
    }

    proptest! {
        #[test]
        fn generated_paths_are_safe(ns in proptest::option::of(".{0,80}"), name in ".{0,300}", kind in ".{1,30}") {
            let path = object_path(PhaseName::Certificates, &key("cert-manager.io/v1", &kind, ns.as_deref(), &name));
            prop_assert!(check_object_path(&path).is_ok(), "{}", path);
            prop_assert_eq!(path.split('/').count(), 6);
            prop_assert!(path.split('/').all(|c| c.len() <= 255));
        }

        #[test]
        fn components_are_injective(a in ".{0,40}", b in ".{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(safe_component(&a), safe_component(&b));
        }
    }
}
