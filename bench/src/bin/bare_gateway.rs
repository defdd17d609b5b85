//! The floor for the gateway in `make bench`: a bare axum handler for `GET /api/v1/books/{id}`
//! that calls GetBook over one tonic channel and answers the same JSON, with nothing else (no
//! middleware, metrics, tracing, deadlines, balancing or logs). Not part of the suite.
//!
//! `bare_gateway 127.0.0.1:18080 http://127.0.0.1:60051`
#![forbid(unsafe_code)]

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use gateway::{api::Book, model};
use protos::marketplace::v1::{
    GetBookRequest, marketplace_service_client::MarketplaceServiceClient,
};
use tonic::transport::Channel;

async fn get_book(
    State(client): State<MarketplaceServiceClient<Channel>>,
    Path(id): Path<i64>,
) -> Result<Json<Book>, StatusCode> {
    let reply = client
        .clone()
        .get_book(GetBookRequest { id })
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let book = reply.into_inner().book.ok_or(StatusCode::BAD_GATEWAY)?;
    Ok(Json(Book::from(model::Book::from(book))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    let upstream = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:60051".to_owned());
    let channel = Channel::from_shared(upstream)?.connect_lazy();
    let app = Router::new()
        .route("/api/v1/books/{id}", get(get_book))
        .with_state(MarketplaceServiceClient::new(channel));
    // Nagle's algorithm off, as the suite's gateway has it.
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(platform::listen::without_nagle(listener), app).await?;
    Ok(())
}
