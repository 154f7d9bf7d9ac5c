//! `.hm/*.json`: an envelope written out directly.

use std::path::Path;

use hm_ir::{Envelope, ENVELOPE_SCHEMA_VERSION};

use crate::{LoadError, Location};

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads one JSON envelope; `rel` is the name errors use.
pub(crate) fn evaluate(path: &Path, rel: &Path) -> Result<Envelope, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let envelope: Envelope = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let located = inner.to_string();
        let suffix = format!(" at line {} column {}", inner.line(), inner.column());
        LoadError::Parse {
            at: Location::at(rel, to_u32(inner.line()), to_u32(inner.column())),
            field: (path != ".").then_some(path),
            message: located.strip_suffix(&suffix).unwrap_or(&located).to_owned(),
        }
    })?;
    if envelope.schema_version != ENVELOPE_SCHEMA_VERSION {
        return Err(LoadError::SchemaVersion {
            file: rel.to_owned(),
            found: envelope.schema_version,
        });
    }
    Ok(envelope)
}
