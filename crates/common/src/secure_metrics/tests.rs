//! Tests of the secure metrics server: pure helpers, and the whole flow over TLS against a
//! fake API server.

use super::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Empty};
use hyper::HeaderMap;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap()
}

#[test]
fn bearer_tokens_parse() {
    assert_eq!(bearer_token(None), None);
    assert_eq!(bearer_token(Some(&header("Basic dXNlcjpwdw=="))), None);
    assert_eq!(bearer_token(Some(&header("Bearer"))), None);
    assert_eq!(bearer_token(Some(&header("Bearer "))), None);
    assert_eq!(bearer_token(Some(&header("Bearer    "))), None);
    assert_eq!(bearer_token(Some(&header("Bearer a b"))), None);
    assert_eq!(bearer_token(Some(&header("Bearertoken"))), None);
    assert_eq!(
        bearer_token(Some(&header("Bearer abc.def"))),
        Some("abc.def")
    );
    assert_eq!(bearer_token(Some(&header("bearer abc"))), Some("abc"));
    assert_eq!(bearer_token(Some(&header(" BEARER  abc "))), Some("abc"));
}

#[test]
fn token_keys_are_sha256() {
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    assert_eq!(
        token_key("abc")[..4],
        [0xba, 0x78, 0x16, 0xbf],
        "{:x?}",
        token_key("abc")
    );
    assert_ne!(token_key("a"), token_key("b"));
}

#[test]
fn cached_decisions_expire() {
    let start = Instant::now();
    let mut cache = DecisionCache::new(Duration::from_secs(60), 8);
    let key = token_key("t");
    assert_eq!(cache.get(&key, start), None);
    cache.put(key, Decision::Allowed, start);
    assert_eq!(
        cache.get(&key, start + Duration::from_secs(59)),
        Some(Decision::Allowed)
    );
    assert_eq!(cache.get(&key, start + Duration::from_secs(60)), None);
    assert!(cache.is_empty(), "an expired entry is removed when met");
    cache.put(key, Decision::Forbidden("no".into()), start);
    cache.put(key, Decision::Allowed, start + Duration::from_secs(30));
    assert_eq!(
        cache.get(&key, start + Duration::from_secs(80)),
        Some(Decision::Allowed),
        "putting again restarts the TTL"
    );
}

#[test]
fn the_cache_is_bounded() {
    let start = Instant::now();
    let ttl = Duration::from_secs(60);
    let mut cache = DecisionCache::new(ttl, 4);
    let key = |i: usize| token_key(&i.to_string());
    // Two old entries, two recent ones: the next put evicts the expired two only.
    cache.put(key(0), Decision::Allowed, start);
    cache.put(key(1), Decision::Allowed, start);
    let later = start + Duration::from_secs(40);
    cache.put(key(2), Decision::Allowed, later);
    cache.put(key(3), Decision::Unauthenticated, later);
    let now = start + Duration::from_secs(70);
    cache.put(key(4), Decision::Allowed, now);
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.get(&key(3), now), Some(Decision::Unauthenticated));
    assert_eq!(cache.get(&key(0), now), None);
    // Overwriting a present key never evicts.
    cache.put(key(5), Decision::Allowed, now);
    cache.put(key(5), Decision::Unauthenticated, now);
    assert_eq!(cache.len(), 4);
    // Full of live entries: cleared, then the new one goes in.
    cache.put(key(6), Decision::Allowed, now);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&key(6), now), Some(Decision::Allowed));
    for i in 0..10_000 {
        cache.put(key(i), Decision::Allowed, now);
        assert!(cache.len() <= 4);
    }
}

fn user(name: &str) -> UserInfo {
    UserInfo {
        username: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        groups: Some(vec!["system:serviceaccounts".into()]),
        extra: Some(BTreeMap::from([(
            "authentication.kubernetes.io/pod-name".to_owned(),
            vec!["prometheus-0".to_owned()],
        )])),
    }
}

