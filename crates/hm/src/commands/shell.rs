//! `hm shell [PIPELINE] STEP` and `hm run --shell-on-failure`: an
//! interactive shell in a step's state, on the terminal `hm` runs in.
//!
//! `hm shell STEP` is `hm run --until STEP` asking the build to keep a VM
//! in the step's state ([`hm_exec::ShellPoint`]), shown as one line per
//! step instead of the build's view. Once every step is done the build
//! hands that VM over as a [`ShellSession`]; [`Front::serve`] says where
//! the shell is and opens it on the terminal, while `hm` prints nothing and
//! ignores Ctrl-C (the shell has the terminal's foreground). Its exit
//! status is `hm shell`'s. Dropping the session sends the VM back to the
//! build, which destroys it: nothing done in the shell is kept.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hm_exec::{ShellHook, ShellPoint, ShellSession};
use hm_ir::Plan;
use hm_render::{format_duration, step_name, Renderer};
use hm_vm::Terminal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::cli::{RunArgs, ShellArgs, ShellTarget};
use crate::error::CliError;

/// `hm shell`: runs what the step needs, then a shell in its state.
pub async fn shell(args: ShellArgs) -> Result<i32, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NoTerminal);
    }
    let (pipeline, step) = match args.words.as_slice() {
        [step] => (None, step.clone()),
        [pipeline, step] => (Some(pipeline.clone()), step.clone()),
        _ => unreachable!("clap takes one or two words"),
    };
    let run = RunArgs {
        pipeline,
        until: Some(step.clone()),
        project: args.project,
        build: args.build,
        shell: Some(ShellTarget {
            step,
            before: args.before,
        }),
        ..RunArgs::default()
    };
    super::run::run(run).await
}

/// What a run wants of a shell.
enum Wanted {
    /// `hm shell`: one in this step's state; its exit status is `hm`'s.
    Step(String),
    /// `--shell-on-failure`: one in the first failed step's state.
    OnFailure,
}

/// The front end's side of a build's shell: receives the session, opens
/// it on the terminal, and says what became of it.
pub struct Front {
    wanted: Option<Wanted>,
    sessions: mpsc::Receiver<ShellSession>,
    /// Set while a shell has the terminal: interrupts are the shell's.
    open: Arc<AtomicBool>,
    /// What became of the shell, once one was opened.
    ended: Option<Ended>,
}

/// How a shell ended.
#[derive(Debug, Clone, Copy)]
enum Ended {
    Exited(i32),
    /// It could not run (the error is said).
    Failed,
    /// `hm` got a SIGTERM and closed it.
    Terminated,
}

impl Front {
    /// The shell `args` ask for, with the hook the build of `plan` needs
    /// for it. `--shell-on-failure` without a terminal is said and left out.
    pub fn new(args: &RunArgs, plan: &Plan) -> (Option<ShellHook>, Front) {
        let (sender, sessions) = mpsc::channel(1);
        let (wanted, at) = match (&args.shell, args.shell_on_failure) {
            (Some(target), _) => match find(plan, &target.step) {
                Some(idx) if target.before => (Some(Wanted::Step(target.step.clone())), Some(ShellPoint::Before(idx))),
                Some(idx) => (Some(Wanted::Step(target.step.clone())), Some(ShellPoint::After(idx))),
                None => (Some(Wanted::Step(target.step.clone())), None),
            },
            (None, true) if std::io::stdin().is_terminal() => (Some(Wanted::OnFailure), Some(ShellPoint::OnFailure)),
            (None, true) => {
                say!("warning: --shell-on-failure needs a terminal (standard input is not one); no shell will open");
                (None, None)
            }
            (None, false) => (None, None),
        };
        let hook = at.map(|at| ShellHook { at, sessions: sender });
        let front = Front {
            wanted,
            sessions,
            open: Arc::new(AtomicBool::new(false)),
            ended: None,
        };
        (hook, front)
    }

    /// Set while a shell has the terminal.
    pub fn open_flag(&self) -> Arc<AtomicBool> {
        self.open.clone()
    }

    /// The session the build hands over, if it does (never, without a
    /// hook).
    pub async fn next(&mut self) -> Option<ShellSession> {
        self.sessions.recv().await
    }

