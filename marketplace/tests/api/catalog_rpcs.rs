//! Every catalog RPC, its happy path and its error codes.

use protos::marketplace::v1::{
    BatchGetBooksRequest, Book, BookView, GetBookRequest, ListBooksRequest, SearchBooksRequest,
};
use tonic::Code;

use crate::helpers::spawn_service;

#[tokio::test]
async fn listing_pages_through_the_catalog_most_popular_first() {
    let s = spawn_service().await;
    let mut c = s.client();
    let first = c
        .list_books(ListBooksRequest {
            page_size: 5,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.total_size, 10_000);
    assert_eq!(first.books.len(), 5);
    assert_eq!(first.books[0].id, 1);
    assert!(!first.next_page_token.is_empty());
    let second = c
        .list_books(ListBooksRequest {
            page_size: 5,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(second.books[0].ratings_count <= first.books[4].ratings_count);
    let firsts: Vec<_> = first.books.iter().map(|b| b.id).collect();
    assert!(second.books.iter().all(|b| !firsts.contains(&b.id)));

    // Walking to the end yields every book once and an empty token on the last page.
    let mut token = String::new();
    let mut seen = 0;
    for _ in 0..200 {
        let page = c
            .list_books(ListBooksRequest {
                page_size: 100,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen += page.books.len();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, 10_000);
    assert!(token.is_empty());
}

#[tokio::test]
async fn a_forged_foreign_or_oversized_page_request_is_invalid_argument() {
    let s = spawn_service().await;
    let mut c = s.client();
    let forged = c
        .list_books(ListBooksRequest {
            page_size: 5,
            page_token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::InvalidArgument);
    assert!(forged.message().contains("page_token"));

    let search = c
        .search_books(SearchBooksRequest {
            query: "harry".into(),
            page_size: 2,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let foreign = c
        .list_books(ListBooksRequest {
            page_size: 2,
            page_token: search.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::InvalidArgument);

    for size in [101, -1] {
        let e = c
            .list_books(ListBooksRequest {
                page_size: size,
                page_token: String::new(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("page_size"), "{}", e.message());
    }
}

#[tokio::test]
async fn search_ranks_the_title_match_first_and_rejects_empty_queries() {
    let s = spawn_service().await;
    let mut c = s.client();
    let r = c
        .search_books(SearchBooksRequest {
            query: "The HOBBIT".into(),
            page_size: 3,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.books[0].title, "The Hobbit");
    assert!(r.total_size >= 1);

    let tolkien = c
        .search_books(SearchBooksRequest {
            query: "tolkien".into(),
            page_size: 50,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        tolkien
            .books
            .iter()
            .all(|b| b.authors.iter().any(|a| a.contains("Tolkien")))
    );

    for bad in ["", "  !!  ", &"x".repeat(201)] {
        let e = c
            .search_books(SearchBooksRequest {
                query: bad.to_owned(),
                page_size: 0,
                page_token: String::new(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
        assert!(e.message().contains("query"));
    }
}

#[tokio::test]
async fn get_finds_a_book_and_names_the_missing_one() {
    let s = spawn_service().await;
    let mut c = s.client();
    let b = c
        .get_book(GetBookRequest { id: 4 })
        .await
        .unwrap()
        .into_inner()
        .book
        .unwrap();
    assert_eq!(b.title, "To Kill a Mockingbird");
    assert_eq!(b.original_publication_year, Some(1960));
    assert_eq!(b.rating_histogram.len(), 5);

    let missing = c.get_book(GetBookRequest { id: 10_001 }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("10001"));
    let zero = c.get_book(GetBookRequest { id: 0 }).await.unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn batch_get_keeps_the_order_asked_and_fails_on_an_unknown_id() {
    let s = spawn_service().await;
    let mut c = s.client();
    let r = c
        .batch_get_books(BatchGetBooksRequest {
            ids: vec![3, 1, 2, 1],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = r.books.iter().map(|b| b.id).collect();
    assert_eq!(ids, vec![3, 1, 2, 1]);

    let e = c
        .batch_get_books(BatchGetBooksRequest {
            ids: vec![1, 99_999],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("99999"));
    let empty = c
        .batch_get_books(BatchGetBooksRequest {
            ids: vec![],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let too_many = c
        .batch_get_books(BatchGetBooksRequest {
            ids: (1..=101).collect(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_basic_view_sends_what_a_card_shows_and_nothing_more() {
    let s = spawn_service().await;
    let mut c = s.client();
    let full = c
        .batch_get_books(BatchGetBooksRequest {
            ids: vec![1, 2],
            view: BookView::Full.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .books;
    let basic = c
        .batch_get_books(BatchGetBooksRequest {
            ids: vec![1, 2],
            view: BookView::Basic.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .books;
    for (f, b) in full.iter().zip(&basic) {
        let card = Book {
            id: f.id,
            title: f.title.clone(),
            authors: f.authors.clone(),
            average_rating: f.average_rating,
            ratings_count: f.ratings_count,
            image_url: f.image_url.clone(),
            ..Default::default()
        };
        assert_eq!(b, &card);
        assert!(
            !f.isbn13.is_empty() && f.rating_histogram.len() == 5,
            "{f:?}"
        );
    }
    // Unset means the whole record, so older callers keep what they had.
    let unset = c
        .list_books(ListBooksRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .books;
    assert_eq!(unset, full);
    let page = c
        .search_books(SearchBooksRequest {
            query: "hunger games".into(),
            page_size: 3,
            view: BookView::Basic.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .books;
    assert!(
        page.iter()
            .all(|b| b.isbn.is_empty() && !b.title.is_empty())
    );

    let err = c
        .list_books(ListBooksRequest {
            view: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("view 7"), "{}", err.message());
}
