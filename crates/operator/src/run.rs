//! The operator's life, as named phases: serve the admin endpoints, win the election, hold the
//! namespace, run the controllers until told to stop, release what is held.
//!
//! There is one way out: a signal, a lost lease or a lost namespace marker all stop the
//! controllers through the same path, which then gives up the marker and the lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use dynamo_common::admin;
use dynamo_common::scope::Scope;
use kube::Client;
use tokio::sync::watch;

use crate::args::Args;
use crate::context::Context;
use crate::leader::{self, Elector};
use crate::scope_marker::ScopeMarker;
use crate::{client, served, watches};

/// How the run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// SIGTERM or Ctrl-C: a clean stop.
    Stopped,
    /// The leader lease could not be renewed in time: it may be another's now, so this process
    /// stopped writing and leaves the lease and the namespace marker to its successor.
    LostLease(String),
    /// The namespace marker could not be renewed: stopped, so two operators never manage one
    /// namespace.
    LostMarker(String),
}

impl Ending {
    pub fn is_clean(&self) -> bool {
        *self == Ending::Stopped
    }
}

/// How long in-flight reconciles may finish after a signal.
const DRAIN: Duration = Duration::from_secs(20);
/// After a lost lease, in-flight reconciles get less: the lease is about to be another's.
const DRAIN_WHEN_LOST: Duration = Duration::from_secs(1);

pub async fn run(args: Args) -> anyhow::Result<Ending> {
    let config = client::config()
        .await
        .context("connecting to the Kubernetes API")?;
    let slots = client::Slots::default();
    // With an election, nothing is written before the lease is won, nor after it lapses.
    let fence = if args.election.leader_elect {
        client::WriteFence::closed()
    } else {
        client::WriteFence::open()
    };
    let client = client::bounded(config.clone(), &slots, &fence)?;
    let namespace = args.restricted_namespace();
    let mut operator_config = args.config();
    operator_config.served = served::detect(&client, namespace.as_deref()).await?;
    let (context, background) =
        Context::new(client.clone(), slots, operator_config, namespace.clone());
    let context = Arc::new(context);
    let (stop, stopped) = watch::channel(false);
    let (ready, probes) = Probes::new(context.clone());

    // Leader election and metrics authentication (token and access reviews, served by
    // standbys too) share one unfenced client, apart from the reconcilers' request slots.
    let direct = client::direct(config)?;
    serve_admin(&args, direct.clone(), probes.clone(), stopped.clone()).await?;
    let elector = match elect(&args, direct, &probes, fence).await? {
        Election::Alone => None,
        Election::Won(elector) => Some(elector),
        Election::Stopped => {
            tracing::info!("stopped while waiting for leadership");
            let _ = stop.send(true);
            return Ok(Ending::Stopped);
        }
    };
    let marker = hold_namespace(&args, &client)?;
    watch_namespace_scopes(&context);

    context.metrics.leader.set(1);
    tracing::info!(version = %args.scope.operator_version, namespace = ?context.namespace, "starting controllers");
    let controllers = tokio::spawn(watches::run(context, background, ready, stopped));
    let ending = tokio::select! {
        _ = dynamo_common::shutdown_signal() => Ending::Stopped,
        lost = keep(elector.clone()) => Ending::LostLease(lost),
        lost = keep_marker(marker.clone()) => Ending::LostMarker(lost),
    };
    if let Ending::LostLease(why) | Ending::LostMarker(why) = &ending {
        tracing::error!("{why}");
    }
    let _ = stop.send(true);
    drain(controllers, &ending).await;
    // A lost lease may be another's already, and the marker with it: nothing is ours to give.
    if !matches!(ending, Ending::LostLease(_)) {
        release(marker, elector).await;
    }
    tracing::info!("stopped");
    Ok(ending)
}

/// Health, readiness and metrics on plain HTTP, and metrics on HTTPS when asked for.
async fn serve_admin(
    args: &Args,
    client: Client,
    probes: Arc<Probes>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let probes: Arc<dyn admin::Probes> = probes;
    let serving = &args.serving;
    for flag in [
        &serving.health_probe_bind_address,
        &serving.metrics_bind_address,
    ] {
        let listener = dynamo_common::bind(flag).await?;
        tokio::spawn(admin::serve(listener, probes.clone(), stopped.clone()));
    }
    if let Some(address) = args.metrics_secure_bind_address() {
        dynamo_common::secure_metrics::start(&address, client, probes, stopped).await?;
    }
    Ok(())
}

