//! `hm pipelines`, `hm render` and `hm version`: the IR printed back in
//! the format it was read in.

mod util;

use util::{envelope, step, Fixture};

#[test]
fn pipelines_and_render_print_the_ir_back() {
    let steps = [
        step("build", "make").timeout(60),
        step("test", "make test").continue_on_failure(),
    ];
    let input = envelope("ci", &steps, &[("build", "test", "builds_in")], Some(600));
    let fx = Fixture::with(&input);
    let out = fx.hm(&["pipelines"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, input, "`hm pipelines` prints the envelope as read");

    let out = fx.hm(&["render", "ci"]);
    assert!(out.status.success());
    let definition: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(definition, input["pipelines"][0]["definition"]);
    // The only pipeline needs no slug.
    let only = fx.hm(&["render"]);
    assert!(only.status.success(), "{}", String::from_utf8_lossy(&only.stderr));
    assert_eq!(only.stdout, out.stdout);
}

#[test]
fn pipelines_merge_across_files_and_holes_survive() {
    let fx = Fixture::new();
    let mut with_hole = envelope("two", &[step("x", "true"), step("y", "true")], &[], None);
    let def = &mut with_hole["pipelines"][0]["definition"]["graph"];
    def["node_holes"] = serde_json::json!([1]);
    def["edges"] = serde_json::json!([[0, 2, "depends_on"], null]);
    fx.write(
        ".hm/a.json",
        &envelope("one", &[step("a", "true")], &[], None).to_string(),
    );
    fx.write(".hm/b.json", &with_hole.to_string());
    let out = fx.hm(&["pipelines"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["pipelines"].as_array().unwrap().len(), 2);
    // Two pipelines: `render` must be told which.
    let ambiguous = fx.hm(&["render"]);
    assert_eq!(ambiguous.status.code(), Some(2));
    let err = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(err.contains("one") && err.contains("two"), "{err}");
    assert_eq!(
        printed["pipelines"][1]["definition"]["graph"]["node_holes"],
        serde_json::json!([1])
    );
    assert_eq!(
        printed["pipelines"][1]["definition"]["graph"]["edges"],
        serde_json::json!([[0, 2, "depends_on"], null])
    );
}

#[test]
fn version_and_cloud() {
    let fx = Fixture::new();
    let out = fx.hm(&["version"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hm "));
    let out = fx.hm(&["cloud", "login"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `hm run demo par-a` was `unexpected argument`: steps (by key or label)
/// run with what they need and nothing after them, `--from` and `--until`
/// cut the pipeline, a step word alone names a step when there is one
/// pipeline, and a misspelt step is exit 2 with a suggestion, before
/// anything runs.
#[test]
fn steps_are_selected_by_name_from_and_until() {
    if !util::sandbox_available() {
        return;
    }
    let steps = [
        step("prep", "true"),
        step("build", "true"),
        step("test", "true"),
        step("lint", "true"),
    ];
    let mut input = envelope(
        "ci",
        &steps,
        &[("prep", "build", "builds_in"), ("build", "test", "builds_in")],
        None,
    );
    input["pipelines"][0]["definition"]["graph"]["nodes"][1]["step"]["label"] = "Build it".into();
    let fx = Fixture::with(&input);
    let ran = |args: &[&str]| {
        let run = fx.run_json(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.dump());
        run.executed()
    };
    assert_eq!(ran(&["ci", "build"]), ["build", "prep"]);
    assert_eq!(ran(&["Build it"]), ["build", "prep"]);
    assert_eq!(ran(&["--from", "build"]), ["build", "prep", "test"]);
    assert_eq!(ran(&["--until", "prep", "lint"]), ["lint", "prep"]);
    assert_eq!(ran(&[]).len(), 4);

    let wrong = fx.hm(&["run", "ci", "tset"]);
    assert_eq!(wrong.status.code(), Some(2));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("pipeline `ci` has no step `tset`; did you mean `test`?"),
        "{err}"
    );
    assert!(wrong.stdout.is_empty(), "nothing ran");
}

/// `hm completions SHELL` prints a script the shell loads: bash registers
/// it for `hm` and offers the subcommands.
#[test]
fn completion_scripts_load_in_their_shell() {
    let fx = Fixture::new();
    let bash = fx.hm(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = fx.dir.path().join("hm.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let probe = format!(
        "source {}; complete -p hm; COMP_WORDS=(hm ca); COMP_CWORD=1; _hm hm ca hm; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("-F _hm hm"), "{text}");
    assert!(text.lines().last().unwrap_or_default().contains("cache"), "{text}");
    for shell in ["zsh", "fish"] {
        let out = fx.hm(&["completions", shell]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    assert_eq!(fx.hm(&["completions", "tcsh"]).status.code(), Some(2));
}

/// A bad `[volumes]` entry in `.hm/config.toml` (a name, a mount path, a
/// sharing, a key of the inline table) is exit 2 before anything runs,
/// naming the file and `volumes."PATH"`.
#[test]
fn a_bad_configured_volume_is_exit_2_naming_the_file_and_path() {
    let fx = Fixture::with(&envelope("ci", &[step("a", "true")], &[], None));
    for (bad, says) in [
        (
            r#""target" = "cargo/target""#,
            r#"volumes."target": `cargo/target` is not a volume name"#,
        ),
        (
            r#""/proc/cache" = "c""#,
            r#"volumes."/proc/cache": `/proc` and what is under it belong to the kernel"#,
        ),
        (
            r#""target" = { name = "t", sharing = "sometimes" }"#,
            r#"volumes."target": unknown variant `sometimes`"#,
        ),
        (
            r#""target" = { name = "t", size = 1 }"#,
            r#"volumes."target": unknown field `size`"#,
        ),
    ] {
        fx.write(".hm/config.toml", &format!("[volumes]\n{bad}\n"));
        let out = fx.hm(&["run"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(".hm/config.toml") && err.contains(says), "{bad}: {err}");
        assert!(out.stdout.is_empty(), "nothing ran");
    }
}
