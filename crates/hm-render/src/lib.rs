//! Turns a build's [`Event`]s into output. A renderer is a fold over the
//! stream: it never sees anything but events.
//!
//! [`JsonRenderer`] prints NDJSON (the format is documented in
//! [`hm_events`]); [`LogsRenderer`] prints one prefixed line per log
//! line, a line when a step starts and ends, and a summary with the tail of
//! every failed step's log.

mod json;
mod line;
mod logs;
mod style;

use hm_events::Event;

pub use json::JsonRenderer;
pub use logs::{format_duration, LogsRenderer};
pub use style::Style;

/// Something that shows a build.
pub trait Renderer {
    /// Shows one event; events arrive in build order. Output may be
    /// buffered until [`Renderer::flush`].
    fn event(&mut self, event: &Event) -> std::io::Result<()>;

    /// Writes out everything shown so far (called whenever no further
    /// event is waiting, so output is never late).
    fn flush(&mut self) -> std::io::Result<()>;
}
