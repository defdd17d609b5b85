//! The REST JSON API under `/api/v1`: books, users, sessions, ratings, recommendations and the
//! live ratings feed (Server-Sent Events), each handler one translation to gRPC and back. The
//! OpenAPI document is generated from these handlers and types.

use std::{convert::Infallible, sync::LazyLock, time::Duration};

use axum::{
    Json, Router,
    extract::{FromRequest, FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures_util::Stream;
use protos::{marketplace::v1 as mp, recommendations::v1 as rec, users::v1 as us};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::{
    AppState,
    contract::{self, Validate},
    error::{self, ApiError, Problem},
    rate_limit::ClientIp,
    upstream::{Bearer, Deadline},
};

/// JSON body extractor whose rejections are problem documents. A body sent without a
/// content type, or with curl's default `application/x-www-form-urlencoded`, is still read as
/// JSON when it is JSON (so `curl -d '{…}'` works); any other non-JSON type is a 415.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + Validate, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let lenient = match content_type.as_deref() {
            None | Some("application/x-www-form-urlencoded") => true,
            Some(t) if t == "application/json" || t.ends_with("+json") => false,
            Some(_) => return Err(unsupported_media_type()),
        };
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), r.body_text()))?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => {
                value.validate()?;
                Ok(Self(value))
            }
            Err(axum::extract::rejection::JsonRejection::JsonSyntaxError(_)) if lenient => {
                Err(unsupported_media_type())
            }
            Err(rejection) => Err(rejection.into()),
        }
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "send a JSON body with `Content-Type: application/json`",
    )
}

/// Query-string extractor whose rejections are problem documents; the values are checked
/// against the contract's constraints too.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned + Validate, S: Send + Sync> FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        value.validate()?;
        Ok(Self(value))
    }
}

/// `Option<T>` that is absent or a value, never `null`: the API takes no nulls.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Path extractor whose rejections are problem documents.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The caller's `authorization: Bearer …` header, if any. Cookies are not accepted here: the
/// API is for programs, and a cookie-authenticated API would invite cross-site requests.
pub struct ApiAuth(pub Option<Bearer>);

impl<S: Send + Sync> FromRequestParts<S> for ApiAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .and_then(Bearer::parse)
            .map(|b| Self(Some(b)))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "authorization must be `Bearer <token>`",
                )
            })
    }
}

// ---------- resources ----------

/// A book of the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Book {
    pub id: i64,
    pub title: String,
    pub original_title: String,
    pub authors: Vec<String>,
    pub original_publication_year: Option<i32>,
    pub isbn: String,
    pub isbn13: String,
    pub language_code: String,
    pub average_rating: f64,
    pub ratings_count: i64,
    /// Counts of 1, 2, 3, 4 and 5 star ratings.
    pub rating_histogram: Vec<i64>,
    /// Cover on an external CDN; may be unreachable.
    pub image_url: String,
    pub small_image_url: String,
}

impl From<mp::Book> for Book {
    fn from(b: mp::Book) -> Self {
        Self {
            id: b.id,
            title: b.title,
            original_title: b.original_title,
            authors: b.authors,
            original_publication_year: b.original_publication_year,
            isbn: b.isbn,
            isbn13: b.isbn13,
            language_code: b.language_code,
            average_rating: b.average_rating,
            ratings_count: b.ratings_count,
            rating_histogram: b.rating_histogram,
            image_url: b.image_url,
            small_image_url: b.small_image_url,
        }
    }
}

/// A page of books.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookPage {
    pub books: Vec<Book>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    pub total_size: i32,
}

fn token(t: String) -> Option<String> {
    (!t.is_empty()).then_some(t)
}

/// Paging parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..=100 (default 20).
    pub page_size: Option<i32>,
    /// A `next_page_token` from the previous page.
    pub page_token: Option<String>,
}

/// Search parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find in titles and authors.
    pub q: String,
    /// 1..=100 (default 20).
    pub page_size: Option<i32>,
    /// A `next_page_token` from the previous page of the same search.
    pub page_token: Option<String>,
}

