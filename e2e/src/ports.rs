//! Ports for the servers a test starts (probes, metrics, the webhook), so no test picks one by
//! hand.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// A port nothing listens on, never handed out twice by this test process.
///
/// The kernel chooses it (bind to port 0) in the network namespace the tests run in, on every
/// address, so it also suits a server listening on `0.0.0.0` such as the webhook. It comes
/// from the ephemeral range, but the kernel gives `bind` odd ports and outgoing connections
/// even ones first, so a client connection does not take it before the server binds it.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|listener| listener.local_addr())
            .expect("binding a free port")
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// `127.0.0.1:<a free port>`, for a server that listens on loopback.
pub fn free_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .unwrap_or_else(|e| panic!("port {port} is not free: {e}"));
        }
    }
}
