//! The client commands of the `fdi` binary (`fdi ds ...`, `fdi task ...`, `fdi run ...`) over
//! the typed API client `fdi-client`. The binary's `Command` enum flattens [`ClientCommand`] in
//! and hands it to [`run`], whose result is the process's exit code.

mod commands;
mod config;
mod output;
mod progress;

use clap::{Args, Subcommand};
use fdi_client::{ClientError, RunOutcome};

pub use config::{ConfigFile, ConnArgs, default_config_path};
pub use output::Output;

/// The run ended SUCCESS, or the command did what it was asked.
pub const EXIT_SUCCESS: i32 = 0;
/// The followed run ended ERROR.
pub const EXIT_RUN_ERROR: i32 = 1;
/// The followed run ended CANCELLED.
pub const EXIT_RUN_CANCELLED: i32 = 2;
/// Bad usage, or the API refused the request (its FDI code is printed on stderr).
pub const EXIT_USAGE_OR_API: i32 = 3;

/// Shown under `--help` of every client command.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (a followed run ended SUCCESS)
  1  the followed run ended ERROR
  2  the followed run ended CANCELLED
  3  usage error, or the API refused the request (the FDI error code and message, which names
     the field, are printed on stderr)

Server, token, project and instance: --server/--token/--project/--instance, else FDI_SERVER/
FDI_TOKEN/FDI_PROJECT_ID/FDI_INSTANCE_ID, else the config file (--config, FDI_CONFIG, else
~/.config/fdi/cli.toml; keys server, token, project_id, instance_id), else
http://127.0.0.1:8080, project `demo`, instance `local`.";

/// The client commands, flattened into the binary's top-level commands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Datasources: list, create, test the connection.
    #[command(after_help = EXIT_CODES_HELP)]
    Ds(DsArgs),
    /// Tasks: list, create, show, run (and follow), terminate, start, stop.
    #[command(after_help = EXIT_CODES_HELP)]
    Task(TaskArgs),
    /// Runs of a task: their monitor logs; follow the newest.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct DsArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub action: DsAction,
}

#[derive(Subcommand, Debug)]
pub enum DsAction {
    /// List the datasources.
    Ls(ListArgs),
    /// Create a datasource from a JSON body (`POST datasources`).
    #[command(after_help = EXIT_CODES_HELP)]
    Create(BodyArgs),
    /// Test a datasource's connection.
    #[command(after_help = EXIT_CODES_HELP)]
    Test {
        /// The datasource's id.
        datasource_id: String,
    },
}

#[derive(Args, Debug)]
pub struct TaskArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub action: TaskAction,
}

#[derive(Subcommand, Debug)]
pub enum TaskAction {
    /// List the tasks.
    Ls(ListArgs),
    /// Create a task from a JSON body (`POST tasks`).
    #[command(after_help = EXIT_CODES_HELP)]
    Create(BodyArgs),
    /// Show a task and its detail.
    Show {
        /// The task's id or name.
        task: String,
    },
    /// Run a task now; with --follow, show its progress and exit with its outcome.
    #[command(after_help = EXIT_CODES_HELP)]
    Run {
        /// The task's id or name.
        task: String,
        /// Follow the run to its end: a progress bar on a terminal, a line per change otherwise;
        /// the exit code is the run's outcome (0 SUCCESS, 1 ERROR, 2 CANCELLED).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// End the task's running run (it ends CANCELLED).
    Terminate {
        /// The task's id or name.
        task: String,
    },
    /// Start tasks: enable their dispatch plans, start realtime tasks.
    #[command(after_help = EXIT_CODES_HELP)]
    Start {
        /// Task ids or names.
        #[arg(required = true)]
        tasks: Vec<String>,
    },
    /// Stop tasks.
    #[command(after_help = EXIT_CODES_HELP)]
    Stop {
        /// Task ids or names.
        #[arg(required = true)]
        tasks: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub action: RunAction,
}

#[derive(Subcommand, Debug)]
pub enum RunAction {
    /// A task's runs, newest first; with --follow, follow the newest run to its end.
    #[command(after_help = EXIT_CODES_HELP)]
    Logs {
        /// The task's id or name.
        task: String,
        /// Follow the newest run to its end and exit with its outcome (0/1/2).
        #[arg(long, short = 'f')]
        follow: bool,
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
}

#[derive(Args, Debug, Clone, Copy)]
pub struct ListArgs {
    /// How many to list.
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// How many to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

#[derive(Args, Debug, Clone)]
pub struct BodyArgs {
    /// The JSON body: a file, or `-` for stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: String,
}

/// Why a command failed; each maps to exit code 3.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Api(#[from] ClientError),
}

/// Run a client command; returns the process's exit code. Errors are printed on stderr.
pub async fn run(command: ClientCommand) -> i32 {
    match commands::dispatch(command).await {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            EXIT_USAGE_OR_API
        }
    }
}

/// `fdi: FDI.3002 task_name: ... (HTTP 400)` on stderr.
fn print_error(e: &CliError) {
    eprintln!("fdi: {e}");
}

/// The exit code of a finished run's `execute_status`.
pub fn exit_code_of(execute_status: &str) -> i32 {
    match RunOutcome::of(execute_status) {
        Some(RunOutcome::Success) => EXIT_SUCCESS,
        Some(RunOutcome::Error) => EXIT_RUN_ERROR,
        Some(RunOutcome::Cancelled) => EXIT_RUN_CANCELLED,
        None => EXIT_USAGE_OR_API,
    }
}

/// Parse the binary's command line; a usage error exits 3 (clap's own code 2 means CANCELLED
/// here), `--help` / `--version` exit 0.
pub fn parse_args<P: clap::Parser>() -> P {
    P::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() {
            EXIT_USAGE_OR_API
        } else {
            EXIT_SUCCESS
        })
    })
}