impl Validate for PageQuery {
    fn validate(&self) -> Result<(), ApiError> {
        contract::page_size(self.page_size, contract::PAGE_SIZE_MAX)?;
        contract::page_token(self.page_token.clone())?;
        Ok(())
    }
}

impl Validate for SearchQuery {
    fn validate(&self) -> Result<(), ApiError> {
        contract::query(&self.q)?;
        contract::page_size(self.page_size, contract::PAGE_SIZE_MAX)?;
        contract::page_token(self.page_token.clone())?;
        Ok(())
    }
}

/// How many recommendations to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1..=50 (default 10).
    pub page_size: Option<i32>,
}

impl Validate for LimitQuery {
    fn validate(&self) -> Result<(), ApiError> {
        contract::page_size(self.page_size, contract::RECS_SIZE_MAX).map(drop)
    }
}

/// An account (never with its password).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub create_time_unix_ms: i64,
    pub update_time_unix_ms: i64,
}

impl From<us::User> for User {
    fn from(u: us::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            create_time_unix_ms: u.create_time_unix_ms,
            update_time_unix_ms: u.update_time_unix_ms,
        }
    }
}

/// Sign-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// An address like name@example.com (unique, case-insensitive).
    pub email: String,
    /// 1..=64 characters.
    pub display_name: String,
    /// 8..=128 characters.
    pub password: String,
}

impl Validate for CreateUser {
    fn validate(&self) -> Result<(), ApiError> {
        contract::email("email", &self.email)?;
        contract::display_name(&self.display_name)?;
        contract::password("password", &self.password, contract::PASSWORD_MIN)
    }
}

/// Changes to an account; at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// 1..=64 characters.
    #[serde(default, deserialize_with = "present")]
    pub display_name: Option<String>,
    /// 8..=128 characters.
    #[serde(default, deserialize_with = "present")]
    pub password: Option<String>,
}

impl Validate for UpdateUser {
    fn validate(&self) -> Result<(), ApiError> {
        if self.display_name.is_none() && self.password.is_none() {
            return Err(ApiError::bad_request(
                "nothing to update: set display_name and/or password",
            ));
        }
        if let Some(name) = &self.display_name {
            contract::display_name(name)?;
        }
        if let Some(p) = &self.password {
            contract::password("password", p, contract::PASSWORD_MIN)?;
        }
        Ok(())
    }
}

/// Sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

impl Validate for SignIn {
    fn validate(&self) -> Result<(), ApiError> {
        contract::email("email", &self.email)?;
        contract::password("password", &self.password, 1)
    }
}

/// A bearer token for `authorization: Bearer …`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    pub user: User,
}

/// A rating to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateBook {
    /// 1..=5.
    #[serde(deserialize_with = "integer")]
    pub stars: i32,
}

/// An `i32` written as any JSON number with an integral value (`3` or `3.0`): JSON Schema's
/// `integer` is a mathematical integer, and clients that only have floats send `3.0`.
fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return i32::try_from(i).map_err(|_| D::Error::custom(format!("{i} is out of range")));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX) => {
            Ok(f as i32)
        }
        _ => Err(D::Error::custom(format!("expected an integer, got {n}"))),
    }
}

impl Validate for RateBook {
    fn validate(&self) -> Result<(), ApiError> {
        contract::stars(self.stars)
    }
}

/// One of the caller's ratings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rating {
    pub book_id: i64,
    pub stars: i32,
    pub update_time_unix_ms: i64,
}

impl From<rec::Rating> for Rating {
    fn from(r: rec::Rating) -> Self {
        Self {
            book_id: r.book_id,
            stars: r.stars,
            update_time_unix_ms: r.update_time_unix_ms,
        }
    }
}

/// A page of the caller's ratings, most recent first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RatingPage {
    pub ratings: Vec<Rating>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A recommended book.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub book: Book,
    pub score: f64,
    /// `popular`, `similar` or `personal`.
    pub source: String,
    /// A short reason, e.g. "Because you liked Dune".
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because_book_id: Option<i64>,
}

/// Recommended books, best first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecommendationList {
    pub recommendations: Vec<Recommendation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Feed filter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Only ratings of this book.
    pub book_id: Option<i64>,
}

