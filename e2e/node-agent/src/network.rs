//! A network namespace per pod, like a CNI plugin would make: a veth pair from the cluster's
//! network namespace (where the agent runs) to the pod's, the pod IP on the pod side, and a
//! /32 route in the cluster side's `local` table so the pod IP stops being one of the
//! cluster namespace's own addresses. Nothing is routed anywhere else.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, bail};

/// The pod side's gateway: an address on every host-side veth, answered by plain ARP.
const GATEWAY: &str = "169.254.1.1";

/// Lets the cluster's network namespace forward between pod veths (a new namespace starts
/// with forwarding off), so pods reach each other by pod IP.
pub fn enable_forwarding() -> anyhow::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .context("enabling IPv4 forwarding in the cluster's network namespace")
}

/// The network of one pod.
#[derive(Debug)]
pub struct PodNetwork {
    pub netns: String,
    pub ip: Ipv4Addr,
    host_link: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !output.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

impl PodNetwork {
    /// Creates the namespace `dpod-<id>` with `ip` on its `eth0`.
    pub fn create(id: &str, ip_address: Ipv4Addr) -> anyhow::Result<PodNetwork> {
        let netns = format!("dpod-{id}");
        let host_link = format!("dv{id}");
        let network = PodNetwork {
            netns: netns.clone(),
            ip: ip_address,
            host_link: host_link.clone(),
        };
        // Leftovers of an earlier agent with the same id are removed first.
        network.remove();
        let pod_ip = ip_address.to_string();
        let cidr = format!("{pod_ip}/32");
        ip(&["netns", "add", &netns])?;
        ip(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ])?;
        ip(&["link", "set", &host_link, "up"])?;
        ip(&["addr", "add", &format!("{GATEWAY}/32"), "dev", &host_link])?;
        ip(&[
            "route", "replace", "table", "local", &cidr, "dev", &host_link,
        ])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &netns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&[
            "-n", &netns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link",
        ])?;
        ip(&[
            "-n", &netns, "route", "add", "default", "via", GATEWAY, "dev", "eth0",
        ])?;
        Ok(network)
    }

    /// Deletes the namespace (which deletes the veth pair) and the route; idempotent.
    pub fn remove(&self) {
        let _ = ip(&["route", "del", "table", "local", &format!("{}/32", self.ip)]);
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.netns]);
    }
}

/// Pod IPs of the agent's pods: a range kwok's allocator (which counts up from the start of
/// the pod CIDR) does not reach in a test run.
#[derive(Debug, Default)]
pub struct IpPool {
    used: std::collections::BTreeSet<u8>,
}

impl IpPool {
    pub fn take(&mut self) -> anyhow::Result<Ipv4Addr> {
        let free = (2..=250u8)
            .find(|n| !self.used.contains(n))
            .context("no pod IP left in 10.244.250.0/24")?;
        self.used.insert(free);
        Ok(Ipv4Addr::new(10, 244, 250, free))
    }

    pub fn give_back(&mut self, address: Ipv4Addr) {
        self.used.remove(&address.octets()[3]);
    }
}
