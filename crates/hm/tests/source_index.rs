//! The persistent source index (issue 15) through the real binary: each
//! project's index lives in `<cache>/index/`, survives `kill -9` at any
//! moment and damage, never hides a change (a same-size rewrite with its
//! mtime put back, a deleted file, a child of a cache hit), and `hm cache
//! clean` removes it.

mod util;

use std::fs;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use util::rng::Rng;
use util::{envelope, sandbox_available, step, Fixture, Run, Step};

/// Past the index's racy margin: what was written before is trusted on
/// its stamp alone.
fn settle() {
    std::thread::sleep(hm_exec::index::RACY_MARGIN + Duration::from_millis(200));
}

fn fixture(steps: &[Step], edges: &[(&str, &str, &str)]) -> Fixture {
    Fixture::with(&envelope("ci", steps, edges, None))
}

fn run(fx: &Fixture) -> Run {
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    run
}

/// The project's index file.
fn index_file(fx: &Fixture) -> PathBuf {
    let root = fx.project().canonicalize().unwrap();
    fx.cache().join("index").join(hm_exec::index::file_name(&root))
}

/// How many entries the project's index file holds, if it is intact.
fn index_entries(fx: &Fixture) -> Option<usize> {
    let root = fx.project().canonicalize().unwrap();
    let bytes = fs::read(index_file(fx)).ok()?;
    hm_exec::index::decode(&root, &bytes).map(|entries| entries.len())
}

/// Rewrites `rel` with `text` (its size as before) and puts its mtime back
/// as it was: only the ctime (and with `replace`, the inode) tells.
fn rewrite_in_place(fx: &Fixture, rel: &str, text: &str) {
    let path = fx.project().join(rel);
    let old = fs::metadata(&path).unwrap();
    assert_eq!(old.len(), text.len() as u64, "a rewrite of `{rel}` must keep its size");
    fs::write(&path, text).unwrap();
    let file = fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(old.modified().unwrap()).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().modified().unwrap(),
        old.modified().unwrap()
    );
}

#[test]
fn the_index_is_kept_per_project_and_trusted_only_when_intact() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture(&[step("s", "cat a.txt; ls")], &[]);
    fx.write("a.txt", "one\n");
    fx.write("b.txt", "two\n");
    assert_eq!(run(&fx).logs("s"), ["one", "a.txt", "b.txt"]);
    assert_eq!(index_entries(&fx), Some(2), "no index of the two files");
    // The index, and beside it the record of the project's source layer.
    let files: Vec<_> = fs::read_dir(fx.cache().join("index")).unwrap().flatten().collect();
    let indexes = files.iter().filter(|f| f.path().extension().is_none()).count();
    assert_eq!(indexes, 1, "{files:?}");
    // Damaged in every way the format refuses: the run is right, and
    // leaves an intact index.
    let intact = fs::read(index_file(&fx)).unwrap();
    let damaged = [intact[..intact.len() / 2].to_vec(), b"garbage".repeat(100), Vec::new()];
    for (round, bytes) in damaged.into_iter().enumerate() {
        fs::write(index_file(&fx), &bytes).unwrap();
        let text = format!("v{round}v\n");
        rewrite_in_place(&fx, "a.txt", &text);
        assert_eq!(run(&fx).logs("s"), [text.trim(), "a.txt", "b.txt"]);
        assert_eq!(index_entries(&fx), Some(2), "round {round}: not rebuilt");
    }
}

/// A file rewritten at the same size within the same second, its mtime put
/// back: seen at once (its entry is racy) and when its entry is settled
/// (its ctime moved).
#[test]
fn a_same_size_rewrite_within_the_same_second_is_seen() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture(&[step("s", "cat data.txt")], &[]);
    fx.write("data.txt", "v1\n");
    assert_eq!(run(&fx).logs("s"), ["v1"]);
    rewrite_in_place(&fx, "data.txt", "v2\n");
    assert_eq!(run(&fx).logs("s"), ["v2"]);
    settle();
    // This run reads the racy entry once more and trusts it from now on.
    assert_eq!(run(&fx).logs("s"), ["v2"]);
    rewrite_in_place(&fx, "data.txt", "v3\n");
    assert_eq!(run(&fx).logs("s"), ["v3"]);
    fx.assert_clean();
}

#[test]
fn a_child_of_a_cache_hit_sees_todays_source() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step("root", "echo built > /workspace/artifact").cache(json!({"policy": "forever"})),
        step("child", "ls; cat edit.txt artifact"),
    ];
    let fx = fixture(&steps, &[("root", "child", "builds_in")]);
    fx.write("edit.txt", "v1\n");
    fx.write("gone.txt", "gone\n");
    assert_eq!(
        run(&fx).logs("child"),
        ["artifact", "edit.txt", "gone.txt", "v1", "built"]
    );
    settle();
    assert_eq!(run(&fx).status("root"), "cache_hit");
    rewrite_in_place(&fx, "edit.txt", "v2\n");
    fs::remove_file(fx.project().join("gone.txt")).unwrap();
    let second = run(&fx);
    assert_eq!(second.status("root"), "cache_hit");
    assert_eq!(second.logs("child"), ["artifact", "edit.txt", "v2", "built"]);
    fx.assert_clean();
}

