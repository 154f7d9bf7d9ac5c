//! `.hm/*.json`: an envelope written out directly. A JSON file that is not
//! meant as one (an object with neither `schema_version` nor `pipelines`,
//! such as a `tsconfig.json` or `package.json` kept beside TypeScript
//! pipeline files) is not a pipeline file.

use std::path::Path;

use hm_ir::{Envelope, ENVELOPE_SCHEMA_VERSION};

use crate::{LoadError, Location};

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads one JSON envelope, or `None` for a JSON file that is not meant as
/// one; `rel` is the name errors use.
pub(crate) fn evaluate(path: &Path, rel: &Path) -> Result<Option<Envelope>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let envelope: Envelope = match serde_path_to_error::deserialize(de) {
        Ok(envelope) => envelope,
        Err(_) if !meant_as_envelope(&text) => return Ok(None),
        Err(err) => return Err(parse_error(err, rel)),
    };
    if envelope.schema_version != ENVELOPE_SCHEMA_VERSION {
        return Err(LoadError::SchemaVersion {
            file: rel.to_owned(),
            found: envelope.schema_version,
        });
    }
    Ok(Some(envelope))
}

/// Whether `text`, which did not read as an envelope, was meant as one: it
/// is not a JSON object, or its object has `schema_version` or `pipelines`.
fn meant_as_envelope(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Keys {
        schema_version: Option<serde::de::IgnoredAny>,
        pipelines: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Keys>(text) {
        Ok(keys) => keys.schema_version.is_some() || keys.pipelines.is_some(),
        Err(_) => true,
    }
}

fn parse_error(err: serde_path_to_error::Error<serde_json::Error>, rel: &Path) -> LoadError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let located = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    LoadError::Parse {
        at: Location::at(rel, to_u32(inner.line()), to_u32(inner.column())),
        field: (path != ".").then_some(path),
        message: located.strip_suffix(&suffix).unwrap_or(&located).to_owned(),
    }
}
