//! The report as one HTML page: the run's header, its timeline (a bar per
//! step from start to finish, a thin line while it waited for a slot, the
//! critical path marked) and each step's log. Self-contained: the style
//! is inline, there is no script and no external URL.

use std::borrow::Cow;
use std::fmt::Write;

use super::log::{self, LogTail};
use super::timeline::{Outcome, Step, Timeline};
use crate::history::RunInfo;
use hm_render::format_duration;

/// The page's style sheet.
const STYLE: &str = include_str!("report.css");

/// Everything the page shows.
pub struct Page<'a> {
    pub info: &'a RunInfo,
    pub timeline: &'a Timeline,
    /// The end of each step's log, in the order of `timeline.steps`.
    pub logs: &'a [LogTail],
}

/// `text` escaped for HTML text and attribute values.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

impl Page<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        let info = self.info;
        let status = info.status.as_deref().unwrap_or("unfinished");
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{} · run {} · {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
            escape(&info.pipeline),
            escape(&info.id),
            escape(status),
        );
        self.header(&mut out, status);
        self.timeline(&mut out);
        self.steps(&mut out);
        let _ = write!(
            out,
            "<footer>Written by hm {} from the run's history (<code>hm report {}</code>).</footer>\n</body>\n</html>\n",
            env!("CARGO_PKG_VERSION"),
            escape(&info.id)
        );
        out
    }

    fn header(&self, out: &mut String, status: &str) {
        let info = self.info;
        let started = std::time::UNIX_EPOCH + std::time::Duration::from_millis(info.started_ms);
        let started = humantime::format_rfc3339_seconds(started).to_string();
        let started = started.replace('T', " ").replace('Z', " UTC");
        let duration = info.duration_ms.map(format_duration).unwrap_or_else(|| "—".to_owned());
        let mut counts = Vec::new();
        for outcome in Outcome::ALL {
            let n = self.timeline.steps.iter().filter(|s| s.outcome == outcome).count();
            if n > 0 {
                counts.push(format!("{n} {}", outcome.label()));
            }
        }
        let steps = self.timeline.steps.len();
        let _ = write!(
            out,
            "<header>\n<h1>{pipeline} <span class=\"badge {class}\" id=\"status\">{status}</span></h1>\n\
             <dl class=\"meta\">\
             <dt>run</dt><dd><code id=\"run-id\">{id}</code></dd>\
             <dt>project</dt><dd><code>{project}</code></dd>\
             <dt>started</dt><dd>{started}</dd>\
             <dt>duration</dt><dd>{duration}</dd>\
             <dt>steps</dt><dd>{steps}{sep}{counts}</dd>\
             </dl>\n</header>\n",
            pipeline = escape(&info.pipeline),
            class = escape(&status.replace('_', "-")),
            status = escape(&status.replace('_', " ")),
            id = escape(&info.id),
            project = escape(&info.project),
            sep = if counts.is_empty() { "" } else { ": " },
            counts = counts.join(", "),
        );
    }

    fn timeline(&self, out: &mut String) {
        let timeline = self.timeline;
        out.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n<p class=\"legend\">");
        for outcome in Outcome::ALL {
            if timeline.steps.iter().any(|s| s.outcome == outcome) {
                let _ = write!(
                    out,
                    "<span class=\"{}\"><i class=\"chip\"></i>{}</span> ",
                    outcome.class(),
                    outcome.label()
                );
            }
        }
        out.push_str(
            "<span class=\"wait-key\"><i></i>waiting for a free slot</span> \
             <span class=\"critical-key\"><i class=\"chip\"></i>critical path</span></p>\n",
        );
        if !timeline.timed {
            out.push_str(
                "<p class=\"note\">This run was recorded by an hm that kept no event times: \
                 the bars are missing, the durations are not.</p>\n",
            );
        }
        let span = timeline.span_ms.max(1);
        let pct = |ms: u64| ms as f64 * 100.0 / span as f64;
        out.push_str("<div class=\"grid\">\n<div class=\"axis\"><span></span><span></span><div class=\"track\">");
        for tick in ticks(span) {
            let _ = write!(
                out,
                "<span class=\"tick\" style=\"left:{:.3}%\">{}</span>",
                pct(tick),
                format_duration(tick)
            );
        }
        out.push_str("</div><span></span></div>\n");

        let mut order: Vec<usize> = (0..timeline.steps.len()).collect();
        order.sort_by_key(|&i| {
            let step = &timeline.steps[i];
            (step.started_ms.or(step.ended_ms).unwrap_or(u64::MAX), i)
        });
        for i in order {
            let step = &timeline.steps[i];
            let critical = timeline.is_critical(i);
            let _ = write!(
                out,
                "<div class=\"row {}{}\" id=\"row-{}\"><a class=\"name\" href=\"#step-{}\" title=\"{}\">{}</a>\
                 <span class=\"status\"><i class=\"chip\"></i>{}</span><div class=\"track\">",
                step.outcome.class(),
                if critical { " critical" } else { "" },
                escape(&step.id),
                escape(&step.id),
                escape(&step.name),
                escape(&step.key),
                step.outcome.label(),
            );
            let ready = step.ready_ms(&timeline.steps);
            if let (Some(ready), Some(start)) = (ready, step.started_ms) {
                if start > ready {
                    let _ = write!(
                        out,
                        "<span class=\"wait\" style=\"left:{:.3}%;width:{:.3}%\"></span>",
                        pct(ready),
                        pct(start - ready)
                    );
                }
            }
            let end = step.ended_ms.or(step.started_ms.map(|_| timeline.span_ms));
            match (step.started_ms, end) {
                (Some(start), Some(end)) if step.outcome != Outcome::Skipped => {
                    let _ = write!(
                        out,
                        "<span class=\"bar\" style=\"left:{:.3}%;width:{:.3}%\" title=\"{}\"></span>",
                        pct(start),
                        pct(end.saturating_sub(start)),
                        escape(&times(step)),
                    );
                }
                (_, Some(end)) if step.outcome == Outcome::Skipped => {
                    let _ = write!(
                        out,
                        "<span class=\"mark\" style=\"left:{:.3}%\" title=\"{}\"></span>",
                        pct(end),
                        escape(&times(step)),
                    );
                }
                _ => {}
            }
            let _ = writeln!(
                out,
                "</div><span class=\"took\">{}</span></div>",
                step.duration_ms.map(format_duration).unwrap_or_default()
            );
        }
        out.push_str("</div>\n");

        if let (Some(&first), Some(&last)) = (timeline.critical.first(), timeline.critical.last()) {
            let names: Vec<String> = timeline
                .critical
                .iter()
                .map(|&i| {
                    let step = &timeline.steps[i];
                    format!("<a href=\"#step-{}\">{}</a>", escape(&step.id), escape(&step.key))
                })
                .collect();
            let steps = &timeline.steps;
            let length = match (steps[first].started_ms, steps[last].ended_ms) {
                (Some(start), Some(end)) => format!(
                    " — from {} to {} ({})",
                    format_duration(start),
                    format_duration(end),
                    format_duration(end.saturating_sub(start))
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "<p class=\"path\" id=\"critical-path\">Critical path: {}{length}</p>",
                names.join(" → ")
            );
        }
        out.push_str("</section>\n");
    }

    fn steps(&self, out: &mut String) {
        out.push_str("<section id=\"steps\">\n<h2>Steps</h2>\n");
        let steps = &self.timeline.steps;
        let empty = LogTail::default();
        for (i, step) in steps.iter().enumerate() {
            let tail = self.logs.get(i).unwrap_or(&empty);
            let failed = matches!(step.outcome, Outcome::Failed | Outcome::TimedOut);
            let _ = write!(
                out,
                "<details class=\"step {}{}\" id=\"step-{}\"{}>\n<summary><i class=\"chip\"></i><span class=\"key\">{}</span>",
                step.outcome.class(),
                if self.timeline.is_critical(i) { " critical" } else { "" },
                escape(&step.id),
                if failed { " open" } else { "" },
                escape(&step.key),
            );
            if step.name != step.key {
                let _ = write!(out, " <span class=\"label\">{}</span>", escape(&step.name));
            }
            let _ = write!(out, " <span class=\"status\">{}</span>", step.outcome.label());
            if let Some(ms) = step.duration_ms {
                let _ = write!(out, " <span class=\"took\">{}</span>", format_duration(ms));
            }
            out.push_str("</summary>\n<ul class=\"facts\">");
            let _ = write!(out, "<li>{}</li>", escape(&times(step)));
            if !step.needs.is_empty() {
                let needs: Vec<String> = step
                    .needs
                    .iter()
                    .map(|&n| {
                        format!(
                            "<a href=\"#step-{}\">{}</a>",
                            escape(&steps[n].id),
                            escape(&steps[n].key)
                        )
                    })
                    .collect();
                let _ = write!(out, "<li>after {}</li>", needs.join(", "));
            }
            if let Some(code) = step.exit_code.filter(|&c| c != 0) {
                let _ = write!(out, "<li>exit code {code}</li>");
            }
            if let Some(message) = &step.message {
                let _ = write!(out, "<li>{}</li>", escape(message));
            }
            if let Some(miss) = &step.cache_miss {
                let _ = write!(out, "<li>cache miss: {}</li>", escape(miss));
            }
            out.push_str("</ul>\n");
            let whole = format!("hm logs {} {}", self.info.id, shell_word(&step.key));
            if let Some(error) = &tail.error {
                let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(error));
            } else if tail.total == 0 {
                let _ = writeln!(out, "<p class=\"note\">No output.</p>");
            } else {
                if tail.is_cut() {
                    let _ = writeln!(
                        out,
                        "<p class=\"note cut\">The log is cut: the last {} of {} are shown; the whole log: \
                         <code>{}</code></p>",
                        crate::commands::format_size(tail.bytes.len() as u64),
                        crate::commands::format_size(tail.total),
                        escape(&whole)
                    );
                }
                let _ = writeln!(out, "<pre class=\"log\">{}</pre>", log::to_html(&tail.bytes));
            }
            out.push_str("</details>\n");
        }
        out.push_str("</section>\n");
    }
}

