//! `hm report [RUN]`: a recorded run as one HTML page on stdout (see
//! `crate::report`).

use hm_exec::exit_codes;

use super::cache_dir;
use super::runs::find_run;
use crate::error::CliError;
use crate::history::{self, History};
use crate::report::log::{self, LogTail};
use crate::report::page::Page;
use crate::report::timeline::Timeline;

/// `hm report [RUN]`: RUN is an id or the start of one (default: the last
/// run).
pub fn report(run: Option<&str>) -> Result<i32, CliError> {
    let runs = History::new(&cache_dir()?).runs();
    let (dir, info) = find_run(&runs, run)?;
    let events = history::timed_events(dir);
    let plan = history::plan(dir);
    let timeline = Timeline::new(&events, plan.as_ref(), info.duration_ms);
    let limit = log::limit_per_step(timeline.steps.len());
    let logs: Vec<LogTail> = timeline
        .steps
        .iter()
        .map(|step| LogTail::read(&dir.join("steps").join(format!("{}.log", step.id)), limit))
        .collect();
    let page = Page {
        info,
        timeline: &timeline,
        logs: &logs,
    };
    crate::output::print(&page.render())?;
    Ok(exit_codes::PASSED)
}
