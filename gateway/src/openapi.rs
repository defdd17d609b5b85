//! The OpenAPI document of `/api/v1`, served at `/api/v1/openapi.json`: derived by utoipa from
//! the handlers and types of [`crate::api`], then finished here with the constraints of
//! [`crate::contract`] on every body property and parameter, every error status an operation
//! can answer (each a problem document served as `application/problem+json`, with the headers
//! that come with it), and the links between operations that a stateful client can follow.

use std::sync::LazyLock;

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::{
    api::{books, ratings, recommendations, sessions, users},
    contract::{self, Range, Text},
    error::Problem,
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bookstore API",
        version = "1.0.0",
        description = "The bookstore's public REST API. Errors are RFC 9457 problem documents."
    ),
    paths(
        books::list_books, books::search_books, books::get_book,
        recommendations::similar_books, recommendations::popular_books,
        recommendations::my_recommendations,
        users::create_user, users::get_user, users::update_user, users::delete_user,
        sessions::sign_in, sessions::sign_out,
        ratings::my_ratings, ratings::rate_book, ratings::delete_rating, ratings::ratings_stream
    ),
    components(schemas(
        books::Book, books::BookPage, users::User, users::CreateUser, users::UpdateUser,
        sessions::SignIn, sessions::Session, ratings::RateBook, ratings::Rating,
        ratings::RatingPage, recommendations::Recommendation, recommendations::RecommendationList,
        ratings::RatingEvent, Problem
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "books", description = "The catalog"),
        (name = "users", description = "Accounts and sign-in"),
        (name = "ratings", description = "The caller's ratings and the live feed"),
        (name = "recommendations", description = "What to read next"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, derived from the handlers and finished by [`finish`], rendered once.
pub static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    serde_json::to_string_pretty(&finish(doc)).unwrap_or_else(|_| "{}".to_owned())
});

/// GET `/api/v1/openapi.json`.
async fn openapi_json() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON.as_str(),
    )
}

/// The document's route.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}

const PROBLEM: &str = "application/problem+json";

/// Why each error status happens, as the gateway produces it.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "The request breaks a documented constraint (the detail names the field).",
        401 => {
            "No bearer token, or one that is malformed, expired or ended (signed out, account deleted)."
        }
        403 => "The token's owner may not do this.",
        404 => "No such resource.",
        409 => "The resource already exists.",
        408 => "The body did not arrive whole within the gateway's body read timeout.",
        413 => "The body is larger than the gateway accepts.",
        415 => "The body is not sent as `Content-Type: application/json`.",
        429 => {
            "Too many requests: this client's sign-in/sign-up budget is spent, or a service is at its concurrency limit. Retry after `Retry-After` seconds."
        }
        500 => "Internal error (the detail is logged, not echoed).",
        502 => "A service answered without what was asked for.",
        503 => {
            "The gateway or a service is at its concurrency limit, or no replica is ready. Retry after `Retry-After` seconds."
        }
        504 => "A service did not answer within the request's deadline.",
        _ => "Error.",
    }
}

fn header(description: &str, schema: Value) -> Value {
    json!({ "description": description, "required": true, "schema": schema })
}

/// A problem response for `status`, keeping a description the handler gave.
fn problem_response(status: u16, existing: Option<&Value>) -> Value {
    let description = existing
        .and_then(|r| r.get("description"))
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .unwrap_or(reason(status))
        .to_owned();
    let mut r = json!({
        "description": description,
        "content": { PROBLEM: { "schema": { "$ref": "#/components/schemas/Problem" } } },
    });
    let mut headers = Map::new();
    if status == 401 {
        headers.insert(
            "WWW-Authenticate".into(),
            header("`Bearer`", json!({ "type": "string" })),
        );
    }
    if status == 429 || status == 503 {
        headers.insert(
            "Retry-After".into(),
            header(
                "Seconds to wait before trying again.",
                json!({ "type": "integer", "minimum": 0 }),
            ),
        );
    }
    if !headers.is_empty() {
        r["headers"] = Value::Object(headers);
    }
    r
}

fn apply_text(schema: &mut Value, t: &Text) {
    if let Some(min) = t.min {
        schema["minLength"] = min.into();
    }
    if let Some(max) = t.max {
        schema["maxLength"] = max.into();
    }
    if let Some(p) = t.pattern {
        schema["pattern"] = p.into();
    }
}

fn apply_range(schema: &mut Value, r: &Range) {
    schema["minimum"] = r.min.into();
    if let Some(max) = r.max {
        schema["maximum"] = max.into();
    }
}

/// `type: ["string", "null"]` → `type: "string"`: the API takes no nulls in its inputs.
fn not_null(schema: &mut Value) {
    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        schema["type"] = if kept.len() == 1 {
            kept[0].clone()
        } else {
            Value::Array(kept)
        };
    }
}

