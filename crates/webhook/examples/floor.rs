//! The benchmark floor: a minimal HTTPS server that terminates TLS, parses the
//! AdmissionReview and answers `allowed`, with no rules, metrics or routing.
//!
//!     floor <listen address> <cert dir with tls.crt and tls.key>

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("listen address");
    let dir = std::path::PathBuf::from(args.next().expect("cert dir"));
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(dir.join("tls.crt"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(
                |request: hyper::Request<hyper::body::Incoming>| async move {
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let answer =
                        match serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body) {
                            Ok(review) => {
                                let request: Result<AdmissionRequest<DynamicObject>, _> =
                                    review.try_into();
                                match request {
                                    Ok(request) => AdmissionResponse::from(&request),
                                    Err(_) => AdmissionResponse::invalid("no request"),
                                }
                            }
                            Err(e) => AdmissionResponse::invalid(e),
                        };
                    let bytes = serde_json::to_vec(&answer.into_review()).unwrap();
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(bytes))))
                },
            );
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
