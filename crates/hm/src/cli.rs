//! The command line as typed: nothing here is resolved or checked beyond
//! what clap does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Limit;

#[derive(Debug, Parser)]
#[command(
    name = "hm",
    version,
    about = "Run CI pipelines locally, every step in an isolated sandbox"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to colour the output: `auto` (on a terminal, unless `NO_COLOR`
    /// is set), `always` or `never`
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Do not colour the output (`--color never`)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print debug lines on stderr: the settings a command resolved, the
    /// pipeline files it evaluated, each step's cache lookup, each VM's
    /// boot, command and snapshot
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

impl Cli {
    /// When to colour, from `--color` and `--no-color`.
    pub fn color_when(&self) -> ColorWhen {
        if self.no_color {
            ColorWhen::Never
        } else {
            self.color
        }
    }
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline
    Run(Box<RunArgs>),
    /// Open an interactive shell in the state after a step (or before it),
    /// running what it needs first; nothing done in the shell is kept
    Shell(ShellArgs),
    /// Print every pipeline of the project as an envelope (JSON)
    Pipelines(ProjectArgs),
    /// Print one pipeline's IR (JSON)
    Render {
        /// The pipeline's slug (may be left out when there is only one)
        slug: Option<String>,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Print a CI configuration (GitHub Actions, GitLab CI, Buildkite) whose
    /// jobs run the pipeline's steps with `hm run --step`
    Export(ExportArgs),
    /// Manage local images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Inspect and trim the snapshot cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Write a starting `.hm/pipeline.py` (or `.ts`) for the project's stack
    Init(InitArgs),
    /// Print the version
    Version,
    /// List past runs, newest first
    Runs {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print a step's whole output from a past run
    Logs {
        /// The run: its id or the start of one (default: the last run)
        run: Option<String>,
        /// The step: its key, label or id (default: the run's first failed
        /// step)
        step: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print a past run as one self-contained HTML page (`hm report > run.html`)
    Report {
        /// The run: its id or the start of one (default: the last run)
        run: Option<String>,
    },
    /// Print a completion script for a shell (`source <(hm completions bash)`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// List the step runners, the backends and the pipeline languages
    /// this hm has
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Harmont's hosted service (not part of this hm)
    #[command(hide = true, disable_help_flag = true)]
    Cloud {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

/// `hm plugin`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the step runners, the backends and the pipeline languages
    List,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ProjectArgs {
    /// Project directory (default: the nearest directory upwards with a `.hm/` folder)
    #[arg(short = 'd', long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// The pipeline's slug (may be left out when there is only one)
    pub pipeline: Option<String>,
    /// Run only these steps (keys or labels) and what they need
    #[arg(value_name = "STEP")]
    pub steps: Vec<String>,
    /// Run this step, everything after it, and what they need
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Run this step and what it needs, nothing after it
    #[arg(long, value_name = "STEP")]
    pub until: Option<String>,
    /// Run exactly this step (key or label) on its parent's snapshot from
    /// the cache, local or remote, and store it: the unit a CI engine's job
    /// runs (`hm export`). The steps it builds in must be cache hits.
    #[arg(long, value_name = "STEP", conflicts_with_all = ["steps", "from", "until", "watch"])]
    pub step: Option<String>,
    /// The CI build this job belongs to, for `--step`: steps without a
    /// cache policy are stored under it for the build's later jobs
    /// [default: GITHUB_RUN_ID, CI_PIPELINE_ID or BUILDKITE_BUILD_ID]
    #[arg(long, env = "HM_BUILD_ID", value_name = "ID", requires = "step")]
    pub build_id: Option<String>,
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Keep running independent steps after a failure
    #[arg(short = 'k', long)]
    pub keep_going: bool,
    /// Output format (default: `[preferences] format` in the configuration, else human)
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print every log line, prefixed with its step
    #[arg(long)]
    pub logs: bool,
    /// After the run, wait for a change to the source or the pipeline and
    /// run again (cached steps stay cached), until Ctrl-C
    #[arg(long)]
    pub watch: bool,
    /// When a step fails, open an interactive shell in its state (on a
    /// terminal; nothing done in the shell is kept)
    #[arg(long)]
    pub shell_on_failure: bool,
    /// Set by `hm shell`: the step to open a shell at.
    #[arg(skip)]
    pub shell: Option<ShellTarget>,
    /// The branch to record on the build (in `hm runs` and `build_start`)
    #[arg(short, long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// A message to record on the build (in `hm runs` and `build_start`)
    #[arg(short, long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Accepted for Harmont's command line, and changes nothing: a local
    /// run is always followed to its end
    #[arg(long, conflicts_with = "watch")]
    pub no_watch: bool,
    /// Run on Harmont's hosted service (not part of this hm: exit 2)
    #[arg(long, hide = true)]
    pub cloud: bool,
    /// The hosted service's organisation (not part of this hm: exit 2)
    #[arg(long, hide = true, value_name = "ORG")]
    pub org: Option<String>,
    /// Last: its heading would cover the flags after it.
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl RunArgs {
    /// The flag that asks for Harmont's hosted service, if one does.
    pub fn hosted(&self) -> Option<&'static str> {
        if self.cloud {
            Some("--cloud")
        } else if self.org.is_some() {
            Some("--org")
        } else if self.build.backend == Some(BackendFlag::Cloud) {
            Some("--backend cloud")
        } else {
            None
        }
    }
}

/// How the steps of a build run: options of both `hm run` and `hm shell`.
#[derive(Debug, Clone, Default, Args)]
pub struct BuildArgs {
    /// Steps executing at once (default: the number of CPUs; 0 is 1)
    #[arg(short = 'j', long, value_name = "N", env = "HM_PARALLELISM")]
    pub parallelism: Option<usize>,
    /// Set KEY=VALUE in every step's environment (after the pipeline's
    /// own), and in a shell's
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The VM backend (default: sandbox)
    #[arg(long, value_enum, env = "HM_BACKEND")]
    pub backend: Option<BackendFlag>,
    /// Execute every step, even cached ones, and refresh their entries
    #[arg(long)]
    pub no_cache: bool,
    /// The steps' network: `host` (the host's own) or `none` (only a
    /// private loopback) [default: `network` in the configuration, else the
    /// pipeline's, else host]
    #[arg(long, value_enum, env = "HM_NETWORK", value_name = "MODE")]
    pub network: Option<NetworkName>,
    /// When to pull the images the pipeline names (sandbox backend)
    /// [default: `[images] pull` in the configuration, else missing]
    #[arg(long, value_enum, env = "HM_PULL", value_name = "WHEN")]
    pub pull: Option<PullPolicy>,
    /// A snapshot cache shared through an OCI registry: a repository such
    /// as `ghcr.io/team/hm-cache` [default: `[cache] remote` in the
    /// configuration]
    #[arg(long, env = "HM_CACHE_REMOTE", value_name = "REPOSITORY")]
    pub cache_remote_url: Option<String>,
    /// How the remote cache is used: `write` (look entries up and push new
    /// ones), `read` (look up only) or `off` [default: `[cache]
    /// remote_mode` in the configuration, else write]
    #[arg(long, value_enum, env = "HM_CACHE_REMOTE_MODE", value_name = "MODE")]
    pub cache_remote: Option<RemoteMode>,
}

/// What each step of `hm run` may use, over `[resources]` and the `HM_*`
/// variables; a step's own `runner_args` win over these.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Limits of each step")]
pub struct LimitArgs {
    /// Memory of each step, such as `4GiB`; `none` (or 0) for no limit
    /// [default: HM_MEMORY, else `[resources] memory` in the configuration,
    /// else 8GiB]
    #[arg(long, value_name = "SIZE", value_parser = Limit::size)]
    pub memory: Option<Limit>,
    /// CPUs of each step, such as `2` or `0.5`; `none` (or 0) for no limit
    /// [default: HM_CPUS, else `[resources] cpus` in the configuration,
    /// else all]
    #[arg(long, value_name = "N", value_parser = Limit::cpus)]
    pub cpus: Option<Limit>,
    /// Processes and threads of each step at once; `none` (or 0) for no
    /// limit [default: HM_PIDS, else `[resources] pids` in the
    /// configuration, else 4096]
    #[arg(long, value_name = "N", value_parser = Limit::count)]
    pub pids: Option<Limit>,
    /// What each step may write to its filesystem, such as `20GB`; `none`
    /// (or 0) for no limit [default: HM_DISK, else `[resources] disk` in
    /// the configuration, else 10GB]
    #[arg(long, value_name = "SIZE", value_parser = Limit::size)]
    pub disk: Option<Limit>,
}

impl LimitArgs {
    /// `limits` with the flags given over them.
    pub fn over(&self, limits: hm_vm::Limits) -> hm_vm::Limits {
        let flag = |flag: Option<Limit>, limit: Option<u64>| flag.map_or(limit, |Limit(given)| given);
        hm_vm::Limits {
            memory: flag(self.memory, limits.memory),
            millicpus: flag(self.cpus, limits.millicpus),
            pids: flag(self.pids, limits.pids),
            disk: flag(self.disk, limits.disk),
            disk_explicit: limits.disk_explicit || self.disk.is_some(),
        }
    }
}

/// `hm cache push` and `hm cache pull`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Only entries of this pipeline (its slug)
    pub pipeline: Option<String>,
    /// The remote cache's repository [default: `[cache] remote` in the
    /// configuration]
    #[arg(long, env = "HM_CACHE_REMOTE", value_name = "REPOSITORY")]
    pub cache_remote_url: Option<String>,
}

/// `hm cache save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The directory to save into (made if missing; what it held before and
    /// no saved entry uses is removed)
    #[arg(value_name = "DIR")]
    pub target: PathBuf,
    /// Save every entry of the cache, not only this project's
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// `hm cache restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The directory `hm cache save` wrote (a missing one restores
    /// nothing)
    #[arg(value_name = "DIR")]
    pub source: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// What `hm cache save` and `restore` work the project's cache keys out
/// from: `hm run`'s options, which the keys depend on (`-e`, `--backend`,
/// `--network`, `--cache-remote-url`); give the ones the run is given.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub build: BuildArgs,
}

/// How a build uses the remote cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteMode {
    /// Look entries up and push new ones
    Write,
    /// Look entries up only
    Read,
    /// Do not use it
    Off,
}

/// `hm shell`'s step, as `hm run` gets it.
#[derive(Debug, Clone)]
pub struct ShellTarget {
    /// A key or label.
    pub step: String,
    /// Before the step (it does not run), not after it.
    pub before: bool,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The step (key or label), after the pipeline's slug when the project
    /// has several pipelines
    #[arg(value_name = "[PIPELINE] STEP", required = true, num_args = 1..=2)]
    pub words: Vec<String>,
    /// Open the shell in the state before the step (its parent's, with the
    /// workspace synced as the step would see it); the step does not run
    #[arg(long)]
    pub before: bool,
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub build: BuildArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The CI engine to write the configuration for
    #[arg(value_enum)]
    pub engine: Engine,
    /// The pipeline's slug (may be left out when there is only one)
    pub pipeline: Option<String>,
    /// One job per step, or per chain of steps that build in one another
    #[arg(long, value_enum, value_name = "JOB", default_value_t = Per::Step)]
    pub per: Per,
    #[command(flatten)]
    pub project: ProjectArgs,
}

/// The CI engines `hm export` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// GitHub Actions: a workflow (`.github/workflows/hm-PIPELINE.yml`)
    Github,
    /// GitLab CI: `.gitlab-ci.yml`
    Gitlab,
    /// Buildkite: `.buildkite/pipeline.yml`
    Buildkite,
}

/// `hm export --per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Per {
    /// One job per step
    Step,
    /// One job per chain of steps that each build in the one before
    Chain,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The stack (default: detected from the project's files, else `shell`)
    #[arg(short = 't', long, value_enum, value_name = "TEMPLATE")]
    pub template: Option<Template>,
    /// The language of the pipeline file
    #[arg(long, value_enum, default_value_t = Lang::Py)]
    pub lang: Lang,
    /// Overwrite an existing pipeline file
    #[arg(long)]
    pub force: bool,
    /// Project directory (default: the current directory)
    #[arg(short = 'd', long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The languages `hm init` writes pipelines in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// `.hm/pipeline.py` (`import harmont as hm`)
    #[value(alias = "python")]
    Py,
    /// `.hm/pipeline.ts` (`@harmont/hm`)
    #[value(alias = "typescript")]
    Ts,
}

/// The stacks `hm init` writes pipelines for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    Rust,
    Go,
    /// Python with uv (`hm.python`)
    Python,
    /// Python with uv (`hm.py.uv`)
    Uv,
    /// JavaScript: node, bun or deno, picked from package.json and the lock files
    #[value(alias = "nextjs")]
    Js,
    /// TypeScript: as `js`
    Ts,
    Cmake,
    Zig,
    Elixir,
    /// Plain shell commands on the host's root filesystem
    Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// `--network`, `HM_NETWORK` and `network` in config.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkName {
    /// The host's network, its loopback services included
    Host,
    /// A private network namespace with only loopback
    None,
}

/// `--pull`, `HM_PULL` and `[images] pull` in config.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull images that are not stored locally
    Missing,
    /// Check the registry for every pulled image, and pull what changed
    Always,
    /// Never pull: a missing image is an error
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    Sandbox,
    Docker,
}

