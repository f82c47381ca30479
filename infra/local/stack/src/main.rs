//! `chat-stack`: `make`'s targets, once `infra/local/stack.sh` has installed the tools and
//! built the workspace.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use local_stack::commands;

#[derive(Parser)]
#[command(about = "The local stack: make dev, make test, make check and their helpers")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Formatting and every test that needs no service.
    Check,
    /// A persistent stack on fixed ports, until Ctrl-C.
    Dev,
    /// A throw-away stack on free ports; runs every check against it (or CMD).
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// A throw-away stack on free ports, printing its variables, until Ctrl-C.
    Services,
    /// Stops the service NAME whose files are in DIR and starts it again as it was started.
    Restart {
        dir: std::path::PathBuf,
        name: String,
    },
    /// One of Kafka's command-line tools (topics, console-consumer, ...).
    Kafka {
        tool: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The smoke suite against AUTH_MODE=jwt make dev, or a deployed stack.
    Smoke { stack: Option<String> },
    /// Ours and the original app's architecture side by side, against the running make dev.
    Bench,
    /// Release builds of every function for arm64 Lambda, with their sizes.
    Build,
    /// The AWS SAM CLI (yours) with our build tools on PATH.
    Sam {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The files deploy-web uploads, into DIR.
    StageWeb {
        dir: std::path::PathBuf,
        websocket_url: String,
    },
    /// Uploads the chat page to a deployed stack.
    DeployWeb { stack: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Check => commands::check(),
        Cmd::Dev => commands::dev(),
        Cmd::Test { command } => commands::test(&command),
        Cmd::Services => commands::services(),
        Cmd::Restart { dir, name } => local_stack::restart(&dir, &name),
        Cmd::Kafka { tool, args } => commands::kafka_tool(&tool, &args),
        Cmd::Smoke { stack } => commands::smoke(stack.as_deref()),
        Cmd::Bench => commands::bench(),
        Cmd::Build => commands::build(),
        Cmd::Sam { args } => commands::sam(&args),
        Cmd::StageWeb { dir, websocket_url } => commands::stage_web(&dir, &websocket_url),
        Cmd::DeployWeb { stack } => commands::deploy_web(&stack),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\x1b[1;31m[stack] error:\x1b[0m {e}");
            ExitCode::FAILURE
        }
    }
}
