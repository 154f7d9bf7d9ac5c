//! Evaluating pipeline code: `hm render` of a 500-step pipeline, whole
//! process, written in TypeScript (the embedded engine) and in Python (the
//! system interpreter), beside Python's own start-up, 1-step pipelines
//! (the fixed costs) and the same 500 steps read from JSON. The TypeScript
//! and Python files must render the same IR. Prints a Markdown table.
//!
//! `hm` runs the interpreter named by `HM_PYTHON`; the benchmark sets it to
//! the real executable behind `python3` (a version manager's shim, such as
//! pyenv's, costs a shell script per run) and times the shim once too.
//!
//! `cargo bench -p hm --bench render`; `HM_BENCH_RUNS` (default 20) and
//! `HM_BENCH_STEPS` (default 500).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{env_usize, median, ms, time};

/// A pipeline of `steps` steps as users write them: chains of ten off a
/// shared base, labelled, some cached, with env, and a report step that
/// waits for all of them.
fn python_pipeline(steps: usize) -> String {
    format!(
        r#"from datetime import timedelta

import harmont as hm

@hm.target()
def base() -> hm.Step:
    return hm.sh("apt-get update", label="base", image="host", cache=hm.ttl(timedelta(days=1)))

@hm.pipeline("big", env={{"CI": "1"}})
def big(base: hm.Target[hm.Step]):
    tails = []
    chains, rest = divmod({steps} - 2, 10)
    for c in range(chains + (1 if rest else 0)):
        step = base
        for s in range(10 if c < chains else rest):
            cache = hm.on_change(f"src/{{c}}/**") if s == 0 else None
            step = step.sh(f"make -C src/{{c}} part{{s}}", label=f"chain {{c}} step {{s}}", cache=cache, env={{"PART": str(s)}})
        tails.append(step)
    return [tails, hm.wait(), base.sh("make report", label="report")]
"#
    )
}

/// The same pipeline in TypeScript.
fn typescript_pipeline(steps: usize) -> String {
    format!(
        r#"import {{ onChange, pipeline, sh, target, ttl, wait, type Step }} from "@harmont/hm";

const base = target("base", () => sh("apt-get update", {{ label: "base", image: "host", cache: ttl(86400) }}));

const tails: Step[] = [];
const chains = Math.floor(({steps} - 2) / 10);
const rest = ({steps} - 2) % 10;
for (let c = 0; c < chains + (rest ? 1 : 0); c++) {{
  let step = base();
  for (let s = 0; s < (c < chains ? 10 : rest); s++) {{
    const cache = s === 0 ? onChange(`src/${{c}}/**`) : undefined;
    step = step.sh(`make -C src/${{c}} part${{s}}`, {{ label: `chain ${{c}} step ${{s}}`, cache, env: {{ PART: String(s) }} }});
  }}
  tails.push(step);
}}

export default {{
  slug: "big",
  pipeline: pipeline([...tails, wait(), base().sh("make report", {{ label: "report" }})], {{ env: {{ CI: "1" }} }}),
}};
"#
    )
}

fn write_project(dir: &Path, file: &str, text: &str) {
    std::fs::create_dir_all(dir.join(".hm")).unwrap();
    std::fs::write(dir.join(".hm").join(file), text).unwrap();
}

fn hm_render(project: &Path, cache: &Path, slug: &str, python: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hm"));
    command
        .args(["render", slug])
        .current_dir(project)
        .env("HM_CACHE_DIR", cache)
        .env("HM_PYTHON", python);
    command
}

fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 20).max(1);
    let steps = env_usize("HM_BENCH_STEPS", 500).max(2);
    let root = tempfile::Builder::new().prefix("hm-bench-render-").tempdir().unwrap();
    let cache = root.path().join("cache");
    let (big, small, json) = (
        root.path().join("big"),
        root.path().join("small"),
        root.path().join("json"),
    );
    let (big_ts, small_ts) = (root.path().join("big-ts"), root.path().join("small-ts"));
    write_project(&big, "pipeline.py", &python_pipeline(steps));
    write_project(&big_ts, "pipeline.ts", &typescript_pipeline(steps));
    write_project(
        &small_ts,
        "pipeline.ts",
        "import { pipeline, sh } from \"@harmont/hm\";\nexport default { slug: \"small\", pipeline: pipeline([sh(\"true\")]) };\n",
    );
    write_project(
        &small,
        "pipeline.py",
        "import harmont as hm\n\n@hm.pipeline()\ndef small():\n    return hm.sh('true')\n",
    );
    // The same pipeline as JSON, as `hm pipelines` prints it.
    let envelope = Command::new(env!("CARGO_BIN_EXE_hm"))
        .arg("pipelines")
        .current_dir(&big)
        .env("HM_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(envelope.status.success(), "hm pipelines failed");
    write_project(&json, "pipeline.json", &String::from_utf8(envelope.stdout).unwrap());
    let rendered = |dir: &Path| {
        let out = hm_render(dir, &cache, "big", "python3").output().unwrap();
        assert!(out.status.success(), "hm render failed in {}", dir.display());
        out.stdout
    };
    assert!(
        rendered(&big) == rendered(&big_ts),
        "the Python and TypeScript pipelines differ"
    );

    let sample = |make: &dyn Fn() -> Command| {
        time(make()); // warm: page cache, the SDK unpacked, bytecode written
        median((0..runs).map(|_| time(make())).collect())
    };
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
    let interpreter = sample(&|| {
        let mut c = Command::new(&python);
        c.args(["-I", "-S", "-c", "pass"]);
        c
    });
    let small_t = sample(&|| hm_render(&small, &cache, "small", &python));
    let big_t = sample(&|| hm_render(&big, &cache, "big", &python));
    let shim_t = sample(&|| hm_render(&big, &cache, "big", "python3"));
    let json_t = sample(&|| hm_render(&json, &cache, "big", &python));
    let ts_small = sample(&|| hm_render(&small_ts, &cache, "small", &python));
    let ts_big = sample(&|| hm_render(&big_ts, &cache, "big", &python));
    let share = |d: Duration| format!("{:.0}%", 100.0 * d.as_secs_f64() / big_t.as_secs_f64());

    println!("\nrendering a {steps}-step pipeline, whole process (median of {runs} runs, {python})\n");
    let rows = [
        (format!("`hm render` of the {steps}-step TypeScript pipeline"), ts_big),
        (
            "`hm render` of a 1-step TypeScript pipeline (fixed cost)".to_owned(),
            ts_small,
        ),
        ("`python3 -I -S -c pass` (interpreter start-up)".to_owned(), interpreter),
        (
            "`hm render` of a 1-step Python pipeline (start-up, SDK import, hm)".to_owned(),
            small_t,
        ),
        (format!("`hm render` of the {steps}-step Python pipeline"), big_t),
        ("the same, with `python3` looked up on `PATH`".to_owned(), shim_t),
        (
            format!("`hm render` of the same {steps} steps from JSON (no Python)"),
            json_t,
        ),
    ];
    println!("| measurement | wall time | share of the {steps}-step Python render |");
    println!("|---|---:|---:|");
    for (what, time) in rows {
        println!("| {what} | {} | {} |", ms(time), share(time));
    }
    println!(
        "\nTypeScript is {:.1}x faster than Python ({:.1}x with `python3` looked up on `PATH`).",
        big_t.as_secs_f64() / ts_big.as_secs_f64(),
        shim_t.as_secs_f64() / ts_big.as_secs_f64()
    );
}
