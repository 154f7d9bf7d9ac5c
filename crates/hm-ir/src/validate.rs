//! The checks every pipeline passes before anything runs (DESIGN.md §2).

use crate::envelope::{CachePolicy, Pipeline, PolicyKind, IR_VERSION};
use crate::volumes::{check_layered, check_table, MountPathError};

/// A pipeline that cannot run, with the pipeline and (where there is one)
/// the step it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline `{slug}`{}: {kind}", step.as_ref().map(|s| format!(", step `{}`", printable(s))).unwrap_or_default())]
pub struct ValidationError {
    pub slug: String,
    pub step: Option<String>,
    pub kind: ValidationErrorKind,
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationErrorKind {
    #[error("unsupported IR `version` `{0}` (this hm reads `{IR_VERSION}`)")]
    IrVersion(String),
    #[error("`edge_property` must be `directed`, not `{0}`")]
    EdgeProperty(String),
    #[error("invalid slug: it must match ^[a-z][a-z0-9-]{{0,63}}$")]
    Slug,
    #[error("`node_holes` entry {0} is out of order or repeated")]
    NodeHoles(u32),
    #[error("empty step `key`")]
    EmptyKey,
    #[error("duplicate step key (nodes {first} and {second})")]
    DuplicateKey { first: usize, second: usize },
    #[error("edge {edge} points at node {node}, which does not exist")]
    DanglingEdge { edge: usize, node: u32 },
    #[error("edge {edge} connects the step to itself")]
    SelfEdge { edge: usize },
    #[error("two `builds_in` parents: `{first}` and `{second}` (a step boots from one snapshot)")]
    TwoParents { first: String, second: String },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("`{field}` must be greater than 0")]
    ZeroTimeout { field: &'static str },
    #[error("cache policy `ttl` needs `duration_seconds` greater than 0")]
    TtlDuration,
    #[error("cache policy `on_change` needs at least one path in `paths`")]
    OnChangePaths,
    #[error("cache policy `compose` needs at least one entry in `sub_policies`")]
    ComposeEmpty,
    #[error(
        "is cached but its `builds_in` ancestor `{0}` is not; a cached snapshot must not depend on an uncached one"
    )]
    UncachedAncestor(String),
    #[error("unknown runner `{0}` (this hm runs steps with `vm`)")]
    UnknownRunner(String),
    #[error("`{field}` contains a NUL byte (no command, name or value can hold one)")]
    Nul { field: String },
    #[error(
        "`{field}` has an invalid variable name `{}`: a name is letters, digits and `_`, not starting with a digit",
        printable(name)
    )]
    EnvName { field: String, name: String },
    #[error("`volumes` has an invalid mount path `{}`: {reason}", printable(path))]
    VolumePath { path: String, reason: MountPathError },
    #[error(
        "`volumes.{}` has an invalid volume name `{}`: a name is a letter or digit, then up to 63 letters, digits, `_`, `.` or `-`",
        printable(path),
        printable(name)
    )]
    VolumeName { path: String, name: String },
    #[error(
        "`volumes` gives one mount path twice, as `{}` and `{}`",
        printable(first),
        printable(second)
    )]
    VolumeSamePath { first: String, second: String },
    #[error("`volumes` mounts `{inner}`{inner_origin} inside `{outer}`{outer_origin}: one volume would hide part of the other")]
    VolumesNest {
        outer: String,
        outer_origin: VolumeOrigin,
        inner: String,
        inner_origin: VolumeOrigin,
    },
}

/// Whose table a volume in a message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VolumeOrigin {
    /// The table the message is about (the step's, or the pipeline's when
    /// it names no step).
    Own,
    /// The pipeline's, in a message about one of its steps.
    Pipeline,
}

impl std::fmt::Display for VolumeOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VolumeOrigin::Own => Ok(()),
            VolumeOrigin::Pipeline => f.write_str(" (the pipeline's)"),
        }
    }
}

/// Whether `name` can name an environment variable: `[A-Za-z_][A-Za-z0-9_]*`
/// (POSIX's portable names; Harmont's SDKs have no rule of their own).
pub fn is_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// `text` with control characters (a NUL, a newline) escaped, for messages.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// Whether `slug` matches `^[a-z][a-z0-9-]{0,63}$`.
pub fn validate_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Checks one pipeline completely; the same checks [`crate::Plan::new`] runs.
pub fn validate_pipeline(pipeline: &Pipeline) -> Result<(), ValidationError> {
    crate::plan::validate(pipeline)
}

/// Checks that apply to the pipeline as a whole, before the graph is built.
pub(crate) fn check_header(pipeline: &Pipeline) -> Result<(), ValidationError> {
    let fail = |kind| Err(error(pipeline, None, kind));
    if !validate_slug(&pipeline.slug) {
        return fail(ValidationErrorKind::Slug);
    }
    let def = &pipeline.definition;
    if def.version != IR_VERSION {
        return fail(ValidationErrorKind::IrVersion(def.version.clone()));
    }
    if def.graph.edge_property != "directed" {
        return fail(ValidationErrorKind::EdgeProperty(def.graph.edge_property.clone()));
    }
    if def.timeout_seconds == Some(0) {
        return fail(ValidationErrorKind::ZeroTimeout {
            field: "timeout_seconds",
        });
    }
    if let Some(volumes) = &def.volumes {
        check_table(volumes).map_err(|kind| error(pipeline, None, kind))?;
    }
    Ok(())
}

