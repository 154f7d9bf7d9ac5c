//! `hm run --watch`: waits until the project changes as a run would see it.
//!
//! A [`Watcher`] holds an inotify watch on every directory of the project's
//! source and of `.hm/` (the pipeline files and `config.toml`), taken from
//! a scan that applies the workspace's own ignore rules
//! ([`hm_exec::workspace::Source`]): ignored directories are not watched at
//! all. Events only wake it up; what changed is decided by scanning again
//! once a burst of events is over ([`Debounce`]) and comparing the source
//! with the [`Snapshot`] the last run started from. So a file that the
//! workspace ignores (`.gitignore`d, `.git/`, the cache directory) never
//! causes a run, and a save that leaves a file's content as it was
//! (`touch`) does not either.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hm_exec::workspace::{EntryKind, Manifest, Source, SourceError};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// A burst of events is over once this passes without another one.
pub const QUIET: Duration = Duration::from_millis(200);
/// ... or at the latest this long after its first event, so that a file
/// written without pause (an ignored log) cannot hold a change back.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// The pipeline's directory, at the project root.
const PIPELINE_DIR: &str = ".hm";

/// Why watching for changes failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "cannot watch for file changes: too many inotify instances (raise the `fs.inotify.max_user_instances` sysctl)"
    )]
    Instances(#[source] std::io::Error),
    #[error("cannot watch for file changes (inotify)")]
    Init(#[source] std::io::Error),
    #[error(
        "cannot watch `{}`: the inotify watch limit is reached (raise the `fs.inotify.max_user_watches` sysctl)",
        hm_vm::os_path::escaped(dir)
    )]
    Limit { dir: PathBuf },
    #[error("cannot watch `{}`", hm_vm::os_path::escaped(dir))]
    Watch {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read file change events")]
    Read(#[source] std::io::Error),
    #[error(transparent)]
    Scan(#[from] SourceError),
}

/// The source and the pipeline's files at one instant, as a run sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The workspace source (relative to the project root).
    source: Manifest,
    /// Everything under `.hm/` (relative to it).
    pipeline: Manifest,
}

impl Snapshot {
    /// The paths (relative to the project root) that differ from `before`:
    /// added, removed, or with other content or mode. A directory is named
    /// only when nothing under it is.
    pub fn changes_since(&self, before: &Snapshot) -> Vec<PathBuf> {
        let mut paths = changed(&before.source, &self.source);
        let pipeline = changed(&before.pipeline, &self.pipeline);
        paths.extend(pipeline.into_iter().map(|p| Path::new(PIPELINE_DIR).join(p)));
        paths
    }

    /// The directories to watch, absolute.
    fn dirs(&self, root: &Path) -> BTreeSet<PathBuf> {
        let dirs = |m: &Manifest, base: PathBuf| -> Vec<PathBuf> {
            let inner = m.entries.iter().filter(|(_, e)| e.kind == EntryKind::Dir);
            let inner: Vec<PathBuf> = inner.map(|(p, _)| base.join(p)).collect();
            std::iter::once(base).chain(inner).collect()
        };
        let mut all: BTreeSet<PathBuf> = dirs(&self.source, root.to_owned()).into_iter().collect();
        if root.join(PIPELINE_DIR).is_dir() {
            all.extend(dirs(&self.pipeline, root.join(PIPELINE_DIR)));
        }
        all
    }
}

/// The entries of `after` that differ from `before`, in path order, with
/// directories left out when something under them is named.
fn changed(before: &Manifest, after: &Manifest) -> Vec<PathBuf> {
    let mut paths: BTreeSet<&Path> = before
        .entries
        .iter()
        .filter(|(path, entry)| after.entries.get(*path) != Some(*entry))
        .map(|(path, _)| path.as_path())
        .collect();
    paths.extend(
        after
            .entries
            .keys()
            .filter(|path| !before.entries.contains_key(*path))
            .map(PathBuf::as_path),
    );
    // In path order a directory's entries follow it directly.
    let paths: Vec<&Path> = paths.into_iter().collect();
    let mut kept = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        if !paths.get(i + 1).is_some_and(|next| next.starts_with(path)) {
            kept.push(path.to_path_buf());
        }
    }
    kept
}

/// The changed paths for a message: the first few, and how many more.
pub fn describe(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 5;
    let mut text = paths
        .iter()
        .take(SHOWN)
        .map(|p| hm_vm::os_path::escaped(p))
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    text
}

