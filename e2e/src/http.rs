//! A small HTTP/1.1 client over one kept-alive connection, for talking to pods by IP (the
//! Dynamo frontend's OpenAI API): responses with a Content-Length, chunked ones (streamed
//! completions) and ones that end with the connection. One connection, so a latency figure
//! measures the server, not connection set-up or a spawned process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// The body as JSON, or an error that shows it.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("HTTP {}: not JSON: {}", self.status, self.body))
    }
}

pub struct HttpClient {
    address: SocketAddr,
    connection: Option<BufReader<TcpStream>>,
}

impl HttpClient {
    pub fn new(address: SocketAddr) -> HttpClient {
        HttpClient {
            address,
            connection: None,
        }
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request("GET", path, None).await
    }

    pub async fn post_json(
        &mut self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Response> {
        self.request("POST", path, Some(body.to_string().as_bytes()))
            .await
    }

    /// One request; a kept-alive connection the server closed meanwhile is replaced once.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        let reused = self.connection.is_some();
        match tokio::time::timeout(TIMEOUT, self.exchange(method, path, body)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) if reused => {
                self.connection = None;
                tokio::time::timeout(TIMEOUT, self.exchange(method, path, body))
                    .await
                    .with_context(|| format!("{method} {path}: no answer within {TIMEOUT:?}"))?
            }
            Ok(Err(e)) => {
                self.connection = None;
                Err(e)
            }
            Err(_) => {
                self.connection = None;
                bail!("{method} {path}: no answer within {TIMEOUT:?}")
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(self.address)
                .await
                .with_context(|| format!("connecting to {}", self.address))?;
            stream.set_nodelay(true)?;
            self.connection = Some(BufReader::new(stream));
        }
        let connection = self.connection.as_mut().expect("connected above");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.address);
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        connection.get_mut().write_all(head.as_bytes()).await?;
        if let Some(body) = body {
            connection.get_mut().write_all(body).await?;
        }

        let mut line = String::new();
        connection.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            if connection.read_line(&mut line).await? == 0 {
                bail!("connection closed in the response head");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim().to_ascii_lowercase();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" => close = value == "close",
                _ => {}
            }
        }
        let mut bytes = Vec::new();
        if chunked {
            loop {
                line.clear();
                connection.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                let mut chunk = vec![0; size + 2];
                connection.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                bytes.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            bytes.resize(length, 0);
            connection.read_exact(&mut bytes).await?;
        } else {
            connection.read_to_end(&mut bytes).await?;
            close = true;
        }
        if close {
            self.connection = None;
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}
