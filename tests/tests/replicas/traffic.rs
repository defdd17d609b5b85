//! What flows during a fault: readers rating books through the gateway, and feed subscribers
//! collecting every rated book a replica delivers.

use std::{collections::BTreeSet, time::Duration};

use protos::recommendations::v1::{
    RatingEventKind, WatchRatingsRequest,
    recommendations_service_client::RecommendationsServiceClient,
};
use reqwest::Client;
use serde_json::json;
use tests::{Suite, unique};
use tokio::{sync::mpsc, task::JoinHandle};

/// Books (rated once each, so a feed event names its rating) from `first` on.
pub(crate) const BOOKS_PER_TEST: i64 = 240;

/// Readers that rate through the gateway; their tokens.
pub(crate) async fn readers(s: &Suite, c: &Client, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for _ in 0..n {
        let email = format!("replica-reader-{}@example.org", unique());
        let created = c
            .post(format!("{}/api/v1/users", s.base_url))
            .json(&json!({"email": email, "display_name": "Reader", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "sign-up: {}",
            created.status()
        );
        tokens.push(s.sign_in(c, &email, "correct horse battery").await);
    }
    tokens
}

/// Rates `books` one by one through the gateway, about one every `every`, while `during`
/// runs halfway; returns the books whose rating the API acknowledged.
pub(crate) async fn rate_while<F>(
    base: &str,
    tokens: &[String],
    books: &[i64],
    every: Duration,
    during: F,
) -> BTreeSet<i64>
where
    F: std::future::Future<Output = ()>,
{
    let (tx, mut rx) = mpsc::channel(books.len());
    let writer: JoinHandle<()> = {
        let base = base.to_owned();
        let tokens = tokens.to_vec();
        let books = books.to_vec();
        tokio::spawn(async move {
            let c = Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut tick = tokio::time::interval(every);
            for (i, book) in books.into_iter().enumerate() {
                tick.tick().await;
                let answer = c
                    .put(format!("{base}/api/v1/me/ratings/{book}"))
                    .bearer_auth(&tokens[i % tokens.len()])
                    .json(&json!({"stars": 1 + (book % 5)}))
                    .send()
                    .await;
                if answer.is_ok_and(|a| a.status().is_success()) {
                    let _ = tx.send(book).await;
                }
            }
        })
    };
    tokio::time::sleep(every * (books.len() as u32 / 2)).await;
    during.await;
    writer.await.unwrap();
    let mut acked = BTreeSet::new();
    while let Ok(book) = rx.try_recv() {
        acked.insert(book);
    }
    acked
}

/// A `WatchRatings` stream on one replica, collecting the rated books it delivers.
pub(crate) struct Subscriber {
    pub(crate) books: mpsc::UnboundedReceiver<i64>,
    pub(crate) seen: BTreeSet<i64>,
}

impl Subscriber {
    pub(crate) async fn connect(s: &Suite, replica: &str) -> Subscriber {
        let addr = s.grpc_addr(replica).expect("replica address");
        let mut client = RecommendationsServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mut stream = client
            .watch_ratings(WatchRatingsRequest { book_id: 0 })
            .await
            .unwrap()
            .into_inner();
        let (tx, books) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(e)) = stream.message().await {
                if e.kind == RatingEventKind::Rated as i32
                    && let Some(r) = e.rating
                {
                    let _ = tx.send(r.book_id);
                }
            }
        });
        Subscriber {
            books,
            seen: BTreeSet::new(),
        }
    }

    /// Waits (at most 15 s) until every book of `acked` has been delivered.
    pub(crate) async fn assert_received(&mut self, acked: &BTreeSet<i64>, who: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !acked.is_subset(&self.seen) {
            match tokio::time::timeout_at(deadline, self.books.recv()).await {
                Ok(Some(book)) => {
                    self.seen.insert(book);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let missing: Vec<_> = acked.difference(&self.seen).collect();
        assert!(
            missing.is_empty(),
            "{who}'s feed subscriber missed {} acknowledged ratings: {missing:?}",
            missing.len()
        );
    }
}

pub(crate) fn books(first: i64) -> Vec<i64> {
    (first..first + BOOKS_PER_TEST).collect()
}
