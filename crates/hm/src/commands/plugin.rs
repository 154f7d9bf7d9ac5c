//! `hm plugin list`: what Harmont's `hm plugin list` answers, for this hm.
//! Nothing here is loaded at run time: runners, backends and pipeline
//! languages are built in.

use hm_exec::exit_codes;

use crate::cli::PluginCommand;
use crate::error::CliError;

/// The runner every step runs with (`runner` in the IR), as the build's
/// `build_start` names it.
const RUNNERS: [(&str, &str); 1] = [("vm", "runs each step's command in a VM of the backend")];

/// The backends of `--backend`, the default first.
const BACKENDS: [(&str, &str); 2] = [
    ("sandbox", "Linux namespaces on an overlayfs root, no daemon"),
    ("docker", "a container of a Docker-compatible daemon"),
];

/// What evaluates each kind of pipeline file in `.hm/`.
const LANGUAGES: [(&str, &str); 3] = [
    ("python", "`.hm/*.py`, with Harmont's Python SDK, by python3"),
    (
        "typescript",
        "`.hm/*.ts` and `.hm/*.js`, with Harmont's TypeScript SDK, in hm itself",
    ),
    ("json", "`.hm/*.json`: envelopes as Harmont's SDKs render them"),
];

/// `hm plugin`.
pub fn plugin(command: PluginCommand) -> Result<i32, CliError> {
    match command {
        PluginCommand::List => {
            let mut text = String::new();
            section(&mut text, "Registered runners", &RUNNERS, true);
            section(&mut text, "Backends", &BACKENDS, true);
            section(&mut text, "Pipeline languages", &LANGUAGES, false);
            crate::output::print(&text)?;
            Ok(exit_codes::PASSED)
        }
    }
}

/// Appends `title:` and a line per item; with `default`, the first is
/// marked the default.
fn section(text: &mut String, title: &str, items: &[(&str, &str)], default: bool) {
    text.push_str(&format!("{title}:\n"));
    for (i, (name, what)) in items.iter().enumerate() {
        let kind = if default && i == 0 {
            "default, built-in"
        } else {
            "built-in"
        };
        text.push_str(&format!("  {name} ({kind}): {what}\n"));
    }
}