    /// Opens `session`'s shell on the terminal (the view paused first,
    /// nothing printed meanwhile), then lets it go: its VM goes back to
    /// the build to be destroyed. A SIGTERM closes the shell (Ctrl-C is
    /// the shell's own).
    pub async fn serve(&mut self, mut session: ShellSession, renderer: &mut dyn Renderer) {
        let _ = renderer.pause();
        let terminal = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| Terminal::new(fd, crate::host::term()).ok());
        let Some(terminal) = terminal else {
            crate::error::report(&CliError::NoTerminal);
            self.ended = Some(Ended::Failed);
            return;
        };
        let mut terminate = signal(SignalKind::terminate()).ok();
        let _ = std::io::stdout().flush();
        say!("{}", banner(&session));
        self.open.store(true, Ordering::SeqCst);
        // Dropped on a SIGTERM, the shell's future takes it down: the
        // sandbox's helper is killed, the docker exec goes with its VM,
        // and the terminal is given back either way.
        let result = tokio::select! {
            result = session.open(terminal) => Some(result),
            Some(()) = async { terminate.as_mut()?.recv().await } => None,
        };
        // After a SIGTERM the flag stays: the build, whose steps are done,
        // only cleans up, and is not to say it was interrupted.
        if result.is_some() {
            self.open.store(false, Ordering::SeqCst);
        }
        let name = step_name(&session.key, &session.display_name).to_owned();
        self.ended = Some(match result {
            Some(Ok(code)) => {
                say!("hm: left the shell in `{name}` (exit {code}); what it changed is gone");
                Ended::Exited(code)
            }
            Some(Err(source)) => {
                crate::error::report(&CliError::Shell { step: name, source });
                Ended::Failed
            }
            None => {
                say!("hm: terminated; the shell in `{name}` is closed and what it changed is gone");
                Ended::Terminated
            }
        });
    }

    /// `hm`'s exit code: for `hm shell`, the shell's exit status (or,
    /// when no shell ran, the build's, said why); otherwise the build's;
    /// 130 after a SIGTERM closed the shell.
    pub fn exit_code(&self, build: i32) -> i32 {
        match (&self.wanted, self.ended) {
            (_, Some(Ended::Terminated)) => hm_exec::exit_codes::INTERRUPTED,
            (Some(Wanted::Step(_)), Some(Ended::Exited(code))) => code,
            (Some(Wanted::Step(_)), Some(Ended::Failed)) => hm_exec::exit_codes::FAILED,
            (Some(Wanted::Step(step)), None) => {
                say!("hm: no shell was opened in `{step}`");
                match build {
                    hm_exec::exit_codes::PASSED => hm_exec::exit_codes::FAILED,
                    code => code,
                }
            }
            _ => build,
        }
    }
}

/// The step of `plan` named `name` (its key, else its label).
fn find(plan: &Plan, name: &str) -> Option<hm_ir::StepIdx> {
    let by_key = plan.steps.iter().find(|s| s.key() == name);
    let by_label = || plan.steps.iter().find(|s| s.node.step.label.as_deref() == Some(name));
    by_key.or_else(by_label).map(|s| s.idx)
}

/// The line said before a shell opens.
fn banner(session: &ShellSession) -> String {
    format!(
        "hm: shell in `{}` {} (image `{}`, {}); nothing you do here is kept; `exit` to leave",
        step_name(&session.key, &session.display_name),
        session.state,
        session.image,
        session.backend
    )
}

/// The view of `hm shell`'s build: a line on stderr as each step ends
/// (with the last lines of a failed one), not its output.
pub struct Status {
    names: HashMap<String, String>,
    /// The last lines of each running step.
    tails: HashMap<String, VecDeque<String>>,
}

/// Lines of a failed step's output shown.
const TAIL: usize = 10;

impl Status {
    pub fn new() -> Self {
        Status {
            names: HashMap::new(),
            tails: HashMap::new(),
        }
    }

    fn name<'a>(&'a self, step_id: &'a str) -> &'a str {
        self.names.get(step_id).map_or(step_id, String::as_str)
    }
}

impl Renderer for Status {
    fn event(&mut self, event: &hm_exec::Event) -> std::io::Result<()> {
        use hm_exec::{Event, StepStatus};
        match event {
            Event::StepQueued {
                step_id,
                key,
                display_name,
                ..
            } => {
                self.names
                    .insert(step_id.clone(), step_name(key, display_name).to_owned());
            }
            Event::StepLog { step_id, line, .. } => {
                let tail = self.tails.entry(step_id.clone()).or_default();
                if tail.len() == TAIL {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            Event::StepEnd {
                step_id,
                status,
                exit_code,
                duration_ms,
                message,
                ..
            } => {
                let name = self.name(step_id);
                let what = match status {
                    StepStatus::Passed => format!("passed in {}", format_duration(*duration_ms)),
                    StepStatus::CacheHit => "cached".to_owned(),
                    StepStatus::Failed if *exit_code >= 0 => format!("failed with exit code {exit_code}"),
                    StepStatus::Failed => "failed".to_owned(),
                    StepStatus::TimedOut => "timed out".to_owned(),
                    StepStatus::Canceled => "canceled".to_owned(),
                    StepStatus::Oom => "ran out of memory".to_owned(),
                };
                let message = message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
                say!("hm: `{name}` {what}{message}");
                let tail = self.tails.remove(step_id).unwrap_or_default();
                if !status.is_success() {
                    for line in tail {
                        say!("    {line}");
                    }
                }
            }
            Event::StepSkipped { step_id, reason, .. } => {
                say!("hm: `{}` skipped: {reason}", self.name(step_id));
            }
            _ => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
