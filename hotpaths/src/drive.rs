//! The hot paths and the driver that sends a fixed number of one of them through the gateway:
//! what runs under callgrind.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};

use crate::suite;

/// A request path whose instructions per request the alarm watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HotPath {
    /// GET /api/v1/books/1
    GetBook,
    /// GET /api/v1/books/search?q=...
    Search,
    /// GET / without a session
    HomeVisitor,
    /// GET / with the pages' session cookies
    HomeSignedIn,
    /// PUT /api/v1/me/ratings/{id}
    RateBook,
}

impl HotPath {
    pub const ALL: [HotPath; 5] = [
        HotPath::GetBook,
        HotPath::Search,
        HotPath::HomeVisitor,
        HotPath::HomeSignedIn,
        HotPath::RateBook,
    ];

    /// The name in the baseline and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            HotPath::GetBook => "get-book",
            HotPath::Search => "search",
            HotPath::HomeVisitor => "home-visitor",
            HotPath::HomeSignedIn => "home-signed-in",
            HotPath::RateBook => "rate-book",
        }
    }

    fn needs_reader(self) -> bool {
        matches!(self, HotPath::HomeSignedIn | HotPath::RateBook)
    }
}

const READER_NAME: &str = "Hotpaths Reader";
/// Requests of the path sent before the counted ones start to matter (pools, caches).
const WARM_UP: u32 = 5;

/// Why a drive failed.
#[derive(Debug)]
pub struct DriveError(pub String);

impl std::fmt::Display for DriveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<suite::StartError> for DriveError {
    fn from(e: suite::StartError) -> Self {
        Self(format!("the suite did not start: {e}"))
    }
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), DriveError> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(name, *value);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| DriveError(format!("{method} {path}: {e}")))?;
        let res = self
            .client
            .request(req)
            .await
            .map_err(|e| DriveError(format!("{method} {path}: {e}")))?;
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| DriveError(format!("{method} {path}: body: {e}")))?
            .to_bytes();
        Ok((status, body))
    }

    /// `send`, refusing anything but 2xx.
    async fn ok(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        body: Option<Value>,
    ) -> Result<Bytes, DriveError> {
        let (status, body) = self.send(method.clone(), path, headers, body).await?;
        if !status.is_success() {
            return Err(DriveError(format!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(body)
    }
}

/// A signed-in reader: the API's bearer header and the pages' session cookies.
struct Reader {
    bearer: String,
    cookies: String,
}

async fn sign_up_and_in(http: &Http) -> Result<Reader, DriveError> {
    let (email, password) = (
        "reader@hotpaths.example",
        "a long enough hotpaths passphrase",
    );
    http.ok(
        Method::POST,
        "/api/v1/users",
        &[],
        Some(json!({"email": email, "display_name": READER_NAME, "password": password})),
    )
    .await?;
    let body = http
        .ok(
            Method::POST,
            "/api/v1/sessions",
            &[],
            Some(json!({"email": email, "password": password})),
        )
        .await?;
    let session: Value = serde_json::from_slice(&body)
        .map_err(|e| DriveError(format!("POST /api/v1/sessions: {e}")))?;
    let token = session["access_token"].as_str().unwrap_or_default();
    let user = json!({"id": session["user"]["id"], "name": READER_NAME});
    Ok(Reader {
        bearer: format!("Bearer {token}"),
        // What the pages' sign-in sets (gateway/src/pages/session.rs), without the form round trip.
        cookies: format!(
            "bookstore_session={token}; bookstore_user={}",
            URL_SAFE_NO_PAD.encode(user.to_string())
        ),
    })
}

/// One request of `path`, the `i`-th.
async fn one(
    http: &Http,
    path: HotPath,
    reader: Option<&Reader>,
    i: u32,
) -> Result<(), DriveError> {
    let bearer = reader.map(|r| r.bearer.as_str()).unwrap_or_default();
    let cookies = reader.map(|r| r.cookies.as_str()).unwrap_or_default();
    match path {
        HotPath::GetBook => {
            http.ok(Method::GET, "/api/v1/books/1", &[], None).await?;
        }
        HotPath::Search => {
            http.ok(Method::GET, "/api/v1/books/search?q=harry", &[], None)
                .await?;
        }
        HotPath::HomeVisitor => {
            http.ok(Method::GET, "/", &[], None).await?;
        }
        HotPath::HomeSignedIn => {
            let body = http
                .ok(Method::GET, "/", &[(header::COOKIE, cookies)], None)
                .await?;
            if !String::from_utf8_lossy(&body).contains(READER_NAME) {
                return Err(DriveError(
                    "GET / with the session cookies does not show the reader signed in".into(),
                ));
            }
        }
        HotPath::RateBook => {
            // Ten books, rated again and again: every counted write is an update.
            let book = 1 + i % 10;
            http.ok(
                Method::PUT,
                &format!("/api/v1/me/ratings/{book}"),
                &[(header::AUTHORIZATION, bearer)],
                Some(json!({"stars": 1 + (i / 10) % 5})),
            )
            .await?;
        }
    }
    Ok(())
}

/// Starts the suite, warms `path` up, then sends it `requests` times.
pub async fn drive(path: HotPath, requests: u32) -> Result<(), DriveError> {
    let suite = suite::start().await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http = Http {
        client: Client::builder(TokioExecutor::new()).build(connector),
        base: format!("http://{}", suite.gateway),
    };
    // The gateway finds its upstreams on its own: ask until it answers.
    let mut tries = 0;
    while !http
        .send(Method::GET, "/api/v1/books/1", &[], None)
        .await
        .is_ok_and(|(s, _)| s.is_success())
    {
        tries += 1;
        if tries > 1200 {
            return Err(DriveError(
                "the gateway did not serve a book within 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reader = if path.needs_reader() {
        let reader = sign_up_and_in(&http).await?;
        // A reader with a history, so the signed-in page asks for personal picks.
        for i in 0..10 {
            one(&http, HotPath::RateBook, Some(&reader), i).await?;
        }
        Some(reader)
    } else {
        None
    };
    for i in 0..WARM_UP {
        one(&http, path, reader.as_ref(), i).await?;
    }
    for i in 0..requests {
        one(&http, path, reader.as_ref(), WARM_UP + i).await?;
    }
    drop(suite);
    Ok(())
}