/// Input schemas (request bodies): constraints, no nulls, no unknown properties.
fn finish_inputs(schemas: &mut Map<String, Value>) {
    for name in ["CreateUser", "UpdateUser", "SignIn", "RateBook"] {
        if let Some(s) = schemas.get_mut(name) {
            s["additionalProperties"] = false.into();
            if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
                props.values_mut().for_each(not_null);
            }
        }
    }
    // At least one change; a new password with the current one.
    if let Some(s) = schemas.get_mut("UpdateUser") {
        s["anyOf"] = contract::UPDATE_USER_CHANGES
            .iter()
            .map(|field| json!({ "required": [field] }))
            .collect();
        let (field, needs) = contract::UPDATE_USER_NEEDS;
        s["dependentRequired"] = json!({ field: [needs] });
    }
    for (schema, prop, text) in contract::body_constraints() {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{prop}")))
        {
            apply_text(p, &text);
        }
    }
    for (schema, prop, range) in contract::body_ranges() {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{prop}")))
        {
            apply_range(p, &range);
        }
    }
}

/// The statuses every operation of `path` can answer beyond what its handler declares.
fn common_statuses(path: &str, op: &Value) -> Vec<u16> {
    // The concurrency limit (503) and a caught panic (500) can answer any request.
    let mut statuses = vec![500, 503];
    if path == "/api/v1/openapi.json" {
        return statuses;
    }
    // Every other operation calls a service: its shedding (429), its absence or ours (503),
    // its slowness (504), an answer missing what was asked (502).
    statuses.extend([429, 502, 504]);
    let has_params = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    let has_body = op.get("requestBody").is_some();
    if has_params || has_body {
        statuses.push(400);
    }
    if has_body {
        statuses.extend([408, 413, 415]);
    }
    if op.get("security").is_some() {
        statuses.push(401);
    }
    statuses
}

fn finish_operation(path: &str, op: &mut Value) {
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let schema = &mut p["schema"];
            not_null(schema);
            if let Some(t) = contract::parameter_text(&name, path) {
                apply_text(schema, &t);
            }
            if name == "page_token" {
                // Opaque: only a `next_page_token` the API returned is a valid value.
                schema["format"] = "page-token".into();
            }
            if let Some(r) = contract::parameter_range(&name, path) {
                apply_range(schema, &r);
            }
        }
    }
    let extra = common_statuses(path, op);
    let responses = op["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    for status in extra {
        responses.entry(status.to_string()).or_insert(Value::Null);
    }
    for (status, response) in responses.iter_mut() {
        let Ok(code) = status.parse::<u16>() else {
            continue;
        };
        if code >= 400 {
            *response = problem_response(code, Some(response));
        }
    }
}

/// OpenAPI links: what a stateful client can do with what an operation answered.
fn links() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let by_id = |op: &str, expr: &str| json!({ "operationId": op, "parameters": { "id": expr } });
    vec![
        (
            "/api/v1/users",
            "post",
            "201",
            json!({
                "GetUser": by_id("get_user", "$response.body#/id"),
                "SignIn": {
                    "operationId": "sign_in",
                    "requestBody": {
                        "email": "$request.body#/email",
                        "password": "$request.body#/password"
                    }
                }
            }),
        ),
        (
            "/api/v1/sessions",
            "post",
            "201",
            json!({ "GetUser": by_id("get_user", "$response.body#/user/id") }),
        ),
        (
            "/api/v1/books",
            "get",
            "200",
            json!({
                "GetBook": by_id("get_book", "$response.body#/books/0/id"),
                "SimilarBooks": by_id("similar_books", "$response.body#/books/0/id"),
                "RateBook": {
                    "operationId": "rate_book",
                    "parameters": { "book_id": "$response.body#/books/0/id" }
                },
                "NextPage": {
                    "operationId": "list_books",
                    "parameters": { "page_token": "$response.body#/next_page_token" }
                }
            }),
        ),
        (
            "/api/v1/me/ratings/{book_id}",
            "put",
            "201",
            json!({
                "DeleteRating": {
                    "operationId": "delete_rating",
                    "parameters": { "book_id": "$response.body#/book_id" }
                },
                "MyRatings": { "operationId": "my_ratings" }
            }),
        ),
    ]
}

/// Finishes the derived document (see the module header).
pub fn finish(mut doc: Value) -> Value {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        finish_inputs(schemas);
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (_, op) in item.iter_mut() {
                if op.get("responses").is_some() {
                    finish_operation(path, op);
                }
            }
        }
    }
    for (path, method, status, links) in links() {
        if let Some(r) = doc.pointer_mut(&format!(
            "/paths/{}/{method}/responses/{status}",
            path.replace('~', "~0").replace('/', "~1")
        )) {
            r["links"] = links;
        }
    }
    doc
}
