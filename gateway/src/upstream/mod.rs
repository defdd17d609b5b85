//! The gateway's upstreams: one long-lived, lazily connected tonic `Channel` per service (never
//! one per request), each wrapped in the client metrics/tracing layer, plus the per-request
//! deadline that every outgoing call carries. Handlers reach a service through its typed client
//! (`marketplace`, `recommendations`, `users`, all built on `client`).

pub mod client;
pub mod discovery;
pub mod marketplace;
pub mod recommendations;
pub mod retry;
pub mod users;

use std::{path::Path, sync::Arc, time::Duration};

use platform::config::{Pem, TlsFileError, read_pem};
use platform::metrics::Metrics;
use platform::observe::{ClientObservation, ClientObserved};
use protos::{
    marketplace::v1::marketplace_service_client::MarketplaceServiceClient,
    recommendations::v1::recommendations_service_client::RecommendationsServiceClient,
    users::v1::users_service_client::UsersServiceClient,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tower::Layer;

pub use platform::{bearer::Bearer, deadline::Deadline};

pub use self::{
    client::Client, marketplace::Marketplace, recommendations::Recommendations, users::Users,
};
use self::{
    discovery::{Discovery, Replicas},
    retry::{CallPolicy, Calls},
};

/// A balanced channel with the call policy and the client metrics layer on it.
pub type Upstream = ClientObserved<Calls<Channel>>;

/// Clients of the three services; cloning shares the channels.
#[derive(Clone)]
pub struct Upstreams {
    pub marketplace: MarketplaceServiceClient<Upstream>,
    pub recommendations: RecommendationsServiceClient<Upstream>,
    pub users: UsersServiceClient<Upstream>,
    /// The same three channels untyped (marketplace, recommendations, users), for gRPC-Web
    /// calls forwarded as they come.
    pub channels: [Upstream; 3],
    /// What each upstream's balancer holds, by upstream name.
    pub replicas: Vec<(&'static str, Arc<Replicas>)>,
}

/// An upstream address that is not a valid `http(s)://host:port`, or TLS settings that cannot be
/// used.
#[derive(Debug, thiserror::Error)]
pub enum BadUpstream {
    #[error("{name} upstream address {url:?} is not valid: {why}")]
    Address {
        name: &'static str,
        url: String,
        why: String,
    },
    #[error("upstream TLS: {0}")]
    Tls(#[from] TlsFileError),
}

/// Whether the upstream `urls` are https:// (reached over TLS) or http:// (plaintext); one
/// upstream's addresses must agree.
pub fn uses_tls(name: &'static str, urls: &str) -> Result<bool, BadUpstream> {
    let https = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        });
    let (mut any, mut all) = (false, true);
    for h in https {
        any |= h;
        all &= h;
    }
    if any && !all {
        return Err(BadUpstream::Address {
            name,
            url: urls.to_owned(),
            why: "mixes http:// and https:// addresses".to_owned(),
        });
    }
    Ok(any)
}

/// `http(s)://host:port[,http(s)://host:port…]` as `host:port` targets.
pub fn targets(name: &'static str, urls: &str) -> Result<Vec<String>, BadUpstream> {
    let bad = |url: &str, why: &str| BadUpstream::Address {
        name,
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let list: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|url| {
            let uri: http::Uri = url
                .parse()
                .map_err(|e: http::uri::InvalidUri| bad(url, &e.to_string()))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err(bad(url, "the scheme must be http:// or https://"));
            }
            let host = uri.host().ok_or_else(|| bad(url, "no host"))?;
            let port = uri.port_u16().ok_or_else(|| bad(url, "no port"))?;
            Ok(format!("{host}:{port}"))
        })
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err(bad(urls, "no address given"));
    }
    Ok(list)
}

/// Per-upstream settings of [`Upstreams::new`].
pub struct UpstreamUrls<'a> {
    pub marketplace: &'a str,
    pub recommendations: &'a str,
    pub users: &'a str,
    /// How often host names are resolved again (new and departed replicas).
    pub resolve_every: Duration,
    /// TLS to the upstreams given as https:// (which need its CA).
    pub tls: UpstreamTls<'a>,
}