impl Validate for FeedQuery {
    fn validate(&self) -> Result<(), ApiError> {
        match self.book_id {
            Some(id) => contract::book_id("book_id", id),
            None => Ok(()),
        }
    }
}

/// One event of the live ratings feed (SSE `event: rating`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RatingEvent {
    /// `rated` or `deleted`.
    pub kind: String,
    pub book_id: i64,
    pub stars: i32,
    /// The book's title, when the catalog answered in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub time_unix_ms: i64,
}

// ---------- the join used by the API and the pages ----------

fn source_label(source: i32) -> &'static str {
    match rec::RecommendationSource::try_from(source) {
        Ok(rec::RecommendationSource::Popular) => "popular",
        Ok(rec::RecommendationSource::Similar) => "similar",
        Ok(rec::RecommendationSource::Personal) => "personal",
        _ => "unspecified",
    }
}

/// Recommendations joined with their books (one BatchGetBooks call).
pub async fn join_books(
    state: &AppState,
    deadline: Deadline,
    cap: Duration,
    recs: Vec<rec::Recommendation>,
) -> Result<Vec<Recommendation>, ApiError> {
    if recs.is_empty() {
        return Ok(Vec::new());
    }
    let ids = recs.iter().map(|r| r.book_id).collect();
    let books = state
        .upstreams
        .marketplace
        .clone()
        .batch_get_books(
            deadline
                .call_within(mp::BatchGetBooksRequest { ids }, None, cap)
                .map_err(error::marketplace)?,
        )
        .await
        .map_err(error::marketplace)?
        .into_inner()
        .books;
    Ok(recs
        .into_iter()
        .zip(books)
        .map(|(r, b)| Recommendation {
            book: b.into(),
            score: r.score,
            source: source_label(r.source).to_owned(),
            reason: r.reason,
            because_book_id: (r.because_book_id > 0).then_some(r.because_book_id),
        })
        .collect())
}

// ---------- handlers ----------

/// Lists books, most popular first.
#[utoipa::path(get, path = "/api/v1/books", tag = "books", params(PageQuery),
    responses((status = 200, body = BookPage), (status = 400, body = Problem)))]
pub async fn list_books(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<BookPage>, ApiError> {
    let req = s
        .deadline()
        .call(
            mp::ListBooksRequest {
                page_size: q.page_size.unwrap_or(0),
                page_token: q.page_token.unwrap_or_default(),
            },
            None,
        )
        .map_err(error::marketplace)?;
    let r = s
        .upstreams
        .marketplace
        .clone()
        .list_books(req)
        .await
        .map_err(error::marketplace)?
        .into_inner();
    Ok(Json(BookPage {
        books: r.books.into_iter().map(Book::from).collect(),
        next_page_token: token(r.next_page_token),
        total_size: r.total_size,
    }))
}

/// Searches titles and authors.
#[utoipa::path(get, path = "/api/v1/books/search", tag = "books", params(SearchQuery),
    responses((status = 200, body = BookPage), (status = 400, body = Problem)))]
