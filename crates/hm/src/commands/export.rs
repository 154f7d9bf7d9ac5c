//! `hm export ENGINE [PIPELINE]`: a pipeline as the configuration of a CI
//! engine (GitHub Actions, GitLab CI, Buildkite), one job per step or per
//! chain, each job setting up hm and running `hm run PIPELINE --step KEY`.
//!
//! Three parts: [`Jobs::new`] groups the plan's steps into jobs and works
//! out what each job needs (where the IR's semantics are kept, the same for
//! every engine); one function per engine turns the jobs into a [`Yaml`]
//! tree, refusing what that engine cannot express; [`render`] writes it.
//! docs/ci-engines.md is the user's side of this, and docs/decisions.md
//! ("Export to CI engines") says why the YAML is written here.

mod yaml;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use hm_exec::exit_codes;
use hm_ir::{Plan, StepIdx};
use serde_json::Value;

use super::load;
use super::pipelines::select;
use crate::cli::{Engine, ExportArgs, Per};
use crate::error::CliError;
use yaml::{render, Yaml};

/// What a pipeline needs that an engine cannot express.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(
        "pipeline `{slug}` has a timeout for the whole build (`timeout_seconds` {seconds}), which {engine} has no \
         equivalent for (it times out jobs one by one); leave it out of the pipeline to export it"
    )]
    PipelineTimeout { slug: String, seconds: u64, engine: Engine },
    #[error(
        "step `{step}`: `continue_on_failure` on a step that builds in `{parent}` has no equivalent in {engine}: \
         `when: always` would also run it after `{parent}` failed, and needs have no conditions of their own; \
         export it for github or buildkite, or make `{step}` a root step"
    )]
    LenientWithParent {
        step: String,
        parent: String,
        engine: Engine,
    },
    #[error("step `{step}` waits for {count} jobs, and {engine} allows at most {max} `needs` per job")]
    TooManyNeeds {
        step: String,
        count: usize,
        max: usize,
        engine: Engine,
    },
    #[error("pipeline `{slug}`, trigger `{trigger}`: {reason}")]
    Trigger {
        slug: String,
        trigger: String,
        reason: String,
    },
    #[error("pipeline `{slug}` has no triggers and does not allow manual runs: nothing would start it in {engine}")]
    NeverRuns { slug: String, engine: Engine },
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Github => "GitHub Actions",
            Engine::Gitlab => "GitLab CI",
            Engine::Buildkite => "Buildkite",
        })
    }
}

/// `hm export`: prints the configuration on stdout.
pub fn export(args: ExportArgs) -> Result<i32, CliError> {
    let (project, loaded) = load(&args.project)?;
    let pipeline = select(&loaded, args.pipeline.as_deref())?;
    let plan = super::pipelines::plan_of(&loaded, pipeline)?;
    let export = Export {
        plan: &plan,
        pipeline,
        jobs: Jobs::new(&plan, args.per),
        per: args.per,
        dir: checkout_relative(&project.root),
    };
    match export.write(args.engine) {
        Ok(text) => {
            crate::output::print(&text)?;
            Ok(exit_codes::PASSED)
        }
        // Not a `CliError`: nothing but `hm export` can fail this way.
        Err(err) => {
            say!("error: {err}");
            Ok(exit_codes::USAGE)
        }
    }
}

/// Where the project is in its checkout, when that is not the checkout's
/// top (the nearest directory upwards with a `.git`): CI jobs start at the
/// top, so `hm run` is given `--dir`.
fn checkout_relative(root: &Path) -> Option<PathBuf> {
    let top = root.ancestors().find(|dir| dir.join(".git").exists())?;
    let rel = root.strip_prefix(top).ok()?;
    (!rel.as_os_str().is_empty()).then(|| rel.to_owned())
}

// ---------------------------------------------------------------------------
// Jobs: the engine-free part.

/// One job: steps run in order, after the jobs it needs.
struct Job {
    /// One step, or a chain in order.
    steps: Vec<StepIdx>,
    /// The jobs it runs after, by index, each once, in job order.
    needs: Vec<Need>,
}