#[test]
fn access_reviews_copy_the_user() {
    let prometheus = user("prometheus");
    let spec = access_review(&prometheus).spec;
    assert_eq!(spec.user, prometheus.username);
    assert_eq!(spec.uid, prometheus.uid);
    assert_eq!(spec.groups, prometheus.groups);
    assert_eq!(spec.extra, prometheus.extra);
    assert_eq!(
        spec.non_resource_attributes,
        Some(NonResourceAttributes {
            path: Some("/metrics".into()),
            verb: Some("get".into()),
        })
    );
    assert_eq!(spec.resource_attributes, None);
}

#[test]
fn review_statuses_decide() {
    assert!(authenticated_user(None).is_err());
    let failed = TokenReviewStatus {
        authenticated: Some(false),
        error: Some("invalid bearer token".into()),
        ..Default::default()
    };
    assert_eq!(
        authenticated_user(Some(failed)),
        Err("invalid bearer token".into())
    );
    let passed = TokenReviewStatus {
        authenticated: Some(true),
        user: Some(user("p")),
        ..Default::default()
    };
    assert_eq!(authenticated_user(Some(passed)), Ok(user("p")));

    let p = user("p");
    let allowed = SubjectAccessReviewStatus {
        allowed: true,
        ..Default::default()
    };
    assert_eq!(
        access_decision(&p, Some(allowed)),
        (Decision::Allowed, true)
    );
    let denied = SubjectAccessReviewStatus {
        reason: Some("no binding".into()),
        ..Default::default()
    };
    let (decision, cacheable) = access_decision(&p, Some(denied));
    assert!(cacheable);
    assert!(
        matches!(&decision, Decision::Forbidden(why) if why.contains("no binding") && why.contains("\"p\""))
    );
    let broken = SubjectAccessReviewStatus {
        evaluation_error: Some("webhook authorizer down".into()),
        ..Default::default()
    };
    let (decision, cacheable) = access_decision(&p, Some(broken));
    assert!(
        !cacheable,
        "a denial with an evaluation error is not cached"
    );
    assert!(
        matches!(&decision, Decision::Forbidden(why) if why.contains("webhook authorizer down"))
    );
    assert!(!access_decision(&p, None).1);
}

#[test]
fn certificates_cover_localhost_and_the_hostname() {
    assert_eq!(subject_alt_names(None), ["localhost"]);
    assert_eq!(
        subject_alt_names(Some("manager-7d9f-x2")),
        ["localhost", "manager-7d9f-x2"]
    );
    assert_eq!(subject_alt_names(Some("")), ["localhost"]);
    assert_eq!(subject_alt_names(Some("LOCALHOST")), ["localhost"]);
    assert_eq!(subject_alt_names(Some("bad name")), ["localhost"]);
    self_signed_config(subject_alt_names(Some("manager-0"))).unwrap();
}

// ---- the whole flow: a fake API server behind kube::Client, an HTTPS client ----

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers token and access reviews: token `good` is user `prometheus` (allowed), token
/// `denied` is user `intruder` (not allowed), token `boom` fails with a 500, any other
/// token is not authenticated.
fn fake_api(calls: Arc<AtomicUsize>) -> kube::Client {
    let service = tower::service_fn(move |request: Request<kube::client::Body>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(request.method(), Method::POST);
            let path = request.uri().path().to_owned();
            let body = request.into_body().collect().await?.to_bytes();
            let (status, reply) = match path.as_str() {
                "/apis/authentication.k8s.io/v1/tokenreviews" => {
                    let mut review: TokenReview = serde_json::from_slice(&body)?;
                    let name = match review.spec.token.as_str() {
                        "good" => Some("prometheus"),
                        "denied" => Some("intruder"),
                        "boom" => {
                            let status = serde_json::json!({
                                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "message": "etcd is on fire", "reason": "InternalError",
                                "code": 500,
                            });
                            return Ok::<_, BoxError>(json_response(500, status.to_string()));
                        }
                        _ => None,
                    };
                    review.status = Some(TokenReviewStatus {
                        authenticated: Some(name.is_some()),
                        user: name.map(user),
                        error: name.is_none().then(|| "invalid bearer token".into()),
                        ..Default::default()
                    });
                    (200, serde_json::to_string(&review)?)
                }
                "/apis/authorization.k8s.io/v1/subjectaccessreviews" => {
                    let mut review: SubjectAccessReview = serde_json::from_slice(&body)?;
                    let attributes = review.spec.non_resource_attributes.clone().unwrap();
                    assert_eq!(attributes.path.as_deref(), Some("/metrics"));
                    assert_eq!(attributes.verb.as_deref(), Some("get"));
                    let allowed = review.spec.user.as_deref() == Some("prometheus");
                    assert_eq!(review.spec.groups, user("x").groups);
                    review.status = Some(SubjectAccessReviewStatus {
                        allowed,
                        reason: (!allowed).then(|| "no RBAC policy matched".into()),
                        ..Default::default()
                    });
                    (200, serde_json::to_string(&review)?)
                }
                _ => (404, "{}".to_owned()),
            };
            Ok(json_response(status, reply))
        }
    });
    kube::Client::new(service, "default")
}

