//! The methods offered to browsers, what the gateway does for each besides forwarding, and the
//! services whose other methods are refused.

/// The upstream a public method is forwarded to (its index in [`Upstreams::channels`]).
///
/// [`Upstreams::channels`]: crate::upstream::Upstreams::channels
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Upstreamed {
    Marketplace = 0,
    Recommendations = 1,
    Users = 2,
}

/// What the gateway does besides forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Guard {
    /// Nothing: reads and writes of the caller's own data (the service checks the token).
    None,
    /// A live feed: counted under `FEED_LIMIT` and `FEED_LIMIT_PER_CLIENT`, no default deadline.
    Feed,
    /// Sign-up: the client address's sign-in budget.
    SignUp,
    /// Sign-in: the address's budget and the account's budget of failed attempts.
    SignIn,
    /// An account change that may check the current password: as sign-in, by account id.
    PasswordCheck,
}

/// A method offered to browsers.
pub(super) struct Public {
    pub(super) path: &'static str,
    pub(super) upstream: Upstreamed,
    pub(super) guard: Guard,
}

const MARKETPLACE: &str = "bookstore.marketplace.v1.MarketplaceService";
const RECOMMENDATIONS: &str = "bookstore.recommendations.v1.RecommendationsService";
const USERS: &str = "bookstore.users.v1.UsersService";

/// Every method reachable from outside; anything else under a service's path is UNIMPLEMENTED.
pub(super) const PUBLIC: &[Public] = &[
    public(
        "/bookstore.marketplace.v1.MarketplaceService/ListBooks",
        Upstreamed::Marketplace,
        Guard::None,
    ),
    public(
        "/bookstore.marketplace.v1.MarketplaceService/SearchBooks",
        Upstreamed::Marketplace,
        Guard::None,
    ),
    public(
        "/bookstore.marketplace.v1.MarketplaceService/GetBook",
        Upstreamed::Marketplace,
        Guard::None,
    ),
    public(
        "/bookstore.marketplace.v1.MarketplaceService/BatchGetBooks",
        Upstreamed::Marketplace,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/RateBook",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/DeleteRating",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/ListMyRatings",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/ListPopularBooks",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/ListSimilarBooks",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/ListRecommendationsForMe",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/WatchRatings",
        Upstreamed::Recommendations,
        Guard::Feed,
    ),
    public(
        "/bookstore.users.v1.UsersService/CreateUser",
        Upstreamed::Users,
        Guard::SignUp,
    ),
    public(
        "/bookstore.users.v1.UsersService/SignIn",
        Upstreamed::Users,
        Guard::SignIn,
    ),
    public(
        "/bookstore.users.v1.UsersService/GetUser",
        Upstreamed::Users,
        Guard::None,
    ),
    public(
        "/bookstore.users.v1.UsersService/UpdateUser",
        Upstreamed::Users,
        Guard::PasswordCheck,
    ),
    public(
        "/bookstore.users.v1.UsersService/DeleteUser",
        Upstreamed::Users,
        Guard::None,
    ),
    public(
        "/bookstore.users.v1.UsersService/SignOut",
        Upstreamed::Users,
        Guard::None,
    ),
];

const fn public(path: &'static str, upstream: Upstreamed, guard: Guard) -> Public {
    Public {
        path,
        upstream,
        guard,
    }
}

/// Services whose other methods (and the gRPC health and reflection services) are answered
/// UNIMPLEMENTED rather than with the site's 404 page.
pub(super) const REFUSED_SERVICES: &[&str] = &[
    MARKETPLACE,
    RECOMMENDATIONS,
    USERS,
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The public method at `path`, if it is one.
pub(super) fn public_at(path: &str) -> Option<&'static Public> {
    PUBLIC.iter().find(|m| m.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_for_services_only_are_not_public() {
        for internal in [
            "/bookstore.recommendations.v1.RecommendationsService/DeleteUserRatings",
            "/bookstore.recommendations.v1.RecommendationsService/RevokeSession",
            "/grpc.health.v1.Health/Check",
        ] {
            assert!(PUBLIC.iter().all(|m| m.path != internal), "{internal}");
            assert!(
                super::super::is_grpc_web_path(internal),
                "{internal} is answered UNIMPLEMENTED"
            );
        }
        assert!(!super::super::is_grpc_web_path("/books/12"));
        assert!(!super::super::is_grpc_web_path("/api/v1/books"));
    }
}
