//! Minimal HTTP/1.1 over a plain socket: readiness checks and the pages' forms. The bench has no
//! HTTP client of its own, to keep it out of the way of what it measures.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

/// Waits until `url` answers 2xx (bounded); the time it took.
pub fn wait_http(url: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if http_ok(url) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{url} not ready within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a GET of `url` answers 2xx.
fn http_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let Ok(mut s) = TcpStream::connect(host) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf[9] == b'2'
}

/// Sends `request` to the gateway on `port` and reads the whole answer.
pub(crate) fn exchange(port: u16, request: &str, what: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the gateway");
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    s.write_all(request.as_bytes()).expect(what);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// The values of an answer's `Set-Cookie` headers, each cut at its first `;`.
fn set_cookies(answer: &str) -> impl Iterator<Item = &str> {
    answer
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim().split(';').next().unwrap_or(""))
}

/// A form POST (with `cookie`, if any); the status and the `Set-Cookie` pairs.
fn post_form(port: u16, path: &str, form: &str, cookie: Option<&str>) -> (u16, Vec<String>) {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let answer = exchange(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
        "send the form",
    );
    let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, set_cookies(&answer).map(str::to_owned).collect())
}

/// The CSRF cookie and form token a visitor gets with the home page (the pages' forms need
/// both).
fn form_token(port: u16) -> (String, String) {
    let answer = exchange(
        port,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "ask for the home page",
    );
    let cookie = set_cookies(&answer)
        .find(|c| c.contains("csrf"))
        .expect("a CSRF cookie")
        .to_owned();
    let token = answer
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form token")
        .to_owned();
    (cookie, token)
}

/// Signs a new reader up through the pages' form and rates a few books; their cookie header.
pub fn signed_in_reader(port: u16) -> String {
    let email = format!("bench-{}@example.org", tests::free_port());
    let (csrf_cookie, token) = form_token(port);
    let (status, cookies) = post_form(
        port,
        "/signup",
        &format!("email={email}&display_name=Bench&password=bench-password-1&csrf={token}"),
        Some(&csrf_cookie),
    );
    assert!(
        status == 303 && cookies.len() == 2,
        "sign-up answered {status} with cookies {cookies:?}"
    );
    let cookie = format!("{csrf_cookie}; {}", cookies.join("; "));
    for book in [1, 2, 3, 5, 8] {
        let (status, _) = post_form(
            port,
            &format!("/books/{book}/rating"),
            &format!("stars=5&csrf={token}"),
            Some(&cookie),
        );
        assert_eq!(status, 303, "rating book {book}");
    }
    cookie
}

/// The home page's link to the grid's second page, as `cookie`'s reader gets it: its query
/// (`?page_token=…`), to append to the home page's address.
pub fn next_page_link(port: u16, cookie: &str) -> String {
    let answer = exchange(
        port,
        &format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"
        ),
        "ask for the home page",
    );
    answer
        .split(r#"rel="next" href="/"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|query| query.starts_with("?page_token="))
        .expect("the home page links to the grid's second page")
        .replace("&amp;", "&")
}