fn json_response(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

struct Metrics;
impl Probes for Metrics {
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
    fn metrics(&self) -> String {
        "# TYPE up gauge\nup 1\n# EOF\n".into()
    }
}

/// Accepts any certificate (as Prometheus' insecureSkipVerify does) but still checks
/// the handshake signatures.
#[derive(Debug)]
struct SkipVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for SkipVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn request(
    address: SocketAddr,
    method: Method,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SkipVerification(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "localhost");
    if let Some(authorization) = authorization {
        builder = builder.header(AUTHORIZATION, authorization);
    }
    let response = sender
        .send_request(builder.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn only_reviewed_and_allowed_callers_get_metrics() {
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(
        listener,
        fake_api(calls.clone()),
        Arc::new(Metrics),
        stopped,
    ));
    let calls_so_far = || calls.load(Ordering::SeqCst);

    let (status, headers, _) = request(address, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
    let (status, _, _) = request(address, Method::GET, "/metrics", Some("Basic eDp5")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(calls_so_far(), 0, "no API call without a bearer token");

    let (status, headers, _) =
        request(address, Method::GET, "/metrics", Some("Bearer nonsense")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(
        calls_so_far(),
        1,
        "an unauthenticated token needs no access review"
    );

    let (status, _, body) = request(address, Method::GET, "/metrics", Some("Bearer denied")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("no RBAC policy matched"), "{body}");
    assert!(body.contains("intruder"), "{body}");
    assert_eq!(calls_so_far(), 3);

    let (status, headers, body) =
        request(address, Method::GET, "/metrics", Some("Bearer good")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "# TYPE up gauge\nup 1\n# EOF\n");
    assert_eq!(headers[CONTENT_TYPE], OPENMETRICS);
    assert_eq!(calls_so_far(), 5);

    // Within the TTL every decision comes from the cache.
    let (status, _, body) = request(address, Method::GET, "/metrics", Some("Bearer good")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "# TYPE up gauge\nup 1\n# EOF\n");
    let (status, _, _) = request(address, Method::GET, "/metrics", Some("Bearer denied")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = request(address, Method::GET, "/metrics", Some("Bearer nonsense")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(calls_so_far(), 5, "cached decisions cost no API call");

    // API server trouble is a 503, and is not cached.
    let (status, _, _) = request(address, Method::GET, "/metrics", Some("Bearer boom")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = request(address, Method::GET, "/metrics", Some("Bearer boom")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls_so_far(), 7);

    let (status, headers, _) =
        request(address, Method::POST, "/metrics", Some("Bearer good")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[ALLOW], "GET");
    let (status, _, _) = request(address, Method::GET, "/other", Some("Bearer good")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = request(address, Method::GET, "/healthz", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(calls_so_far(), 7);

    stop.send(true).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve stops after the shutdown signal")
        .unwrap();
    assert!(result.is_ok());
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the listener is closed"
    );
}
