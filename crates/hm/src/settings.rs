//! What `hm run` decides from its flags, then `HM_*` variables, then the
//! project's `.hm/config.toml`, then the user's configuration (`config`
//! merges the last three), then the pipeline itself: once, here, and
//! passed down.

use std::path::Path;

use hm_vm::Network;

use crate::cli::{BackendFlag, BackendName, Format, NetworkName, PullPolicy, RemoteMode, RunArgs};
use crate::config::Config;

/// The settings of one `hm run`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub backend: BackendName,
    /// The steps' network: `--network` (or `HM_NETWORK`), else the
    /// configuration's, else the pipeline's `definition.network`, else
    /// `host`.
    pub network: Network,
    pub format: Format,
    /// When to pull the pipeline's images (sandbox backend).
    pub pull: PullPolicy,
    /// Steps executing at once: `-j` (or `HM_PARALLELISM`), else the
    /// configuration's, else the number of CPUs; 0 means the default.
    pub parallelism: usize,
    /// The cache scope: the configuration's, else the remote cache's
    /// repository (machines that share it share keys; whether it is used
    /// or `off`), else the project root.
    pub scope: String,
    /// The remote cache's repository and how it is used, unless `off`.
    pub remote: Option<(String, RemoteMode)>,
    /// `--step`'s CI build: `--build-id` (or `HM_BUILD_ID`), else the CI
    /// system's own.
    pub build: Option<String>,
    pub keep_going: bool,
    /// `--no-cache`.
    pub refresh: bool,
    /// What each step may use, before its own `runner_args`: the flags,
    /// else the configuration's (`HM_*` variables, then files), else the
    /// defaults.
    pub limits: hm_vm::Limits,
    /// Cache volumes mounted into every step, from the configuration, by
    /// absolute mount path.
    pub volumes: std::collections::BTreeMap<std::path::PathBuf, hm_ir::VolumeMount>,
}

impl RunSettings {
    pub fn resolve(args: &RunArgs, config: &Config, plan: &hm_ir::Plan, project_root: &Path) -> Self {
        let network = args.build.network.or(config.network).or(plan.network.map(|n| match n {
            hm_ir::Network::Host => NetworkName::Host,
            hm_ir::Network::None => NetworkName::None,
        }));
        let remote = args.build.cache_remote_url.clone().or(config.cache_remote.clone());
        let mode = args
            .build
            .cache_remote
            .or(config.cache_remote_mode)
            .unwrap_or(RemoteMode::Write);
        RunSettings {
            // `cloud` was refused before (`RunArgs::hosted`).
            backend: args.build.backend.and_then(BackendFlag::vm).unwrap_or(config.backend),
            network: match network {
                Some(NetworkName::None) => Network::None,
                Some(NetworkName::Host) | None => Network::Host,
            },
            format: args.format.or(config.format).unwrap_or(Format::Human),
            pull: args.build.pull.or(config.pull).unwrap_or(PullPolicy::Missing),
            // `0` is `1`, as Harmont's `--parallelism` has it.
            parallelism: args
                .build
                .parallelism
                .or(config.parallelism)
                .map(|n| n.max(1))
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
            scope: scope(config, remote.as_deref(), project_root),
            remote: match (remote, mode) {
                (Some(_), RemoteMode::Off) | (None, _) => None,
                (Some(url), mode) => Some((url, mode)),
            },
            keep_going: args.keep_going,
            refresh: args.build.no_cache,
            limits: args.limits.over(config.limits()),
            volumes: config
                .volumes
                .iter()
                .map(|(path, mount)| (hm_ir::mount_path(path), mount.clone()))
                .collect(),
            build: match &args.step {
                Some(_) => args.build_id.clone().or_else(ci_build),
                None => None,
            },
        }
    }
}

/// The cache scope of a project: the configuration's, else the remote
/// cache's repository (machines that share it share keys, whether it is
/// used or `off`), else the project root.
pub fn scope(config: &Config, remote: Option<&str>, project_root: &Path) -> String {
    match (&config.cache_scope, remote) {
        (Some(scope), _) => scope.clone(),
        (None, Some(url)) => format!("remote:{url}"),
        (None, None) => project_root.display().to_string(),
    }
}

