//! dynamo-webhook: the validating admission webhook of the Dynamo platform.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dynamo_webhook::offline::{Options, OutputFormat};
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
    /// Check manifests as the cluster would (schema, CEL rules, admission rules) without one;
    /// exits 1 if any object is refused, 2 if an input cannot be read.
    Validate(Validate),
}

#[derive(Debug, Args)]
struct Validate {
    /// Manifests to check: YAML (several documents allowed) or JSON files, directories
    /// (searched for *.yaml, *.yml, *.json), or - for standard input. List objects are opened.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// The objects as they are now, in the same forms: each object of --filename with the
    /// same kind, namespace and name is checked as an update from it, the others as creates.
    #[arg(long, num_args = 1.., value_name = "OLD")]
    old: Vec<PathBuf>,
    /// Namespace of the objects that name none, on both sides (as kubectl applies them).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// How findings are printed: text lines `file:document: Kind/name: path: message (rule)`
    /// (documents count from 1), or a JSON array for tools.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

impl Validate {
    fn options(self) -> Options {
        Options {
            files: self.files,
            old: self.old,
            namespace: self.namespace,
            output: self.output,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    dynamo_common::init_logging();
    let result = match cli.command {
        Some(Command::Validate(validate)) => {
            return dynamo_webhook::offline::run(&validate.options());
        }
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
