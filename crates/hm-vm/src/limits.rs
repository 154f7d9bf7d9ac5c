//! What a step may use (memory, CPU, processes, disk) and what it used
//! (DESIGN.md §6): the settings every backend applies to each step, and
//! the figures it reports after.
//!
//! Limits come from `[resources]`, `HM_*` variables and `hm run` flags,
//! then per step from the IR's `runner_args` (`{"memory": "512MiB",
//! "cpus": 0.5, "pids": 256, "disk": "1GiB"}`), which Harmont's SDKs carry
//! as given.

use serde_json::Value;

/// Memory of each step unless set: Harmont's VM config (8192 MiB).
pub const DEFAULT_MEMORY: u64 = 8192 << 20;
/// Disk of each step's writable layer unless set: Harmont's VM config
/// (10 GB).
pub const DEFAULT_DISK: u64 = 10_000_000_000;
/// Processes and threads of each step unless set: many more than a
/// parallel build starts, few enough that a fork bomb stops there.
pub const DEFAULT_PIDS: u64 = 4096;

/// Limits on one step; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory (its page cache included); over it, the kernel
    /// kills a process of the step.
    pub memory: Option<u64>,
    /// CPU time per wall time, in thousandths of a CPU.
    pub millicpus: Option<u64>,
    /// Processes and threads at once.
    pub pids: Option<u64>,
    /// Bytes the step may write to its filesystem (its writable layer).
    pub disk: Option<u64>,
    /// Whether `disk` was set (in config, the environment, a flag or
    /// `runner_args`) rather than left at [`DEFAULT_DISK`]. The sandbox
    /// bounds a step's disk with a filesystem of its own only then: that
    /// costs tens of milliseconds a step (see docs/decisions.md, "Disk
    /// limits").
    pub disk_explicit: bool,
}

impl Limits {
    /// Harmont's VM config: 8 GiB of memory, a 10 GB disk, all CPUs, and
    /// [`DEFAULT_PIDS`].
    pub fn defaults() -> Self {
        Limits {
            memory: Some(DEFAULT_MEMORY),
            millicpus: None,
            pids: Some(DEFAULT_PIDS),
            disk: Some(DEFAULT_DISK),
            disk_explicit: false,
        }
    }

    /// These limits with a step's `runner_args` over them: an object whose
    /// `memory`, `cpus`, `pids` and `disk` (each optional) replace these;
    /// other keys are the runner's and left alone. `0` or `"none"` lifts a
    /// limit.
    pub fn with_runner_args(self, args: Option<&Value>) -> Result<Self, LimitError> {
        let Some(Value::Object(args)) = args else {
            return Ok(self);
        };
        let mut limits = self;
        let lifted = |value: &Value| match value {
            Value::String(s) => matches!(s.trim(), "none" | "0"),
            other => other.as_f64() == Some(0.0),
        };
        if let Some(value) = args.get("memory") {
            limits.memory = (!lifted(value)).then(|| size_value("memory", value)).transpose()?;
        }
        if let Some(value) = args.get("disk") {
            limits.disk = (!lifted(value)).then(|| size_value("disk", value)).transpose()?;
            limits.disk_explicit = true;
        }
        if let Some(value) = args.get("cpus") {
            limits.millicpus = match lifted(value) {
                true => None,
                false => {
                    let cpus = match value {
                        Value::Number(n) => n.as_f64(),
                        Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    };
                    let cpus = cpus.ok_or_else(|| LimitError::field("cpus", ValueError::NotCpus(plain(value))))?;
                    Some(millicpus(cpus).map_err(|e| LimitError::field("cpus", e))?)
                }
            };
        }
        if let Some(value) = args.get("pids") {
            limits.pids = match lifted(value) {
                true => None,
                false => Some(
                    value
                        .as_u64()
                        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or_else(|| LimitError::field("pids", ValueError::NotACount(plain(value))))?,
                ),
            };
        }
        Ok(limits)
    }
}

/// A value as written: a string without JSON's quotes.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn size_value(field: &'static str, value: &Value) -> Result<u64, LimitError> {
    let size = match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| ValueError::NotASize(n.to_string())),
        Value::String(s) => parse_size(s),
        other => Err(ValueError::NotASize(plain(other))),
    };
    size.map_err(|e| LimitError::field(field, e))
}

