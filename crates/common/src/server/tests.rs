//! The accept loop against real sockets: slow clients, TLS stragglers, draining on shutdown;
//! and the accept-error policy as a pure function.

use super::*;
use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const SHORT: Duration = Duration::from_millis(300);

fn options() -> Options {
    Options {
        header_read_timeout: SHORT,
        handshake_timeout: SHORT,
        drain_timeout: Duration::from_secs(5),
        ..Options::new("test")
    }
}

/// A server answering `/` at once and `/slow` after `delay`, reporting each `/slow` start.
struct Running {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    slow_started: mpsc::UnboundedReceiver<()>,
}

async fn start(tls: Option<TlsAcceptor>, delay: Duration, options: Options) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (started, slow_started) = mpsc::unbounded_channel();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let started = started.clone();
        async move {
            if request.uri().path() == "/slow" {
                let _ = started.send(());
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
        }
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(listener, tls, service, stopped, options));
    Running {
        address,
        stop,
        task,
        slow_started,
    }
}

/// Reads until the server closes the connection; how long that took, and what was read.
async fn until_closed(stream: &mut TcpStream) -> (Duration, String) {
    let started = Instant::now();
    let mut read = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut read));
    let _ = closed.await.expect("the server closes the connection");
    (
        started.elapsed(),
        String::from_utf8_lossy(&read).into_owned(),
    )
}

async fn get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    until_closed(&mut stream).await.1
}

#[tokio::test]
async fn clients_that_send_no_headers_are_disconnected_after_the_timeout() {
    let server = start(None, Duration::ZERO, options()).await;

    let opened = Instant::now();
    let mut silent = TcpStream::connect(server.address).await.unwrap();
    let mut partial = TcpStream::connect(server.address).await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    for (client, stream) in [("silent", &mut silent), ("partial", &mut partial)] {
        until_closed(stream).await;
        let took = opened.elapsed();
        assert!(
            took >= SHORT - Duration::from_millis(50),
            "{client} client closed early, after {took:?}"
        );
        assert!(
            took < Duration::from_secs(3),
            "{client} client held on {took:?}"
        );
    }

    // A kept-alive HTTP/1 connection gets the same timeout for its next request.
    let mut kept = TcpStream::connect(server.address).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let (took, response) = until_closed(&mut kept).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        took < Duration::from_secs(3),
        "idle connection held {took:?}"
    );

    // A prompt client is answered.
    assert!(get(server.address, "/").await.ends_with("done"));
}

#[tokio::test]
async fn tls_clients_that_do_not_handshake_are_dropped() {
    let config =
        crate::secure_metrics::self_signed_config(vec!["localhost".into()]).expect("a config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let server = start(Some(acceptor), Duration::ZERO, options()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let (took, _) = until_closed(&mut stream).await;
    assert!(took >= SHORT - Duration::from_millis(50), "after {took:?}");
    assert!(took < Duration::from_secs(3), "held {took:?}");
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_then_returns() {
    let delay = Duration::from_millis(500);
    let mut server = start(None, delay, options()).await;
    let address = server.address;
    let in_flight = tokio::spawn(async move { get(address, "/slow").await });
    server.slow_started.recv().await.unwrap();
    let stopped_at = Instant::now();
    server.stop.send(true).unwrap();

    let response = in_flight.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("done"), "{response}");
    tokio::time::timeout(Duration::from_secs(3), server.task)
        .await
        .expect("serve returns once drained")
        .unwrap();
    let took = stopped_at.elapsed();
    assert!(took >= delay - Duration::from_millis(100), "{took:?}");
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn draining_gives_up_after_the_drain_timeout() {
    let options = Options {
        drain_timeout: SHORT,
        ..options()
    };
    let mut server = start(None, Duration::from_secs(3600), options).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    server.slow_started.recv().await.unwrap();
    let stopped_at = Instant::now();
    server.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server.task)
        .await
        .expect("serve returns after the drain timeout")
        .unwrap();
    assert!(stopped_at.elapsed() >= SHORT - Duration::from_millis(50));
    let (_, response) = until_closed(&mut stream).await;
    assert_eq!(response, "", "the request was cut, not answered");
}

#[test]
fn accept_errors_pause_the_loop_and_warn_at_a_bounded_rate() {
    let start = Instant::now();
    let mut backoff = AcceptBackoff::default();
    let out_of_files = io::Error::from_raw_os_error(libc::EMFILE);
    let at = |millis| start + Duration::from_millis(millis);

    // Every error that would repeat at once pauses the loop: it never spins.
    let first = backoff.after(&out_of_files, at(0));
    assert_eq!(first.sleep, ACCEPT_ERROR_PAUSE);
    assert!(ACCEPT_ERROR_PAUSE >= Duration::from_millis(100));
    assert_eq!(first.report, Some(1), "the first error is reported");
    let mut reports = Vec::new();
    for millis in (100..=20_000).step_by(100) {
        let pause = backoff.after(&out_of_files, at(millis));
        assert_eq!(pause.sleep, ACCEPT_ERROR_PAUSE);
        reports.extend(pause.report);
    }
    // 200 more errors in 20 s: one warning per 10 s, counting the errors between them.
    assert_eq!(reports, [100, 100]);

    // A peer that reset its connection before the accept costs no pause and no warning.
    let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
    assert_eq!(
        backoff.after(&reset, at(20_050)),
        Pause {
            sleep: Duration::ZERO,
            report: None
        }
    );
    // After a quiet spell the next error is reported at once.
    assert_eq!(backoff.after(&out_of_files, at(60_000)).report, Some(1));
}
