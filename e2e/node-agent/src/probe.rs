//! A container's probes, run against the pod IP as the kubelet runs them: the startup probe
//! gates the others, liveness failures restart the container, readiness decides `Ready`,
//! each after its thresholds of consecutive results. Timings run [`TIME_SCALE`] times faster
//! than written, so a test cluster does not wait minutes, with the proportions kept.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How much faster than written initial delays and periods run.
pub const TIME_SCALE: u32 = 5;

/// One probe's schedule and consecutive results; its verdict changes only when a threshold
/// is reached.
#[derive(Debug)]
pub struct Tracker {
    pub probe: Probe,
    due: Instant,
    period: Duration,
    successes: i32,
    failures: i32,
    pub verdict: bool,
}

impl Tracker {
    /// Tracks `probe` of a container started at `started`; `verdict` is the result before the
    /// first threshold is reached (false for startup and readiness, true for liveness).
    pub fn new(probe: &Probe, started: Instant, verdict: bool) -> Tracker {
        let scaled = |seconds: Option<i32>, default: u64| {
            Duration::from_secs(seconds.map_or(default, |s| s.max(0) as u64)) / TIME_SCALE
        };
        Tracker {
            probe: probe.clone(),
            due: started + scaled(probe.initial_delay_seconds, 0),
            period: scaled(probe.period_seconds, 10).max(Duration::from_millis(100)),
            successes: 0,
            failures: 0,
            verdict,
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.due
    }

    /// Whether the failure threshold was reached (a startup probe that gives up).
    pub fn exhausted(&self) -> bool {
        self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1)
    }

    /// Records one result taken at `now`; returns the verdict.
    pub fn record(&mut self, ok: bool, now: Instant) -> bool {
        self.due = now + self.period;
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                self.verdict = true;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                self.verdict = false;
            }
        }
        self.verdict
    }
}

/// One probe's result: an HTTP GET answered 2xx/3xx (HTTPS and TCP probes: the port accepts a
/// connection); probes the agent cannot run (exec, gRPC) pass.
pub async fn probe(probe: &Probe, container: &Container, ip: &str) -> bool {
    let port_of = |port: &IntOrString| -> Option<i32> {
        match port {
            IntOrString::Int(n) => Some(*n),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port),
        }
    };
    let (port, path, http) = if let Some(get) = &probe.http_get {
        let http = get.scheme.as_deref().unwrap_or("HTTP") == "HTTP";
        (
            port_of(&get.port),
            get.path.clone().unwrap_or("/".into()),
            http,
        )
    } else if let Some(tcp) = &probe.tcp_socket {
        (port_of(&tcp.port), String::new(), false)
    } else {
        return true;
    };
    let Some(port) = port else { return false };
    let connect = tokio::net::TcpStream::connect((ip, port as u16));
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).clamp(1, 4) as u64);
    let Ok(Ok(mut stream)) = tokio::time::timeout(timeout, connect).await else {
        return false;
    };
    if !http {
        return true;
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 16];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(head)) => {
            let status = String::from_utf8_lossy(&head[9..12])
                .parse::<u16>()
                .unwrap_or(0);
            (200..400).contains(&status)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(initial: i32, period: i32, success: i32, failure: i32) -> Probe {
        Probe {
            initial_delay_seconds: Some(initial),
            period_seconds: Some(period),
            success_threshold: Some(success),
            failure_threshold: Some(failure),
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_change_only_at_thresholds() {
        let start = Instant::now();
        // Readiness: not ready until one success; ready until three failures in a row.
        let mut readiness = Tracker::new(&probe(10, 10, 1, 3), start, false);
        assert!(!readiness.due(start));
        assert!(readiness.due(start + Duration::from_secs(2)));
        let t = start + Duration::from_secs(2);
        assert!(!readiness.record(false, t));
        assert!(readiness.record(true, t));
        assert!(readiness.record(false, t));
        assert!(readiness.record(false, t));
        assert!(readiness.record(true, t), "a success resets the failures");
        for _ in 0..2 {
            assert!(readiness.record(false, t));
        }
        assert!(!readiness.record(false, t));
        // Liveness with failureThreshold 1: live until the first failure.
        let mut liveness = Tracker::new(&probe(0, 5, 1, 1), start, true);
        assert!(liveness.due(start));
        assert!(liveness.record(true, start));
        assert!(!liveness.record(false, start));
        // The next probe is one scaled period later.
        assert!(!liveness.due(start + Duration::from_millis(999)));
        assert!(liveness.due(start + Duration::from_secs(1)));
    }
}
