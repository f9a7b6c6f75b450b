//! The HTTP calls of the DynamoModel controller: `POST /v1/loras` and
//! `DELETE /v1/loras/<name>` on a serving pod, over plain HTTP/1.1 (the workers' system port),
//! each bounded by a timeout.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// Per-request limit (connect, send, and the whole answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends one request to `base` (`http://<ip>:<port>`, from an EndpointSlice) and returns the
/// status code, or why there is none.
pub async fn call(
    method: Method,
    base: &str,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<u16, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: not an http:// address"))?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{authority}{path}: {e}"))?;
        let status = response.status().as_u16();
        // Read the answer out so the connection closes cleanly; its content is not needed.
        let _ = response.into_body().collect().await;
        Ok(status)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{base}{path}: no answer within {timeout:?}"))?
}

/// One request, sent to many endpoints.
pub struct FanOut<'a> {
    pub method: Method,
    pub path: &'a str,
    pub body: Option<Vec<u8>>,
    /// Tries per endpoint (waits 1 s, 2 s, ... between them).
    pub attempts: u32,
    /// Which status codes count as done.
    pub done: fn(u16) -> bool,
}

/// Requests in flight at once, per fan-out.
const CONCURRENCY: usize = 10;

impl FanOut<'_> {
    /// Sends the request to every address in `addresses`, [`CONCURRENCY`] at once; the
    /// addresses where it is done, and one line per address where it is not.
    pub async fn send(&self, addresses: Vec<String>) -> (Vec<String>, Vec<String>) {
        use futures::StreamExt as _;
        let results: Vec<(String, Result<u16, String>)> = futures::stream::iter(addresses)
            .map(|address| async move {
                let mut last = Err(String::new());
                for attempt in 0..self.attempts.max(1) {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    }
                    let method = self.method.clone();
                    last = call(
                        method,
                        &address,
                        self.path,
                        self.body.clone(),
                        REQUEST_TIMEOUT,
                    )
                    .await;
                    if matches!(last, Ok(code) if (self.done)(code)) {
                        break;
                    }
                }
                (address, last)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for (address, result) in results {
            match result {
                Ok(code) if (self.done)(code) => done.push(address),
                Ok(code) => failed.push(format!("{address}: HTTP {code}")),
                Err(e) => failed.push(e),
            }
        }
        (done, failed)
    }
}
