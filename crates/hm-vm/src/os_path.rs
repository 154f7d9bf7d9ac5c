//! File names are bytes: paths in JSON and in messages without losing or
//! refusing any byte.
//!
//! In JSON (the helper's job, stored manifests) a path is a string when it
//! is UTF-8 and otherwise an array of its bytes; serde's own `PathBuf`
//! refuses the latter. Use the functions here with `#[serde(with =
//! "...")]`: [`serialize`]/[`deserialize`] for a `PathBuf`, [`vec`] and
//! [`option`] for lists and optional paths. For people, [`escaped`] shows
//! a path with every byte told apart.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A path as JSON holds it: text, or bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Bytes(Vec<u8>),
}

impl From<Repr> for PathBuf {
    fn from(repr: Repr) -> Self {
        match repr {
            Repr::Text(text) => PathBuf::from(text),
            Repr::Bytes(bytes) => PathBuf::from(std::ffi::OsString::from_vec(bytes)),
        }
    }
}

/// Borrows a path for serialisation.
struct Out<'a>(&'a Path);

impl Serialize for Out<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, s)
    }
}

/// A path as a string when it is UTF-8, else as an array of its bytes.
pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    match path.to_str() {
        Some(text) => s.serialize_str(text),
        None => s.collect_seq(path.as_os_str().as_bytes()),
    }
}

/// A path written by [`serialize`] (or by serde's own `PathBuf`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Repr::deserialize(d).map(PathBuf::from)
}

/// `Vec<PathBuf>`, each as [`serialize`] writes it.
pub mod vec {
    use super::*;

    pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(paths.iter().map(|p| Out(p)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<Repr>::deserialize(d)?.into_iter().map(PathBuf::from).collect())
    }
}

/// `Option<PathBuf>`, as [`serialize`] writes it.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match path {
            Some(path) => s.serialize_some(&Out(path)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<Repr>::deserialize(d)?.map(PathBuf::from))
    }
}

/// `path` for messages and keys: UTF-8 text as it is, except `\` as `\\`
/// and control characters escaped (`\n`, `\u{1b}`), and every byte that is
/// not UTF-8 as `\xNN`. Different paths always read differently.
pub fn escaped(path: &Path) -> String {
    escaped_bytes(path.as_os_str())
}

fn escaped_bytes(name: &OsStr) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Paths {
        #[serde(with = "super")]
        one: PathBuf,
        #[serde(with = "super::vec")]
        many: Vec<PathBuf>,
        #[serde(with = "super::option")]
        maybe: Option<PathBuf>,
    }

    #[test]
    fn every_byte_survives_json() {
        let odd = PathBuf::from(std::ffi::OsString::from_vec(b"dir/f\xff\xfe".to_vec()));
        let paths = Paths {
            one: odd.clone(),
            many: vec![PathBuf::from("plain/ünïcode"), odd.clone()],
            maybe: Some(odd),
        };
        let json = serde_json::to_string(&paths).unwrap();
        assert!(json.contains(r#""plain/ünïcode""#), "{json}");
        assert_eq!(serde_json::from_str::<Paths>(&json).unwrap(), paths);
        let none = Paths {
            one: "a".into(),
            many: Vec::new(),
            maybe: None,
        };
        let json = serde_json::to_string(&none).unwrap();
        assert_eq!(json, r#"{"one":"a","many":[],"maybe":null}"#);
        assert_eq!(serde_json::from_str::<Paths>(&json).unwrap(), none);
    }

    #[test]
    fn escapes_tell_every_name_apart() {
        let path = |bytes: &[u8]| PathBuf::from(std::ffi::OsString::from_vec(bytes.to_vec()));
        assert_eq!(escaped(&path(b"src/f\xff.txt")), "src/f\\xff.txt");
        assert_eq!(escaped(&path("é☃".as_bytes())), "é☃");
        assert_eq!(escaped(&path(b"a\\xff")), "a\\\\xff");
        assert_eq!(escaped(&path(b"line\nbreak")), "line\\nbreak");
        assert_ne!(escaped(&path(b"f\xff")), escaped(&path(b"f\xfe")));
    }
}
