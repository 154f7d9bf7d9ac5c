//! The TypeScript SDK's own tests (`sdk/typescript/tests/*.test.ts`), run
//! in the engine embedded in `hm`: no Node.js involved.

use std::path::Path;

#[test]
fn typescript_sdk_suite_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../sdk/typescript")
        .canonicalize()
        .unwrap();
    let mut files: Vec<_> = std::fs::read_dir(root.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.ts"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in {}", root.display());
    let outcomes = hm_dsl::run_script_tests(&root, &files, std::env::vars().collect())
        .unwrap_or_else(|err| panic!("{}", err_chain(&err)));
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|e| format!("{} :: {}\n{e}", o.file.display(), o.name))
        })
        .collect();
    println!("{} tests in {} files", outcomes.len(), files.len());
    assert!(outcomes.len() > 50, "only {} tests ran", outcomes.len());
    assert!(
        failures.is_empty(),
        "{} failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn err_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
