//! The whole suite as a user meets it: four real processes, driven over HTTP only.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Client, StatusCode, header, redirect::Policy};
use serde_json::{Value, json};
use tests::{Suite, fresh_books, unique};

struct Reader {
    id: String,
    token: String,
}

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn sign_up(s: &Suite, c: &Client, name: &str) -> Reader {
    let email = format!("{name}-{}@example.org", unique());
    let r = c
        .post(format!("{}/api/v1/users", s.base_url))
        .json(&json!({"email": email, "display_name": name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let user: Value = r.json().await.unwrap();
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/users/{id}"));
    assert!(user.get("password").is_none());
    let session: Value = c
        .post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": email.to_uppercase(), "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["token_type"], "Bearer");
    Reader {
        id,
        token: session["access_token"].as_str().unwrap().to_owned(),
    }
}

async fn rate(s: &Suite, c: &Client, who: &Reader, book: i64, stars: i64) -> StatusCode {
    c.put(format!("{}/api/v1/me/ratings/{book}", s.base_url))
        .bearer_auth(&who.token)
        .json(&json!({ "stars": stars }))
        .send()
        .await
        .unwrap()
        .status()
}

async fn json_get(c: &Client, url: String, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(v: &Value, list: &str) -> Vec<i64> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["book"]["id"]
                .as_i64()
                .or_else(|| r["id"].as_i64())
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn readers_rate_books_and_what_they_see_changes_accordingly() {
    let s = Suite::start().await;
    let c = client();
    let (ada, bob, cyd) = (
        sign_up(&s, &c, "ada").await,
        sign_up(&s, &c, "bob").await,
        sign_up(&s, &c, "cyd").await,
    );

    let (status, found) = json_get(
        &c,
        format!(
            "{}/api/v1/books/search?q=the%20hobbit&page_size=3",
            s.base_url
        ),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["books"][0]["title"], "The Hobbit");

    let b = fresh_books(5);
    for (who, book, stars) in [
        (&ada, b[0], 5),
        (&ada, b[1], 5),
        (&ada, b[2], 5),
        (&bob, b[0], 5),
        (&bob, b[1], 4),
        (&bob, b[3], 5),
        (&cyd, b[0], 5),
    ] {
        assert_eq!(rate(&s, &c, who, book, stars).await, StatusCode::CREATED);
    }
    assert_eq!(
        rate(&s, &c, &cyd, b[0], 5).await,
        StatusCode::OK,
        "rating again replaces"
    );

    let similar = |book: i64| format!("{}/api/v1/books/{book}/similar", s.base_url);
    let (_, also) = json_get(&c, similar(b[0]), None).await;
    assert_eq!(ids(&also, "recommendations"), vec![b[1], b[2], b[3]]);

    let (_, first_title) =
        json_get(&c, format!("{}/api/v1/books/{}", s.base_url, b[0]), None).await;
    let mine = format!("{}/api/v1/me/recommendations?page_size=5", s.base_url);
    let (status, for_cyd) = json_get(&c, mine.clone(), Some(&cyd.token)).await;
    assert_eq!(status, 200);
    let recs = for_cyd["recommendations"].as_array().unwrap();
    assert_eq!(recs[0]["book"]["id"], b[1]);
    assert_eq!(recs[0]["source"], "personal");
    assert_eq!(
        recs[0]["reason"],
        format!(
            "Because you liked {}",
            first_title["title"].as_str().unwrap()
        )
    );
    assert!(
        recs.iter().all(|r| r["book"]["id"] != b[0]),
        "never a book Cyd rated"
    );

    // Cyd rates what was recommended: it leaves her list, the next similar books lead.
    rate(&s, &c, &cyd, b[1], 5).await;
    let (_, after) = json_get(&c, mine, Some(&cyd.token)).await;
    let after_ids = ids(&after, "recommendations");
    assert!(!after_ids.contains(&b[1]) && !after_ids.contains(&b[0]));
    assert_eq!(after_ids[..2], [b[2], b[3]]);

    // Ada withdraws her rating of b[2]: it is no longer "also liked" with b[0].
    let r = c
        .delete(format!("{}/api/v1/me/ratings/{}", s.base_url, b[2]))
        .bearer_auth(&ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, also) = json_get(&c, similar(b[0]), None).await;
    assert!(!ids(&also, "recommendations").contains(&b[2]));

    let (_, ratings) = json_get(
        &c,
        format!("{}/api/v1/me/ratings", s.base_url),
        Some(&ada.token),
    )
    .await;
    assert_eq!(ratings["ratings"].as_array().unwrap().len(), 2);

    // Accounts belong to their owners.
    let me = format!("{}/api/v1/users/{}", s.base_url, ada.id);
    assert_eq!(json_get(&c, me.clone(), Some(&ada.token)).await.0, 200);
    assert_eq!(json_get(&c, me.clone(), Some(&bob.token)).await.0, 403);
    assert_eq!(json_get(&c, me.clone(), None).await.0, 401);
    let patch = c
        .patch(&me)
        .bearer_auth(&bob.token)
        .json(&json!({"display_name": "Mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 403);
    let delete = c.delete(&me).bearer_auth(&bob.token).send().await.unwrap();
    assert_eq!(delete.status(), 403);
    let (_, ada_now) = json_get(&c, me.clone(), Some(&ada.token)).await;
    assert_eq!(ada_now["display_name"], "ada");
    let patch = c
        .patch(&me)
        .bearer_auth(&ada.token)
        .json(&json!({"display_name": "Ada L."}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    let delete = c.delete(&me).bearer_auth(&ada.token).send().await.unwrap();
    assert_eq!(delete.status(), 204);
    // The account's tokens ended with it.
    assert_eq!(json_get(&c, me, Some(&ada.token)).await.0, 401);
}

#[tokio::test]
async fn the_live_feed_delivers_a_new_rating_as_server_sent_events() {
    let s = Suite::start().await;
    let c = client();
    let reader = sign_up(&s, &c, "eve").await;
    let book = fresh_books(1)[0];
    let feed = c
        .get(format!(
            "{}/api/v1/ratings/stream?book_id={book}",
            s.base_url
        ))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    assert!(
        feed.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The subscription is open once the headers are back; now rate.
    assert_eq!(rate(&s, &c, &reader, book, 4).await, StatusCode::CREATED);
    let mut body = feed.bytes_stream();
    let mut seen = String::new();
    let got = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("event: rating") && seen.contains("\n\n") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(got, Ok(true)), "no rating event; got {seen:?}");
    let data = seen.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["kind"], "rated");
    assert_eq!(event["book_id"], book);
    assert_eq!(event["stars"], 4);
    assert!(event["title"].as_str().is_some_and(|t| !t.is_empty()));
}

fn cookies(r: &reqwest::Response) -> String {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn page(c: &Client, url: String, cookie: Option<&str>) -> (StatusCode, String) {
    let mut req = c.get(url);
    if let Some(k) = cookie {
        req = req.header(header::COOKIE, k);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    if status.is_success() {
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn the_pages_render_the_expected_books_and_work_without_javascript() {
    let s = Suite::start().await;
    let c = client();
    let (status, home) = page(&c, format!("{}/", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(home.contains("Most read books"));
    assert!(home.contains("The Hunger Games (The Hunger Games, #1)"));
    assert!(home.contains("Popular now"));
    // Each pick of the panel links its book and names its authors.
    let panel = home
        .split(r#"<section class="panel""#)
        .nth(1)
        .and_then(|p| p.split("</section>").next())
        .expect("the panel");
    assert_eq!(panel.matches(r#"<a href="/books/"#).count(), 8, "{panel}");
    assert_eq!(
        panel.matches(r#"<span class="muted"></span>"#).count(),
        0,
        "{panel}"
    );
    assert!(home.contains(r#"action="/signup""#) && home.contains(r#"action="/signin""#));
    // Covers are images over a placeholder that carries the title; the image's alt is the title.
    assert!(home.contains(r#"<div class="cover "#) && home.contains(r#"alt="The Hunger Games""#));
    // The Content-Security-Policy allows no inline styles or scripts: none may be needed.
    assert!(!home.contains("style=") && !home.contains("<script>"));

    let next = home
        .split(r#"rel="next" href=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let (status, second) = page(&c, format!("{}{next}", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(!second.contains("The Hunger Games (The Hunger Games, #1)"));
    assert!(second.contains("First page"));

    let (_, search) = page(&c, format!("{}/?q=hobbit", s.base_url), None).await;
    assert!(search.contains("results for “hobbit”"));
    assert!(search.contains("The Hobbit"));

    // Sign up through the form, as a browser without JavaScript would.
    let email = format!("form-{}@example.org", unique());
    let forms = tests::Forms::open(&c, &s.base_url).await;
    let r = forms
        .post(
            &c,
            &format!("{}/signup", s.base_url),
            &[
                ("email", email.as_str()),
                ("display_name", "Form <Reader>"),
                ("password", "correct horse battery"),
            ],
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = cookies(&r);
    assert!(cookie.contains("bookstore_session="));
    let (_, signed_in) = page(
        &c,
        format!("{}/?notice=signed-up", s.base_url),
        Some(&cookie),
    )
    .await;
    assert!(
        signed_in.contains("Signed in as <strong>Form &lt;Reader&gt;</strong>"),
        "names are escaped"
    );
    assert!(signed_in.contains("Recommended for you"));

    // Rate through the form and see the book page.
    let b = fresh_books(2);
    let r = forms
        .post(
            &c,
            &format!("{}/books/{}/rating", s.base_url, b[0]),
            &[("stars", "5")],
            Some(&cookie),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[header::LOCATION],
        format!("/books/{}?notice=rated", b[0])
    );
    forms
        .post(
            &c,
            &format!("{}/books/{}/rating", s.base_url, b[1]),
            &[("stars", "5")],
            Some(&cookie),
        )
        .send()
        .await
        .unwrap();
    let (_, other) = json_get(&c, format!("{}/api/v1/books/{}", s.base_url, b[1]), None).await;
    let (status, book) = page(
        &c,
        format!("{}/books/{}?notice=rated", s.base_url, b[0]),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert!(book.contains("Thanks: your rating is saved."));
    assert!(book.contains("Readers who liked this also liked"));
    let other_title = other["title"]
        .as_str()
        .unwrap()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(book.contains(&other_title), "{other_title}");
    assert!(book.contains(r#"name="stars""#));

    let (_, anonymous_book) = page(&c, format!("{}/books/1", s.base_url), None).await;
    assert!(anonymous_book.contains("to rate this book"));

    assert_eq!(
        page(&c, format!("{}/books/abc", s.base_url), None).await.0,
        400
    );
    assert_eq!(
        page(&c, format!("{}/books/99999", s.base_url), None)
            .await
            .0,
        404
    );
    assert_eq!(
        page(&c, format!("{}/no/such/page", s.base_url), None)
            .await
            .0,
        404
    );

    let r = forms
        .post(
            &c,
            &format!("{}/signin", s.base_url),
            &[("email", email.as_str()), ("password", "wrong password")],
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .contains("notice=bad-credentials")
    );
    assert!(cookies(&r).is_empty());
}

async fn problem(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/problem+json",
        "{status}"
    );
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_problem_and_stores_nothing() {
    let s = Suite::start().await;
    let c = client();
    let users = format!("{}/api/v1/users", s.base_url);
    let email = format!("strict-{}@example.org", unique());

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (c.post(&users).header("content-type", "application/json").body("{not json"), 400, "JSON"),
        (c.post(&users).json(&json!({"email": email, "display_name": "x", "password": "correct horse", "admin": true})), 400, "unknown field"),
        (c.post(&users).json(&json!({"email": email, "display_name": "x"})), 400, "password"),
        (c.post(&users).json(&json!({"email": "nope", "display_name": "x", "password": "correct horse"})), 400, "email"),
        (c.post(&users).json(&json!({"email": email, "display_name": "x", "password": "short"})), 400, "password"),
        (c.post(&users).body("email=x"), 415, "Content-Type"),
        (c.post(&users).json(&json!({"email": email, "display_name": "x", "password": "p".repeat(40_000)})), 413, "length limit"),
        (c.get(format!("{}/api/v1/books?page_size=101", s.base_url)), 400, "page_size"),
        (c.get(format!("{}/api/v1/books?page_token=forged", s.base_url)), 400, "page_token"),
        (c.get(format!("{}/api/v1/books?colour=red", s.base_url)), 400, "colour"),
        (c.get(format!("{}/api/v1/books/abc", s.base_url)), 400, "abc"),
        (c.get(format!("{}/api/v1/books/0", s.base_url)), 400, "id"),
        (c.get(format!("{}/api/v1/books/99999", s.base_url)), 404, "99999"),
        (c.get(format!("{}/api/v1/books/search?q=", s.base_url)), 400, "q must be"),
        (c.get(format!("{}/api/v1/me/ratings", s.base_url)), 401, "token"),
        (c.get(format!("{}/api/v1/me/ratings", s.base_url)).header("authorization", "Basic abc"), 401, "Bearer"),
        (c.put(format!("{}/api/v1/me/ratings/1", s.base_url)).bearer_auth("forged.token").json(&json!({"stars": 3})), 401, "token"),
        (c.get(format!("{}/api/v1/nothing-here", s.base_url)), 404, "route"),
    ];
    for (req, status, needle) in cases {
        let (got, body) = problem(req.send().await.unwrap()).await;
        assert_eq!(got.as_u16(), status, "{body}");
        assert_eq!(body["status"], status);
        assert!(
            body["detail"].as_str().unwrap().contains(needle),
            "{needle}: {body}"
        );
    }

    let r = c
        .post(&users)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // JSON sent as a form (what any web page can make a visitor's browser send to another
    // site without a preflight, and curl's `-d` default) is refused, and nothing is stored.
    let forged = format!("curl-{}@example.org", unique());
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data",
    ] {
        let r = c
            .post(&users)
            .header("content-type", content_type)
            .body(
                json!({"email": forged, "display_name": "curl", "password": "correct horse"})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{content_type}");
    }
    let stored = c
        .post(&users)
        .json(&json!({"email": forged, "display_name": "curl", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201, "the refused sign-ups stored nothing");

    // None of the refused sign-ups was stored: the address is still free, once.
    let ok = c
        .post(&users)
        .json(&json!({"email": email, "display_name": "x", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let (status, body) = problem(c.post(&users).json(&json!({"email": email.to_uppercase(), "display_name": "y", "password": "correct horse"})).send().await.unwrap()).await;
    assert_eq!(status, 409, "{body}");

    let reader = sign_up(&s, &c, "rater").await;
    for stars in [0, 6] {
        assert_eq!(rate(&s, &c, &reader, 1, stars).await, 400);
    }
    assert_eq!(rate(&s, &c, &reader, 99_999, 3).await, 404);
    let (_, mine) = json_get(
        &c,
        format!("{}/api/v1/me/ratings", s.base_url),
        Some(&reader.token),
    )
    .await;
    assert!(
        mine["ratings"].as_array().unwrap().is_empty(),
        "no refused rating was stored"
    );

    let (status, spec) = json_get(&c, format!("{}/api/v1/openapi.json", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/api/v1/me/ratings/{book_id}"]["put"].is_object());
    assert!(spec["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn pages_stay_up_without_recommendations_and_only_its_routes_fail() {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "suite: a test that kills a process (it runs only against a suite it started)",
        );
        return;
    }
    let mut s = Suite::start().await;
    let c = client();
    s.kill("recommendations").await;
    let (status, home) = page(&c, format!("{}/", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(home.contains("Most read books") && home.contains("The Hunger Games"));
    assert!(
        !home.contains("Popular now"),
        "the optional panel is left out"
    );
    let (status, book) = page(&c, format!("{}/books/1", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(book.contains("The Hunger Games") && !book.contains("Readers who liked this"));
    let (status, body) = problem(
        c.get(format!("{}/api/v1/recommendations/popular", s.base_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(
        body["detail"],
        "the recommendations service is unavailable; try again shortly"
    );
    let (status, _) = json_get(&c, format!("{}/api/v1/books/1", s.base_url), None).await;
    assert_eq!(status, 200, "independent routes are unaffected");
}

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
