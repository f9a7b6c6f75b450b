//! The operator when things go wrong: an object whose child the API server refuses is retried
//! with growing delays, not every few seconds; a leader whose API server stops answering stops
//! writing before its lease can expire, and a standby takes over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use dynamo_e2e::manifests::graph;
use dynamo_e2e::operator::{Operator, start_operator, start_operator_as};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Failed reconciles of DynamoComponentDeployments so far, from the operator's metrics.
async fn component_errors(operator: &Operator) -> u64 {
    operator
        .metrics()
        .await
        .lines()
        .filter(|line| {
            line.starts_with("dynamo_operator_reconcile_errors_total{")
                && line.contains("resource_type=\"DynamoComponentDeployment\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The `retry_in` delays the operator logged, in seconds.
fn retry_delays(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|line| line.contains("object=refused-worker"))
        .filter_map(|line| {
            let value = line.split("retry_in=").nth(1)?.split_whitespace().next()?;
            value.strip_suffix('s')?.parse().ok()
        })
        .collect()
}

#[tokio::test]
async fn a_component_whose_deployment_is_refused_is_retried_with_growing_delays() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("backoff").await;
    let operator = start_operator(&ns, &[]);
    operator.ready().await;
    // `=` is the one character an environment variable name may not have: the API server
    // refuses the Deployment, every time.
    let refused = graph("refused").backend("vllm").service(
        "Worker",
        "
        componentType: worker
        envs:
          - name: BAD=NAME
            value: x
        ",
    );
    assert_success("apply", &ns.kubectl_apply(&refused.yaml()));
    let first = wait_until("the first refusal", Duration::from_secs(30), || async {
        (component_errors(&operator).await > 0).then(Instant::now)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(first.elapsed())).await;
    // Retries after 5, 10 and 20 s (plus up to a tenth): attempts at about 0, 5, 15 and 35 s
    // of the minute; a flat 5 s would make 12.
    let attempts = component_errors(&operator).await;
    assert!(
        (3..=5).contains(&attempts),
        "{attempts} attempts within a minute"
    );
    let delays = retry_delays(&operator.log_text());
    assert!(
        delays.len() >= 3 && delays.windows(2).all(|d| d[1] > d[0] * 1.5),
        "delays double: {delays:?}"
    );
    assert!((5.0..5.6).contains(&delays[0]), "first delay: {delays:?}");
}

/// A TCP relay to the API server that can stop passing bytes, as a network that hangs would.
struct Relay {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl Relay {
    async fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pass(client_read, server_write, flag.clone()));
                tokio::spawn(pass(server_read, client_write, flag.clone()));
            }
        });
        Relay { port, stalled }
    }
}

/// Copies `from` to `to`, holding every byte while `stalled` is set.
async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// The cluster's kubeconfig with its server moved to `port` on loopback (the API server's
/// certificate names 127.0.0.1).
fn kubeconfig_via(port: u16, ns: &TestNamespace) -> std::path::PathBuf {
    let cluster = Cluster::get();
    let text = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let server = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("server: "))
        .expect("a server line")
        .to_owned();
    let relayed = text.replace(&server, &format!("https://127.0.0.1:{port}"));
    let path = cluster.state.join(format!("kubeconfig-relay-{}", ns.name));
    std::fs::write(&path, relayed).unwrap();
    path
}

fn api_port() -> u16 {
    let text = std::fs::read_to_string(&Cluster::get().kubeconfig).unwrap();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("server: https://127.0.0.1:"))
        .and_then(|port| port.trim().parse().ok())
        .expect("the API server's loopback port")
}

fn renewed_at(lease: &Lease) -> SystemTime {
    let spec = lease.spec.as_ref().unwrap();
    spec.renew_time.as_ref().unwrap().0.into()
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_stops_before_its_lease_expires() {
    const LEASE: &str = "stalled-leader";
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("stall").await;
    let leases: Api<Lease> = ns.api();
    let relay = Relay::start(api_port()).await;
    let election = [
        "--leader-elect",
        "--leader-election-id",
        LEASE,
        "--leader-election-lease-duration=8",
        "--leader-election-renew-deadline=5",
        "--leader-election-retry-period=1",
    ];
    let mut leader = start_operator_as(&ns, &kubeconfig_via(relay.port, &ns), &election);
    let leader_suffix = format!("_{}", leader.pid());
    wait_until(
        "the relayed operator leads",
        Duration::from_secs(30),
        || async {
            let holder = leases.get_opt(LEASE).await.ok()??.spec?.holder_identity?;
            holder.ends_with(&leader_suffix).then_some(())
        },
    )
    .await;
    let standby = start_operator(&ns, &election);
    let standby_suffix = format!("_{}", standby.pid());
    standby.ready().await;

    relay.stalled.store(true, Ordering::Relaxed);
    let last_renewal = renewed_at(&leases.get(LEASE).await.unwrap());
    let started = Instant::now();
    let (status, stopped_at) = loop {
        if let Some(status) = leader.exited() {
            break (status, SystemTime::now());
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the cut-off leader still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !status.success(),
        "a lost lease is a failure exit: {status}"
    );
    let expires = last_renewal + Duration::from_secs(8);
    assert!(
        stopped_at < expires,
        "stopped {:?} after the last renewal, the lease lasts 8 s",
        stopped_at.duration_since(last_renewal).unwrap_or_default()
    );
    assert!(leader.log_text().contains("leader election lost"));

    let taken = wait_until("the standby leads", Duration::from_secs(30), || async {
        let lease = leases.get_opt(LEASE).await.ok()??;
        let holder = lease.spec.as_ref()?.holder_identity.clone()?;
        holder.ends_with(&standby_suffix).then_some(lease)
    })
    .await;
    let acquired: SystemTime = taken.spec.unwrap().acquire_time.unwrap().0.into();
    assert!(
        stopped_at <= acquired,
        "the old leader stopped before the new one started"
    );
    relay.stalled.store(false, Ordering::Relaxed);
}
