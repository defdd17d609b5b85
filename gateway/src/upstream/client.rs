//! One typed client per service, written once: every call carries what remains of the incoming
//! request's deadline (and the caller's token when the RPC needs one), and every failure becomes
//! an [`ApiError`] labelled with the service the client is for, so no caller can mislabel one.

use std::{future::Future, time::Duration};

use axum::http::StatusCode;
use protos::{
    marketplace::v1::marketplace_service_client::MarketplaceServiceClient,
    recommendations::v1::recommendations_service_client::RecommendationsServiceClient,
    users::v1::users_service_client::UsersServiceClient,
};
use tonic::{Request, Response, Status};

use super::{Bearer, Deadline, Upstream};
use crate::error::ApiError;

/// A generated gRPC client and the name its errors carry.
pub trait Service: Clone {
    /// The service's name in problem details and logs ("the marketplace service is unavailable").
    const NAME: &'static str;
}

impl Service for MarketplaceServiceClient<Upstream> {
    const NAME: &'static str = "marketplace";
}

impl Service for RecommendationsServiceClient<Upstream> {
    const NAME: &'static str = "recommendations";
}

impl Service for UsersServiceClient<Upstream> {
    const NAME: &'static str = "users";
}

/// A service's client for one incoming request: calls share the request's [`Deadline`].
#[derive(Clone)]
pub struct Client<C> {
    inner: C,
    deadline: Deadline,
    /// The longest any one call may take (optional page sections wait less than the request).
    cap: Duration,
}

impl<C: Service> Client<C> {
    /// `inner`'s calls bounded by `deadline`.
    pub fn new(inner: C, deadline: Deadline) -> Self {
        Self {
            inner,
            deadline,
            cap: Duration::MAX,
        }
    }

    /// The same client, its calls bounded by `deadline` instead (to share one request's budget
    /// between services).
    pub fn within(mut self, deadline: Deadline) -> Self {
        self.deadline = deadline;
        self
    }

    /// The same client, no call waiting longer than `cap` (for optional page sections).
    pub fn capped(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// The deadline this client's calls share.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// One unary call: `rpc` on the client with `message`, the remaining time and `auth`; the
    /// answer's message, or the failure mapped for this service.
    pub(super) async fn call<M, R, F, Fut>(
        &self,
        message: M,
        auth: Option<&Bearer>,
        rpc: F,
    ) -> Result<R, ApiError>
    where
        F: FnOnce(C, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let request = self
            .deadline
            .call_within(message, auth, self.cap)
            .map_err(|s| self.failed(&s))?;
        rpc(self.inner.clone(), request)
            .await
            .map(Response::into_inner)
            .map_err(|s| self.failed(&s))
    }

    /// The time an opening call (of a stream) may take: what remains, within the cap.
    pub(super) fn remaining(&self) -> Result<Duration, ApiError> {
        self.deadline
            .remaining()
            .map(|left| left.min(self.cap))
            .map_err(|s| self.failed(&s))
    }

    /// The generated client, for calls that are not unary.
    pub(super) fn inner(&self) -> C {
        self.inner.clone()
    }

    /// `status` from this service, as the caller sees it.
    pub(super) fn failed(&self, status: &Status) -> ApiError {
        ApiError::from_status(C::NAME, status)
    }

    /// An answer without the `what` it must carry: the service broke its contract.
    pub(super) fn missing(&self, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the {} service sent no {what}", C::NAME),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use platform::metrics::Metrics;

    use super::*;
    use crate::upstream::{
        Marketplace, Recommendations, UpstreamTls, UpstreamUrls, Upstreams, Users,
    };

    fn upstreams() -> Upstreams {
        let urls = UpstreamUrls {
            marketplace: "http://127.0.0.1:9",
            recommendations: "http://127.0.0.1:9",
            users: "http://127.0.0.1:9",
            resolve_every: Duration::from_secs(60),
            tls: UpstreamTls::default(),
        };
        Upstreams::new(&urls, &Metrics::new()).unwrap()
    }

    #[tokio::test]
    async fn each_client_labels_its_failures_with_its_own_service() {
        let up = upstreams();
        let spent = Deadline::after(Duration::ZERO);
        let e = Marketplace::new(up.marketplace.clone(), spent)
            .get_book(1)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(e.detail, "the marketplace service did not answer in time");
        let e = Recommendations::new(up.recommendations.clone(), spent)
            .similar(1, 5)
            .await
            .unwrap_err();
        assert_eq!(
            e.detail,
            "the recommendations service did not answer in time"
        );
        let e = Users::new(up.users.clone(), spent)
            .sign_out(None)
            .await
            .unwrap_err();
        assert_eq!(e.detail, "the users service did not answer in time");
    }

    #[tokio::test]
    async fn a_client_can_share_another_requests_deadline_and_be_capped() {
        let up = upstreams();
        let spent = Deadline::after(Duration::ZERO);
        let catalog = Marketplace::new(
            up.marketplace.clone(),
            Deadline::after(Duration::from_secs(5)),
        );
        assert!(catalog.remaining().unwrap() > Duration::from_secs(4));
        let capped = catalog.clone().capped(Duration::from_millis(300));
        assert!(capped.remaining().unwrap() <= Duration::from_millis(300));
        let shared = catalog.within(spent);
        assert_eq!(
            shared.remaining().unwrap_err().grpc_code,
            Some(tonic::Code::DeadlineExceeded)
        );
        assert_eq!(
            shared.missing("book").detail,
            "the marketplace service sent no book"
        );
    }
}
