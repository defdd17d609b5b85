//! The pages' lists of picks against fake services: named by the recommendations service itself
//! (no BatchGetBooks), joined with the marketplace after all when a replica older than the
//! picks' titles answers; the REST API joins with full books as it always did.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Body, http::Request};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures_util::Stream;
use protos::{
    marketplace::v1::{
        self as mp,
        marketplace_service_server::{MarketplaceService, MarketplaceServiceServer},
    },
    recommendations::v1::{
        self as rec,
        recommendations_service_server::{RecommendationsService, RecommendationsServiceServer},
    },
};
use tokio::net::TcpListener;
use tonic::{Request as GrpcRequest, Response, Status};

use crate::helpers::{app, get, send};

/// What the fake marketplace was asked: the view of each BatchGetBooks call.
type BatchViews = Arc<Mutex<Vec<i32>>>;

/// A marketplace with an empty catalog page whose books, fetched by id, are named "Catalog …".
struct FakeMarketplace {
    batch_views: BatchViews,
}

#[tonic::async_trait]
impl MarketplaceService for FakeMarketplace {
    async fn list_books(
        &self,
        _: GrpcRequest<mp::ListBooksRequest>,
    ) -> Result<Response<mp::ListBooksResponse>, Status> {
        Ok(Response::new(mp::ListBooksResponse::default()))
    }

    async fn search_books(
        &self,
        _: GrpcRequest<mp::SearchBooksRequest>,
    ) -> Result<Response<mp::SearchBooksResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_book(
        &self,
        _: GrpcRequest<mp::GetBookRequest>,
    ) -> Result<Response<mp::GetBookResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn batch_get_books(
        &self,
        request: GrpcRequest<mp::BatchGetBooksRequest>,
    ) -> Result<Response<mp::BatchGetBooksResponse>, Status> {
        let r = request.into_inner();
        self.batch_views.lock().unwrap().push(r.view);
        let books = r
            .ids
            .iter()
            .map(|&id| mp::Book {
                id,
                title: format!("Catalog title {id}"),
                authors: vec![format!("Catalog author {id}")],
                rating_histogram: vec![0, 0, 0, 0, 1],
                ..Default::default()
            })
            .collect();
        Ok(Response::new(mp::BatchGetBooksResponse { books }))
    }
}

/// Recommendations that pick books 11 and 12, named "Summary …" when `named`, as a replica
/// older than the picks' titles and authors sends them (without) otherwise.
struct FakeRecommendations {
    named: bool,
}

impl FakeRecommendations {
    fn picks(&self, source: rec::RecommendationSource) -> Vec<rec::Recommendation> {
        [11, 12]
            .map(|id| rec::Recommendation {
                book_id: id,
                score: 1.0,
                source: source as i32,
                reason: format!("Reason {id}"),
                because_book_id: 0,
                title: if self.named {
                    format!("Summary title {id}")
                } else {
                    String::new()
                },
                authors: if self.named {
                    vec![format!("Summary author {id}"), "Second <author>".into()]
                } else {
                    Vec::new()
                },
            })
            .into()
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this fake"))
}

#[tonic::async_trait]
impl RecommendationsService for FakeRecommendations {
    type WatchRatingsStream =
        Pin<Box<dyn Stream<Item = Result<rec::WatchRatingsResponse, Status>> + Send>>;

    async fn rate_book(
        &self,
        _: GrpcRequest<rec::RateBookRequest>,
    ) -> Result<Response<rec::RateBookResponse>, Status> {
        unimplemented()
    }

    async fn delete_rating(
        &self,
        _: GrpcRequest<rec::DeleteRatingRequest>,
    ) -> Result<Response<rec::DeleteRatingResponse>, Status> {
        unimplemented()
    }

    async fn list_my_ratings(
        &self,
        _: GrpcRequest<rec::ListMyRatingsRequest>,
    ) -> Result<Response<rec::ListMyRatingsResponse>, Status> {
        unimplemented()
    }

    async fn list_popular_books(
        &self,
        _: GrpcRequest<rec::ListPopularBooksRequest>,
    ) -> Result<Response<rec::ListPopularBooksResponse>, Status> {
        Ok(Response::new(rec::ListPopularBooksResponse {
            recommendations: self.picks(rec::RecommendationSource::Popular),
            next_page_token: String::new(),
        }))
    }

    async fn list_similar_books(
        &self,
        _: GrpcRequest<rec::ListSimilarBooksRequest>,
    ) -> Result<Response<rec::ListSimilarBooksResponse>, Status> {
        unimplemented()
    }

    async fn list_recommendations_for_me(
        &self,
        _: GrpcRequest<rec::ListRecommendationsForMeRequest>,
    ) -> Result<Response<rec::ListRecommendationsForMeResponse>, Status> {
        Ok(Response::new(rec::ListRecommendationsForMeResponse {
            recommendations: self.picks(rec::RecommendationSource::Personal),
        }))
    }

