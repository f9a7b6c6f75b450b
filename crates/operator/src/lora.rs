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
