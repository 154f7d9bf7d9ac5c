//! Whether the source may have changed since a scan: inotify watches on
//! every directory a scan walks, so that the next scan of the same build
//! (each step's sync scans, DESIGN.md §4) can be skipped when nothing
//! happened in the tree since the last one began.
//!
//! A directory's watch is added before the walk reads it, so every change
//! either comes before the scan looks (and the scan sees it) or raises an
//! event. Any event at all, an overflowed queue, or a directory that could
//! not be watched (the user's watch limit) means the next scan walks the
//! tree again: this only ever saves work, it never decides what changed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// The events that mean a directory's entries, a file's content or mode, or
/// the directory itself changed (not reads: scans and syncs are silent).
/// Symlinks stay links: a link to a directory is not followed out of the
/// tree. `hm run --watch` watches for the same.
pub fn watch_mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW
}

/// The watches of one source.
#[derive(Debug)]
pub(crate) struct Changes {
    inotify: Inotify,
    /// Every directory of the current scan is watched so far.
    complete: AtomicBool,
}

impl Changes {
    /// Watches nothing yet; `None` where inotify is not available.
    pub(crate) fn new() -> Option<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        Some(Changes {
            inotify,
            complete: AtomicBool::new(false),
        })
    }

    /// Whether the tree is as the last complete scan saw it: no event since
    /// that scan began. Takes the events that came.
    pub(crate) fn quiet(&self) -> bool {
        let mut quiet = self.complete.load(Ordering::Acquire);
        loop {
            match self.inotify.read_events() {
                Ok(events) if events.is_empty() => break,
                Ok(_) => quiet = false,
                Err(Errno::EINTR) => continue,
                // EAGAIN: none left.
                Err(_) => break,
            }
        }
        quiet
    }

    /// A scan begins: it must watch every directory it walks (from the
    /// root, watched now) for the next to be skipped.
    pub(crate) fn begin(&self, root: &Path) {
        self.complete.store(true, Ordering::Release);
        self.watch(root);
    }

    /// Watches `dir`, before the walk reads it.
    pub(crate) fn watch(&self, dir: &Path) {
        if self.inotify.add_watch(dir, watch_mask()).is_err() {
            self.complete.store(false, Ordering::Release);
        }
    }

    /// The scan that began could not finish: nothing it saw is to be kept.
    pub(crate) fn abandon(&self) {
        self.complete.store(false, Ordering::Release);
    }
}
