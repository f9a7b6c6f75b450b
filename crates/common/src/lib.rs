//! What the platform's binaries share: logging set-up, listen addresses and the HTTP accept
//! loop, the plain-HTTP admin server (health, readiness, metrics), HTTPS metrics, shutdown
//! signals and namespace scoping by namespace-scope leases.

pub mod admin;
mod duration;
pub mod json;
mod listen;
pub mod process_metrics;
pub mod scope;
pub mod secure_metrics;
pub mod server;

pub use duration::parse_duration;
pub use listen::{bind, listen_address};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), coloured only on a terminal.
pub fn init_logging() {
    init_logging_at("info");
}

/// [`init_logging`] with `level` as the default when `RUST_LOG` is not set.
pub fn init_logging_at(level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