/// A job that another one runs after.
#[derive(Debug, Clone, Copy)]
struct Need {
    job: usize,
    /// Runs only if that job passed (a `builds_in` parent or a plain wait);
    /// else it only orders (a wait with `continue_on_failure`).
    strict: bool,
}

/// A plan's steps grouped into jobs, in topological order: a job's needs
/// all come before it.
struct Jobs {
    jobs: Vec<Job>,
}

impl Jobs {
    /// One job per step, or per chain: a step joins its parent's job when
    /// it is that parent's only child, waits for nothing else, and nothing
    /// else waits for the parent. The last two keep the IR's semantics: a
    /// job runs only after all of its steps' predecessors, and a step that
    /// waited for the middle of a chain would wait for (and be skipped
    /// after a failure of) the whole chain.
    fn new(plan: &Plan, per: Per) -> Self {
        let mut job_of = vec![0; plan.steps.len()];
        let mut jobs: Vec<Job> = Vec::new();
        for &idx in &plan.topo_order {
            let step = &plan.steps[idx];
            let extends = step.parent.filter(|&p| {
                per == Per::Chain
                    && step.depends_on.is_empty()
                    && plan.steps[p].children.len() == 1
                    && plan.steps[p].dependents.is_empty()
            });
            if let Some(parent) = extends {
                job_of[idx] = job_of[parent];
                jobs[job_of[parent]].steps.push(idx);
                continue;
            }
            // A job needed both ways (a parent it also waits for) is strict.
            let mut needs: BTreeMap<usize, bool> = BTreeMap::new();
            if let Some(parent) = step.parent {
                needs.insert(job_of[parent], true);
            }
            let lenient = step.node.step.continue_on_failure;
            for &pred in &step.depends_on {
                *needs.entry(job_of[pred]).or_insert(false) |= !lenient;
            }
            job_of[idx] = jobs.len();
            jobs.push(Job {
                steps: vec![idx],
                needs: needs.into_iter().map(|(job, strict)| Need { job, strict }).collect(),
            });
        }
        Jobs { jobs }
    }

    /// Whether each job runs after a wait with `continue_on_failure`, or
    /// after such a job: where an engine's own rule (a failure anywhere
    /// upstream skips the job) would differ from the IR's.
    fn after_lenient(&self) -> Vec<bool> {
        let mut after = vec![false; self.jobs.len()];
        for (j, job) in self.jobs.iter().enumerate() {
            after[j] = job.needs.iter().any(|n| !n.strict || after[n.job]);
        }
        after
    }
}

impl Job {
    fn head(&self) -> StepIdx {
        self.steps[0]
    }

    fn is_lenient(&self) -> bool {
        self.needs.iter().any(|n| !n.strict)
    }

    /// The sum of its steps' timeouts, when every step has one.
    fn timeout_seconds(&self, plan: &Plan) -> Option<u64> {
        self.steps
            .iter()
            .map(|&s| plan.steps[s].node.step.timeout_seconds)
            .sum()
    }

    /// What to call it where an engine shows a name: its step's label, or
    /// a chain's labels (keys where there is none) joined by arrows; on one
    /// line.
    fn title(&self, plan: &Plan) -> Option<String> {
        let label = |s: StepIdx| {
            let label = plan.steps[s].node.step.label.as_deref().filter(|l| !l.is_empty());
            label.map(one_line)
        };
        match self.steps.as_slice() {
            [only] => label(*only),
            steps => Some(
                steps
                    .iter()
                    .map(|&s| label(s).unwrap_or_else(|| plan.steps[s].key().to_owned()))
                    .collect::<Vec<_>>()
                    .join(" → "),
            ),
        }
    }

    /// The environment every step of the job shares (all of it for one
    /// step), without the variables the job itself runs on: `hm` gives
    /// each step its own whole environment either way.
    fn env(&self, plan: &Plan) -> BTreeMap<String, String> {
        let mut env = plan.steps[self.head()].node.env.clone();
        for &s in &self.steps[1..] {
            env.retain(|k, v| plan.steps[s].node.env.get(k) == Some(v));
        }
        env.retain(|k, _| !host_only(k));
        env
    }
}

