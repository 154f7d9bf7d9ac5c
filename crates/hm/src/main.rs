//! `hm`: the command line. Parses flags, resolves them once into what the
//! crates below need, wires backend, build and renderer together, and maps
//! the result to an exit code. No business logic lives here.

#[macro_use]
mod output;
mod cli;
mod commands;
mod config;
mod early;
mod error;
mod history;
mod host;
mod pull;
mod report;
mod settings;
mod watch;

use clap::Parser;

fn main() {
    // The sandbox helper must start before anything creates a thread.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| hm_vm::sandbox::is_helper_invocation(&arg))
    {
        hm_vm::sandbox::helper_main();
    }

    let cli = cli::Cli::parse();
    output::set_color(cli.color_when());
    if cli.verbose {
        output::debug_to_stderr();
        tracing::debug!("hm {}: {:?}", env!("CARGO_PKG_VERSION"), cli.command);
    }
    if matches!(cli.command, cli::Command::Run(_) | cli::Command::Shell(_)) {
        early::listen();
    }
    // Commands that only evaluate pipeline files run on this thread: worker
    // threads would cost more to start than the command takes.
    let mut builder = match cli.command {
        cli::Command::Pipelines(_)
        | cli::Command::Render { .. }
        | cli::Command::Init(_)
        | cli::Command::Version
        | cli::Command::Plugin(_)
        | cli::Command::Cloud { .. } => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            say!("error: cannot start the async runtime: {err}");
            std::process::exit(hm_exec::exit_codes::FAILED);
        }
    };
    let code = match runtime.block_on(commands::dispatch(cli.command)) {
        Ok(code) => code,
        // Nobody reads the output any more: not a failure (`ls | head`).
        Err(error::CliError::Output(err)) if output::is_closed(&err) => hm_exec::exit_codes::PASSED,
        Err(err) => {
            error::report(&err);
            err.exit_code()
        }
    };
    // Steps' tasks are done; don't wait for idle blocking threads.
    runtime.shutdown_background();
    std::process::exit(code);
}
