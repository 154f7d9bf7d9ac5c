//! Where `hm` keeps its state (DESIGN.md §5).

use std::path::PathBuf;

/// The cache root: `$HM_CACHE_DIR`, else `$XDG_CACHE_HOME/hm`, else
/// `~/.cache/hm`. `None` only when none of those variables is set.
pub fn hm_cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("HM_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("hm")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("hm")))
}

/// Removes what `hm`s killed on `cache_dir` left (SIGKILL gives them no
/// chance): their session directories, partial image copies and images
/// half removed. Only what no live process holds (its lock tells) goes;
/// every command that uses the cache calls this first.
pub fn collect_leftovers(cache_dir: &std::path::Path) {
    crate::session::collect_dead(&cache_dir.join(crate::session::RUNS_DIR));
    crate::images::ImageStore::new(cache_dir).collect_abandoned();
}
