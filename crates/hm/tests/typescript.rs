//! Pipelines written in TypeScript, as Harmont users write them, evaluated
//! by the engine embedded in `hm` (no Node.js) and run in the sandbox.

mod util;

use util::{sandbox_available, Fixture};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A project with `.hm/pipeline.ts` and a helper module it imports.
fn typescript(pipeline: &str) -> Fixture {
    let fx = Fixture::new();
    fx.write(".hm/pipeline.ts", pipeline);
    fx
}

const PIPELINE: &str = r#"
import { forever, onChange, pipeline, scratch, sh, target, timeout, wait, type Step } from "@harmont/hm";
import { marker } from "./shared.ts";

const toolchain = target("toolchain", (): Step =>
  scratch({ image: "host" }).sh(`mkdir -p /opt/tool && echo ${marker} > /opt/tool/version`, {
    label: "install tool",
    cache: forever(),
  }),
);

const deps = target("deps", () =>
  toolchain().sh("cat lock > /opt/tool/deps", { label: "deps", cache: onChange("lock") }),
);

const fork = deps().fork();
const left = fork.sh("echo left > side && cat /opt/tool/version /opt/tool/deps", { label: "left" });
const right = fork.sh("test ! -e side && echo right sees no side", { label: "right" });

export const pipelines = [
  {
    slug: "ci",
    pipeline: pipeline([left, right, wait(), left.sh('echo "after $STAGE"', { label: "after", env: { STAGE: "ci" } })]),
  },
  {
    slug: "slow",
    pipeline: pipeline([timeout("1s", sh("sleep 30", { label: "slow", image: "host" }))]),
  },
  {
    slug: "lenient",
    pipeline: pipeline([
      sh("exit 3", { label: "broken", image: "host" }),
      wait({ continueOnFailure: true }),
      sh("echo cleanup", { label: "cleanup", image: "host" }),
    ]),
  },
];
"#;

