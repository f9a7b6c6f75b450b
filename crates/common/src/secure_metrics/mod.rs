//! `/metrics` over HTTPS for callers the API server vouches for: what the kube-rbac-proxy
//! sidecar did, in-process.
//!
//! A caller sends `Authorization: Bearer <token>`. The token must pass a `TokenReview`, and
//! the user it belongs to must be allowed, by a `SubjectAccessReview`, to `get` the
//! non-resource URL `/metrics` (as the `system:auth-delegator` ClusterRole lets the serving
//! service account ask). Decisions are cached for [`CACHE_TTL`] by the SHA-256 of the token,
//! so a scrape every 15 s costs two API calls a minute, not two per scrape.
//!
//! The serving certificate is self-signed and minted at start (ECDSA P-256, for `localhost`
//! and `$HOSTNAME`): Prometheus scrapes it with `insecureSkipVerify`, as it did the proxy's.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::authentication::v1::{
    TokenReview, TokenReviewSpec, TokenReviewStatus, UserInfo,
};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::Api;
use kube::api::PostParams;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin::Probes;
use crate::server::{self, Options};

mod certificate;
pub use certificate::{self_signed_config, subject_alt_names};

/// How long an allow or deny decision is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most tokens whose decision is remembered.
pub const CACHE_CAPACITY: usize = 1024;
/// The path served, and the non-resource URL callers must be allowed to `get`.
const METRICS_PATH: &str = "/metrics";
/// The token and access reviews together; beyond it the caller gets a 503.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("minting the self-signed metrics certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("building the metrics TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// What the API server said about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Authenticated and allowed to `get /metrics`.
    Allowed,
    /// The token review did not authenticate the token.
    Unauthenticated,
    /// Authenticated but not allowed; the body of the 403.
    Forbidden(String),
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or
/// `None` when the header is missing, of another scheme, empty or not a single token.
pub fn bearer_token(header: Option<&HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(char::is_whitespace)
    {
        return None;
    }
    Some(token)
}

/// What a token is cached under: its SHA-256, so the cache holds no credentials.
pub type TokenKey = [u8; 32];

pub fn token_key(token: &str) -> TokenKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Decisions by token, each valid for a while; bounded in size.
#[derive(Debug)]
pub struct DecisionCache {
    entries: HashMap<TokenKey, (Decision, Instant)>,
    ttl: Duration,
    capacity: usize,
}

impl Default for DecisionCache {
    fn default() -> Self {
        Self::new(CACHE_TTL, CACHE_CAPACITY)
    }
}

impl DecisionCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        DecisionCache {
            entries: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The decision for `key` if it was made less than the TTL before `now`.
    pub fn get(&mut self, key: &TokenKey, now: Instant) -> Option<Decision> {
        match self.entries.get(key) {
            Some((decision, expires)) if now < *expires => Some(decision.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `decision` for `key` from `now`. When full, expired entries go first and,
    /// if that frees nothing, everything does.
    pub fn put(&mut self, key: TokenKey, decision: Decision, now: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, expires)| now < *expires);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (decision, now + self.ttl));
    }
}

/// The review of `token`.
pub fn token_review(token: &str) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The user a token review authenticated, or why it did not.
pub fn authenticated_user(status: Option<TokenReviewStatus>) -> Result<UserInfo, String> {
    let status = status.ok_or("the token review has no status")?;
    match (status.authenticated, status.user) {
        (Some(true), Some(user)) => Ok(user),
        _ => Err(status
            .error
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "not authenticated".into())),
    }
}

/// Whether `user` may `get /metrics`.
pub fn access_review(user: &UserInfo) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(METRICS_PATH.into()),
                verb: Some("get".into()),
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The decision an access review's status makes, and whether it may be cached (a denial
/// that came with an evaluation error may be a passing failure of an authorizer).
pub fn access_decision(
    user: &UserInfo,
    status: Option<SubjectAccessReviewStatus>,
) -> (Decision, bool) {
    let Some(status) = status else {
        return (
            Decision::Forbidden(forbidden(user, "the access review has no status")),
            false,
        );
    };
    if status.allowed {
        return (Decision::Allowed, true);
    }
    let reason = status
        .reason
        .filter(|r| !r.is_empty())
        .or_else(|| status.evaluation_error.clone().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "no RBAC rule allows it".into());
    let cacheable = status.evaluation_error.is_none_or(|e| e.is_empty());
    (Decision::Forbidden(forbidden(user, &reason)), cacheable)
}

fn forbidden(user: &UserInfo, reason: &str) -> String {
    let name = user.username.as_deref().unwrap_or("");
    format!("forbidden: user \"{name}\" may not get {METRICS_PATH}: {reason}\n")
}

