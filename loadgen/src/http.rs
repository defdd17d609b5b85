//! The shoppers' HTTP/1.1 client: hyper-util's pooled client, the one reqwest drives
//! underneath, with each request's URI built from a base parsed once. Through reqwest every
//! request's URL was parsed twice (from its string, then again by its redirect policy, which
//! runs even when redirects are off): 31% of loadgen's instructions per request, on the
//! machine whose CPU the servers under test share.

use std::time::Duration;

use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Response, StatusCode, Uri, header,
    uri::{Authority, PathAndQuery, Scheme},
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};

/// Why an exchange brought no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing within the step's timeout.
    Timeout,
    /// The connection failed or broke; the error and its causes.
    Transport(String),
}

/// An answer read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A client for one base URL (`http://host:port`, maybe with a path prefix).
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    scheme: Scheme,
    authority: Authority,
    /// The base URL's path, without its trailing slash ("" for none).
    prefix: String,
}

impl Http {
    /// A client for `base`; connections are set up within `timeout` (at most 5 s) and kept 30 s
    /// when idle.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, crate::Error> {
        let bad = |why: &str| crate::Error::Config(format!("target {base:?}: {why}"));
        let uri: Uri = base.parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| bad("no scheme"))?;
        if scheme != Scheme::HTTP {
            return Err(bad("only http:// targets are supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        if uri.query().is_some() {
            return Err(bad("a base URL has no query"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(crate::connect_timeout(timeout)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// A request for `path_and_query` (starting with `/`) under the base, with a bearer
    /// `token` if given and a JSON `body` if given.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Request<Full<Bytes>> {
        let whole = || format!("{}{path_and_query}", self.prefix);
        // Parsed where it was written (no second copy). The steps percent-encode what they put
        // in a path; whatever they missed is encoded here (as a URL parser would), never sent
        // elsewhere.
        let path = PathAndQuery::from_maybe_shared(Bytes::from(whole()))
            .or_else(|_| PathAndQuery::try_from(percent_encode_invalid(&whole())))
            .unwrap_or_else(|_| PathAndQuery::from_static("/"));
        let uri = Uri::from_parts({
            let mut p = http::uri::Parts::default();
            p.scheme = Some(self.scheme.clone());
            p.authority = Some(self.authority.clone());
            p.path_and_query = Some(path);
            p
        })
        .unwrap_or_default();
        let json = body.is_some();
        let body = body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()));
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static(crate::USER_AGENT),
        );
        if json {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Some(t) = token
            && let Ok(mut v) = HeaderValue::try_from(format!("Bearer {t}"))
        {
            v.set_sensitive(true);
            h.insert(header::AUTHORIZATION, v);
        }
        req
    }

    /// Sends `req` and reads its whole answer, all within `timeout`.
    pub async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let whole = async {
            let resp = self.client.request(req).await.map_err(|e| failure(&e))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| failure(&e))?.to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, whole)
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    /// Sends `req` and returns once the answer's head is in (within `timeout`), its body
    /// unread.
    pub async fn open(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Failure> {
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(Failure::Timeout),
            Ok(r) => r.map_err(|e| failure(&e)),
        }
    }
}

/// `s` with every byte a URI's path and query may not hold percent-encoded.
fn percent_encode_invalid(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A timeout when any cause is one (the connector's own connect timeout reports itself as an
/// `io::Error` of kind `TimedOut`), else the error and its causes in one line, at most 200
/// characters.
fn failure(e: &(dyn std::error::Error + 'static)) -> Failure {
    let mut s = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return Failure::Timeout;
        }
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&c.to_string());
        cause = c.source();
    }
    Failure::Transport(s.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_under_the_base_with_their_headers() {
        let http = Http::new("http://127.0.0.1:8080/shop/", Duration::from_secs(1)).unwrap();
        let body = serde_json::json!({ "stars": 4 });
        let req = http.request(
            Method::PUT,
            "/api/v1/me/ratings/7?x=%20",
            Some("t0k"),
            Some(&body),
        );
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:8080/shop/api/v1/me/ratings/7?x=%20"
        );
        assert_eq!(req.headers()[header::AUTHORIZATION], "Bearer t0k");
        assert!(req.headers()[header::AUTHORIZATION].is_sensitive());
        assert_eq!(req.headers()[header::CONTENT_TYPE], "application/json");
        assert!(
            req.headers()[header::USER_AGENT]
                .to_str()
                .unwrap()
                .starts_with("bookstore-loadgen/")
        );

        // What a step failed to encode is encoded, not dropped.
        let req = http.request(Method::GET, "/api/v1/books/search?q=a b\"<é>", None, None);
        assert_eq!(
            req.uri().path_and_query().unwrap().as_str(),
            "/shop/api/v1/books/search?q=a%20b%22%3C%C3%A9%3E"
        );

        let plain = Http::new("http://localhost:1", Duration::from_secs(1)).unwrap();
        let req = plain.request(Method::GET, "/", None, None);
        assert_eq!(req.uri().to_string(), "http://localhost:1/");
        assert!(!req.headers().contains_key(header::CONTENT_TYPE));
        assert!(!req.headers().contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        for (base, why) in [
            ("https://shop.example", "only http://"),
            ("127.0.0.1:8080", "no scheme"),
            ("http://x/?q=1", "no query"),
            ("not a url", "not a URL"),
        ] {
            let e = Http::new(base, Duration::from_secs(1)).err().unwrap();
            assert!(e.to_string().contains(why), "{base}: {e}");
        }
    }

    #[test]
    fn a_timed_out_cause_anywhere_is_a_timeout() {
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let timed_out = Wrapped(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timeout",
        ));
        assert_eq!(failure(&timed_out), Failure::Timeout);
        let refused = Wrapped(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(
            failure(&refused),
            Failure::Transport("client error (Connect): connection refused".into())
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_failure_and_silence_a_timeout() {
        // A port just closed: connections are refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let http = Http::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let req = http.request(Method::GET, "/", None, None);
        match http.exchange(req, Duration::from_secs(2)).await {
            Err(Failure::Transport(why)) => assert!(!why.is_empty()),
            other => panic!("expected a transport failure, got {:?}", other.err()),
        }

        // A listener that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let http = Http::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let req = http.request(Method::GET, "/", None, None);
        let answer = http.exchange(req, Duration::from_millis(200)).await;
        assert_eq!(answer.err(), Some(Failure::Timeout));
        holder.abort();
    }
}