#[test]
fn targets_forks_waits_timeouts_and_the_cache() {
    if !sandbox_available() {
        return;
    }
    let fx = typescript(PIPELINE);
    fx.write(".hm/shared.ts", "export const marker: string = \"v1\";\n");
    fx.write("lock", "1\n");
    let run = fx.run_json(&["ci"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.executed(), ["after", "deps", "install-tool", "left", "right"]);
    assert_eq!(run.logs("left"), ["v1", "1"]);
    assert_eq!(run.logs("right"), ["right sees no side"]);
    assert_eq!(run.logs("after"), ["after ci"]);
    let start = run.position("step_start", "after");
    assert!(run.position("step_end", "right") < start, "the wait: {}", run.dump());

    // The second run hits the cache for the cached steps.
    let again = fx.run_json(&["ci"]);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert_eq!(again.status("install-tool"), "cache_hit");
    assert_eq!(again.status("deps"), "cache_hit");
    assert_eq!(again.executed(), ["after", "left", "right"]);
    // A changed lock file re-runs `deps` and what builds on it.
    fx.write("lock", "2\n");
    let changed = fx.run_json(&["ci"]);
    assert_eq!(changed.status("install-tool"), "cache_hit");
    assert_eq!(changed.logs("left"), ["v1", "2"]);

    let slow = fx.run_json(&["slow"]);
    assert_eq!(slow.code, 1, "{}", slow.dump());
    assert_eq!(slow.end("slow")["exit_code"], 124);
    let lenient = fx.run_json(&["lenient"]);
    assert_eq!(lenient.status("broken"), "failed");
    assert_eq!(lenient.status("cleanup"), "passed", "{}", lenient.dump());
    fx.assert_clean();
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let fx = typescript(
        "import { pipeline, sh } from \"@harmont/hm\";\n\nconst broken = ;\nexport default { slug: \"ci\", pipeline: pipeline([sh(\"x\")]) };\n",
    );
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: .hm/pipeline.ts:3:16: "), "{err}");
}

#[test]
fn a_thrown_error_shows_the_users_frames_in_the_typescript_source() {
    let fx = typescript(
        "import { pipeline, sh } from \"@harmont/hm\";\n\ninterface Options {\n  name: string;\n}\n\n\
         function check(options: Options): string {\n  throw new Error(`bad ${options.name}`);\n}\n\n\
         export default { slug: \"ci\", pipeline: pipeline([sh(check({ name: \"x\" }))]) };\n",
    );
    let err = stderr(&fx.hm(&["pipelines"]));
    assert!(
        err.starts_with("error: .hm/pipeline.ts:8:26: the pipeline file raised an error\nError: bad x\n"),
        "{err}"
    );
    assert!(err.contains("at check (.hm/pipeline.ts:8:"), "{err}");
    assert!(err.contains("at .hm/pipeline.ts:11:"), "{err}");
    assert!(!err.contains("@harmont/hm/src"), "SDK frames shown: {err}");

    // A mistake the SDK reports points at the user's line.
    fx.write(
        ".hm/pipeline.ts",
        "import { pipeline, sh } from \"@harmont/hm\";\n\n\
         export default { slug: \"ci\", pipeline: pipeline([sh(\"make\", { cwd: \"\" })]) };\n",
    );
    let out = fx.hm(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: .hm/pipeline.ts:3:"), "{err}");
    assert!(err.contains("Error: hm: cwd must be a non-empty path"), "{err}");
}

/// Every mistake a pipeline file can make is shown at its place, as
/// `path:line:col`, and says what it was; exit 2.
#[test]
fn mistakes_are_named_at_their_place() {
    let fx = typescript("");
    let cases: [(&str, &str); 5] = [
        (
            // Harmont's presets are functions: `go.project` is not one.
            "import { pipeline } from \"@harmont/hm\";\nimport { go } from \"@harmont/hm/toolchains\";\n\n\
             const project = (go as any).project({ path: \".\" });\n\
             export default { slug: \"ci\", pipeline: pipeline([project.build()]) };\n",
            ".hm/pipeline.ts:4:29: the pipeline file raised an error\nTypeError: `(go as any).project` is not a function",
        ),
        (
            "import { pipeline, sh } from \"@harmont/hm\";\nconst steps: any = {};\n\
             export default { slug: \"ci\", pipeline: pipeline([steps.build.sh(\"x\")]) };\n",
            ".hm/pipeline.ts:3:",
        ),
        (
            "import { pipeline, sh } from \"@harmont/hm\";\n\
             export default { slug: \"ci\", pipeline: pipeline([sh(\"x\", { lable: \"y\" } as any)]) };\n",
            "TypeError: sh: unknown option `lable` (options: label, cache, env, image, runner, runnerArgs, key, cwd, volumes)",
        ),
        (
            "import { pipeline } from \"@harmont/hm\";\nimport { rust } from \"@harmont/hm/toolchains\";\n\
             const project = rust.project();\n\
             export default { slug: \"ci\", pipeline: pipeline([project as any]) };\n",
            "TypeError: pipeline: leaf 0 must be a step, not a RustProject\n  → pass its actions, e.g. project.ci() or project.test()",
        ),
        (
            "import { sh } from \"@harmont/hm\";\n\nexport default { slug: \"ci\", pipeline: [sh(\"x\")] };\n",
            ".hm/pipeline.ts:3:1: the pipeline file raised an error\nTypeError: pipeline \"ci\": `pipeline` must be what pipeline([...]) returns, not an array; wrap the steps",
        ),
    ];
    for (source, expected) in cases {
        fx.write(".hm/pipeline.ts", source);
        let out = fx.hm(&["pipelines"]);
        assert_eq!(out.status.code(), Some(2), "{source}");
        let err = stderr(&out);
        assert!(err.starts_with("error: .hm/pipeline.ts:"), "{source}: {err}");
        assert!(err.contains(expected), "{source}: {err}");
    }
    // A field Harmont's runner does not know is ignored, as there, aloud.
    fx.write(
        ".hm/pipeline.ts",
        "import { pipeline, sh } from \"@harmont/hm\";\n\n\
         export const pipelines = [{ slug: \"ci\", trigger: [], pipeline: pipeline([sh(\"x\")]) }];\n",
    );
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("warning: .hm/pipeline.ts: pipeline \"ci\" has a field `trigger` that is not a definition field"),
        "{}",
        stderr(&out)
    );
    // Reading a property of nothing names what was nothing.
    fx.write(
        ".hm/pipeline.ts",
        "import { pipeline, sh } from \"@harmont/hm\";\nconst steps: any = {};\n\
         export default { slug: \"ci\", pipeline: pipeline([steps.build.sh(\"x\")]) };\n",
    );
    let err = stderr(&fx.hm(&["pipelines"]));
    assert!(err.contains("(`steps.build` is undefined)"), "{err}");
}

/// Two steps with one key are refused when the pipeline is validated,
/// at the place `pipeline()` was called in the file that made it.
#[test]
fn two_steps_with_one_key_are_shown_where_the_pipeline_was_made() {
    let fx = typescript(
        "import { pipeline, sh } from \"@harmont/hm\";\nexport default { slug: \"fine\", pipeline: pipeline([sh(\"a\")]) };\n",
    );
    fx.write(
        ".hm/second.ts",
        "import { pipeline, sh } from \"@harmont/hm\";\n\n\
         const ci = pipeline(\n  [sh(\"a\", { key: \"k\" }), sh(\"b\", { key: \"k\" })],\n  { env: {} },\n);\n\
         export default { slug: \"ci\", pipeline: ci };\n",
    );
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    // Where the call starts, not where QuickJS places it (its end).
    assert!(err.starts_with("error: .hm/second.ts:3:12: "), "{err}");
    assert!(err.contains("pipeline `ci`, step `k`: duplicate step key"), "{err}");
}

/// An IR written by hand that cannot run (here, a cycle) is shown where
/// the file exports it.
#[test]
fn a_handwritten_ir_with_a_cycle_is_shown_at_its_export() {
    let fx = typescript(
        "const step = (key: string) => ({ step: { key, cmd: \"true\" }, env: {} });\n\n\
         export const pipelines = {\n  slug: \"loop\",\n  pipeline: { version: \"0\", graph: { nodes: [step(\"a\"), step(\"b\")], \
         node_holes: [], edge_property: \"directed\", edges: [[0, 1, \"depends_on\"], [1, 0, \"depends_on\"]] } },\n};\n",
    );
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: .hm/pipeline.ts:3:1: pipeline `loop`, step `a`: dependency cycle: a -> b -> a"),
        "{err}"
    );
}