/// Asks the API server about tokens, remembering its answers.
struct Authorizer {
    client: kube::Client,
    cache: Mutex<DecisionCache>,
}

impl Authorizer {
    fn cache(&self) -> std::sync::MutexGuard<'_, DecisionCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn decide(&self, token: &str) -> Result<Decision, kube::Error> {
        let key = token_key(token);
        if let Some(decision) = self.cache().get(&key, Instant::now()) {
            return Ok(decision);
        }
        let (decision, cacheable) = self.review(token).await?;
        if cacheable {
            self.cache().put(key, decision.clone(), Instant::now());
        }
        Ok(decision)
    }

    async fn review(&self, token: &str) -> Result<(Decision, bool), kube::Error> {
        let params = PostParams::default();
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&params, &token_review(token))
            .await?;
        let user = match authenticated_user(reviewed.status) {
            Ok(user) => user,
            Err(why) => {
                tracing::debug!("{METRICS_PATH} caller not authenticated: {why}");
                return Ok((Decision::Unauthenticated, true));
            }
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&params, &access_review(&user))
            .await?;
        let (decision, cacheable) = access_decision(&user, reviewed.status);
        if let Decision::Forbidden(why) = &decision {
            tracing::debug!("{}", why.trim_end());
        }
        Ok((decision, cacheable))
    }
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn unauthorized() -> Response<Body> {
    let mut response = reply(StatusCode::UNAUTHORIZED, "Unauthorized\n", TEXT);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

struct State {
    probes: Arc<dyn Probes>,
    authorizer: Authorizer,
}

/// Answers one request.
async fn handle<B>(state: &State, request: &Request<B>) -> Response<Body> {
    match request.uri().path() {
        "/healthz" => return reply(StatusCode::OK, "ok\n", TEXT),
        METRICS_PATH => {}
        _ => return reply(StatusCode::NOT_FOUND, "not found\n", TEXT),
    }
    if request.method() != Method::GET {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n", TEXT);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let Some(token) = bearer_token(request.headers().get(AUTHORIZATION)) else {
        return unauthorized();
    };
    match tokio::time::timeout(REVIEW_TIMEOUT, state.authorizer.decide(token)).await {
        Ok(Ok(Decision::Allowed)) => reply(StatusCode::OK, state.probes.metrics(), OPENMETRICS),
        Ok(Ok(Decision::Unauthenticated)) => unauthorized(),
        Ok(Ok(Decision::Forbidden(why))) => reply(StatusCode::FORBIDDEN, why, TEXT),
        Ok(Err(e)) => {
            tracing::warn!("reviewing a {METRICS_PATH} caller with the API server: {e}");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not review the token\n",
                TEXT,
            )
        }
        Err(_) => {
            tracing::warn!(
                "reviewing a {METRICS_PATH} caller with the API server took over {REVIEW_TIMEOUT:?}"
            );
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "reviewing the token timed out\n",
                TEXT,
            )
        }
    }
}

/// Binds `address` (`:8443` style accepted, see [`crate::bind`]) and serves [`serve`] in
/// the background until `shutdown` changes; a failure after the bind is logged. The task
/// ends with the server.
pub async fn start(
    address: &str,
    client: kube::Client,
    probes: Arc<dyn Probes>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = crate::bind(address).await?;
    Ok(tokio::spawn(async move {
        if let Err(e) = serve(listener, client, probes, shutdown).await {
            tracing::error!("secure metrics server: {e}");
        }
    }))
}

/// Serves `/metrics` of `probes` over HTTPS on `listener` until `shutdown` changes.
///
/// Only callers whose bearer token `client` can review, and who may `get /metrics`, are
/// answered; `/healthz` answers anyone. Fails only at start, when the certificate cannot be
/// minted.
pub async fn serve(
    listener: TcpListener,
    client: kube::Client,
    probes: Arc<dyn Probes>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let hostname = std::env::var("HOSTNAME").ok();
    let tls = self_signed_config(subject_alt_names(hostname.as_deref()))?;
    let state = Arc::new(State {
        probes,
        authorizer: Authorizer {
            client,
            cache: Mutex::new(DecisionCache::default()),
        },
    });
    if let Ok(local) = listener.local_addr() {
        tracing::info!("serving {METRICS_PATH} over HTTPS on {local}");
    }
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, &request).await) }
    });
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let options = Options::new("metrics");
    server::serve(listener, Some(acceptor), service, shutdown, options).await;
    Ok(())
}

#[cfg(test)]
mod tests;
