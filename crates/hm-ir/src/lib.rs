//! The pipeline envelope and its IR, as Harmont's SDKs emit them, plus the
//! checks and the planned DAG that execution works from.
//!
//! The main types are [`Envelope`] (what pipeline files evaluate to), its
//! [`Pipeline`]s whose [`Definition`] is the IR graph, and [`Plan`], the
//! validated, index-compacted DAG built by [`Plan::new`]. A step's cache
//! volumes, its pipeline's and its own, resolve to mount paths through
//! [`effective_volumes`]. Nothing here knows about files, processes or VMs:
//! validation errors name the pipeline and the step, and the caller adds the
//! file.

mod envelope;
mod plan;
mod select;
mod validate;
mod volumes;

pub use envelope::{
    CachePolicy, Definition, EdgeKind, Envelope, Graph, Network, Node, Pipeline, PolicyKind, Sharing, Step,
    VolumeMount, Volumes, DEFAULT_IMAGE, ENVELOPE_SCHEMA_VERSION, IR_VERSION,
};
pub use plan::{Plan, PlannedStep, StepIdx};
pub use select::{chain_to, closest, Selection, UnknownStep};
pub use validate::{
    is_env_name, printable, validate_pipeline, validate_slug, ValidationError, ValidationErrorKind, VolumeOrigin,
};
pub use volumes::{check_mount_path, effective_volumes, is_volume_name, mount_path, MountPathError, WORKSPACE};