/// `text` with its control characters (line breaks) as spaces.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Variables the job's own shell runs on (`hm` is found on `PATH` and
/// configured by `HM_*`); they are not copied into a job's environment.
fn host_only(name: &str) -> bool {
    matches!(name, "PATH" | "HOME") || name.starts_with("HM_")
}

/// Job ids from candidates, in order: a candidate taken already (compared
/// after `fold`) gets `sep` and the first free number from 2.
fn unique(candidates: impl IntoIterator<Item = String>, sep: &str, fold: fn(&str) -> String) -> Vec<String> {
    let mut taken = HashSet::new();
    candidates
        .into_iter()
        .map(|candidate| {
            let mut id = candidate.clone();
            let mut n = 2;
            while !taken.insert(fold(&id)) {
                id = format!("{candidate}{sep}{n}");
                n += 1;
            }
            id
        })
        .collect()
}

/// The first `max` characters of `text`.
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// `text` as one word of `sh`.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------------------
// Triggers: what starts the pipeline (hosted CI's business only).

/// A trigger of the envelope (Harmont's `push` and `pull_request`).
#[derive(PartialEq)]
enum Trigger {
    /// A push to a branch or of a tag matching a glob (`*` anything, `?`
    /// one character); neither list: any push.
    Push {
        branches: Option<Vec<String>>,
        tags: Option<Vec<String>>,
    },
    PullRequest {
        /// Target branches (globs); none: any.
        branches: Option<Vec<String>>,
        types: Vec<String>,
    },
}

/// Pull request activity when a trigger names none, as in Harmont's SDKs.
const DEFAULT_PR_TYPES: [&str; 3] = ["opened", "synchronize", "reopened"];

fn parse_trigger(value: &Value) -> Result<Trigger, String> {
    let globs = |field: &str| -> Result<Option<Vec<String>>, String> {
        match value.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| format!("`{field}` must be a list of strings")),
            Some(_) => Err(format!("`{field}` must be a list of strings")),
        }
    };
    match value.get("event").and_then(Value::as_str) {
        Some("push") => Ok(Trigger::Push {
            branches: globs("branches")?,
            tags: globs("tags")?,
        }),
        Some("pull_request") => Ok(Trigger::PullRequest {
            branches: globs("branches")?,
            types: globs("types")?.unwrap_or_else(|| DEFAULT_PR_TYPES.map(str::to_owned).to_vec()),
        }),
        _ => Err("hm export knows the events `push` and `pull_request` only".to_owned()),
    }
}

