//! The gateway's upstreams: one long-lived, lazily connected tonic `Channel` per service (never
//! one per request), each wrapped in the client metrics/tracing layer, plus the per-request
//! deadline that every outgoing call carries.

use std::time::{Duration, Instant};

use platform::metrics::{GrpcMetricsLayer, GrpcMetricsService, Metrics, RpcMetrics, Side};
use protos::{
    marketplace::v1::marketplace_service_client::MarketplaceServiceClient,
    recommendations::v1::recommendations_service_client::RecommendationsServiceClient,
    users::v1::users_service_client::UsersServiceClient,
};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};
use tower::Layer;

/// A channel with the client layer on it.
pub type Upstream = GrpcMetricsService<Channel>;

/// Clients of the three services; cloning shares the channels.
#[derive(Clone)]
pub struct Upstreams {
    pub marketplace: MarketplaceServiceClient<Upstream>,
    pub recommendations: RecommendationsServiceClient<Upstream>,
    pub users: UsersServiceClient<Upstream>,
}

/// An upstream address that is not a valid URI.
#[derive(Debug, thiserror::Error)]
#[error("{name} upstream address {url:?} is not valid: {source}")]
pub struct BadUpstream {
    name: &'static str,
    url: String,
    source: tonic::transport::Error,
}

fn channel(name: &'static str, url: &str) -> Result<Channel, BadUpstream> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|source| BadUpstream {
            name,
            url: url.to_owned(),
            source,
        })?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        // Connects on first use and reconnects by itself: start-up order does not matter.
        .connect_lazy())
}

impl Upstreams {
    pub fn new(
        marketplace: &str,
        recommendations: &str,
        users: &str,
        metrics: &Metrics,
    ) -> Result<Self, BadUpstream> {
        let layer = GrpcMetricsLayer::new(RpcMetrics::new(metrics, Side::Client));
        Ok(Self {
            marketplace: MarketplaceServiceClient::new(
                layer.layer(channel("marketplace", marketplace)?),
            ),
            recommendations: RecommendationsServiceClient::new(
                layer.layer(channel("recommendations", recommendations)?),
            ),
            users: UsersServiceClient::new(layer.layer(channel("users", users)?)),
        })
    }
}

/// A bearer token as the caller sent it, checked to be a legal header value.
#[derive(Clone, Debug)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    /// `None` for anything that cannot be a token (the services would refuse it anyway).
    pub fn parse(token: &str) -> Option<Self> {
        let token = token.trim();
        if token.is_empty() || token.len() > 4096 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        format!("Bearer {token}").parse().ok().map(Self)
    }
}

/// The time left to answer one HTTP request; every upstream call gets what remains.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// The time left, or DEADLINE_EXCEEDED when none is.
    pub fn remaining(&self) -> Result<Duration, Status> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(Status::deadline_exceeded("the request ran out of time"))
        } else {
            Ok(left)
        }
    }

    /// A gRPC request carrying the remaining time (`grpc-timeout`) and the caller's token.
    pub fn call<T>(&self, message: T, auth: Option<&Bearer>) -> Result<Request<T>, Status> {
        self.call_within(message, auth, Duration::MAX)
    }

    /// Like [`Deadline::call`], but never longer than `cap` (for optional page sections).
    pub fn call_within<T>(
        &self,
        message: T,
        auth: Option<&Bearer>,
        cap: Duration,
    ) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        request.set_timeout(self.remaining()?.min(cap));
        if let Some(token) = auth {
            request
                .metadata_mut()
                .insert("authorization", token.0.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_with_spaces_or_control_characters_is_not_forwarded() {
        assert!(Bearer::parse("abc.def").is_some());
        assert!(Bearer::parse("abc def").is_none());
        assert!(Bearer::parse("abc\ndef").is_none());
        assert!(Bearer::parse("").is_none());
    }

    #[test]
    fn each_call_carries_the_remaining_time_and_the_token() {
        let d = Deadline::after(Duration::from_secs(2));
        let r = d.call((), Bearer::parse("t0k3n").as_ref()).unwrap();
        assert_eq!(r.metadata().get("authorization").unwrap(), "Bearer t0k3n");
        let timeout = r.metadata().get("grpc-timeout").unwrap().to_str().unwrap();
        assert!(
            timeout.ends_with('u') || timeout.ends_with('m'),
            "{timeout}"
        );
    }

    #[test]
    fn a_spent_deadline_refuses_to_call() {
        let d = Deadline::after(Duration::ZERO);
        assert_eq!(
            d.call((), None).unwrap_err().code(),
            tonic::Code::DeadlineExceeded
        );
    }
}