/// The gateway's TLS to the services given as https:// (`--upstream-tls-*`).
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamTls<'a> {
    /// The CA that signed the services' certificates (PEM).
    pub ca: Option<&'a Path>,
    /// The gateway's client certificate (PEM), for services that require mutual TLS.
    pub cert: Option<&'a Path>,
    /// Its private key (PEM).
    pub key: Option<&'a Path>,
    /// The name the services' certificates must carry; default: each URL's host.
    pub domain: Option<&'a str>,
}

impl UpstreamTls<'_> {
    /// The client TLS settings (without the server name), `None` for plaintext.
    pub fn config(&self) -> Result<Option<ClientTlsConfig>, TlsFileError> {
        let missing = |flag, by: &str| TlsFileError {
            flag,
            why: format!("must be set together with {by}"),
        };
        let Some(ca) = self.ca else {
            return match (self.cert, self.key, self.domain) {
                (None, None, None) => Ok(None),
                _ => Err(missing(
                    "--upstream-tls-ca",
                    "--upstream-tls-cert, --upstream-tls-key or --upstream-tls-domain",
                )),
            };
        };
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem(
            "--upstream-tls-ca",
            ca,
            Pem::Certificate,
        )?));
        match (self.cert, self.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read_pem("--upstream-tls-cert", cert, Pem::Certificate)?,
                    read_pem("--upstream-tls-key", key, Pem::PrivateKey)?,
                ));
            }
            (Some(_), None) => return Err(missing("--upstream-tls-key", "--upstream-tls-cert")),
            (None, Some(_)) => return Err(missing("--upstream-tls-cert", "--upstream-tls-key")),
            (None, None) => {}
        }
        Ok(Some(tls))
    }
}

impl Upstreams {
    pub fn new(urls: &UpstreamUrls<'_>, metrics: &Metrics) -> Result<Self, BadUpstream> {
        let layer = ClientObservation::new(metrics);
        let gauge = metrics.gauge_vec(
            "gateway_upstream_ready_replicas",
            "Replicas of each upstream reporting SERVING, and so in the gateway's balancer.",
            &["upstream"],
        );
        let retries = metrics.counter_vec(
            "grpc_client_retries_total",
            "Idempotent reads sent again after UNAVAILABLE (retried), or not for lack of retry budget (budget_exhausted).",
            &["upstream", "grpc_method", "outcome"],
        );
        let urls_resolve_every = urls.resolve_every;
        let tls = urls.tls.config()?.map(|config| discovery::Tls {
            config,
            domain: urls.tls.domain.map(str::to_owned),
        });
        let mut replicas = Vec::new();
        let mut build = |name: &'static str, health: &'static str, urls: &str| {
            let tls = if uses_tls(name, urls)? {
                Some(tls.clone().ok_or_else(|| BadUpstream::Address {
                    name,
                    url: urls.to_owned(),
                    why: "https:// needs --upstream-tls-ca (UPSTREAM_TLS_CA_FILE)".to_owned(),
                })?)
            } else {
                None
            };
            let (channel, r) = discovery::start(Discovery {
                name,
                health_service: health,
                targets: targets(name, urls)?,
                resolve_every: urls_resolve_every,
                gauge: gauge.clone(),
                tls,
            });
            replicas.push((name, r.clone()));
            let policy = Arc::new(CallPolicy::new(name, r, retries.clone()));
            Ok::<_, BadUpstream>(layer.layer(Calls::new(channel, policy)))
        };
        let marketplace = build(
            "marketplace",
            "bookstore.marketplace.v1.MarketplaceService",
            urls.marketplace,
        )?;
        let recommendations = build(
            "recommendations",
            "bookstore.recommendations.v1.RecommendationsService",
            urls.recommendations,
        )?;
        let users = build("users", "bookstore.users.v1.UsersService", urls.users)?;
        Ok(Self {
            channels: [marketplace.clone(), recommendations.clone(), users.clone()],
            marketplace: MarketplaceServiceClient::new(marketplace),
            recommendations: RecommendationsServiceClient::new(recommendations),
            users: UsersServiceClient::new(users),
            replicas,
        })
    }
}