/// The build identity the CI system this runs in gives its jobs (the same
/// in every job of one build, and across its retries).
fn ci_build() -> Option<String> {
    let systems = [
        ("GITHUB_RUN_ID", "github"),
        ("CI_PIPELINE_ID", "gitlab"),
        ("BUILDKITE_BUILD_ID", "buildkite"),
    ];
    systems.iter().find_map(|(var, system)| {
        let id = std::env::var(var).ok().filter(|v| !v.is_empty())?;
        Some(format!("{system}:{id}"))
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn run_args(args: &[&str]) -> RunArgs {
        let argv = ["hm", "run"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => *args,
            _ => unreachable!(),
        }
    }

    fn plan(network: Option<&str>) -> hm_ir::Plan {
        let mut definition = serde_json::json!({"version": "0", "graph": {"nodes": [{"step": {"key": "a", "cmd": "true"}}],
            "edge_property": "directed", "edges": []}});
        if let Some(network) = network {
            definition["network"] = network.into();
        }
        let pipeline = serde_json::from_value(serde_json::json!({"slug": "p", "definition": definition})).unwrap();
        hm_ir::Plan::new(&pipeline).unwrap()
    }

    #[test]
    fn flags_win_over_the_configuration_which_wins_over_the_pipeline() {
        let root = Path::new("/project");
        let config = Config {
            network: Some(NetworkName::Host),
            parallelism: Some(3),
            format: Some(Format::Json),
            cache_scope: Some("shared".to_owned()),
            ..Config::default()
        };
        let from_config = RunSettings::resolve(&run_args(&[]), &config, &plan(Some("none")), root);
        assert_eq!(from_config.network, Network::Host);
        assert_eq!(from_config.parallelism, 3);
        assert_eq!(from_config.format, Format::Json);
        assert_eq!(from_config.scope, "shared");

        let flags = run_args(&["--network", "none", "-j", "5", "--format", "human"]);
        let from_flags = RunSettings::resolve(&flags, &config, &plan(None), root);
        assert_eq!(
            (from_flags.network, from_flags.parallelism, from_flags.format),
            (Network::None, 5, Format::Human)
        );

        let from_pipeline = RunSettings::resolve(&run_args(&[]), &Config::default(), &plan(Some("none")), root);
        assert_eq!(from_pipeline.network, Network::None);
        assert_eq!(from_pipeline.scope, "/project");
        assert_eq!(from_pipeline.pull, PullPolicy::Missing);
    }

    /// `--memory`, `--cpus`, `--pids` and `--disk` win over the
    /// configuration (itself the defaults with files and `HM_*` over them);
    /// `none` lifts a limit; a bad value is clap's usage error (exit 2)
    /// naming the flag.
    #[test]
    fn limit_flags_win_over_the_configuration() {
        let root = Path::new("/project");
        let config = Config {
            limits: hm_vm::Limits {
                millicpus: Some(2000),
                ..hm_vm::Limits::defaults()
            },
            ..Config::default()
        };
        let from_config = RunSettings::resolve(&run_args(&[]), &config, &plan(None), root);
        assert_eq!(from_config.limits, config.limits());
        let flags = run_args(&["--memory", "1GiB", "--cpus", "none", "--pids", "64", "--disk", "5GB"]);
        let limits = RunSettings::resolve(&flags, &config, &plan(None), root).limits;
        assert_eq!(
            (limits.memory, limits.millicpus, limits.pids, limits.disk),
            (Some(1 << 30), None, Some(64), Some(5_000_000_000))
        );
        assert!(limits.disk_explicit);
        let lifted = RunSettings::resolve(&run_args(&["--memory", "0"]), &config, &plan(None), root).limits;
        assert_eq!((lifted.memory, lifted.millicpus), (None, Some(2000)));
        for (flag, value) in [
            ("--memory", "lots"),
            ("--cpus", "-2"),
            ("--pids", "many"),
            ("--disk", "1 parsec"),
        ] {
            let err = Cli::try_parse_from(["hm", "run", &format!("{flag}={value}")]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert_eq!(err.exit_code(), 2);
            let text = err.to_string();
            assert!(text.contains(flag) && text.contains(value), "{text}");
        }
    }

    #[test]
    fn zero_parallelism_is_one() {
        let settings = RunSettings::resolve(
            &run_args(&["-j", "0"]),
            &Config::default(),
            &plan(None),
            Path::new("/p"),
        );
        assert_eq!(settings.parallelism, 1);
    }
}
