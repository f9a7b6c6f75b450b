//! dynamo-operator: the controller-manager that reconciles DynamoGraphDeployments,
//! DynamoComponentDeployments and DynamoModels into Kubernetes workloads.

use std::process::ExitCode;

use clap::Parser;
use dynamo_operator::args::Args;
use dynamo_operator::run::{Ending, run};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    dynamo_common::init_logging();
    Ok(match run(args).await? {
        Ending::Stopped => ExitCode::SUCCESS,
        // Another process may take over; the exit makes the kubelet restart this one as a
        // standby.
        Ending::Lost(_) => ExitCode::FAILURE,
    })
}
