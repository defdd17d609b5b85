//! Health, reflection, metrics and graceful shutdown, as a cluster would see them.

use std::time::Duration;

use marketplace::SERVICE_NAME;
use protos::marketplace::v1::GetBookRequest;
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_client::HealthClient},
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::{spawn_service, spawn_serving, spawn_with};

#[tokio::test]
async fn health_reports_serving_for_the_service_and_overall() {
    let s = spawn_service().await;
    let mut h = HealthClient::new(s.channel.clone());
    for name in ["", SERVICE_NAME] {
        let r = h
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{name:?}");
    }
    let unknown = h
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_catalog_that_cannot_load_keeps_the_service_not_serving() {
    let s = spawn_with(&["--catalog-path", "/nonexistent/books.csv"]).await;
    let mut h = HealthClient::new(s.channel.clone());
    let r = h
        .check(HealthCheckRequest {
            service: SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, ServingStatus::NotServing as i32);
    let e = s
        .client()
        .get_book(GetBookRequest { id: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let ready = reqwest::get(format!("http://{}/readyz", s.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn reflection_lists_the_marketplace_service() {
    let s = spawn_service().await;
    let mut r = ServerReflectionClient::new(s.channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = r
        .server_reflection_info(tokio_stream::once(req))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&SERVICE_NAME), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test]
async fn metrics_count_calls_by_method_and_code() {
    let s = spawn_service().await;
    let mut c = s.client();
    c.get_book(GetBookRequest { id: 1 }).await.unwrap();
    c.get_book(GetBookRequest { id: 99_999 }).await.unwrap_err();
    let text = reqwest::get(format!("http://{}/metrics", s.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |code: &str| {
        format!(
            r#"grpc_server_handled_total{{grpc_code="{code}",grpc_method="GetBook",grpc_service="{SERVICE_NAME}"}} 1"#
        )
    };
    assert!(text.contains(&line("OK")), "{text}");
    assert!(text.contains(&line("NotFound")), "{text}");
    assert!(text.contains("grpc_server_handling_seconds_bucket"));
    assert!(text.contains("marketplace_catalog_books 10000"));
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_first_then_exits() {
    let mut s = spawn_serving(&["--shutdown-delay-ms", "300"]).await;
    let watcher = tokio::spawn(platform::health::wait_for_status(
        s.channel.clone(),
        SERVICE_NAME,
        ServingStatus::NotServing,
        Duration::from_secs(10),
    ));
    s.stop();
    watcher
        .await
        .unwrap()
        .expect("NOT_SERVING seen before exit");
    let exited = tokio::time::timeout(Duration::from_secs(15), &mut s.handle).await;
    assert!(
        matches!(exited, Ok(Ok(Ok(())))),
        "the server exits cleanly after draining"
    );
}

#[tokio::test]
async fn reflection_answers_in_v1alpha_too() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let s = spawn_service().await;
    let mut client = ServerReflectionClient::new(s.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&SERVICE_NAME.to_owned()), "{names:?}");
}
