//! The floor for a gRPC service in `make bench`: a bare tonic server answering GetBook from the
//! same in-memory catalog as the real marketplace, with nothing else (no health, metrics, tracing,
//! limits, deadlines or logs). Not part of the suite.
//!
//! `bare_marketplace 127.0.0.1:60051`
#![forbid(unsafe_code)]

use std::{collections::HashMap, sync::Arc};

use marketplace::{catalog::Catalog, grpc::to_proto};
use protos::marketplace::v1::{
    self as pb,
    marketplace_service_server::{MarketplaceService, MarketplaceServiceServer},
};
use tonic::{Request, Response, Status};

struct Bare {
    books: Arc<HashMap<i64, pb::Book>>,
}

#[tonic::async_trait]
impl MarketplaceService for Bare {
    async fn list_books(
        &self,
        _: Request<pb::ListBooksRequest>,
    ) -> Result<Response<pb::ListBooksResponse>, Status> {
        Err(Status::unimplemented("bare"))
    }

    async fn search_books(
        &self,
        _: Request<pb::SearchBooksRequest>,
    ) -> Result<Response<pb::SearchBooksResponse>, Status> {
        Err(Status::unimplemented("bare"))
    }

    async fn get_book(
        &self,
        request: Request<pb::GetBookRequest>,
    ) -> Result<Response<pb::GetBookResponse>, Status> {
        let id = request.get_ref().id;
        let book = self
            .books
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("book {id} not found")))?;
        Ok(Response::new(pb::GetBookResponse { book: Some(book) }))
    }

    async fn batch_get_books(
        &self,
        _: Request<pb::BatchGetBooksRequest>,
    ) -> Result<Response<pb::BatchGetBooksResponse>, Status> {
        Err(Status::unimplemented("bare"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:60051".to_owned())
        .parse()?;
    let catalog = Catalog::builtin()?;
    let books = catalog
        .by_popularity()
        .iter()
        .map(|b| (b.id, to_proto(b)))
        .collect();
    let service = Bare {
        books: Arc::new(books),
    };
    tonic::transport::Server::builder()
        .add_service(MarketplaceServiceServer::new(service))
        .serve(addr)
        .await?;
    Ok(())
}