pub async fn search_books(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<BookPage>, ApiError> {
    // Words are runs of letters and digits: a query without one finds nothing.
    if !q.q.chars().any(char::is_alphanumeric) {
        return Ok(Json(BookPage {
            books: Vec::new(),
            next_page_token: None,
            total_size: 0,
        }));
    }
    let req = s
        .deadline()
        .call(
            mp::SearchBooksRequest {
                query: q.q,
                page_size: q.page_size.unwrap_or(0),
                page_token: q.page_token.unwrap_or_default(),
            },
            None,
        )
        .map_err(error::marketplace)?;
    let r = s
        .upstreams
        .marketplace
        .clone()
        .search_books(req)
        .await
        .map_err(error::marketplace)?
        .into_inner();
    Ok(Json(BookPage {
        books: r.books.into_iter().map(Book::from).collect(),
        next_page_token: token(r.next_page_token),
        total_size: r.total_size,
    }))
}

/// Gets one book.
#[utoipa::path(get, path = "/api/v1/books/{id}", tag = "books", params(("id" = i64, Path)),
    responses((status = 200, body = Book), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_book(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Book>, ApiError> {
    contract::book_id("id", id)?;
    let req = s
        .deadline()
        .call(mp::GetBookRequest { id }, None)
        .map_err(error::marketplace)?;
    let book = s
        .upstreams
        .marketplace
        .clone()
        .get_book(req)
        .await
        .map_err(error::marketplace)?
        .into_inner()
        .book
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "the catalog sent no book"))?;
    Ok(Json(book.into()))
}

/// "Readers who liked this also liked".
#[utoipa::path(get, path = "/api/v1/books/{id}/similar", tag = "recommendations",
    params(("id" = i64, Path), LimitQuery),
    responses((status = 200, body = RecommendationList), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn similar_books(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<RecommendationList>, ApiError> {
    contract::book_id("id", id)?;
    let recommendations = s
        .similar(s.deadline(), Duration::MAX, id, q.page_size.unwrap_or(0))
        .await?;
    Ok(Json(RecommendationList {
        recommendations,
        next_page_token: None,
    }))
}

/// Popular books for everybody (Bayesian average).
#[utoipa::path(get, path = "/api/v1/recommendations/popular", tag = "recommendations", params(PageQuery),
    responses((status = 200, body = RecommendationList), (status = 400, body = Problem)))]
pub async fn popular_books(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<RecommendationList>, ApiError> {
    let (recommendations, next_page_token) = s
        .popular(
            s.deadline(),
            Duration::MAX,
            q.page_size.unwrap_or(0),
            q.page_token.unwrap_or_default(),
        )
        .await?;
    Ok(Json(RecommendationList {
        recommendations,
        next_page_token,
    }))
}

/// Books for the signed-in caller.
#[utoipa::path(get, path = "/api/v1/me/recommendations", tag = "recommendations", params(LimitQuery),
    security(("bearer" = [])),
    responses((status = 200, body = RecommendationList), (status = 401, body = Problem)))]
pub async fn my_recommendations(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<RecommendationList>, ApiError> {
    let recommendations = s
        .for_me(
            s.deadline(),
            Duration::MAX,
            auth.as_ref(),
            q.page_size.unwrap_or(0),
        )
        .await?;
    Ok(Json(RecommendationList {
        recommendations,
        next_page_token: None,
    }))
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = User,
                headers(("Location" = String, description = "The new account: /api/v1/users/{id}"))),
              (status = 400, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 429, body = Problem, description = "This client's sign-up budget is spent (AUTH_RATE_PER_MINUTE); retry after Retry-After seconds.")))]
pub async fn create_user(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    s.auth_attempt(client)?;
    let user = s
        .create_user(body.email, body.display_name, body.password)
        .await?;
    let location = format!("/api/v1/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(user),
    )
        .into_response())
}

/// Reads the caller's own account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    contract::user_id(&id)?;
    let req = s
        .deadline()
        .call(us::GetUserRequest { id }, auth.as_ref())
        .map_err(error::users)?;
    let user = s
        .upstreams
        .users
        .clone()
        .get_user(req)
        .await
        .map_err(error::users)?
        .into_inner()
        .user
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "the users service sent no user"))?;
    Ok(Json(user.into()))
}

/// Changes the caller's display name and/or password.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UpdateUser, security(("bearer" = [])),
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn update_user(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    contract::user_id(&id)?;
    let req = s
        .deadline()
        .call(
            us::UpdateUserRequest {
                id,
                display_name: body.display_name,
                password: body.password,
            },
            auth.as_ref(),
        )
        .map_err(error::users)?;
    let user = s
        .upstreams
        .users
        .clone()
        .update_user(req)
        .await
        .map_err(error::users)?
        .into_inner()
        .user
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "the users service sent no user"))?;
    Ok(Json(user.into()))
}

/// Deletes the caller's account.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_user(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    contract::user_id(&id)?;
    let req = s
        .deadline()
        .call(us::DeleteUserRequest { id }, auth.as_ref())
        .map_err(error::users)?;
    s.upstreams
        .users
        .clone()
        .delete_user(req)
        .await
        .map_err(error::users)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs in: email and password for a bearer token.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "users", request_body = SignIn,
    responses((status = 201, body = Session), (status = 400, body = Problem),
              (status = 401, body = Problem, description = "Email or password is incorrect."),
              (status = 429, body = Problem, description = "This client's sign-in budget is spent (AUTH_RATE_PER_MINUTE); retry after Retry-After seconds.")))]