/// A glob as GitHub's filter pattern: `*` (which crosses `/` in the IR)
/// is `**`; GitHub's other special characters are escaped.
fn github_glob(glob: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push_str("**");
            }
            '?' => {
                return Err(format!(
                    "`{glob}`: GitHub Actions filters have no one-character wildcard (`?`)"
                ))
            }
            '+' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '!' if out.is_empty() => out.push_str("\\!"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A glob as a GitLab (RE2) regular expression literal, anchored.
fn gitlab_regex(glob: &str) -> String {
    let mut out = String::from("/^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            c if r"\.+()[]{}|^$/".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push_str("$/");
    out
}

// ---------------------------------------------------------------------------
// The engines.

/// Everything one export works from.
struct Export<'a> {
    plan: &'a Plan,
    pipeline: &'a hm_ir::Pipeline,
    jobs: Jobs,
    per: Per,
    /// `--dir` for `hm run`, where the project is not the checkout's top.
    dir: Option<PathBuf>,
}

/// The setup step every job starts with (docs/ci-engines.md, "The setup
/// step"): hm installed, registry credentials written, the remote cache
/// checked. On GitHub's hosted runners it also lets hm's sandbox make user
/// namespaces, which Ubuntu keeps behind AppArmor there.
fn setup(engine: Engine) -> String {
    let mut text = String::from(
        r#"# hm export's setup step (hm's guide, "CI engines"): runs the command in
# HM_INSTALL (if set) to install hm on PATH, writes the registry credentials
# in HM_REGISTRY_AUTH, checks for the remote cache in HM_CACHE_REMOTE.
if [ -n "${HM_INSTALL:-}" ]; then eval "$HM_INSTALL" || exit 1; fi
command -v hm >/dev/null || { echo "hm is not on PATH: set the CI variable HM_INSTALL to a command that installs it" >&2; exit 1; }
if [ -n "${HM_REGISTRY_AUTH:-}" ]; then
  mkdir -p "${DOCKER_CONFIG:-$HOME/.docker}" && printf '%s\n' "$HM_REGISTRY_AUTH" > "${DOCKER_CONFIG:-$HOME/.docker}/config.json" || exit 1
fi
[ -n "${HM_CACHE_REMOTE:-}" ] || echo "note: HM_CACHE_REMOTE is not set: the jobs share no snapshots" >&2
"#,
    );
    if engine == Engine::Github {
        text.push_str(
            r#"if [ "${RUNNER_ENVIRONMENT:-}" = github-hosted ] && [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null)" = 1 ]; then
  sudo sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=0 || exit 1
fi
"#,
        );
    }
    text.push_str("hm version\n");
    text
}

/// GitLab allows this many `needs` per job.
const GITLAB_MAX_NEEDS: usize = 50;

impl Export<'_> {
    fn slug(&self) -> &str {
        &self.plan.slug
    }

    /// The configuration for `engine`, header comment included.
    fn write(&self, engine: Engine) -> Result<String, ExportError> {
        if let Some(seconds) = self.plan.timeout_seconds {
            return Err(ExportError::PipelineTimeout {
                slug: self.slug().to_owned(),
                seconds,
                engine,
            });
        }
        // Buildkite takes its triggers from the pipeline's settings.
        if engine == Engine::Buildkite {
            if !self.pipeline.triggers.is_empty() {
                say!(
                    "note: Buildkite starts builds as the pipeline's settings say, not its YAML: set the triggers \
                     of `{}` there",
                    self.slug()
                );
            }
            return Ok(self.document(engine, self.buildkite()));
        }
        let triggers = self
            .pipeline
            .triggers
            .iter()
            .map(|t| {
                parse_trigger(t).map_err(|reason| ExportError::Trigger {
                    slug: self.slug().to_owned(),
                    trigger: t.to_string(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if triggers.is_empty() && !self.pipeline.allow_manual {
            return Err(ExportError::NeverRuns {
                slug: self.slug().to_owned(),
                engine,
            });
        }
        let doc = match engine {
            Engine::Github => self.github(&triggers)?,
            _ => self.gitlab(&triggers)?,
        };
        if triggers.is_empty() {
            say!(
                "note: pipeline `{}` has no triggers: the configuration starts it only by hand",
                self.slug()
            );
        }
        Ok(self.document(engine, doc))
    }

    /// `doc` after a header comment saying where it came from.
    fn document(&self, engine: Engine, doc: Yaml) -> String {
        let secrets = match engine {
            Engine::Github => "the variable HM_INSTALL and the secrets",
            Engine::Gitlab => "the CI/CD variables HM_INSTALL,",
            Engine::Buildkite => "the environment variables HM_INSTALL,",
        };
        let command = match self.per {
            Per::Step => format!("hm export {} {}", engine_word(engine), self.slug()),
            Per::Chain => format!("hm export {} {} --per chain", engine_word(engine), self.slug()),
        };
        let header = [
            format!("Made by `{command}`: export again after changing the pipeline."),
            format!(
                "Each job sets up hm, then runs `hm run {} --step KEY` for its steps.",
                self.slug()
            ),
            format!("It reads {secrets} HM_CACHE_REMOTE and HM_REGISTRY_AUTH"),
            "(hm's guide, \"CI engines\").".to_owned(),
        ];
        render(&header, &doc)
    }

    /// `hm run` for one step, as one line of `sh`.
    fn run_line(&self, step: StepIdx) -> String {
        let key = self.plan.steps[step].key();
        // A key that starts with `-` would read as an option.
        let step = match key.starts_with('-') {
            true => format!("--step={}", shell_word(key)),
            false => format!("--step {}", shell_word(key)),
        };
        let mut line = format!("hm run {} {step}", self.slug());
        if let Some(dir) = &self.dir {
            line.push_str(&format!(" --dir {}", shell_word(&dir.to_string_lossy())));
        }
        line
    }

    /// A job's timeout in whole minutes, rounded up.
    fn minutes(seconds: u64) -> u64 {
        seconds.div_ceil(60)
    }

    fn key(&self, step: StepIdx) -> &str {
        self.plan.steps[step].key()
    }

    /// GitHub Actions: a workflow, one job per job; a job that runs after a
    /// `continue_on_failure` wait (or after such a job) states which of its
    /// needs must have passed, since GitHub's default would skip it after
    /// any failure upstream.
    fn github(&self, triggers: &[Trigger]) -> Result<Yaml, ExportError> {
        let plan = self.plan;
        let ids = unique(
            self.jobs.jobs.iter().map(|j| {
                let mut id: String = self
                    .key(j.head())
                    .chars()
                    .map(|c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        true => c,
                        false => '-',
                    })
                    .collect();
                if !id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                    id.insert(0, '_');
                }
                cut(&id, 90)
            }),
            "-",
            str::to_ascii_lowercase,
        );
        let after_lenient = self.jobs.after_lenient();
        let mut jobs = Vec::new();
        for (j, job) in self.jobs.jobs.iter().enumerate() {
            let mut entries = Vec::new();
            if let Some(title) = job.title(plan) {
                entries.push(("name", Yaml::str(github_text(&title))));
            }
            if !job.needs.is_empty() {
                let needs = job.needs.iter().map(|n| Yaml::str(&ids[n.job])).collect();
                entries.push(("needs", Yaml::Seq(needs)));
            }
            if after_lenient[j] {
                let mut condition = vec!["!cancelled()".to_owned()];
                for need in job.needs.iter().filter(|n| n.strict) {
                    condition.push(format!("needs['{}'].result == 'success'", ids[need.job]));
                }
                entries.push(("if", Yaml::str(format!("${{{{ {} }}}}", condition.join(" && ")))));
            }
            entries.push(("runs-on", Yaml::str("ubuntu-latest")));
            let env = job.env(plan);
            if !env.is_empty() {
                entries.push((
                    "env",
                    Yaml::map(env.iter().map(|(k, v)| (k, Yaml::str(github_text(v))))),
                ));
            }
            let mut steps = vec![
                Yaml::map([("uses", Yaml::str("actions/checkout@v4"))]),
                Yaml::map([
                    ("name", Yaml::str("Set up hm")),
                    ("run", Yaml::Text(setup(Engine::Github))),
                ]),
            ];
            for &s in &job.steps {
                let step = &plan.steps[s].node.step;
                let name = one_line(step.label.as_deref().filter(|l| !l.is_empty()).unwrap_or(&step.key));
                let mut entries = vec![
                    ("name", Yaml::str(github_text(&name))),
                    ("run", Yaml::str(github_text(&self.run_line(s)))),
                ];
                // On the step, not the job: setting hm up is not the step's time.
                if let Some(seconds) = step.timeout_seconds {
                    entries.push(("timeout-minutes", Yaml::Int(Self::minutes(seconds))));
                }
                steps.push(Yaml::map(entries));
            }
            entries.push(("steps", Yaml::Seq(steps)));
            jobs.push((ids[j].clone(), Yaml::map(entries)));
        }
        let name = match self.pipeline.name.is_empty() {
            true => self.slug().to_owned(),
            false => self.pipeline.name.clone(),
        };
        let secret = |name: &str| Yaml::str(format!("${{{{ secrets.{name} }}}}"));
        Ok(Yaml::map([
            ("name", Yaml::str(github_text(&name))),
            ("on", self.github_on(triggers)?),
            ("permissions", Yaml::map([("contents", Yaml::str("read"))])),
            (
                "env",
                Yaml::map([
                    ("HM_INSTALL", Yaml::str("${{ vars.HM_INSTALL }}")),
                    ("HM_CACHE_REMOTE", secret("HM_CACHE_REMOTE")),
                    ("HM_REGISTRY_AUTH", secret("HM_REGISTRY_AUTH")),
                ]),
            ),
            ("jobs", Yaml::Map(jobs)),
        ]))
    }

    /// The workflow's `on`: pushes and pull requests merged into one filter
    /// each (triggers are alternatives), `workflow_dispatch` for manual runs.
    fn github_on(&self, triggers: &[Trigger]) -> Result<Yaml, ExportError> {
        let bad = |trigger: &Trigger, reason: String| ExportError::Trigger {
            slug: self.slug().to_owned(),
            trigger: match trigger {
                Trigger::Push { .. } => "push".to_owned(),
                Trigger::PullRequest { .. } => "pull_request".to_owned(),
            },
            reason,
        };
        let mut on = Vec::new();
        let (mut any_push, mut branches, mut tags) = (false, Vec::new(), Vec::new());
        let mut pull_request = None;
        for trigger in triggers {
            match trigger {
                Trigger::Push {
                    branches: None,
                    tags: None,
                } => any_push = true,
                Trigger::Push { branches: b, tags: t } => {
                    for (globs, into) in [(b, &mut branches), (t, &mut tags)] {
                        for glob in globs.iter().flatten() {
                            let glob = github_glob(glob).map_err(|r| bad(trigger, r))?;
                            if !into.contains(&glob) {
                                into.push(glob);
                            }
                        }
                    }
                }
                Trigger::PullRequest { branches, types } => match pull_request {
                    Some((first, _, _)) if first != trigger => {
                        let reason = "several pull request triggers with different branches or types: a GitHub \
                                      workflow has one `pull_request` filter"
                            .to_owned();
                        return Err(bad(trigger, reason));
                    }
                    _ => pull_request = Some((trigger, branches, types)),
                },
            }
        }
        let list = |globs: &[String]| Yaml::Seq(globs.iter().map(Yaml::str).collect());
        if any_push {
            on.push(("push".to_owned(), Yaml::Map(Vec::new())));
        } else if !branches.is_empty() || !tags.is_empty() {
            let mut push = Vec::new();
            if !branches.is_empty() {
                push.push(("branches".to_owned(), list(&branches)));
            }
            if !tags.is_empty() {
                push.push(("tags".to_owned(), list(&tags)));
            }
            on.push(("push".to_owned(), Yaml::Map(push)));
        }
        if let Some((trigger, branches, types)) = pull_request {
            let mut pr = Vec::new();
            if let Some(branches) = branches {
                let globs = branches
                    .iter()
                    .map(|g| github_glob(g).map_err(|r| bad(trigger, r)))
                    .collect::<Result<Vec<_>, _>>()?;
                pr.push(("branches".to_owned(), list(&globs)));
            }
            pr.push(("types".to_owned(), list(types)));
            on.push(("pull_request".to_owned(), Yaml::Map(pr)));
        }
        if self.pipeline.allow_manual {
            on.push(("workflow_dispatch".to_owned(), Yaml::Map(Vec::new())));
        }
        Ok(Yaml::Map(on))
    }

    /// GitLab CI: one job per job (named after its label where it has one),
    /// `needs` for the edges; the setup step is every job's
    /// `before_script`, the triggers `workflow: rules`.
    fn gitlab(&self, triggers: &[Trigger]) -> Result<Yaml, ExportError> {
        let plan = self.plan;
        for job in &self.jobs.jobs {
            let head = job.head();
            if job.needs.len() > GITLAB_MAX_NEEDS {
                return Err(ExportError::TooManyNeeds {
                    step: self.key(head).to_owned(),
                    count: job.needs.len(),
                    max: GITLAB_MAX_NEEDS,
                    engine: Engine::Gitlab,
                });
            }
            if let (true, Some(parent)) = (job.is_lenient(), plan.steps[head].parent) {
                return Err(ExportError::LenientWithParent {
                    step: self.key(head).to_owned(),
                    parent: self.key(parent).to_owned(),
                    engine: Engine::Gitlab,
                });
            }
        }
        let names = unique(
            self.jobs.jobs.iter().map(|j| {
                let title = j.title(plan).unwrap_or_else(|| self.key(j.head()).to_owned());
                let clean = one_line(&title).trim().to_owned();
                // Top-level keywords, and `.` (hidden jobs), are no job names.
                let reserved = GITLAB_KEYWORDS.contains(&clean.as_str()) || clean.is_empty() || clean.starts_with('.');
                cut(&if reserved { format!("step {clean}") } else { clean }, 200)
            }),
            " ",
            str::to_owned,
        );
        let mut rules = Vec::new();
        for trigger in triggers {
            for rule in self.gitlab_rules(trigger)? {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
        if self.pipeline.allow_manual {
            rules.push(r#"$CI_PIPELINE_SOURCE == "web""#.to_owned());
        }
        let mut workflow = Vec::new();
        let name = &self.pipeline.name;
        // `workflow: name` expands variables: a name with `$` is left out.
        if !name.is_empty() && !name.contains('$') && !name.chars().any(char::is_control) {
            workflow.push(("name".to_owned(), Yaml::str(name)));
        }
        let rules = rules.into_iter().map(|r| Yaml::map([("if", Yaml::Str(r))])).collect();
        workflow.push(("rules".to_owned(), Yaml::Seq(rules)));
        let mut doc = vec![
            ("workflow".to_owned(), Yaml::Map(workflow)),
            (
                "default".to_owned(),
                Yaml::map([("before_script", Yaml::Seq(vec![Yaml::Text(setup(Engine::Gitlab))]))]),
            ),
        ];
        for (j, job) in self.jobs.jobs.iter().enumerate() {
            let mut entries = Vec::new();
            if !job.needs.is_empty() {
                let needs = job.needs.iter().map(|n| Yaml::str(&names[n.job])).collect();
                entries.push(("needs", Yaml::Seq(needs)));
            }
            if job.is_lenient() {
                entries.push(("when", Yaml::str("always")));
            }
            if let Some(seconds) = job.timeout_seconds(plan) {
                entries.push(("timeout", Yaml::str(format!("{}m", Self::minutes(seconds)))));
            }
            let env = job.env(plan);
            if !env.is_empty() {
                // GitLab expands `$` in variables unless told not to.
                let value = |v: &String| match v.contains('$') {
                    true => Yaml::map([("value", Yaml::str(v)), ("expand", Yaml::Bool(false))]),
                    false => Yaml::str(v),
                };
                entries.push(("variables", Yaml::map(env.iter().map(|(k, v)| (k, value(v))))));
            }
            let script = job.steps.iter().map(|&s| Yaml::Str(self.run_line(s))).collect();
            entries.push(("script", Yaml::Seq(script)));
            doc.push((names[j].clone(), Yaml::map(entries)));
        }
        Ok(Yaml::Map(doc))
    }

    /// The `workflow: rules` conditions that start the pipeline on `trigger`.
    fn gitlab_rules(&self, trigger: &Trigger) -> Result<Vec<String>, ExportError> {
        const PUSH: &str = r#"$CI_PIPELINE_SOURCE == "push""#;
        const MERGE_REQUEST: &str = r#"$CI_PIPELINE_SOURCE == "merge_request_event""#;
        let each = |head: &str, variable: &str, globs: &[String]| {
            globs
                .iter()
                .map(|g| format!("{head} && ${variable} =~ {}", gitlab_regex(g)))
                .collect::<Vec<_>>()
        };
        Ok(match trigger {
            Trigger::Push {
                branches: None,
                tags: None,
            } => vec![PUSH.to_owned()],
            Trigger::Push { branches, tags } => {
                let mut rules = each(PUSH, "CI_COMMIT_BRANCH", branches.as_deref().unwrap_or_default());
                rules.extend(each(PUSH, "CI_COMMIT_TAG", tags.as_deref().unwrap_or_default()));
                rules
            }
            Trigger::PullRequest { branches, types } => {
                if let Some(other) = types.iter().find(|t| !DEFAULT_PR_TYPES.contains(&t.as_str())) {
                    return Err(ExportError::Trigger {
                        slug: self.slug().to_owned(),
                        trigger: "pull_request".to_owned(),
                        reason: format!(
                            "GitLab runs merge request pipelines when a request is opened or updated, not when it is `{other}`"
                        ),
                    });
                }
                match branches {
                    None => vec![MERGE_REQUEST.to_owned()],
                    Some(globs) => each(MERGE_REQUEST, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME", globs),
                }
            }
        })
    }

    /// Buildkite: one command step per job, keyed, with `depends_on`; a
    /// wait with `continue_on_failure` is a dependency with
    /// `allow_failure`. Buildkite interpolates `$` when it reads the
    /// pipeline, so every text has its `$` doubled.
    fn buildkite(&self) -> Yaml {
        let plan = self.plan;
        let ids = unique(
            self.jobs.jobs.iter().map(|j| {
                let mut key: String = self
                    .key(j.head())
                    .chars()
                    .map(
                        |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':' {
                            true => c,
                            false => '-',
                        },
                    )
                    .collect();
                // Buildkite refuses keys shaped like a UUID.
                if looks_like_uuid(&key) {
                    key.insert_str(0, "step-");
                }
                cut(&key, 90)
            }),
            "-",
            str::to_ascii_lowercase,
        );
        let bk = |text: &str| Yaml::str(text.replace('$', "$$"));
        let mut steps = Vec::new();
        for (j, job) in self.jobs.jobs.iter().enumerate() {
            let mut entries = vec![("key", Yaml::str(&ids[j]))];
            if let Some(title) = job.title(plan) {
                entries.push(("label", bk(&title)));
            }
            if !job.needs.is_empty() {
                let needs = job
                    .needs
                    .iter()
                    .map(|n| match n.strict {
                        true => Yaml::str(&ids[n.job]),
                        false => Yaml::map([("step", Yaml::str(&ids[n.job])), ("allow_failure", Yaml::Bool(true))]),
                    })
                    .collect();
                entries.push(("depends_on", Yaml::Seq(needs)));
            }
            let mut commands = vec![Yaml::Text(setup(Engine::Buildkite).replace('$', "$$"))];
            commands.extend(job.steps.iter().map(|&s| bk(&self.run_line(s))));
            entries.push(("commands", Yaml::Seq(commands)));
            if let Some(seconds) = job.timeout_seconds(plan) {
                entries.push(("timeout_in_minutes", Yaml::Int(Self::minutes(seconds))));
            }
            let env = job.env(plan);
            if !env.is_empty() {
                entries.push(("env", Yaml::map(env.iter().map(|(k, v)| (k, bk(v))))));
            }
            steps.push(Yaml::map(entries));
        }
        Yaml::map([("steps", Yaml::Seq(steps))])
    }
}

fn engine_word(engine: Engine) -> &'static str {
    match engine {
        Engine::Github => "github",
        Engine::Gitlab => "gitlab",
        Engine::Buildkite => "buildkite",
    }
}

/// `text` with GitHub's expression opener `${{` written as an expression
/// that gives it, so that GitHub reads the text as it is.
fn github_text(text: &str) -> String {
    text.replace("${{", "${{ '${{' }}")
}

/// GitLab's top-level keywords (and YAML's words for true, false and
/// null), which no job may be named.
const GITLAB_KEYWORDS: [&str; 17] = [
    "image",
    "services",
    "stages",
    "types",
    "before_script",
    "after_script",
    "variables",
    "cache",
    "include",
    "default",
    "workflow",
    "pages",
    "spec",
    "true",
    "false",
    "nil",
    "$schema",
];

fn looks_like_uuid(key: &str) -> bool {
    let groups: Vec<&str> = key.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}