    async fn watch_ratings(
        &self,
        _: GrpcRequest<rec::WatchRatingsRequest>,
    ) -> Result<Response<Self::WatchRatingsStream>, Status> {
        unimplemented()
    }

    async fn delete_user_ratings(
        &self,
        _: GrpcRequest<rec::DeleteUserRatingsRequest>,
    ) -> Result<Response<rec::DeleteUserRatingsResponse>, Status> {
        unimplemented()
    }

    async fn revoke_session(
        &self,
        _: GrpcRequest<rec::RevokeSessionRequest>,
    ) -> Result<Response<rec::RevokeSessionResponse>, Status> {
        unimplemented()
    }
}

/// Both fakes on one address (reporting SERVING); its URL and the marketplace's record.
async fn fake_services(named: bool) -> (String, BatchViews) {
    let batch_views = BatchViews::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<MarketplaceServiceServer<FakeMarketplace>>()
        .await;
    reporter
        .set_serving::<RecommendationsServiceServer<FakeRecommendations>>()
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(MarketplaceServiceServer::new(FakeMarketplace {
                batch_views: batch_views.clone(),
            }))
            .add_service(RecommendationsServiceServer::new(FakeRecommendations {
                named,
            }))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (format!("http://{addr}"), batch_views)
}

/// The side panel of the page at `uri` (with `cookie`), once the upstreams are found ready.
async fn panel(app: &Router, uri: &str, cookie: Option<&str>) -> String {
    let started = Instant::now();
    loop {
        let mut request = Request::get(uri);
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        let (status, _, page) = send(app, request.body(Body::empty()).unwrap()).await;
        let found = page
            .split(r#"<section class="panel""#)
            .nth(1)
            .and_then(|p| p.split("</section>").next());
        match found {
            Some(panel) => return panel.to_owned(),
            None if started.elapsed() > Duration::from_secs(10) => {
                panic!("no panel after 10 s ({status}): {page}")
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A signed-in reader's cookies, as the sign-in form sets them.
fn reader_cookie() -> String {
    let user = URL_SAFE_NO_PAD.encode(r#"{"id":"u1","name":"Ada"}"#);
    format!("bookstore_session=some.token; bookstore_user={user}")
}

#[tokio::test]
async fn the_panels_show_the_picks_as_recommendations_names_them_with_no_marketplace_call() {
    let (url, batch_views) = fake_services(true).await;
    let app = app(&url, 2_000);
    for (heading, cookie) in [
        ("Popular now", None),
        ("Recommended for you", Some(reader_cookie())),
    ] {
        let panel = panel(&app, "/", cookie.as_deref()).await;
        assert!(panel.contains(heading), "{panel}");
        for id in [11, 12] {
            assert!(
                panel.contains(&format!(r#"<a href="/books/{id}">Summary title {id}</a>"#)),
                "{panel}"
            );
            assert!(
                panel.contains(&format!(
                    r#"<span class="muted">Summary author {id}, Second &lt;author&gt;</span>"#
                )),
                "{panel}"
            );
            assert!(panel.contains(&format!("Reason {id}")), "{panel}");
        }
        assert!(!panel.contains("Catalog"), "{panel}");
    }
    assert!(batch_views.lock().unwrap().is_empty(), "no BatchGetBooks");

    // The API still answers full books from the marketplace.
    let (status, _, body) = get(&app, "/api/v1/recommendations/popular").await;
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list["recommendations"][0]["book"]["title"], "Catalog title 11",
        "{body}"
    );
    assert_eq!(
        *batch_views.lock().unwrap(),
        [mp::BookView::Full as i32],
        "one BatchGetBooks, full books"
    );
}

#[tokio::test]
async fn picks_without_titles_from_an_older_replica_are_named_by_the_marketplace() {
    let (url, batch_views) = fake_services(false).await;
    let app = app(&url, 2_000);
    let panel = panel(&app, "/", None).await;
    for id in [11, 12] {
        assert!(
            panel.contains(&format!(r#"<a href="/books/{id}">Catalog title {id}</a>"#)),
            "{panel}"
        );
        assert!(
            panel.contains(&format!(
                r#"<span class="muted">Catalog author {id}</span>"#
            )),
            "{panel}"
        );
        assert!(panel.contains(&format!("Reason {id}")), "{panel}");
    }
    assert!(
        !panel.contains(r#"></a>"#),
        "no pick without a title: {panel}"
    );
    assert_eq!(
        *batch_views.lock().unwrap(),
        [mp::BookView::Basic as i32],
        "one BatchGetBooks, basic books"
    );
}
