//! Every process's metrics, labelled by route template rather than by raw path.

use tests::Suite;

use crate::client;

#[tokio::test]
async fn every_process_exposes_metrics_labelled_by_route_template() {
    let s = Suite::start().await;
    let Some(gateway) = s.admin("gateway") else {
        platform::database::testing::note_skip(
            "suite: the metrics test (BOOKSTORE_ADMIN_URLS not given)",
        );
        return;
    };
    let c = client();
    for id in [1, 2, 3] {
        c.get(format!("{}/api/v1/books/{id}", s.base_url))
            .send()
            .await
            .unwrap();
    }
    let text = c
        .get(format!("{gateway}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/books/{id}",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        !text.contains(r#"route="/api/v1/books/1""#),
        "raw paths never become labels"
    );
    assert!(text.contains(r#"grpc_client_handled_total{grpc_code="OK",grpc_method="GetBook",grpc_service="bookstore.marketplace.v1.MarketplaceService"}"#));
    for (name, url) in &s.admin_urls {
        let text = c
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("process_resident_memory_bytes"), "{name}");
    }
}
