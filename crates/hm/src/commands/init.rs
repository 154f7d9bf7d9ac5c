//! `hm init`: writes a starting `.hm/pipeline.py` or `.hm/pipeline.ts` for
//! the project's stack, and a `.hm/config.toml` with the cache volumes the
//! stack's tools want (see [`config`]).

mod config;

use std::path::{Path, PathBuf};

use hm_exec::exit_codes;

use crate::cli::{InitArgs, Lang, Template};
use crate::error::CliError;

/// What a file in the project says about its stack, in the order checked.
const MARKERS: &[(&str, Template)] = &[
    ("Cargo.toml", Template::Rust),
    ("go.mod", Template::Go),
    ("uv.lock", Template::Uv),
    ("pyproject.toml", Template::Python),
    ("requirements.txt", Template::Python),
    ("setup.py", Template::Python),
    ("package.json", Template::Js),
    ("deno.json", Template::Js),
    ("deno.jsonc", Template::Js),
    ("CMakeLists.txt", Template::Cmake),
    ("build.zig", Template::Zig),
    ("mix.exs", Template::Elixir),
];

/// `hm init`.
pub fn init(args: InitArgs) -> Result<i32, CliError> {
    let root = match args.dir {
        Some(dir) => dir,
        None => std::env::current_dir().map_err(|source| CliError::Io {
            path: PathBuf::from("."),
            source,
        })?,
    };
    if !root.is_dir() {
        return Err(CliError::BadArgument {
            flag: "--dir",
            message: format!("`{}` is not a directory", root.display()),
        });
    }
    let (template, why) = match args.template {
        Some(template) => (template, None),
        None => match detect(&root) {
            Some((template, marker)) => (template, Some(marker)),
            None => (Template::Shell, None),
        },
    };
    let hm_dir = root.join(hm_dsl::HM_DIR);
    let file = hm_dir.join(match args.lang {
        Lang::Py => "pipeline.py",
        Lang::Ts => "pipeline.ts",
    });
    if file.exists() && !args.force {
        return Err(CliError::Exists(file));
    }
    // A project's pipelines are in one language: with TypeScript files
    // there, the Python ones are left out.
    let other = hm_dir.join(match args.lang {
        Lang::Py => "pipeline.ts",
        Lang::Ts => "pipeline.py",
    });
    if other.exists() && !args.force {
        return Err(CliError::BadArgument {
            flag: "--lang",
            message: format!(
                "`{}` exists: a project's pipelines are in one language, and `{}` beside it would {}; remove it first, or pass --force to write both",
                other.display(),
                file.display(),
                match args.lang {
                    Lang::Ts => "take its place (hm reads the TypeScript files when there are any)",
                    Lang::Py => "be left out (hm reads the TypeScript files when there are any)",
                }
            ),
        });
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CliError::Io { path, source }
    };
    std::fs::create_dir_all(&hm_dir).map_err(io(&hm_dir))?;
    std::fs::write(&file, text(template, args.lang)).map_err(io(&file))?;
    let name = template_name(template);
    match why {
        Some(marker) => say!("wrote {} (the {name} template, for `{marker}`)", file.display()),
        None => say!("wrote {} (the {name} template)", file.display()),
    }
    if let Some(settings) = config::text(template, &root) {
        // Settings of the user's own are never overwritten, even with
        // `--force` (it is for the pipeline file).
        let path = hm_dir.join("config.toml");
        if path.exists() {
            say!(
                "kept {}: the {name} template's cache volumes are in the user guide's Cache volumes",
                path.display()
            );
        } else {
            std::fs::write(&path, settings).map_err(io(&path))?;
            say!("wrote {} (cache volumes for {name})", path.display());
        }
    }
    say!("run it with `hm run` from {}", root.display());
    Ok(exit_codes::PASSED)
}

/// The stack the project's files point to, and the file that says so.
fn detect(root: &Path) -> Option<(Template, &'static str)> {
    MARKERS
        .iter()
        .find(|(marker, _)| root.join(marker).exists())
        .map(|&(marker, template)| (template, marker))
}

fn template_name(template: Template) -> &'static str {
    match template {
        Template::Rust => "rust",
        Template::Go => "go",
        Template::Python => "python",
        Template::Uv => "uv",
        Template::Js | Template::Ts => "js",
        Template::Cmake => "cmake",
        Template::Zig => "zig",
        Template::Elixir => "elixir",
        Template::Shell => "shell",
    }
}

/// A template's text in both languages.
macro_rules! template {
    ($lang:expr, $name:literal) => {
        match $lang {
            Lang::Py => include_str!(concat!("../../templates/python/", $name, ".py")),
            Lang::Ts => include_str!(concat!("../../templates/typescript/", $name, ".ts")),
        }
    };
}

/// The pipeline file of `template` in `lang`. A JavaScript project's
/// runtime and package manager are not written down: the SDK finds them in
/// `package.json` and the lock files when the pipeline is rendered, as
/// Harmont's does.
fn text(template: Template, lang: Lang) -> &'static str {
    match template {
        Template::Rust => template!(lang, "rust"),
        Template::Go => template!(lang, "go"),
        Template::Python => template!(lang, "python"),
        Template::Uv => template!(lang, "uv"),
        Template::Js | Template::Ts => template!(lang, "js"),
        Template::Cmake => template!(lang, "cmake"),
        Template::Zig => template!(lang, "zig"),
        Template::Elixir => template!(lang, "elixir"),
        Template::Shell => template!(lang, "shell"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_stack() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect(dir.path()), None);
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        assert_eq!(detect(dir.path()), Some((Template::Js, "package.json")));
        assert!(text(Template::Js, Lang::Py).contains(r#"hm.js.project(path=".")"#));
        assert!(text(Template::Js, Lang::Ts).contains(r#"js.project({ path: "." })"#));
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(dir.path()), Some((Template::Rust, "Cargo.toml")));
    }
}