pub async fn sign_in(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    s.auth_attempt(client)?;
    let session = s.sign_in(body.email, body.password).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Signs out: the caller's token is refused from now on, by every service.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "users", security(("bearer" = [])),
    responses((status = 204, description = "The session has ended.")))]
pub async fn sign_out(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
) -> Result<StatusCode, ApiError> {
    s.sign_out(auth.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the caller's ratings, most recent first.
#[utoipa::path(get, path = "/api/v1/me/ratings", tag = "ratings", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = RatingPage), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn my_ratings(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<RatingPage>, ApiError> {
    let req = s
        .deadline()
        .call(
            rec::ListMyRatingsRequest {
                page_size: q.page_size.unwrap_or(0),
                page_token: q.page_token.unwrap_or_default(),
            },
            auth.as_ref(),
        )
        .map_err(error::recommendations)?;
    let r = s
        .upstreams
        .recommendations
        .clone()
        .list_my_ratings(req)
        .await
        .map_err(error::recommendations)?
        .into_inner();
    Ok(Json(RatingPage {
        ratings: r.ratings.into_iter().map(Rating::from).collect(),
        next_page_token: token(r.next_page_token),
    }))
}

/// Rates a book (1-5 stars); rating again replaces the rating.
#[utoipa::path(put, path = "/api/v1/me/ratings/{book_id}", tag = "ratings",
    params(("book_id" = i64, Path)), request_body = RateBook, security(("bearer" = [])),
    responses((status = 201, body = Rating, description = "first rating of this book"),
              (status = 200, body = Rating, description = "rating replaced"),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn rate_book(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(book_id): ApiPath<i64>,
    ApiJson(body): ApiJson<RateBook>,
) -> Result<(StatusCode, Json<Rating>), ApiError> {
    contract::book_id("book_id", book_id)?;
    let (rating, created) = s.rate(auth.as_ref(), book_id, body.stars).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(rating)))
}