/// A `runner_args` limit that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runner_args.{field}: {error}")]
pub struct LimitError {
    pub field: &'static str,
    pub error: ValueError,
}

impl LimitError {
    fn field(field: &'static str, error: ValueError) -> Self {
        LimitError { field, error }
    }
}

/// A setting's value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("`{0}` is not a size such as `20GiB`")]
    NotASize(String),
    #[error("`{0}` has an unknown unit (use B, kB, MB, GB, KiB, MiB, GiB)")]
    UnknownUnit(String),
    #[error("`{0}` is not a positive number of CPUs")]
    NotCpus(String),
    #[error("`{0}` is not a whole number")]
    NotACount(String),
}

/// A CPU count as thousandths of a CPU; it must be positive.
pub fn millicpus(cpus: f64) -> Result<u64, ValueError> {
    if cpus.is_finite() && cpus > 0.0 {
        Ok((cpus * 1000.0).round().max(1.0) as u64)
    } else {
        Err(ValueError::NotCpus(cpus.to_string()))
    }
}

/// `1024`, `500MB`, `20GiB`, `1.5G` (decimal units: kB, MB, GB, TB; binary:
/// KiB, MiB, GiB, TiB; K, M, G, T are binary).
pub fn parse_size(text: &str) -> Result<u64, ValueError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| ValueError::NotASize(text.to_owned()))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(ValueError::UnknownUnit(text.to_owned())),
    };
    Ok((number * factor as f64) as u64)
}

/// What a step's command used, as its backend measured it; `None` where
/// the backend could not tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepUsage {
    /// The most memory the step held at once.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time, user and system, of all its processes.
    pub cpu_ms: Option<u64>,
    /// The kernel killed one of its processes for going over the memory
    /// limit.
    pub oom_killed: bool,
    /// The memory limit it ran under.
    pub memory_limit: Option<u64>,
    /// The kernel refused it a new process or thread: it reached its
    /// process limit.
    pub pids_refused: bool,
    /// The process limit it ran under.
    pub pids_limit: Option<u64>,
}

impl StepUsage {
    /// Whether a limit stopped work of the step (a process killed, a fork
    /// refused): such a step fails whatever its command returned.
    pub fn limit_hit(&self) -> bool {
        self.oom_killed || self.pids_refused
    }
}

pub use hm_events::units::{human_bytes, human_bytes_exact};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1.5 G"), Ok(3 << 29));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn runner_args_replace_lift_or_are_refused_by_field() {
        let base = Limits::defaults();
        assert_eq!(base.with_runner_args(None), Ok(base));
        assert_eq!(base.with_runner_args(Some(&json!("vm"))), Ok(base));
        let args = json!({"memory": "512MiB", "cpus": 0.5, "pids": 64, "disk": 1000, "image": "x"});
        let limits = base.with_runner_args(Some(&args)).unwrap();
        assert_eq!(
            limits,
            Limits {
                memory: Some(512 << 20),
                millicpus: Some(500),
                pids: Some(64),
                disk: Some(1000),
                disk_explicit: true,
            }
        );
        let lifted = base
            .with_runner_args(Some(&json!({"memory": "none", "pids": 0, "disk": "none"})))
            .unwrap();
        assert_eq!((lifted.memory, lifted.pids, lifted.disk), (None, None, None));
        let lifted = base
            .with_runner_args(Some(&json!({"pids": "0", "cpus": "none"})))
            .unwrap();
        assert_eq!((lifted.pids, lifted.millicpus), (None, None));
        let err = base.with_runner_args(Some(&json!({"pids": "many"}))).unwrap_err();
        assert_eq!(err.to_string(), "runner_args.pids: `many` is not a whole number");
        assert_eq!(
            base.with_runner_args(Some(&json!({"cpus": "2"}))).unwrap().millicpus,
            Some(2000)
        );
        let err = base.with_runner_args(Some(&json!({"memory": "lots"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "runner_args.memory: `lots` is not a size such as `20GiB`"
        );
        let err = base.with_runner_args(Some(&json!({"cpus": -1}))).unwrap_err();
        assert_eq!(err.field, "cpus");
        let err = base.with_runner_args(Some(&json!({"pids": 1.5}))).unwrap_err();
        assert_eq!(err.field, "pids");
    }
}
