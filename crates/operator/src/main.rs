//! dynamo-operator: the controller-manager that reconciles DynamoGraphDeployments,
//! DynamoComponentDeployments and DynamoModels into Kubernetes workloads.

use std::process::ExitCode;

use clap::Parser;
use dynamo_operator::args::Args;
use dynamo_operator::run::run;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    dynamo_common::init_logging_at(args.compat.log_level().unwrap_or("info"));
    for ignored in args.compat.ignored() {
        tracing::warn!("{ignored}");
    }
    // After a loss another process may take over; the failure exit makes the kubelet restart
    // this one as a standby.
    Ok(match run(args).await? {
        ending if ending.is_clean() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}