#[test]
fn deleting_a_source_file_removes_it_from_the_next_runs_workspace() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step("first", "ls src"),
        step("then", "ls src; test -e src/b.txt || echo no-b"),
    ];
    let fx = fixture(&steps, &[("first", "then", "builds_in")]);
    fx.write("src/a.txt", "a\n");
    fx.write("src/b.txt", "b\n");
    assert_eq!(run(&fx).logs("first"), ["a.txt", "b.txt"]);
    settle();
    run(&fx);
    assert_eq!(index_entries(&fx), Some(2));
    fs::remove_file(fx.project().join("src/b.txt")).unwrap();
    let after = run(&fx);
    assert_eq!(after.logs("first"), ["a.txt"]);
    assert_eq!(after.logs("then"), ["a.txt", "no-b"]);
    assert_eq!(index_entries(&fx), Some(1), "the deleted file stayed in the index");
    fx.assert_clean();
}

#[test]
fn cache_clean_removes_the_indexes() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture(&[step("s", "true").cache(json!({"policy": "forever"}))], &[]);
    fx.write("a.txt", "a\n");
    run(&fx);
    assert!(index_file(&fx).exists());
    let clean = fx.hm(&["cache", "clean", "--yes"]);
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    assert!(!fx.cache().join("index").exists(), "the indexes stayed");
    // An empty cache too.
    run(&fx);
    fx.hm(&["cache", "clean", "--yes"]);
    fx.hm(&["cache", "clean", "--yes"]);
    assert!(!fx.cache().join("index").exists(), "the indexes stayed");
}

const FILES: usize = 3_000;
const PER_DIR: usize = 100;

fn file(i: usize) -> String {
    format!("src/d{:02}/f{:03}.txt", i / PER_DIR, i % PER_DIR)
}

/// Temporary index files in the index directory.
fn temps(fx: &Fixture) -> usize {
    fs::read_dir(fx.cache().join("index"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count()
        })
        .unwrap_or(0)
}

/// `kill -9` of `hm run` while it scans and writes the index of a few
/// thousand files, some of them rewritten before each run: every other
/// time as soon as a temporary index appears (mid-write), else at a random
/// moment. Afterwards the index is absent or intact, and the next run is
/// right.
#[test]
fn the_index_survives_kill_9_at_any_moment() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step("count", "ls src/* | grep -c txt; cat src/d00/f000.txt"),
        step("check", "cat src/d29/f099.txt"),
    ];
    let fx = fixture(&steps, &[("count", "check", "builds_in")]);
    for i in 0..FILES {
        fx.write(&file(i), &format!("{i:04} round 000\n"));
    }
    let started = Instant::now();
    run(&fx);
    let full = started.elapsed();
    let mut rng = Rng::new("the_index_survives_kill_9_at_any_moment");
    let mut mid_write = 0;
    let rounds = 12;
    for round in 1..=rounds {
        // Files the index knows, rewritten at their size with their mtime
        // put back: only a sound index (or none) gets them right.
        for i in [0, FILES - 1, round * 97 % FILES] {
            rewrite_in_place(&fx, &file(i), &format!("{i:04} round {round:03}\n"));
        }
        let temps_before = temps(&fx);
        let mut child = fx
            .command(&["run", "--format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if round % 2 == 0 {
            let spawned = Instant::now();
            while temps(&fx) == temps_before && spawned.elapsed() < 3 * full {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
            }
        } else {
            std::thread::sleep(rng.below(full + full / 2));
        }
        let _ = child.kill();
        let _ = child.wait();
        mid_write += usize::from(temps(&fx) > temps_before);
        let index = index_file(&fx);
        if index.exists() {
            assert!(index_entries(&fx).is_some(), "round {round}: a damaged index was left");
        }
        let after = fx.run_json(&[]);
        assert_eq!(after.code, 0, "round {round}: {}", after.dump());
        assert_eq!(
            after.logs("count"),
            [FILES.to_string(), format!("0000 round {round:03}")],
            "round {round}: {}",
            after.dump()
        );
        assert_eq!(
            after.logs("check"),
            [format!("{:04} round {round:03}", FILES - 1)],
            "round {round}"
        );
        assert_eq!(index_entries(&fx), Some(FILES), "round {round}");
    }
    eprintln!("{rounds} kills, {mid_write} of them mid-write (a temporary index left)");
    assert!(mid_write > 0, "no kill came while the index was written");
    fx.assert_clean();
}