/// When a step was queued, started and finished, in words.
fn times(step: &Step) -> String {
    let at = |ms: Option<u64>| ms.map(format_duration).unwrap_or_else(|| "—".to_owned());
    let mut text = format!("queued at {}", at(step.queued_ms));
    match step.outcome {
        Outcome::Skipped => {
            let _ = write!(text, ", skipped at {}", at(step.ended_ms));
        }
        Outcome::Unfinished if step.started_ms.is_none() => text.push_str(", never started"),
        Outcome::Unfinished => {
            let _ = write!(text, ", started at {}, did not finish", at(step.started_ms));
        }
        outcome => {
            let finished = match outcome {
                Outcome::CacheHit => "found in the cache at",
                _ => "finished at",
            };
            let _ = write!(
                text,
                ", started at {}, {finished} {}",
                at(step.started_ms),
                at(step.ended_ms)
            );
        }
    }
    text
}

/// The axis's ticks: round times, at most about eight, from 0 to `span`.
fn ticks(span: u64) -> Vec<u64> {
    let mut step = 1;
    'find: for scale in std::iter::successors(Some(1u64), |s| s.checked_mul(10)) {
        for m in [1, 2, 5] {
            step = scale * m;
            if span / step <= 8 {
                break 'find;
            }
        }
    }
    (0..=span / step).map(|i| i * step).collect()
}