/// Checks that concern a single step on its own.
pub(crate) fn check_step(pipeline: &Pipeline, node: &crate::Node) -> Result<(), ValidationError> {
    let step = &node.step;
    let fail = |kind| Err(error(pipeline, Some(&step.key), kind));
    if step.key.is_empty() {
        return fail(ValidationErrorKind::EmptyKey);
    }
    check_text(node).map_err(|kind| error(pipeline, Some(&step.key), kind))?;
    if step.timeout_seconds == Some(0) {
        return fail(ValidationErrorKind::ZeroTimeout {
            field: "timeout_seconds",
        });
    }
    if let Some(runner) = step.runner.as_deref() {
        if runner != "vm" {
            return fail(ValidationErrorKind::UnknownRunner(runner.to_owned()));
        }
    }
    if let Some(policy) = &step.cache {
        check_policy(policy).map_err(|kind| error(pipeline, Some(&step.key), kind))?;
    }
    if let Some(volumes) = &step.volumes {
        check_table(volumes).map_err(|kind| error(pipeline, Some(&step.key), kind))?;
        if let Some(shared) = &pipeline.definition.volumes {
            check_layered(shared, volumes).map_err(|kind| error(pipeline, Some(&step.key), kind))?;
        }
    }
    Ok(())
}

/// No NUL byte in what reaches `exec` or a message (command, key, label,
/// image, runner, environment names and values, cache inputs), and only
/// valid variable names. Each is checked before anything runs: a NUL would
/// fail at `exec`, and a name holding `=` would set another variable.
fn check_text(node: &crate::Node) -> Result<(), ValidationErrorKind> {
    let step = &node.step;
    let nul = |field: &str, text: &str| {
        if text.contains('\0') {
            Err(ValidationErrorKind::Nul {
                field: field.to_owned(),
            })
        } else {
            Ok(())
        }
    };
    nul("key", &step.key)?;
    nul("cmd", &step.cmd)?;
    for (field, text) in [("label", &step.label), ("image", &step.image), ("runner", &step.runner)] {
        if let Some(text) = text {
            nul(field, text)?;
        }
    }
    let env_map = |field: &str, env: &std::collections::BTreeMap<String, String>| {
        env.iter().try_for_each(|(name, value)| {
            check_env_name(field, name)?;
            nul(&format!("{field}.{name}"), value)
        })
    };
    env_map("env", &node.env)?;
    if let Some(env) = &step.env {
        env_map("step.env", env)?;
    }
    if let Some(policy) = &step.cache {
        check_policy_text(policy)?;
    }
    Ok(())
}

fn check_env_name(field: &str, name: &str) -> Result<(), ValidationErrorKind> {
    if !is_env_name(name) {
        return Err(ValidationErrorKind::EnvName {
            field: field.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn check_policy_text(policy: &CachePolicy) -> Result<(), ValidationErrorKind> {
    for name in policy.env_keys() {
        check_env_name("cache.env_keys", name)?;
    }
    if let Some(key) = &policy.key {
        if key.contains('\0') {
            return Err(ValidationErrorKind::Nul {
                field: "cache.key".to_owned(),
            });
        }
    }
    match &policy.kind {
        PolicyKind::OnChange { paths } if paths.iter().any(|p| p.contains('\0')) => Err(ValidationErrorKind::Nul {
            field: "cache.paths".to_owned(),
        }),
        PolicyKind::Compose { sub_policies } => sub_policies.iter().try_for_each(check_policy_text),
        _ => Ok(()),
    }
}

fn check_policy(policy: &CachePolicy) -> Result<(), ValidationErrorKind> {
    match &policy.kind {
        PolicyKind::None | PolicyKind::Forever { .. } => Ok(()),
        PolicyKind::Ttl {
            duration_seconds: 0, ..
        } => Err(ValidationErrorKind::TtlDuration),
        PolicyKind::Ttl { .. } => Ok(()),
        PolicyKind::OnChange { paths } if paths.is_empty() => Err(ValidationErrorKind::OnChangePaths),
        PolicyKind::OnChange { .. } => Ok(()),
        PolicyKind::Compose { sub_policies } if sub_policies.is_empty() => Err(ValidationErrorKind::ComposeEmpty),
        PolicyKind::Compose { sub_policies } => sub_policies.iter().try_for_each(check_policy),
    }
}

pub(crate) fn error(pipeline: &Pipeline, step: Option<&str>, kind: ValidationErrorKind) -> ValidationError {
    ValidationError {
        slug: pipeline.slug.clone(),
        step: step.map(str::to_owned),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        for ok in ["A", "_", "PATH", "a_b9", "_1"] {
            assert!(is_env_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A=B", "A-B", "A B", "A\0", "É"] {
            assert!(!is_env_name(bad), "{bad}");
        }
        assert_eq!(printable("a\0b\n"), "a\\u{0}b\\n");
    }

    #[test]
    fn slugs() {
        for ok in ["a", "ci", "build-and-test", "a0-9"] {
            assert!(validate_slug(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in ["", "A", "0a", "-a", "a_b", "a b", long.as_str()] {
            assert!(!validate_slug(bad), "{bad}");
        }
    }
}
