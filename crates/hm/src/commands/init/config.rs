//! The `.hm/config.toml` `hm init` writes beside the pipeline: the cache
//! volumes the stack's tools keep their caches in (issue 19). They are in
//! the configuration, not the pipeline file, so that the pipeline renders
//! as Harmont's does.

use std::path::Path;

use crate::cli::Template;

/// One volume a stack wants: its mount path, its name, and whether it is
/// written commented out (wanted only by a tool the project may not use).
struct Volume {
    path: &'static str,
    name: &'static str,
    commented: bool,
}

const fn on(path: &'static str, name: &'static str) -> Volume {
    Volume {
        path,
        name,
        commented: false,
    }
}

const fn off(path: &'static str, name: &'static str) -> Volume {
    Volume {
        path,
        name,
        commented: true,
    }
}

/// What the volumes are, above the table.
const HEADER: &str = "\
# hm's settings for this project (see Configuration in hm's user guide).

# Cache volumes: directories hm keeps across runs and mounts into every
# step, by mount path (a relative one is under /workspace). They are part
# of no snapshot and no cache key: they only make steps faster, and a step
# must be right with an empty one. `hm cache ls` lists them, `hm cache rm
# --volume NAME` removes one.
[volumes]
";

/// The JavaScript package managers' caches, by the manager's name.
const JS_CACHES: [(&str, &str, &str); 3] = [
    ("npm", "/root/.npm", "npm-cache"),
    ("pnpm", "/root/.local/share/pnpm/store", "pnpm-store"),
    ("bun", "/root/.bun/install/cache", "bun-cache"),
];

/// The configuration file for `template` in the project at `root` (whose
/// files tell a JavaScript project's package manager), or none for a stack
/// that wants no volume.
pub(super) fn text(template: Template, root: &Path) -> Option<String> {
    let volumes = match template {
        Template::Rust => vec![
            on("/root/.cargo/registry", "cargo-registry"),
            on("/root/.cargo/git", "cargo-git"),
            on("target", "cargo-target"),
        ],
        Template::Go => vec![
            on("/root/go/pkg/mod", "go-mod"),
            on("/root/.cache/go-build", "go-build"),
        ],
        Template::Python | Template::Uv => {
            vec![on("/root/.cache/uv", "uv-cache"), off("/root/.cache/pip", "pip-cache")]
        }
        Template::Js | Template::Ts => {
            let manager = package_manager(root);
            JS_CACHES
                .iter()
                .map(|&(pm, path, name)| match Some(pm) == manager {
                    true => on(path, name),
                    false => off(path, name),
                })
                .collect()
        }
        Template::Cmake => vec![on("/root/.cache/ccache", "ccache")],
        Template::Zig | Template::Elixir | Template::Shell => return None,
    };
    let mut text = HEADER.to_owned();
    if matches!(template, Template::Js | Template::Ts) {
        text.push_str("# The cache of the project's package manager; the others are left commented.\n");
    }
    for volume in volumes {
        let comment = if volume.commented { "# " } else { "" };
        text.push_str(&format!("{comment}\"{}\" = \"{}\"\n", volume.path, volume.name));
    }
    Some(text)
}

/// The package manager a JavaScript project's files name: `package.json`'s
/// `packageManager`, else its lock file, else npm (as the SDK has it).
/// `None` for one with no cache volume here (yarn, deno).
fn package_manager(root: &Path) -> Option<&'static str> {
    let declared = std::fs::read_to_string(root.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["packageManager"].as_str().map(str::to_owned));
    if let Some(declared) = declared {
        let tool = declared.split('@').next().unwrap_or_default();
        return JS_CACHES.iter().map(|&(pm, _, _)| pm).find(|&pm| pm == tool);
    }
    let locks: [(&str, Option<&'static str>); 6] = [
        ("bun.lock", Some("bun")),
        ("bun.lockb", Some("bun")),
        ("pnpm-lock.yaml", Some("pnpm")),
        ("deno.lock", None),
        ("package-lock.json", Some("npm")),
        ("yarn.lock", None),
    ];
    match locks.iter().find(|(lock, _)| root.join(lock).exists()) {
        Some(&(_, manager)) => manager,
        None if root.join("deno.json").exists() || root.join("deno.jsonc").exists() => None,
        None => Some("npm"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stack's file is read by the configuration reader as written.
    #[test]
    fn every_template_config_is_read_by_the_configuration_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        for (template, wanted) in [
            (
                Template::Rust,
                &[
                    ("/root/.cargo/registry", "cargo-registry"),
                    ("/root/.cargo/git", "cargo-git"),
                    ("target", "cargo-target"),
                ][..],
            ),
            (
                Template::Go,
                &[("/root/go/pkg/mod", "go-mod"), ("/root/.cache/go-build", "go-build")],
            ),
            (Template::Python, &[("/root/.cache/uv", "uv-cache")]),
            (Template::Uv, &[("/root/.cache/uv", "uv-cache")]),
            (Template::Js, &[("/root/.npm", "npm-cache")]),
            (Template::Cmake, &[("/root/.cache/ccache", "ccache")]),
        ] {
            let text = text(template, dir.path()).unwrap();
            std::fs::write(&path, &text).unwrap();
            let mut config = crate::config::Config::default();
            config.apply_file(&path).unwrap();
            let read: Vec<(&str, &str)> = config
                .volumes
                .iter()
                .map(|(path, mount)| (path.as_str(), mount.name.as_str()))
                .collect();
            let mut wanted = wanted.to_vec();
            wanted.sort();
            assert_eq!(read, wanted, "{template:?}:\n{text}");
        }
        for template in [Template::Zig, Template::Elixir, Template::Shell] {
            assert_eq!(text(template, dir.path()), None);
        }
        let python = text(Template::Python, dir.path()).unwrap();
        assert!(
            python.contains("\n# \"/root/.cache/pip\" = \"pip-cache\"\n"),
            "{python}"
        );
    }

    /// A JavaScript project's own package manager's cache is the one not
    /// commented out.
    #[test]
    fn a_javascript_project_gets_its_package_managers_cache() {
        let active = |files: &[(&str, &str)]| {
            let dir = tempfile::tempdir().unwrap();
            for (name, text) in files {
                std::fs::write(dir.path().join(name), text).unwrap();
            }
            let text = text(Template::Js, dir.path()).unwrap();
            let names: Vec<String> = text
                .lines()
                .filter(|line| line.starts_with('"'))
                .map(|line| line.rsplit(" = ").next().unwrap().trim_matches('"').to_owned())
                .collect();
            assert_eq!(
                text.matches("-cache\"\n").count() + text.matches("-store\"\n").count(),
                3
            );
            names
        };
        assert_eq!(active(&[("package.json", "{}")]), ["npm-cache"]);
        assert_eq!(
            active(&[("package.json", "{}"), ("pnpm-lock.yaml", "")]),
            ["pnpm-store"]
        );
        assert_eq!(active(&[("package.json", "{}"), ("bun.lock", "")]), ["bun-cache"]);
        assert_eq!(
            active(&[
                ("package.json", r#"{"packageManager": "pnpm@9.1.0"}"#),
                ("package-lock.json", "")
            ]),
            ["pnpm-store"]
        );
        assert!(active(&[("package.json", "{}"), ("yarn.lock", "")]).is_empty());
        assert!(active(&[("deno.json", "{}")]).is_empty());
    }
}