/// How the election ended.
enum Election {
    /// Without `--leader-elect`: this process leads alone.
    Alone,
    /// This process holds the lease.
    Won(Arc<Elector>),
    /// A signal came while waiting.
    Stopped,
}

/// With `--leader-elect`, waits as a (ready) standby until this process leads.
async fn elect(
    args: &Args,
    client: Client,
    probes: &Probes,
    fence: client::WriteFence,
) -> anyhow::Result<Election> {
    let election = &args.election;
    if !election.leader_elect {
        return Ok(Election::Alone);
    }
    let timing = election.timing();
    if let Err(why) = timing.check() {
        anyhow::bail!(why);
    }
    let namespace = election.lease_namespace(args.restricted_namespace().as_deref());
    let elector = Arc::new(Elector::new(
        client,
        &namespace,
        &election.leader_election_id,
        leader::identity(),
        timing,
        fence,
    ));
    probes.standby.store(true, Ordering::Relaxed);
    tokio::select! {
        _ = elector.acquire() => {}
        _ = dynamo_common::shutdown_signal() => return Ok(Election::Stopped),
    }
    probes.standby.store(false, Ordering::Relaxed);
    Ok(Election::Won(elector))
}

/// A namespace-restricted operator marks its namespace as its own.
fn hold_namespace(args: &Args, client: &Client) -> anyhow::Result<Option<Arc<ScopeMarker>>> {
    let Some(namespace) = args.restricted_namespace() else {
        return Ok(None);
    };
    let scope = &args.scope;
    Ok(Some(Arc::new(ScopeMarker::new(
        client.clone(),
        &namespace,
        &scope.operator_version,
        scope.namespace_scope_lease_duration,
        scope.namespace_scope_lease_renew_interval,
    )?)))
}

/// A cluster-wide operator leaves the namespaces of restricted operators alone.
fn watch_namespace_scopes(context: &Context) {
    if let Scope::ClusterWide(_) = &context.scope {
        let (scope, client) = (context.scope.clone(), context.client.clone());
        tokio::spawn(async move {
            if let Err(e) = scope.watch_leases(client).await {
                tracing::error!("namespace-scope lease watch ended: {e}");
            }
        });
    }
}

/// Resolves (with the reason) when the lease is lost; never without an election.
async fn keep(elector: Option<Arc<Elector>>) -> String {
    match elector {
        Some(elector) => elector.keep().await.to_string(),
        None => std::future::pending().await,
    }
}

/// Resolves (with the reason) when the namespace marker is lost; never without one.
async fn keep_marker(marker: Option<Arc<ScopeMarker>>) -> String {
    match marker {
        Some(marker) => marker.keep().await.to_string(),
        None => std::future::pending().await,
    }
}

/// Lets in-flight reconciles finish, for a bounded time.
async fn drain(controllers: tokio::task::JoinHandle<()>, ending: &Ending) {
    let limit = match ending {
        Ending::Stopped | Ending::LostMarker(_) => DRAIN,
        Ending::LostLease(_) => DRAIN_WHEN_LOST,
    };
    let abort = controllers.abort_handle();
    if tokio::time::timeout(limit, controllers).await.is_err() {
        tracing::warn!("reconciles still running after {limit:?}; abandoned");
        abort.abort();
    }
}

/// Gives up the namespace marker, then the lease. Each keeper stopped when `run`'s select
/// ended, so no renewal can take either back.
async fn release(marker: Option<Arc<ScopeMarker>>, elector: Option<Arc<Elector>>) {
    if let Some(marker) = marker {
        marker.delete().await;
    }
    if let Some(elector) = elector {
        elector.release().await;
    }
}

/// Readiness and metrics for the admin servers. A standby waiting for leadership is ready (it
/// is healthy and must not block a rollout); a leader is ready once its caches synced.
struct Probes {
    ready: watch::Receiver<bool>,
    standby: AtomicBool,
    context: Arc<Context>,
}

impl Probes {
    /// The probes and the sender that marks the caches synced.
    fn new(context: Arc<Context>) -> (watch::Sender<bool>, Arc<Probes>) {
        let (ready, ready_rx) = watch::channel(false);
        let probes = Probes {
            ready: ready_rx,
            standby: AtomicBool::new(false),
            context,
        };
        (ready, Arc::new(probes))
    }
}

impl admin::Probes for Probes {
    fn ready(&self) -> Result<(), String> {
        if *self.ready.borrow() || self.standby.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("caches not synced yet".into())
        }
    }

    fn metrics(&self) -> String {
        self.context.metrics.encode()
    }
}