#[test]
fn bad_imports_are_named_before_anything_runs() {
    let fx = typescript("");
    let cases: [(&str, &str); 4] = [
        (
            "import { pipeline, sh } from \"@harmont/hm\";\nimport { helper } from \"./missing.ts\";\n",
            ".hm/pipeline.ts:2:24: cannot import `./missing.ts`: no such file",
        ),
        (
            "import { pipeline, sh, shell } from \"@harmont/hm\";\n",
            ".hm/pipeline.ts:1:24: `@harmont/hm` does not export `shell`",
        ),
        (
            "import { pipeline, sh } from \"@harmont/hm\";\nimport { readFileSync } from \"node:fs\";\n",
            ".hm/pipeline.ts:2:30: cannot import `node:fs`",
        ),
        (
            "import { pipeline, sh } from \"@harmont/hm\";\nimport { nope } from \"./shared.ts\";\nconsole.log(nope);\n",
            ".hm/pipeline.ts:2:10: `./shared.ts` does not export `nope`",
        ),
    ];
    fx.write(".hm/shared.ts", "export const marker = 1;\n");
    for (imports, expected) in cases {
        fx.write(
            ".hm/pipeline.ts",
            &format!("{imports}export default {{ slug: \"ci\", pipeline: pipeline([sh(\"x\")]) }};\n"),
        );
        let out = fx.hm(&["pipelines"]);
        assert_eq!(out.status.code(), Some(2), "{imports}");
        assert!(stderr(&out).contains(expected), "{imports}: {}", stderr(&out));
    }
    // The SDK's own modules are not for pipeline files.
    fx.write(
        ".hm/pipeline.ts",
        "import { hashKey } from \"@harmont/hm/src/keys.ts\";\nconsole.log(hashKey);\n",
    );
    let err = stderr(&fx.hm(&["pipelines"]));
    assert!(err.contains("cannot import `@harmont/hm/src/keys.ts`"), "{err}");
}

