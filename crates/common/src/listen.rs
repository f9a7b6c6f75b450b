//! Listen addresses as the binaries' flags give them, and binding them.
//!
//! Upstream's flags are Go-style: `:8081` means every address of the host, both families.
//! We bind that as one dual-stack socket (`[::]:8081` with `IPV6_V6ONLY` off), so the servers
//! work on IPv4, IPv6 and dual-stack clusters alike, and fall back to `0.0.0.0:8081` where the
//! host (or the pod's network namespace) has no IPv6.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Pending connections the kernel queues before `accept` (tokio's default too).
const BACKLOG: i32 = 1024;

/// What a listen flag asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ListenAddress {
    /// `:PORT`: every address, IPv6 and IPv4.
    AnyAddress(u16),
    /// `IP:PORT` or `[IPv6]:PORT`.
    Socket(SocketAddr),
    /// `host:port` with a name, resolved when bound.
    Named(String),
}

impl ListenAddress {
    fn parse(flag: &str) -> Result<Self, String> {
        if let Some(port) = flag.strip_prefix(':') {
            return port
                .parse()
                .map(ListenAddress::AnyAddress)
                .map_err(|_| format!("{flag:?}: the port must be a number up to 65535"));
        }
        if let Ok(socket) = flag.parse() {
            return Ok(ListenAddress::Socket(socket));
        }
        match flag.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(ListenAddress::Named(flag.to_owned()))
            }
            _ => Err(format!(
                "{flag:?} is not an address like :8080 or 127.0.0.1:8080"
            )),
        }
    }
}

/// Accepts upstream's Go-style listen addresses (`:8081`) as well as `host:port`, as an
/// IPv4 address string. Prefer [`bind`], which binds `:8081` on IPv6 too.
pub fn listen_address(flag: &str) -> String {
    if flag.starts_with(':') {
        format!("0.0.0.0{flag}")
    } else {
        flag.to_owned()
    }
}

/// Binds the address of a listen flag (`:8081`, `127.0.0.1:8081`, `[::1]:8081`,
/// `localhost:8081`); `:PORT` is dual-stack where the host has IPv6. Errors name the address.
pub async fn bind(flag: &str) -> io::Result<TcpListener> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("listening on {flag}: {e}"));
    let address = ListenAddress::parse(flag)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))
        .map_err(named)?;
    match address {
        ListenAddress::AnyAddress(port) => match bind_dual_stack(port) {
            Err(e) if lacks_ipv6(&e) => {
                tracing::debug!("no IPv6 here ({e}); listening on IPv4 only");
                TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await
            }
            bound => bound,
        },
        ListenAddress::Socket(address) => TcpListener::bind(address).await,
        ListenAddress::Named(address) => TcpListener::bind(address).await,
    }
    .map_err(named)
}

/// One socket on `[::]:port` that also accepts IPv4 (as v4-mapped addresses).
fn bind_dual_stack(port: u16) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    // As std and tokio do on Unix: a restarted server can bind while old connections linger.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Whether binding on IPv6 failed because the host or namespace has no IPv6, rather than
/// for a reason IPv4 would share (the port in use, no permission).
fn lacks_ipv6(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT | libc::EADDRNOTAVAIL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_flags_parse() {
        assert_eq!(
            ListenAddress::parse(":8080"),
            Ok(ListenAddress::AnyAddress(8080))
        );
        assert_eq!(
            ListenAddress::parse("127.0.0.1:8080"),
            Ok(ListenAddress::Socket(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                8080
            ))))
        );
        assert_eq!(
            ListenAddress::parse("[::1]:8080"),
            Ok(ListenAddress::Socket(SocketAddr::from((
                Ipv6Addr::LOCALHOST,
                8080
            ))))
        );
        assert_eq!(
            ListenAddress::parse("0.0.0.0:80"),
            Ok(ListenAddress::Socket(SocketAddr::from((
                Ipv4Addr::UNSPECIFIED,
                80
            ))))
        );
        assert_eq!(
            ListenAddress::parse("localhost:8443"),
            Ok(ListenAddress::Named("localhost:8443".into()))
        );
        for bad in [":", ":http", ":70000", "8080", "", "localhost", ":8080:1"] {
            assert!(ListenAddress::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(listen_address(":8081"), "0.0.0.0:8081");
        assert_eq!(listen_address("127.0.0.1:8081"), "127.0.0.1:8081");
    }

    #[test]
    fn only_missing_ipv6_falls_back_to_ipv4() {
        let os = io::Error::from_raw_os_error;
        assert!(lacks_ipv6(&os(libc::EAFNOSUPPORT)));
        assert!(lacks_ipv6(&os(libc::EADDRNOTAVAIL)));
        assert!(!lacks_ipv6(&os(libc::EADDRINUSE)));
        assert!(!lacks_ipv6(&os(libc::EACCES)));
        assert!(!lacks_ipv6(&io::Error::other("no OS error")));
    }

    #[tokio::test]
    async fn any_address_accepts_ipv4_and_ipv6_where_there_is_ipv6() {
        let listener = bind(":0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .expect("IPv4 reaches a `:PORT` listener");
        if listener.local_addr().unwrap().is_ipv6() {
            tokio::net::TcpStream::connect((Ipv6Addr::LOCALHOST, port))
                .await
                .expect("IPv6 reaches a dual-stack listener");
        }
        let error = bind(":http").await.unwrap_err();
        assert!(error.to_string().contains("listening on :http"), "{error}");
        let taken = format!("127.0.0.1:{port}");
        assert!(bind(&taken).await.is_err(), "{taken} is already bound");
    }
}
