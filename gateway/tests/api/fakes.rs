//! Fake marketplace and recommendations services on one address, answering just what the pages
//! and the live feed ask, and recording the marketplace calls the gateway makes.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
};

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
use tonic::{Request, Response, Status};

/// The marketplace calls the gateway made.
#[derive(Debug, Default)]
pub struct Calls {
    /// The view of each BatchGetBooks call.
    pub batch_views: Vec<i32>,
    /// The id of each GetBook call.
    pub get_ids: Vec<i64>,
    /// The page token of each ListBooks call.
    pub list_tokens: Vec<String>,
}

pub type Recorded = Arc<Mutex<Calls>>;

/// A book of the fake catalog: "Catalog title {id}" by "Catalog author {id}".
fn catalog_book(id: i64) -> mp::Book {
    mp::Book {
        id,
        title: format!("Catalog title {id}"),
        authors: vec![format!("Catalog author {id}")],
        rating_histogram: vec![0, 0, 0, 0, 1],
        ..Default::default()
    }
}

/// A marketplace whose listing is empty and whose books, fetched by id, are [`catalog_book`]s.
struct FakeMarketplace {
    calls: Recorded,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this fake"))
}

#[tonic::async_trait]
impl MarketplaceService for FakeMarketplace {
    async fn list_books(
        &self,
        request: Request<mp::ListBooksRequest>,
    ) -> Result<Response<mp::ListBooksResponse>, Status> {
        let token = request.into_inner().page_token;
        self.calls.lock().unwrap().list_tokens.push(token);
        Ok(Response::new(mp::ListBooksResponse::default()))
    }

    async fn search_books(
        &self,
        _: Request<mp::SearchBooksRequest>,
    ) -> Result<Response<mp::SearchBooksResponse>, Status> {
        unimplemented()
    }

    async fn get_book(
        &self,
        request: Request<mp::GetBookRequest>,
    ) -> Result<Response<mp::GetBookResponse>, Status> {
        let id = request.into_inner().id;
        self.calls.lock().unwrap().get_ids.push(id);
        Ok(Response::new(mp::GetBookResponse {
            book: Some(catalog_book(id)),
        }))
    }

    async fn batch_get_books(
        &self,
        request: Request<mp::BatchGetBooksRequest>,
    ) -> Result<Response<mp::BatchGetBooksResponse>, Status> {
        let r = request.into_inner();
        self.calls.lock().unwrap().batch_views.push(r.view);
        Ok(Response::new(mp::BatchGetBooksResponse {
            books: r.ids.into_iter().map(catalog_book).collect(),
        }))
    }
}

/// Recommendations that pick books 11 and 12, named "Summary title {id}" by "Summary author
/// {id}" and "Second <author>" when `named`, and without names (as a replica older than those
/// fields sends them) otherwise. Its live feed is two ratings: of book 11, titled "Event title
/// 11", and of book 12, untitled; then it ends, or stays open when `hold_feeds`.
struct FakeRecommendations {
    named: bool,
    hold_feeds: bool,
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

#[tonic::async_trait]
impl RecommendationsService for FakeRecommendations {
    type WatchRatingsStream =
        Pin<Box<dyn Stream<Item = Result<rec::WatchRatingsResponse, Status>> + Send>>;

    async fn rate_book(
        &self,
        _: Request<rec::RateBookRequest>,
    ) -> Result<Response<rec::RateBookResponse>, Status> {
        unimplemented()
    }

    async fn delete_rating(
        &self,
        _: Request<rec::DeleteRatingRequest>,
    ) -> Result<Response<rec::DeleteRatingResponse>, Status> {
        unimplemented()
    }

    async fn list_my_ratings(
        &self,
        _: Request<rec::ListMyRatingsRequest>,
    ) -> Result<Response<rec::ListMyRatingsResponse>, Status> {
        unimplemented()
    }

    async fn list_popular_books(
        &self,
        _: Request<rec::ListPopularBooksRequest>,
    ) -> Result<Response<rec::ListPopularBooksResponse>, Status> {
        Ok(Response::new(rec::ListPopularBooksResponse {
            recommendations: self.picks(rec::RecommendationSource::Popular),
            next_page_token: String::new(),
        }))
    }

    async fn list_similar_books(
        &self,
        _: Request<rec::ListSimilarBooksRequest>,
    ) -> Result<Response<rec::ListSimilarBooksResponse>, Status> {
        unimplemented()
    }

    async fn list_recommendations_for_me(
        &self,
        _: Request<rec::ListRecommendationsForMeRequest>,
    ) -> Result<Response<rec::ListRecommendationsForMeResponse>, Status> {
        Ok(Response::new(rec::ListRecommendationsForMeResponse {
            recommendations: self.picks(rec::RecommendationSource::Personal),
        }))
    }

    async fn watch_ratings(
        &self,
        _: Request<rec::WatchRatingsRequest>,
    ) -> Result<Response<Self::WatchRatingsStream>, Status> {
        let event = |book_id: i64, title: &str| {
            Ok(rec::WatchRatingsResponse {
                kind: rec::RatingEventKind::Rated as i32,
                rating: Some(rec::Rating {
                    user_id: String::new(),
                    book_id,
                    stars: 5,
                    update_time_unix_ms: 1_000,
                }),
                title: title.to_owned(),
            })
        };
        let events = futures_util::stream::iter([event(11, "Event title 11"), event(12, "")]);
        if self.hold_feeds {
            use futures_util::StreamExt;
            return Ok(Response::new(Box::pin(
                events.chain(futures_util::stream::pending()),
            )));
        }
        Ok(Response::new(Box::pin(events)))
    }

    async fn delete_user_ratings(
        &self,
        _: Request<rec::DeleteUserRatingsRequest>,
    ) -> Result<Response<rec::DeleteUserRatingsResponse>, Status> {
        unimplemented()
    }

    async fn revoke_session(
        &self,
        _: Request<rec::RevokeSessionRequest>,
    ) -> Result<Response<rec::RevokeSessionResponse>, Status> {
        unimplemented()
    }
}

/// Both fakes on one address, reporting SERVING (picks named when `named`); its URL and the
/// record of marketplace calls.
pub async fn fake_services(named: bool) -> (String, Recorded) {
    serve_fakes(named, false).await
}

/// [`fake_services`] whose live feeds never end after their two events.
pub async fn fake_services_with_open_feeds() -> String {
    serve_fakes(true, true).await.0
}

async fn serve_fakes(named: bool, hold_feeds: bool) -> (String, Recorded) {
    let calls = Recorded::default();
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
                calls: calls.clone(),
            }))
            .add_service(RecommendationsServiceServer::new(FakeRecommendations {
                named,
                hold_feeds,
            }))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (format!("http://{addr}"), calls)
}