/// Deletes the caller's rating of a book.
#[utoipa::path(delete, path = "/api/v1/me/ratings/{book_id}", tag = "ratings",
    params(("book_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_rating(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(book_id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    contract::book_id("book_id", book_id)?;
    s.unrate(auth.as_ref(), book_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The live feed of ratings as Server-Sent Events (`event: rating`, data: a RatingEvent).
#[utoipa::path(get, path = "/api/v1/ratings/stream", tag = "ratings", params(FeedQuery),
    responses((status = 200, content_type = "text/event-stream", body = RatingEvent),
              (status = 400, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn ratings_stream(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Ok(permit) = s.streams.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway holds as many live feeds as it may; retry later",
        ));
    };
    // The feed is long-lived: only opening it is bounded by the request deadline.
    let open = s.deadline().remaining().map_err(error::recommendations)?;
    let upstream = tokio::time::timeout(
        open,
        s.upstreams
            .recommendations
            .clone()
            .watch_ratings(rec::WatchRatingsRequest {
                book_id: q.book_id.unwrap_or(0),
            }),
    )
    .await
    .map_err(|_| error::recommendations(tonic::Status::deadline_exceeded("opening the feed")))?
    .map_err(error::recommendations)?
    .into_inner();
    let stream = futures_util::stream::unfold(
        (upstream, s.clone(), s.shutdown.clone(), permit),
        |(mut upstream, s, mut shutdown, permit)| async move {
            let next = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return None,
                next = upstream.message() => next,
            };
            let event = match next {
                Ok(Some(e)) => e,
                Ok(None) => return None,
                Err(status) => {
                    tracing::info!(code = ?status.code(), "ratings feed ended upstream");
                    return None;
                }
            };
            let data = s.feed_event(event).await;
            let sse = Event::default()
                .event("rating")
                .json_data(&data)
                .unwrap_or_else(|_| Event::default().comment("unencodable event"));
            Some((Ok(sse), (upstream, s, shutdown, permit)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default().interval(Duration::from_secs(15))))
}

impl AppState {
    /// The deadline for one incoming request.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.request_timeout)
    }

    /// "Readers who liked this also liked", joined with the books (API and book page).
    pub async fn similar(
        &self,
        d: Deadline,
        cap: Duration,
        book_id: i64,
        page_size: i32,
    ) -> Result<Vec<Recommendation>, ApiError> {
        let req = d
            .call_within(
                rec::ListSimilarBooksRequest { book_id, page_size },
                None,
                cap,
            )
            .map_err(error::recommendations)?;
        let recs = self
            .upstreams
            .recommendations
            .clone()
            .list_similar_books(req)
            .await
            .map_err(error::recommendations)?
            .into_inner()
            .recommendations;
        join_books(self, d, cap, recs).await
    }

    /// Popular books joined with the books, and the next page's token (API and home page).
    pub async fn popular(
        &self,
        d: Deadline,
        cap: Duration,
        page_size: i32,
        page_token: String,
    ) -> Result<(Vec<Recommendation>, Option<String>), ApiError> {
        let req = d
            .call_within(
                rec::ListPopularBooksRequest {
                    page_size,
                    page_token,
                },
                None,
                cap,
            )
            .map_err(error::recommendations)?;
        let r = self
            .upstreams
            .recommendations
            .clone()
            .list_popular_books(req)
            .await
            .map_err(error::recommendations)?
            .into_inner();
        Ok((
            join_books(self, d, cap, r.recommendations).await?,
            token(r.next_page_token),
        ))
    }

    /// The caller's personal recommendations joined with the books (API and home page).
    pub async fn for_me(
        &self,
        d: Deadline,
        cap: Duration,
        auth: Option<&Bearer>,
        page_size: i32,
    ) -> Result<Vec<Recommendation>, ApiError> {
        let req = d
            .call_within(
                rec::ListRecommendationsForMeRequest { page_size },
                auth,
                cap,
            )
            .map_err(error::recommendations)?;
        let recs = self
            .upstreams
            .recommendations
            .clone()
            .list_recommendations_for_me(req)
            .await
            .map_err(error::recommendations)?
            .into_inner()
            .recommendations;
        join_books(self, d, cap, recs).await
    }

    /// Creates an account (shared by the API and the sign-up form).
    pub async fn create_user(
        &self,
        email: String,
        display_name: String,
        password: String,
    ) -> Result<User, ApiError> {
        let req = self
            .deadline()
            .call(
                us::CreateUserRequest {
                    email,
                    display_name,
                    password,
                },
                None,
            )
            .map_err(error::users)?;
        let user = self
            .upstreams
            .users
            .clone()
            .create_user(req)
            .await
            .map_err(error::users)?
            .into_inner()
            .user
            .ok_or_else(|| {
                ApiError::new(StatusCode::BAD_GATEWAY, "the users service sent no user")
            })?;
        Ok(user.into())
    }

    /// Takes one sign-in/sign-up attempt from `client`'s budget (API and forms).
    pub fn auth_attempt(&self, client: std::net::IpAddr) -> Result<(), ApiError> {
        self.auth_limit.check(client).map_err(|wait| {
            ApiError::too_many(
                "too many sign-in or sign-up attempts from this address; retry later",
                wait,
            )
        })
    }

    /// Ends the caller's session (shared by the API and the sign-out form).
    pub async fn sign_out(&self, auth: Option<&Bearer>) -> Result<(), ApiError> {
        let req = self
            .deadline()
            .call(us::SignOutRequest {}, auth)
            .map_err(error::users)?;
        self.upstreams
            .users
            .clone()
            .sign_out(req)
            .await
            .map_err(error::users)?;
        Ok(())
    }

    /// Signs in (shared by the API and the sign-in form).
    pub async fn sign_in(&self, email: String, password: String) -> Result<Session, ApiError> {
        let req = self
            .deadline()
            .call(us::SignInRequest { email, password }, None)
            .map_err(error::users)?;
        let r = self
            .upstreams
            .users
            .clone()
            .sign_in(req)
            .await
            .map_err(error::users)?
            .into_inner();
        let user = r.user.ok_or_else(|| {
            ApiError::new(StatusCode::BAD_GATEWAY, "the users service sent no user")
        })?;
        Ok(Session {
            access_token: r.access_token,
            token_type: "Bearer".into(),
            expires_in: r.expires_in_seconds,
            user: user.into(),
        })
    }

    /// Rates a book (shared by the API and the rating form); `true` when it is a first rating.
    pub async fn rate(
        &self,
        auth: Option<&Bearer>,
        book_id: i64,
        stars: i32,
    ) -> Result<(Rating, bool), ApiError> {
        let req = self
            .deadline()
            .call(rec::RateBookRequest { book_id, stars }, auth)
            .map_err(error::recommendations)?;
        let r = self
            .upstreams
            .recommendations
            .clone()
            .rate_book(req)
            .await
            .map_err(error::recommendations)?
            .into_inner();
        let rating = r.rating.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the recommendations service sent no rating",
            )
        })?;
        Ok((rating.into(), r.created))
    }

    /// Deletes a rating (shared by the API and the rating form).
    pub async fn unrate(&self, auth: Option<&Bearer>, book_id: i64) -> Result<(), ApiError> {
        let req = self
            .deadline()
            .call(rec::DeleteRatingRequest { book_id }, auth)
            .map_err(error::recommendations)?;
        self.upstreams
            .recommendations
            .clone()
            .delete_rating(req)
            .await
            .map_err(error::recommendations)?;
        Ok(())
    }

    /// A feed event for browsers, with the book's title when the catalog answers quickly.
    async fn feed_event(&self, e: rec::WatchRatingsResponse) -> RatingEvent {
        let rating = e.rating.unwrap_or_default();
        let kind = match rec::RatingEventKind::try_from(e.kind) {
            Ok(rec::RatingEventKind::Deleted) => "deleted",
            _ => "rated",
        };
        let title = match Deadline::after(Duration::from_millis(500))
            .call(mp::GetBookRequest { id: rating.book_id }, None)
        {
            Ok(req) => self
                .upstreams
                .marketplace
                .clone()
                .get_book(req)
                .await
                .ok()
                .and_then(|r| r.into_inner().book)
                .map(|b| b.title),
            Err(_) => None,
        };
        RatingEvent {
            kind: kind.into(),
            book_id: rating.book_id,
            stars: rating.stars,
            title,
            time_unix_ms: rating.update_time_unix_ms,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bookstore API",
        version = "1.0.0",
        description = "The bookstore's public REST API. Errors are RFC 9457 problem documents."
    ),
    paths(
        list_books, search_books, get_book, similar_books, popular_books, my_recommendations,
        create_user, get_user, update_user, delete_user, sign_in, sign_out, my_ratings, rate_book,
        delete_rating, ratings_stream
    ),
    components(schemas(
        Book, BookPage, User, CreateUser, UpdateUser, SignIn, Session, RateBook, Rating,
        RatingPage, Recommendation, RecommendationList, RatingEvent, Problem
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

/// The OpenAPI document, derived from the handlers and finished by [`crate::openapi::finish`],
/// rendered once.
pub static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    serde_json::to_string_pretty(&crate::openapi::finish(doc)).unwrap_or_else(|_| "{}".to_owned())
});

async fn openapi_json() -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static header"),
    );
    (headers, OPENAPI_JSON.as_str())
}

/// Whether `path` belongs to the API (answered with problem documents, never pages).
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// 404 for an unknown path under `/api/`.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such API route")
}

/// The `/api/v1` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/books", get(list_books))
        .route("/api/v1/books/search", get(search_books))
        .route("/api/v1/books/{id}", get(get_book))
        .route("/api/v1/books/{id}/similar", get(similar_books))
        .route("/api/v1/recommendations/popular", get(popular_books))
        .route("/api/v1/users", axum::routing::post(create_user))
        .route(
            "/api/v1/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/api/v1/sessions", axum::routing::post(sign_in))
        .route("/api/v1/sessions/current", axum::routing::delete(sign_out))
        .route("/api/v1/me/ratings", get(my_ratings))
        .route(
            "/api/v1/me/ratings/{book_id}",
            axum::routing::put(rate_book).delete(delete_rating),
        )
        .route("/api/v1/me/recommendations", get(my_recommendations))
        .route("/api/v1/ratings/stream", get(ratings_stream))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
}