#[test]
fn typescript_javascript_and_json_merge_python_is_left_out_and_same_slugs_clash() {
    let fx = typescript(
        "import { pipeline, sh } from \"@harmont/hm\";\nexport default { slug: \"ts\", pipeline: pipeline([sh(\"true\")]) };\n",
    );
    fx.write(
        ".hm/a.py",
        "import harmont as hm\n\n@hm.pipeline\ndef py():\n    return hm.sh('true')\n",
    );
    fx.write(
        ".hm/b.js",
        "import { pipeline, sh } from \"@harmont/hm\";\nexport const pipelines = [{ slug: \"js\", pipeline: pipeline([sh(\"true\")]) }];\n",
    );
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("leaves out .hm/a.py"), "{}", stderr(&out));
    let envelope: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slugs: Vec<_> = envelope["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].clone())
        .collect();
    assert_eq!(slugs, ["js", "ts"]);

    fx.write(
        ".hm/b.js",
        "import { pipeline, sh } from \"@harmont/hm\";\nexport default [{ slug: \"ts\", pipeline: pipeline([sh(\"true\")]) }];\n",
    );
    let err = stderr(&fx.hm(&["pipelines"]));
    assert!(
        err.contains(".hm/pipeline.ts:2:") && err.contains("pipeline `ts` is defined twice (first at .hm/b.js:2:"),
        "{err}"
    );
}

/// A file's `default` export, else its `pipelines` export, as Harmont's
/// runner reads them; an IR whose graph the file read, or wrote by hand,
/// is taken as it is.
#[test]
fn definitions_are_read_as_harmonts_runner_reads_them() {
    let fx = typescript(
        "import { pipeline, sh, wait } from \"@harmont/hm\";\n\
         const ci = pipeline([sh(\"a\", { label: \"a\" }), wait({ continueOnFailure: true }), sh(\"b\", { label: \"b\" })], { timeout: \"1h\" });\n\
         console.log(`nodes: ${ci.graph.nodes.length}`);\n\
         const handmade = {\n  version: \"0\",\n  graph: { nodes: [{ step: { key: \"k\", cmd: \"true\", image: \"host\" }, env: {} }], node_holes: [], edge_property: \"directed\", edges: [] },\n};\n\
         export default [{ slug: \"ci\", pipeline: ci }, { slug: \"handmade\", name: \"By hand\", allowManual: false, pipeline: handmade }];\n\
         export const pipelines = { slug: \"ignored\", pipeline: ci };\n",
    );
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("nodes: 2"), "{}", stderr(&out));
    let envelope: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pipelines = envelope["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 2);
    assert_eq!(pipelines[0]["definition"]["timeout_seconds"], 3600);
    assert_eq!(
        pipelines[0]["definition"]["graph"]["nodes"][1]["step"]["continue_on_failure"],
        true
    );
    assert_eq!(
        pipelines[0]["definition"]["graph"]["edges"],
        serde_json::json!([[0, 1, "depends_on"]])
    );
    assert_eq!(pipelines[1]["name"], "By hand");
    assert_eq!(pipelines[1]["allow_manual"], false);
    assert_eq!(pipelines[1]["definition"]["graph"]["nodes"][0]["step"]["key"], "k");
}

#[test]
fn console_output_goes_to_stderr_and_node_modules_are_ignored() {
    let fx = typescript(
        "import { pipeline, sh } from \"@harmont/hm\";\nconsole.log(\"hello\", { from: \"ts\" });\n\
         export default { slug: \"ci\", pipeline: pipeline([sh(\"true\")]) };\n",
    );
    // A project that installed Harmont's package still gets hm's SDK.
    fx.write(
        ".hm/node_modules/@harmont/hm/package.json",
        "{\"name\": \"@harmont/hm\", \"main\": \"index.js\"}",
    );
    fx.write(
        ".hm/node_modules/@harmont/hm/index.js",
        "throw new Error(\"not this one\");\n",
    );
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("hello {\"from\":\"ts\"}"), "{}", stderr(&out));
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok());
}

