//! `hm runs` and `hm logs`: the run history (see `crate::history`), and
//! the lookup of a run that `hm report` shares ([`find_run`]).

use std::path::PathBuf;

use hm_exec::events::{Event, StepStatus};
use hm_exec::exit_codes;

use super::image::format_age;
use super::{cache_dir, print_json};
use crate::cli::Format;
use crate::error::CliError;
use crate::history::{events, History, RunInfo};

/// `hm runs`.
pub fn runs(format: Format) -> Result<i32, CliError> {
    let runs = History::new(&cache_dir()?).runs();
    if format == Format::Json {
        let infos: Vec<&RunInfo> = runs.iter().map(|(_, info)| info).collect();
        print_json(&infos)?;
        return Ok(exit_codes::PASSED);
    }
    let now = crate::history::now_ms() / 1000;
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|(_, info)| {
            [
                info.id.clone(),
                format!("{} ago", format_age(now.saturating_sub(info.started_ms / 1000))),
                info.pipeline.clone(),
                info.status.clone().unwrap_or_else(|| "unfinished".to_owned()),
                info.duration_ms.map(hm_render::format_duration).unwrap_or_default(),
                info.project.clone(),
                info.branch.clone().unwrap_or_default(),
                // One line per run, whatever the message holds.
                info.message
                    .as_deref()
                    .unwrap_or_default()
                    .lines()
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    let header = [
        "RUN", "WHEN", "PIPELINE", "RESULT", "DURATION", "PROJECT", "BRANCH", "MESSAGE",
    ];
    // The last two columns only when some run has `-b` or `-m` on it.
    let labelled = runs.iter().any(|(_, i)| i.branch.is_some() || i.message.is_some());
    let text = match labelled {
        true => crate::output::table(header, &rows, &[]),
        false => {
            let first = |[a, b, c, d, e, f, _, _]: [String; 8]| [a, b, c, d, e, f];
            let [a, b, c, d, e, f, _, _] = header;
            crate::output::table(
                [a, b, c, d, e, f],
                &rows.into_iter().map(first).collect::<Vec<_>>(),
                &[],
            )
        }
    };
    crate::output::print(&text)?;
    Ok(exit_codes::PASSED)
}

/// The run `wanted` names (its id or the start of one; the newest such),
/// else the last run; `runs` as [`History::runs`] lists them. None is a
/// usage error naming what was asked for.
pub(super) fn find_run<'a>(
    runs: &'a [(PathBuf, RunInfo)],
    wanted: Option<&str>,
) -> Result<&'a (PathBuf, RunInfo), CliError> {
    let bad = |message: String| CliError::BadArgument { flag: "RUN", message };
    match wanted {
        Some(wanted) => runs
            .iter()
            .find(|(_, info)| info.id.starts_with(wanted))
            .ok_or_else(|| bad(format!("no run `{wanted}` (see `hm runs`)"))),
        None => runs.first().ok_or_else(|| bad("no run recorded yet".to_owned())),
    }
}

/// A step of a recorded run: its id, key and how it ended.
struct RecordedStep {
    id: String,
    key: String,
    name: String,
    status: Option<StepStatus>,
}

/// `hm logs [RUN] [STEP]`.
pub fn logs(run: Option<&str>, step: Option<&str>, format: Format) -> Result<i32, CliError> {
    let runs = History::new(&cache_dir()?).runs();
    let bad = |message: String| CliError::BadArgument { flag: "RUN", message };
    // One word: a run when one starts so, else a step of the last run.
    let (run, step) = match (run, step) {
        (Some(word), None) if find_run(&runs, Some(word)).is_err() => (None, Some(word)),
        other => other,
    };
    let (dir, info) = find_run(&runs, run)?;
    let steps = recorded_steps(dir);
    let chosen = match step {
        Some(wanted) => steps
            .iter()
            .find(|s| s.key == wanted || s.name == wanted || s.id == wanted)
            .ok_or_else(|| {
                let known: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
                bad(format!(
                    "run {} has no step `{wanted}` (it has {})",
                    info.id,
                    known.join(", ")
                ))
            })?,
        None => steps
            .iter()
            .find(|s| matches!(s.status, Some(StepStatus::Failed | StepStatus::TimedOut)))
            .ok_or_else(|| {
                bad(format!(
                    "run {} has no failed step; name one: `hm logs {} STEP`",
                    info.id, info.id
                ))
            })?,
    };
    let path: PathBuf = dir.join("steps").join(format!("{}.log", chosen.id));
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(CliError::Io { path, source }),
    };
    if format == Format::Json {
        print_json(&serde_json::json!({
            "run": info.id,
            "step_id": chosen.id,
            "key": chosen.key,
            "status": chosen.status,
            "bytes": bytes.len(),
            "log": String::from_utf8_lossy(&bytes),
        }))?;
        return Ok(exit_codes::PASSED);
    }
    crate::output::print_bytes(&bytes)?;
    if bytes.is_empty() {
        say!("step `{}` of run {} wrote nothing", chosen.key, info.id);
    }
    Ok(exit_codes::PASSED)
}

/// The steps a run's events name, in the order they were queued.
fn recorded_steps(dir: &std::path::Path) -> Vec<RecordedStep> {
    let events = events(dir);
    let mut steps: Vec<RecordedStep> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepQueued {
                step_id,
                key,
                display_name,
                ..
            } => Some(RecordedStep {
                id: step_id.clone(),
                key: key.clone(),
                name: display_name.clone(),
                status: None,
            }),
            _ => None,
        })
        .collect();
    for event in &events {
        if let Event::StepEnd { step_id, status, .. } = event {
            if let Some(step) = steps.iter_mut().find(|s| &s.id == step_id) {
                step.status = Some(*status);
            }
        }
    }
    steps
}
