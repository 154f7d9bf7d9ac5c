//! What both backends' source layers share: which ones to let go.
//! A layer is named `PROJECT-DIGEST`; each project keeps its latest ones,
//! the rest go once unused for the orphan grace, and any goes once unused
//! for a week.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Layers of one project kept when nothing else needs them: the latest,
/// and the one before (a branch switched back, a change undone).
const KEEP_PER_PROJECT: usize = 2;
/// A layer unused for this long goes, whatever else it is.
const UNUSED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// Of `layers` (name, last used), those to delete.
pub(crate) fn unneeded(layers: Vec<(String, SystemTime)>, grace: Duration) -> Vec<String> {
    let mut by_project: HashMap<String, Vec<(SystemTime, String)>> = HashMap::new();
    for (name, used) in layers {
        let project = name.split('-').next().unwrap_or_default().to_owned();
        by_project.entry(project).or_default().push((used, name));
    }
    let mut doomed = Vec::new();
    for mut layers in by_project.into_values() {
        layers.sort_by(|a, b| b.cmp(a));
        for (i, (used, name)) in layers.into_iter().enumerate() {
            let unused = used.elapsed().unwrap_or_default();
            if (i >= KEEP_PER_PROJECT && unused > grace) || unused > UNUSED_FOR {
                doomed.push(name);
            }
        }
    }
    doomed
}