/// `js.project()` reads the project's package.json and lock files from the
/// project root, as Harmont's runner (started there) does.
#[test]
fn presets_read_the_project_from_its_root() {
    let fx = typescript(
        "import { pipeline } from \"@harmont/hm\";\nimport { js } from \"@harmont/hm/toolchains\";\n\
         const web = js.project({ path: \"web\" });\n\
         export default { slug: \"ci\", pipeline: pipeline([web.run(\"test\")]) };\n",
    );
    fx.write("web/package.json", "{\"packageManager\": \"pnpm@9.1.0\"}");
    fx.write("web/pnpm-lock.yaml", "");
    let out = fx.hm(&["render", "ci"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ir: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cmds: Vec<&str> = ir["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["step"]["cmd"].as_str().unwrap())
        .collect();
    assert_eq!(cmds[2], "corepack enable pnpm && corepack install -g pnpm@9.1.0");
    assert_eq!(cmds[3], "cd web && pnpm install --frozen-lockfile");
}

/// Cache volumes, a pipeline's and a step's; `READ;` is where the file
/// may read the graph.
const VOLUMES: &str = r#"
import { pipeline, sh, volume } from "@harmont/hm";

const build = sh("cargo build", {
  label: "build",
  volumes: { target: volume("cargo-target", { sharing: "locked" }), "/root/.npm": "npm" },
});
const ir = pipeline([build, sh("true", { label: "plain" })], {
  volumes: { "/root/.cargo/registry": volume("cargo-registry", { sharing: "shared" }) },
});
READ;
export default { slug: "ci", pipeline: ir };
"#;

/// Cache volumes reach `hm` as written, whether the graph was made in
/// Rust (nobody read it) or in JavaScript (the file read it), and a bad
/// one is refused naming the file, the step and the field.
#[test]
fn volumes_reach_hm_as_written() {
    for read in ["", "ir.graph"] {
        let fx = typescript(&VOLUMES.replace("READ", read));
        let out = fx.hm(&["render", "ci"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let ir: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            ir["volumes"],
            serde_json::json!({"/root/.cargo/registry": "cargo-registry"})
        );
        let nodes = ir["graph"]["nodes"].as_array().unwrap();
        assert_eq!(
            nodes[0]["step"]["volumes"],
            serde_json::json!({"/root/.npm": "npm", "target": {"name": "cargo-target", "sharing": "locked"}}),
            "read: {read:?}"
        );
        assert!(nodes[1]["step"].get("volumes").is_none());
    }
    let fx = typescript(&VOLUMES.replace("READ", "").replace("\"/root/.npm\"", "\"/dev/npm\""));
    let out = fx.hm(&["render", "ci"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: .hm/pipeline.ts")
            && err.contains("step `build`: `volumes` has an invalid mount path `/dev/npm`: `/dev` and what is under"),
        "{err}"
    );
}

/// The SDK is kept compiled in the cache; a damaged copy is never loaded,
/// it is compiled again.
#[test]
fn a_damaged_compiled_sdk_is_compiled_again() {
    let fx = typescript(
        "import { pipeline, sh } from \"@harmont/hm\";\nexport default { slug: \"ci\", pipeline: pipeline([sh(\"true\")]) };\n",
    );
    let first = fx.hm(&["render", "ci"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let compiled = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(fx.cache().join("sdk"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("typescript-"))
            .collect()
    };
    let files = compiled();
    assert_eq!(files.len(), 1, "{files:?}");
    // Flip bytes in the middle of the bytecode.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0x5a;
    }
    std::fs::write(&files[0], &bytes).unwrap();
    for _ in 0..2 {
        let again = fx.hm(&["render", "ci"]);
        assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
        assert_eq!(again.stdout, first.stdout);
    }
    assert_ne!(
        std::fs::read(&compiled()[0]).unwrap(),
        bytes,
        "the damaged copy was replaced"
    );
}
