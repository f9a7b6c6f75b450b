//! dynamo-operator: the controller-manager that reconciles DynamoGraphDeployments,
//! DynamoComponentDeployments and DynamoModels into Kubernetes workloads.

use std::process::ExitCode;

use clap::Parser;
use dynamo_operator::args::Args;
use dynamo_operator::run::run;

/// jemalloc: the watch caches' many small blocks cost less RSS than with glibc's malloc (see
/// the operator's Cargo.toml for the figures).
#[cfg(not(feature = "heap-profile"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The heap profiler, when profiling.
#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    #[cfg(feature = "heap-profile")]
    heap_profile_on_signal();
    let args = Args::parse();
    dynamo_common::init_logging_at(args.compat.log_level().unwrap_or("info"));
    #[cfg(not(feature = "heap-profile"))]
    tracing::info!(
        conf = dynamo_operator::allocator::built_in_configuration().unwrap_or("unknown"),
        "allocator: jemalloc"
    );
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

/// Profiles the heap from now on and writes the profile (`dhat-heap.json` in the working
/// directory: every live allocation by call site) on SIGUSR1, while the caches are still full.
#[cfg(feature = "heap-profile")]
fn heap_profile_on_signal() {
    let profiler = dhat::Profiler::new_heap();
    tokio::spawn(async move {
        let mut signal =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .expect("SIGUSR1 handler");
        signal.recv().await;
        drop(profiler);
    });
}
