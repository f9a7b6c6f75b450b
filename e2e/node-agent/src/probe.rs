//! The readiness probe of a pod's container, run against the pod IP as the kubelet would.

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The readiness probe's verdict: an HTTP GET answered 2xx/3xx (HTTPS and TCP probes: the
/// port accepts a connection); without a probe, running is ready.
pub async fn probe(container: &Container, ip: &str) -> bool {
    let Some(probe) = &container.readiness_probe else {
        return true;
    };
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
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(1), connect).await else {
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
    match tokio::time::timeout(Duration::from_secs(1), exchange).await {
        Ok(Ok(head)) => {
            let status = String::from_utf8_lossy(&head[9..12])
                .parse::<u16>()
                .unwrap_or(0);
            (200..400).contains(&status)
        }
        _ => false,
    }
}