/// When a burst of events is over: [`QUIET`] after its last event, or
/// [`MAX_WAIT`] after its first, whichever comes first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Debounce {
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debounce {
    /// Notes an event at `at`.
    pub fn event(&mut self, at: Instant) {
        self.first.get_or_insert(at);
        self.last = Some(at);
    }

    /// When to look at the source; `None` before the first event.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + QUIET).min(first + MAX_WAIT))
    }
}

/// The inotify descriptor, for tokio's reactor.
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Watches a project for changes a run would see (see the module's
/// documentation).
pub struct Watcher {
    root: PathBuf,
    source: Arc<Source>,
    pipeline: Arc<Source>,
    inotify: AsyncFd<Fd>,
    /// Every watched directory and its watch (a directory moved inside the
    /// tree keeps its watch: two paths may share one for a while).
    watched: HashMap<PathBuf, WatchDescriptor>,
    /// Scans so far (the tests check that waiting does not spin).
    scans: u64,
}

impl Watcher {
    /// A watcher of the project at `root` (canonical), leaving out
    /// `exclude` (absolute directories, as the run's source does) and
    /// sharing the runs' source index file `index`. Must be called within
    /// a tokio runtime.
    pub fn new(root: PathBuf, exclude: Vec<PathBuf>, index: Option<PathBuf>) -> Result<Self, WatchError> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(|e| match e {
            Errno::EMFILE => WatchError::Instances(e.into()),
            e => WatchError::Init(e.into()),
        })?;
        // SAFETY: `Fd` owns the descriptor, which stays open, the same
        // one, for as long as the `AsyncFd` holds it.
        let inotify = unsafe { AsyncFd::register_with_interest(Fd(inotify), tokio::io::Interest::READABLE) }
            .map_err(|e| WatchError::Init(e.into_parts().1))?;
        Ok(Watcher {
            source: Arc::new(Source::new(root.clone()).excluding(exclude.clone()).with_index(index)),
            pipeline: Arc::new(Source::new(root.join(PIPELINE_DIR)).excluding(exclude)),
            root,
            inotify,
            watched: HashMap::new(),
            scans: 0,
        })
    }

    /// The project as it is now; every directory of it is watched from
    /// before the scan that this returns.
    pub async fn snapshot(&mut self) -> Result<Snapshot, WatchError> {
        // A directory made between a scan and its watch may have been
        // filled unseen: scan again until no new watch was needed.
        let mut snapshot = self.scan().await?;
        for _ in 0..4 {
            if !self.watch(&snapshot.dirs(&self.root))? {
                break;
            }
            snapshot = self.scan().await?;
        }
        Ok(snapshot)
    }

    /// Waits until the project differs from `since` (at once if it already
    /// does: a change made during the run counts); returns the project as
    /// it is then and the paths that changed.
    pub async fn changed(&mut self, since: &Snapshot) -> Result<(Snapshot, Vec<PathBuf>), WatchError> {
        // Changes made during the run: wait for their burst to end.
        self.settle_pending().await?;
        loop {
            let now = self.snapshot().await?;
            // Written to while it was scanned (a save under way): what the
            // scan saw may be half of it. Scan again once that is over.
            if self.settle_pending().await? {
                continue;
            }
            let paths = now.changes_since(since);
            if !paths.is_empty() {
                return Ok((now, paths));
            }
            self.burst().await?;
        }
    }

    /// Scans the source and `.hm/` (off the async threads). A file that
    /// vanishes while it is read (an editor's temporary file) is read
    /// again after a moment.
    async fn scan(&mut self) -> Result<Snapshot, WatchError> {
        self.scans += 1;
        let (source, pipeline) = (self.source.clone(), self.pipeline.clone());
        let scanning = tokio::task::spawn_blocking(move || -> Result<Snapshot, SourceError> {
            let mut attempt = 0;
            loop {
                let scanned = source.scan().and_then(|source| {
                    let pipeline = match pipeline.root().is_dir() {
                        true => pipeline.scan()?,
                        false => Manifest::default(),
                    };
                    Ok(Snapshot { source, pipeline })
                });
                match scanned {
                    Err(_) if attempt < 3 => {
                        attempt += 1;
                        std::thread::sleep(QUIET / 4);
                    }
                    scanned => return scanned,
                }
            }
        });
        let scanned = scanning
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        Ok(scanned?)
    }

    /// Watches exactly `dirs`; whether any watch is new.
    fn watch(&mut self, dirs: &BTreeSet<PathBuf>) -> Result<bool, WatchError> {
        let inotify = &self.inotify.get_ref().0;
        let mut next = HashMap::with_capacity(dirs.len());
        let mut added = false;
        for dir in dirs {
            // Adding a watch again is cheap and says whether the path is
            // still the directory it was (a new one gets a new watch).
            match inotify.add_watch(dir.as_path(), hm_exec::watch_mask()) {
                Ok(wd) => {
                    added |= self.watched.get(dir) != Some(&wd);
                    next.insert(dir.clone(), wd);
                }
                // Gone, or no directory any more: the next scan sees it.
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(Errno::ENOSPC) => return Err(WatchError::Limit { dir: dir.clone() }),
                Err(e) => {
                    return Err(WatchError::Watch {
                        dir: dir.clone(),
                        source: e.into(),
                    })
                }
            }
        }
        let kept: std::collections::HashSet<WatchDescriptor> = next.values().copied().collect();
        for wd in self.watched.values().filter(|wd| !kept.contains(wd)) {
            // Already gone with its directory, or removed by an earlier path.
            let _ = inotify.rm_watch(*wd);
        }
        self.watched = next;
        Ok(added)
    }

    /// Waits for a burst of events and for its end.
    async fn burst(&mut self) -> Result<(), WatchError> {
        let mut debounce = Debounce::default();
        while debounce.deadline().is_none() {
            let events = self.next_events().await?;
            if self.note(&events) {
                debounce.event(Instant::now());
            }
        }
        self.settle(debounce).await
    }

    /// Waits until the burst `debounce` has seen is over.
    async fn settle(&mut self, mut debounce: Debounce) -> Result<(), WatchError> {
        while let Some(deadline) = debounce.deadline() {
            match tokio::time::timeout_at(deadline, self.next_events()).await {
                Err(_elapsed) => return Ok(()),
                Ok(events) => {
                    if self.note(&events?) {
                        debounce.event(Instant::now());
                    }
                }
            }
        }
        Ok(())
    }

    /// If changes are queued, waits until their burst is over; whether
    /// there were any.
    async fn settle_pending(&mut self) -> Result<bool, WatchError> {
        if !self.take_pending()? {
            return Ok(false);
        }
        let mut debounce = Debounce::default();
        debounce.event(Instant::now());
        self.settle(debounce).await?;
        Ok(true)
    }

    /// Reads what is queued without waiting; whether it held a change.
    fn take_pending(&mut self) -> Result<bool, WatchError> {
        let mut any = false;
        loop {
            match self.inotify.get_ref().0.read_events() {
                Ok(events) => any |= self.note(&events),
                Err(Errno::EAGAIN) => return Ok(any),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(WatchError::Read(e.into())),
            }
        }
    }

    /// The next events, as soon as there are some.
    async fn next_events(&self) -> Result<Vec<InotifyEvent>, WatchError> {
        loop {
            let mut ready = self.inotify.readable().await.map_err(WatchError::Read)?;
            let read = ready.try_io(|fd| match fd.get_ref().0.read_events() {
                Ok(events) => Ok(events),
                Err(Errno::EINTR) => Ok(Vec::new()),
                Err(e) => Err(e.into()),
            });
            match read {
                Ok(Ok(events)) if !events.is_empty() => return Ok(events),
                Ok(Ok(_)) | Err(_) => continue,
                Ok(Err(e)) => return Err(WatchError::Read(e)),
            }
        }
    }

    /// Keeps the watch table in step with `events`; whether any of them is
    /// a change (a watch that went away with its directory is not; the
    /// removal itself was reported in its parent).
    fn note(&mut self, events: &[InotifyEvent]) -> bool {
        let mut change = false;
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                self.watched.retain(|_, wd| *wd != event.wd);
            } else {
                // Everything else, a queue that overflowed included, means
                // "look again".
                change = true;
            }
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn at(ms: u64, start: Instant) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_burst_ends_when_quiet_or_at_the_latest_after_max_wait() {
        let start = Instant::now();
        let mut debounce = Debounce::default();
        assert_eq!(debounce.deadline(), None, "nothing happened yet");
        debounce.event(start);
        assert_eq!(debounce.deadline(), Some(at(200, start)));
        debounce.event(at(150, start));
        assert_eq!(
            debounce.deadline(),
            Some(at(350, start)),
            "each event restarts the quiet time"
        );
        // Events without pause: the burst still ends MAX_WAIT after it began.
        for ms in (300..5000).step_by(100) {
            debounce.event(at(ms, start));
        }
        assert_eq!(debounce.deadline(), Some(at(2000, start)));
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("src")).unwrap();
        fs::create_dir_all(root.join("target/debug")).unwrap();
        fs::create_dir_all(root.join(".hm")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join(".gitignore"), "target/\n*.log\n*.swp\n").unwrap();
        fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        fs::write(root.join(".hm/pipeline.json"), "{}").unwrap();
        dir
    }

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn changes_name_files_and_only_directories_with_nothing_named_under_them() {
        let dir = tree();
        let root = dir.path();
        let scan = |root: &Path| Snapshot {
            source: Source::new(root.to_owned()).scan().unwrap(),
            pipeline: Source::new(root.join(".hm")).scan().unwrap(),
        };
        let before = scan(root);
        assert!(scan(root).changes_since(&before).is_empty());
        fs::create_dir_all(root.join("src/new/deeper")).unwrap();
        fs::write(root.join("src/new/deeper/f"), "x").unwrap();
        fs::create_dir(root.join("empty")).unwrap();
        fs::write(root.join("src/main.rs"), "fn main() { edited() }").unwrap();
        fs::write(root.join("build.log"), "ignored").unwrap();
        fs::write(root.join(".hm/config.toml"), "").unwrap();
        let after = scan(root);
        assert_eq!(
            after.changes_since(&before),
            paths(&["empty", "src/main.rs", "src/new/deeper/f", ".hm/config.toml"])
        );
        fs::remove_dir_all(root.join("src")).unwrap();
        assert_eq!(
            scan(root).changes_since(&after),
            paths(&["src/main.rs", "src/new/deeper/f"])
        );
        let many: Vec<PathBuf> = (0..7).map(|i| PathBuf::from(format!("f{i}"))).collect();
        assert_eq!(describe(&many), "f0, f1, f2, f3, f4 and 2 more");
        assert_eq!(describe(&many[..1]), "f0");
    }

    /// What the watcher reports within `wait`, if anything.
    async fn change_within(watcher: &mut Watcher, since: &Snapshot, wait: Duration) -> Option<Vec<PathBuf>> {
        tokio::time::timeout(wait, watcher.changed(since))
            .await
            .ok()
            .map(|changed| changed.unwrap().1)
    }

    #[tokio::test]
    async fn ignored_files_wake_nothing_and_edits_are_seen_in_new_directories_too() {
        let dir = tree();
        let root = dir.path().canonicalize().unwrap();
        let mut watcher = Watcher::new(root.clone(), vec![root.join("cache")], None).unwrap();
        let start = watcher.snapshot().await.unwrap();
        // The ignored, `.git/`, the excluded, and a touch that changes no
        // content.
        fs::create_dir_all(root.join("cache")).unwrap();
        fs::write(root.join("cache/entry"), "x").unwrap();
        fs::write(root.join("build.log"), "x").unwrap();
        fs::write(root.join(".main.rs.swp"), "x").unwrap();
        fs::write(root.join("target/debug/out"), "x").unwrap();
        fs::write(root.join(".git/index"), "x").unwrap();
        fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        let quiet = Duration::from_millis(2500);
        let scans = watcher.scans;
        assert_eq!(change_within(&mut watcher, &start, quiet).await, None);
        // A scan or two for the burst (its events were read at once, or
        // after the first scan), not one after another: scanning reads
        // files, and reading is no event.
        assert!(watcher.scans - scans <= 6, "{} scans", watcher.scans - scans);

        // A change made before waiting starts (during a run) is reported
        // at once.
        fs::write(root.join("src/main.rs"), "fn main() { 1 }").unwrap();
        let long = Duration::from_secs(20);
        let seen = change_within(&mut watcher, &start, long).await;
        assert_eq!(seen, Some(paths(&["src/main.rs"])));
        let now = watcher.snapshot().await.unwrap();

        // A directory made while waiting is watched, and what is then
        // written in it seen; a burst of writes is one change.
        let waiting = tokio::spawn(async move {
            let seen = change_within(&mut watcher, &now, long).await;
            (watcher, seen)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        fs::create_dir_all(root.join("src/module")).unwrap();
        for i in 0..5 {
            fs::write(root.join("src/module/lib.rs"), format!("{i}")).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (mut watcher, seen) = waiting.await.unwrap();
        assert_eq!(seen, Some(paths(&["src/module/lib.rs"])));
        let now = watcher.snapshot().await.unwrap();
        fs::write(root.join("src/module/lib.rs"), "edited").unwrap();
        assert_eq!(
            change_within(&mut watcher, &now, long).await,
            Some(paths(&["src/module/lib.rs"]))
        );

        // The pipeline's files count, though they are not source.
        let now = watcher.snapshot().await.unwrap();
        fs::write(root.join(".hm/pipeline.json"), "{\"edited\": 1}").unwrap();
        assert_eq!(
            change_within(&mut watcher, &now, long).await,
            Some(paths(&[".hm/pipeline.json"]))
        );
    }
}