/// `--backend` of `hm run` and `hm shell`: one of ours, or Harmont's
/// `cloud`, accepted only to be refused with a word on what it is (exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendFlag {
    Sandbox,
    Docker,
    /// Harmont's hosted service (not part of this hm)
    #[value(hide = true)]
    Cloud,
}

impl BackendFlag {
    /// The VM backend it names; `None` for `cloud`.
    pub fn vm(self) -> Option<BackendName> {
        match self {
            BackendFlag::Sandbox => Some(BackendName::Sandbox),
            BackendFlag::Docker => Some(BackendName::Docker),
            BackendFlag::Cloud => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry (`ubuntu:24.04`, `ghcr.io/o/i:tag`, `name@sha256:...`)
    Pull {
        reference: String,
        /// The platform to pick from an image index, as `linux/arm64/v8` (default: this machine's)
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
    },
    /// Import a root filesystem (a directory, or a tar archive such as `docker export` makes) as NAME
    Import { name: String, path: PathBuf },
    /// List pulled and imported images
    Ls {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Remove an image, and the blobs no other image uses
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List cache entries, then cache volumes
    Ls {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// List only cache volumes (JSON: an array of volumes)
        #[arg(long)]
        volumes: bool,
    },
    /// Show the space the cache takes, in total and by pipeline
    Du {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Evict least-recently-used entries until the cache is within bounds
    Prune {
        /// Keep at most N entries (default: the configured bound)
        #[arg(long, value_name = "N")]
        max_entries: Option<u64>,
        /// Keep at most SIZE bytes, e.g. `5GiB` (default: the configured bound)
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Also evict entries not used for DURATION, e.g. `7d`, `12h`
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Wait for running builds to let go of entries they use
        #[arg(long)]
        wait: bool,
    },
    /// Remove every entry and every cache volume
    Clean {
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
        /// Wait for running builds to let go of entries they use
        #[arg(long)]
        wait: bool,
    },
    /// Push this project's entries (of PIPELINE, or every pipeline's) to
    /// the remote cache, e.g. to warm CI's cache from a laptop
    Push(RemoteArgs),
    /// Take this project's entries (of PIPELINE, or every pipeline's) in
    /// from the remote cache
    Pull(RemoteArgs),
    /// Save the entries this project's pipelines would use (or every
    /// entry, with `--all`) into DIR as content-addressed files, for a CI
    /// cache (`actions/cache`, GitLab's `cache:`) to keep; prints the
    /// directory's cache key on stdout
    Save(SaveArgs),
    /// Take the entries saved in DIR into the cache, every file checked
    /// against its digest; prints the cache key of what this project's
    /// pipelines would use on stdout
    Restore(RestoreArgs),
    /// Remove entries (and the entries built on them) by step or by key,
    /// and cache volumes by name
    Rm {
        /// A step of this project (every entry of that step), or a key, or
        /// the start of one as `hm cache ls` shows it
        #[arg(required_unless_present = "volumes", value_name = "STEP|KEY")]
        keys: Vec<String>,
        /// Only steps of this pipeline
        #[arg(long, value_name = "SLUG")]
        pipeline: Option<String>,
        /// Remove this project's cache volume NAME (every image's, every
        /// instance); may be repeated
        #[arg(long = "volume", value_name = "NAME")]
        volumes: Vec<String>,
        /// Wait for running builds to let go of entries and volumes they use
        #[arg(long)]
        wait: bool,
    },
}
