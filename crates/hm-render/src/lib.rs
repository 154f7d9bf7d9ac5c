//! Turns a build's [`Event`]s into output. A renderer is a fold over the
//! stream: it never sees anything but events.
//!
//! [`JsonRenderer`] prints NDJSON (the format is documented in
//! [`hm_events`]); [`LogsRenderer`] prints one prefixed line per log
//! line, a line when a step starts and ends, and a summary with the tail of
//! every failed step's log; [`LiveRenderer`] is the view on a terminal:
//! finished steps once, live lines for the running ones below them.

mod board;
mod json;
pub mod line;
mod live;
mod logs;
mod style;
#[cfg(test)]
mod testing;

use hm_events::Event;

pub use board::{format_duration, step_name};
pub use json::JsonRenderer;
pub use live::{Clock, LiveRenderer};
pub use logs::LogsRenderer;
pub use style::Style;

/// Something that shows a build.
pub trait Renderer {
    /// Shows one event; events arrive in build order. Output may be
    /// buffered until [`Renderer::flush`].
    fn event(&mut self, event: &Event) -> std::io::Result<()>;

    /// Writes out everything shown so far (called whenever no further
    /// event is waiting, so output is never late).
    fn flush(&mut self) -> std::io::Result<()>;

    /// Called a few times a second while the build runs, so that what
    /// shows time passing can show it between events.
    fn tick(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    /// Shows a message of `hm`'s own (an interrupt being handled) if this
    /// view shows such messages; `false` when the caller should print it
    /// (on stderr) itself.
    fn note(&mut self, _text: &str) -> std::io::Result<bool> {
        Ok(false)
    }

    /// Takes whatever is being redrawn off the screen, before something
    /// else uses the terminal (an interactive shell); the next event or
    /// tick draws it again.
    fn pause(&mut self) -> std::io::Result<()> {
        self.flush()
    }
}

/// What a `cache_remote_error` event says to a person, as one warning
/// line; `None` for any other event.
pub fn remote_warning(event: &Event) -> Option<String> {
    let Event::CacheRemoteError {
        op,
        key,
        message,
        refused,
    } = event
    else {
        return None;
    };
    let short = &key[..key.len().min(12)];
    Some(match (*refused, op.as_str()) {
        (true, "pull") => format!("warning: the remote cache's entry {short} was refused ({message}); the step runs"),
        (true, _) => format!("warning: the remote cache's entry {short} was refused ({message})"),
        (false, "push") => {
            format!("warning: the remote cache failed ({message}); entries stay local, and this run goes on without it")
        }
        (false, _) => format!("warning: the remote cache failed ({message}); this run goes on without it"),
    })
}
