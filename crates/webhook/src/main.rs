//! dynamo-webhook: the validating admission webhook of the Dynamo platform.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dynamo_webhook::run::ServeArgs;

/// Validates Dynamo custom resources on create and update (immutable fields, service
/// topology, namespace-scope leases) over HTTPS, or checks manifest files offline.
#[derive(Debug, Parser)]
#[command(
    name = "dynamo-webhook",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve admission reviews (the default).
    Serve(ServeArgs),
    /// Check manifest files with the same rules as the server; exits 1 if any is rejected.
    Validate(Validate),
}

#[derive(Debug, Args)]
struct Validate {
    /// Manifest files (YAML, several documents allowed).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    dynamo_common::init_logging();
    let result = match cli.command {
        Some(Command::Validate(validate)) => return dynamo_webhook::offline::run(&validate.files),
        Some(Command::Serve(serve)) => serve_until_shutdown(serve),
        None => serve_until_shutdown(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve_until_shutdown(args: ServeArgs) -> anyhow::Result<()> {
    dynamo_webhook::run::run(args).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
