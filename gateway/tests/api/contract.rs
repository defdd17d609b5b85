//! The contract as schemathesis checks it, kept as regression tests: what the OpenAPI document
//! calls valid gets past the gateway's checks (here: to an upstream that is down, so 503), what
//! it calls invalid is a 400 problem before any upstream call, and the document says so.

use axum::{body::Body, http::Request};
use serde_json::Value;

use crate::helpers::{app, get, nobody, problem, send};

async fn json(app: &axum::Router, method: &str, uri: &str, body: &str) -> (u16, Value) {
    let (status, headers, text) = send(
        app,
        Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("authorization", "Bearer some.token")
            .body(Body::from(body.to_owned()))
            .unwrap(),
    )
    .await;
    let doc = if status >= 400 {
        problem(&headers, &text)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    (status, doc)
}

#[tokio::test]
async fn an_integral_float_is_an_integer_as_json_schema_says() {
    // Found by schemathesis: `{"stars": 3.0}` was refused as "expected i32".
    let app = app(&nobody().await, 2_000);
    let (status, doc) = json(&app, "PUT", "/api/v1/me/ratings/1", r#"{"stars": 3.0}"#).await;
    assert_eq!(
        status, 503,
        "valid, so it reaches the (absent) upstream: {doc}"
    );
    for bad in [
        r#"{"stars": 3.5}"#,
        r#"{"stars": 6}"#,
        r#"{"stars": 0}"#,
        r#"{"stars": 1e10}"#,
        r#"{"stars": "3"}"#,
    ] {
        let (status, doc) = json(&app, "PUT", "/api/v1/me/ratings/1", bad).await;
        assert_eq!(status, 400, "{bad}: {doc}");
    }
}

#[tokio::test]
async fn a_page_token_that_cannot_be_one_is_refused_before_any_call() {
    // Found by schemathesis: a made-up token reached the service; the pattern now says what a
    // token can look like, and an empty one is the first page.
    let app = app(&nobody().await, 2_000);
    for uri in [
        "/api/v1/books?page_token=a%20b",
        "/api/v1/books?page_token=%C2%84",
        &format!("/api/v1/books?page_token={}", "x".repeat(65)),
        "/api/v1/recommendations/popular?page_token=0.5",
        "/api/v1/books/search?q=dune&page_token=%2B",
    ] {
        let (status, _, body) = get(&app, uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
    }
    let (status, _, body) = get(&app, "/api/v1/books?page_token=").await;
    assert_eq!(status, 503, "an empty token is the first page: {body}");
}

#[tokio::test]
async fn page_sizes_outside_their_documented_range_are_refused() {
    let app = app(&nobody().await, 2_000);
    for uri in [
        "/api/v1/books?page_size=0",
        "/api/v1/books?page_size=101",
        "/api/v1/recommendations/popular?page_size=-1",
        "/api/v1/books/1/similar?page_size=51",
        "/api/v1/books/0",
        "/api/v1/books/-5/similar",
        "/api/v1/books/search?q=",
        &format!("/api/v1/books/search?q={}", "a".repeat(201)),
        "/api/v1/ratings/stream?book_id=0",
    ] {
        let (status, _, body) = get(&app, uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
    }
    for uri in [
        "/api/v1/books?page_size=100",
        "/api/v1/books/1/similar?page_size=50",
    ] {
        let (status, _, body) = get(&app, uri).await;
        assert_eq!(status, 503, "{uri} is valid: {body}");
    }
}

#[tokio::test]
async fn a_query_without_a_word_finds_nothing_instead_of_failing() {
    // The document allows any 1..=200 characters; words are runs of letters and digits.
    let app = app(&nobody().await, 2_000);
    for q in ["%20%20", "%21%3F", "%F0%9F%99%82"] {
        let (status, _, body) = get(&app, &format!("/api/v1/books/search?q={q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["total_size"], 0);
    }
}

#[tokio::test]
async fn bodies_are_held_to_their_schemas() {
    let app = app(&nobody().await, 2_000);
    let id = "0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61";
    let cases = [
        (
            "POST",
            "/api/v1/users".to_owned(),
            r#"{"email":"a@b.c","display_name":"A","password":"short"}"#,
        ),
        (
            "POST",
            "/api/v1/users".to_owned(),
            r#"{"email":"a@b","display_name":"A","password":"long enough"}"#,
        ),
        (
            "POST",
            "/api/v1/users".to_owned(),
            r#"{"email":"a@b.c","display_name":" ","password":"long enough"}"#,
        ),
        (
            "POST",
            "/api/v1/users".to_owned(),
            r#"{"email":"a@b.c","display_name":"A","password":"long enough","admin":true}"#,
        ),
        (
            "POST",
            "/api/v1/users".to_owned(),
            r#"{"email":"a@b.c","password":"long enough"}"#,
        ),
        (
            "POST",
            "/api/v1/sessions".to_owned(),
            r#"{"email":"a@b.c","password":""}"#,
        ),
        ("PATCH", format!("/api/v1/users/{id}"), r#"{}"#),
        (
            "PATCH",
            format!("/api/v1/users/{id}"),
            r#"{"display_name":null}"#,
        ),
        (
            "PATCH",
            format!("/api/v1/users/{id}"),
            r#"{"password":null,"display_name":"Ada"}"#,
        ),
        (
            "PATCH",
            "/api/v1/users/not-a-uuid".to_owned(),
            r#"{"display_name":"Ada"}"#,
        ),
        (
            "PATCH",
            format!("/api/v1/users/{id}"),
            r#"{"current_password":"correct horse"}"#,
        ),
        (
            "PATCH",
            format!("/api/v1/users/{id}"),
            r#"{"password":"long enough","current_password":""}"#,
        ),
    ];
    for (method, uri, body) in &cases {
        let (status, doc) = json(&app, method, uri, body).await;
        assert_eq!(status, 400, "{method} {uri} {body}: {doc}");
    }
    let (status, doc) = json(
        &app,
        "POST",
        "/api/v1/users",
        r#"{"email":"ada@example.org","display_name":" Ada ","password":"long enough"}"#,
    )
    .await;
    assert_eq!(status, 503, "valid: {doc}");
    // A new password needs the current one: a 400 naming it, before any call.
    let (status, doc) = json(
        &app,
        "PATCH",
        &format!("/api/v1/users/{id}"),
        r#"{"password":"long enough","display_name":"Ada"}"#,
    )
    .await;
    assert_eq!(status, 400, "{doc}");
    assert!(
        doc["detail"].as_str().unwrap().contains("current_password"),
        "{doc}"
    );
    for valid in [
        r#"{"password":"long enough","current_password":"x"}"#,
        r#"{"display_name":"Ada","current_password":"correct horse"}"#,
        r#"{"display_name":"Ada"}"#,
    ] {
        let (status, doc) = json(&app, "PATCH", &format!("/api/v1/users/{id}"), valid).await;
        assert_eq!(status, 503, "{valid} is valid: {doc}");
    }
    let (status, _, _) = send(
        &app,
        Request::post("/api/v1/users")
            .header("content-type", "text/plain")
            .body(Body::from("hello"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415);
}

#[tokio::test]
async fn the_document_gives_every_error_as_problem_json_and_states_the_constraints() {
    let app = app(&nobody().await, 2_000);
    let (_, _, body) = get(&app, "/api/v1/openapi.json").await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for status in ["500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            for (status, r) in responses {
                if status.as_str() >= "400" {
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                    assert!(r["content"].get("application/json").is_none());
                }
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "408", "413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path}");
                assert!(responses["401"]["headers"]["WWW-Authenticate"].is_object());
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["CreateUser"]["additionalProperties"], false);
    assert_eq!(
        schemas["CreateUser"]["properties"]["email"]["pattern"],
        gateway::contract::EMAIL_PATTERN
    );
    assert_eq!(
        schemas["CreateUser"]["properties"]["password"]["minLength"],
        8
    );
    assert_eq!(
        schemas["UpdateUser"]["anyOf"],
        serde_json::json!([{ "required": ["display_name"] }, { "required": ["password"] }])
    );
    assert_eq!(
        schemas["UpdateUser"]["dependentRequired"],
        serde_json::json!({ "password": ["current_password"] })
    );
    assert_eq!(
        schemas["UpdateUser"]["properties"]["current_password"]["maxLength"],
        128
    );
    assert_eq!(
        schemas["UpdateUser"]["properties"]["display_name"]["type"],
        "string"
    );
    assert_eq!(schemas["RateBook"]["properties"]["stars"]["maximum"], 5);
    let params = |path: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone()
    };
    let size = |path: &str| {
        params(path)
            .into_iter()
            .find(|p| p["name"] == "page_size")
            .unwrap()["schema"]
            .clone()
    };
    assert_eq!(size("/api/v1/books")["maximum"], 100);
    assert_eq!(size("/api/v1/books/{id}/similar")["maximum"], 50);
    assert_eq!(size("/api/v1/books")["minimum"], 1);
    assert_eq!(
        size("/api/v1/books")["type"],
        "integer",
        "no nulls in a query"
    );
    let q = params("/api/v1/books/search")
        .into_iter()
        .find(|p| p["name"] == "q")
        .unwrap();
    assert_eq!(q["required"], true);
    assert_eq!(q["schema"]["minLength"], 1);
    let sign_in = &doc["paths"]["/api/v1/sessions"]["post"]["responses"];
    assert!(sign_in["429"]["headers"]["Retry-After"].is_object());
}
