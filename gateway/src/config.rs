//! The gateway binary's configuration: one `clap` struct, every field also read from the
//! environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use platform::config::{ServeArgs, TelemetryArgs};

use crate::{serve, upstream};

/// Configuration of the gateway binary.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "gateway",
    version,
    about = "The bookstore's public door: REST API, marketplace pages and SSE over the gRPC services."
)]
pub struct Config {
    /// Address the public HTTP server listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Address of the admin HTTP server (/metrics, /livez, /readyz).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9090")]
    pub admin_addr: SocketAddr,
    /// The marketplace service: `http://host:port` (`https://` for TLS, see
    /// --upstream-tls-ca), or several separated by commas. A host name
    /// is resolved again every UPSTREAM_RESOLVE_INTERVAL_MS (a headless Service names every ready
    /// pod) and calls are balanced over every replica whose health reports SERVING.
    #[arg(
        long,
        env = "MARKETPLACE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub marketplace_url: String,
    /// The recommendations service (same forms as --marketplace-url).
    #[arg(
        long,
        env = "RECOMMENDATIONS_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub recommendations_url: String,
    /// The users service (same forms as --marketplace-url).
    #[arg(long, env = "USERS_URL", default_value = "http://127.0.0.1:50053")]
    pub users_url: String,
    /// How often upstream host names are resolved again, in milliseconds.
    #[arg(long, env = "UPSTREAM_RESOLVE_INTERVAL_MS", default_value_t = 5_000)]
    pub upstream_resolve_interval_ms: u64,
    /// The CA (PEM) that signed the services' certificates: upstreams given as https:// are
    /// reached over TLS and must present a certificate it signed (http:// stay plaintext).
    #[arg(long, env = "UPSTREAM_TLS_CA_FILE")]
    pub upstream_tls_ca: Option<PathBuf>,
    /// Mutual TLS: the gateway's client certificate (PEM); needs --upstream-tls-key and
    /// --upstream-tls-ca.
    #[arg(long, env = "UPSTREAM_TLS_CERT_FILE", requires_all = ["upstream_tls_key", "upstream_tls_ca"])]
    pub upstream_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --upstream-tls-cert.
    #[arg(long, env = "UPSTREAM_TLS_KEY_FILE", requires = "upstream_tls_cert")]
    pub upstream_tls_key: Option<PathBuf>,
    /// The name the services' certificates must carry (upstream addresses are resolved to IPs);
    /// default: the host of each upstream URL.
    #[arg(long, env = "UPSTREAM_TLS_DOMAIN", requires = "upstream_tls_ca")]
    pub upstream_tls_domain: Option<String>,
    /// Longest wait for an optional page section (recommendations), in milliseconds.
    #[arg(long, env = "OPTIONAL_TIMEOUT_MS", default_value_t = 800)]
    pub optional_timeout_ms: u64,
    /// How long the home page's "Popular now" panel (the same for every visitor) is kept before
    /// recommendations is asked again, in milliseconds; 0: asked on every page view.
    #[arg(long, env = "POPULAR_CACHE_MS", default_value_t = 1000)]
    pub popular_cache_ms: u64,
    /// How long the first page of the home page's grid (the catalog, most read first: the same
    /// for every reader) is kept before the marketplace is asked again, in milliseconds; 0: asked
    /// on every page view. Searches and later pages are always asked.
    #[arg(long, env = "GRID_CACHE_MS", default_value_t = 1000)]
    pub grid_cache_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 16 * 1024)]
    pub body_limit_bytes: usize,
    /// Mark the pages' cookies `Secure` and `__Host-` prefixed: set it when the pages are
    /// served over HTTPS. Behind a TLS proxy that sends `X-Forwarded-Proto: https` with
    /// TRUST_FORWARDED_FOR set, they are marked so for those requests without it.
    #[arg(long, env = "COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,
    /// Secret (32+ bytes) that signs the pages' form tokens (CSRF); gateway replicas must share
    /// it. Random per process when unset.
    #[arg(long, env = "CSRF_SECRET", hide_env_values = true, value_parser = platform::config::secret)]
    pub csrf_secret: Option<secrecy::SecretString>,
    /// Sign-in, sign-up and password-check attempts per client address per minute (API and
    /// pages together; an IPv6 client is its /64); beyond it, 429 with Retry-After.
    #[arg(long, env = "AUTH_RATE_PER_MINUTE", default_value_t = 10)]
    pub auth_rate_per_minute: u32,
    /// Attempts a client may make at once before the per-minute rate applies.
    #[arg(long, env = "AUTH_RATE_BURST", default_value_t = 10)]
    pub auth_rate_burst: u32,
    /// Failed sign-ins per account per minute, from any number of addresses (the account is the
    /// email, trimmed and lower-cased; for a password change, the account's id). A successful
    /// sign-in costs nothing; once the budget is spent every sign-in to that account is 429
    /// with Retry-After, a right password included, until it refills.
    #[arg(long, env = "AUTH_ACCOUNT_RATE_PER_MINUTE", default_value_t = 5)]
    pub auth_account_rate_per_minute: u32,
    /// Failed sign-ins an account may take at once before its per-minute rate applies.
    #[arg(long, env = "AUTH_ACCOUNT_RATE_BURST", default_value_t = 10)]
    pub auth_account_rate_burst: u32,
    /// Take the client's address from the last entry of X-Forwarded-For. Set it behind an
    /// ingress or proxy that appends the address it was reached from, and only when clients
    /// cannot reach the gateway except through it (else they could choose their own address).
    /// Behind a NodePort or LoadBalancer Service leave it off and give the Service
    /// `externalTrafficPolicy: Local`: the peer address is then the client's own (with the
    /// default `Cluster` it is a node's, and every client shares one budget).
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
    /// Live feeds (`GET /api/v1/ratings/stream`) this replica holds at once; beyond, 503 with
    /// Retry-After. Each holds a stream of recommendations, which keeps STREAM_LIMIT (1,024) per
    /// replica for all its streams: at the HPA's 4 gateway replicas (k8s/base/gateway.yaml),
    /// 4 x 192 = 768 < 1,024 even with every feed on one recommendations replica, leaving 256
    /// for other callers (health watches have their own pool). Raise maxReplicas, lower this.
    /// (STREAM_LIMIT itself does not apply to the gateway.)
    #[arg(long, env = "FEED_LIMIT", default_value_t = 192)]
    pub feed_limit: usize,
    /// Live feeds one client address (an IPv6 client: its /64) may hold at once; beyond, 429
    /// with Retry-After. A browser holds one per open book page.
    #[arg(long, env = "FEED_LIMIT_PER_CLIENT", default_value_t = 8)]
    pub feed_limit_per_client: usize,
    /// Origins (`https://app.example.com`, comma-separated) whose pages may call the services
    /// over gRPC-Web from the browser (CORS); none by default: only same-origin pages and
    /// non-browser clients can.
    #[arg(long, env = "GRPC_WEB_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = grpc_web_origin)]
    pub grpc_web_allowed_origins: Vec<http::HeaderValue>,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Header, body, idle and send timeouts; connection caps in total and per client.
    #[command(flatten)]
    pub connections: serve::ConnectionArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Config {
    /// The upstream addresses and how they are discovered.
    pub fn upstream_urls(&self) -> upstream::UpstreamUrls<'_> {
        upstream::UpstreamUrls {
            marketplace: &self.marketplace_url,
            recommendations: &self.recommendations_url,
            users: &self.users_url,
            resolve_every: Duration::from_millis(self.upstream_resolve_interval_ms.max(100)),
            tls: upstream::UpstreamTls {
                ca: self.upstream_tls_ca.as_deref(),
                cert: self.upstream_tls_cert.as_deref(),
                key: self.upstream_tls_key.as_deref(),
                domain: self.upstream_tls_domain.as_deref(),
            },
        }
    }
}

/// An origin as a browser sends it: `scheme://host[:port]`, nothing after.
fn grpc_web_origin(s: &str) -> Result<http::HeaderValue, String> {
    let s = s.trim();
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("{s:?} is not an origin: {e}"))?;
    match (
        uri.scheme_str(),
        uri.authority(),
        uri.path_and_query().map(|p| p.as_str()),
    ) {
        (Some("http" | "https"), Some(_), None | Some("" | "/")) if !s.ends_with('/') => {
            http::HeaderValue::from_str(s).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "{s:?} is not an origin (scheme://host[:port], no path)"
        )),
    }
}