/// `word` as a shell would read it back.
fn shell_word(word: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.:/@+=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_text_and_attributes() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(
            escape("</script><b x=\"1\" y='2'>&amp;"),
            "&lt;/script&gt;&lt;b x=&quot;1&quot; y=&#39;2&#39;&gt;&amp;amp;"
        );
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(ticks(1), [0, 1]);
        assert_eq!(ticks(95), [0, 20, 40, 60, 80]);
        assert_eq!(ticks(3_600), [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]);
        assert!(ticks(u64::MAX).len() <= 9);
    }

    #[test]
    fn a_step_key_is_quoted_for_the_shell_when_it_must_be() {
        assert_eq!(shell_word("build-1"), "build-1");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    fn info() -> RunInfo {
        RunInfo {
            id: "r1".into(),
            pipeline: "ci".into(),
            project: "/p".into(),
            started_ms: 0,
            status: Some("failed".into()),
            exit_code: Some(1),
            duration_ms: Some(100),
            branch: None,
            message: None,
        }
    }

    #[test]
    fn every_outcome_has_its_own_look() {
        use hm_exec::events::{Event, StepStatus};
        let mut events = Vec::new();
        let statuses = [
            StepStatus::Passed,
            StepStatus::CacheHit,
            StepStatus::Failed,
            StepStatus::TimedOut,
            StepStatus::Canceled,
        ];
        for i in 0..7 {
            events.push(Event::StepQueued {
                step_id: i.to_string(),
                key: format!("s{i}"),
                chain_idx: i,
                parent_key: None,
                display_name: format!("s{i}"),
            });
        }
        for (i, status) in statuses.into_iter().enumerate() {
            events.push(Event::StepEnd {
                step_id: i.to_string(),
                exit_code: 0,
                duration_ms: 10,
                snapshot: None,
                status,
                message: None,
                peak_memory_bytes: None,
                cpu_ms: None,
            });
        }
        events.push(Event::StepSkipped {
            step_id: "5".into(),
            key: "s5".into(),
            reason: "`s2` failed".into(),
        });
        // s6 never ended: the run was killed.
        let events: Vec<_> = (0..)
            .zip(events)
            .map(|(t, event)| crate::history::TimedEvent {
                event,
                t_ms: Some(t * 10),
            })
            .collect();
        let timeline = Timeline::new(&events, None, Some(100));
        let info = info();
        let html = Page {
            info: &info,
            timeline: &timeline,
            logs: &[],
        }
        .render();
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            let at = html.find(&format!("id=\"row-{i}\"")).unwrap();
            let row = &html[html[..at].rfind("<div").unwrap()..];
            let row = &row[..row.find('\n').unwrap()];
            assert!(
                row.starts_with(&format!("<div class=\"row {}", outcome.class())),
                "{row}"
            );
            assert!(
                row.contains(&format!("<i class=\"chip\"></i>{}</span>", outcome.label())),
                "{row}"
            );
        }
        let classes: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.class()).collect();
        assert_eq!(classes.len(), Outcome::ALL.len());
        assert!(
            html.contains("skipped at 120ms") && html.contains("never started"),
            "{html}"
        );
    }

    #[test]
    fn what_a_step_names_comes_out_inert() {
        let events = [crate::history::TimedEvent {
            event: hm_exec::events::Event::StepQueued {
                step_id: "0".into(),
                key: "</script><b>k".into(),
                chain_idx: 0,
                parent_key: None,
                display_name: "<img src=x>".into(),
            },
            t_ms: Some(0),
        }];
        let timeline = Timeline::new(&events, None, Some(1));
        let info = RunInfo {
            pipeline: "<p>".into(),
            project: "/a&b".into(),
            ..info()
        };
        let logs = [LogTail {
            bytes: b"</script><b>log".to_vec(),
            total: 15,
            error: None,
        }];
        let html = Page {
            info: &info,
            timeline: &timeline,
            logs: &logs,
        }
        .render();
        for raw in ["<b>", "<img", "<p>", "</script>"] {
            assert!(!html.contains(raw), "`{raw}` is in the page:\n{html}");
        }
        assert!(html.contains("&lt;/script&gt;&lt;b&gt;log") && html.contains("/a&amp;b"));
        assert!(!html.contains("http") && !html.contains("<script"), "nothing external");
    }
}
