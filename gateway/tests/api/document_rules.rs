//! The OpenAPI document against the rules: every constraint it states on an input is the bound
//! the gateway checks and the service enforces, so changing a rule in one place changes all three
//! or fails here. A value on each stated bound passes both checks; one just outside is refused.

use std::collections::BTreeSet;

use gateway::contract;
use rules::{account, books, paging};
use serde_json::Value;

type TextCheck = fn(&str) -> bool;
type IntCheck = fn(i64) -> bool;

/// A string input: where the document states it, the gateway's check, the service's check (if
/// the service refuses malformed values of it), and a valid value of a given length.
struct Text {
    at: String,
    pattern: Option<&'static str>,
    gateway: TextCheck,
    service: Option<TextCheck>,
    /// Whether the service refuses values below the stated minimum too (not where less is
    /// simply wrong, as an empty current password is).
    service_min: bool,
    sample: fn(usize) -> String,
}

/// An integer input, likewise.
struct Int {
    at: String,
    gateway: IntCheck,
    service: IntCheck,
    /// Whether the service refuses values below the stated minimum too (not where 0 means
    /// the default page size on the wire).
    service_min: bool,
    /// The size the service gives when none is named.
    default: Option<usize>,
}

fn body(schema: &str, property: &str) -> String {
    format!("/components/schemas/{schema}/properties/{property}")
}

fn param(doc: &Value, path: &str, method: &str, name: &str) -> String {
    let params = doc["paths"][path][method]["parameters"].as_array().unwrap();
    let i = params.iter().position(|p| p["name"] == name).unwrap();
    format!(
        "/paths/{}/{method}/parameters/{i}/schema",
        path.replace('~', "~0").replace('/', "~1")
    )
}

fn email(n: usize) -> String {
    let local = "a".repeat(n.saturating_sub(6).clamp(1, account::EMAIL_LOCAL_MAX));
    let domain = "b".repeat(n - local.len() - 5);
    format!("{local}@{domain}.org")
}

fn repeat(c: &'static str) -> impl Fn(usize) -> String {
    move |n| c.repeat(n)
}

fn texts(doc: &Value) -> Vec<Text> {
    let text = |at, pattern, gateway, service, service_min, sample| Text {
        at,
        pattern,
        gateway,
        service,
        service_min,
        sample,
    };
    let name = |n| repeat("x")(n);
    let pass = |n| repeat("p")(n);
    let mut out = vec![
        text(
            body("CreateUser", "email"),
            Some(account::EMAIL_PATTERN),
            |s| contract::email("email", s).is_ok(),
            Some(|s| account::Email::parse(s).is_ok()),
            true,
            email,
        ),
        text(
            body("CreateUser", "display_name"),
            Some(account::DISPLAY_NAME_PATTERN),
            |s| contract::display_name(s).is_ok(),
            Some(|s| account::DisplayName::parse(s).is_ok()),
            true,
            name,
        ),
        text(
            body("CreateUser", "password"),
            None,
            |s| contract::password("password", s, contract::PASSWORD_MIN).is_ok(),
            Some(|s| account::check_new_password(s).is_ok()),
            true,
            pass,
        ),
        text(
            body("UpdateUser", "display_name"),
            Some(account::DISPLAY_NAME_PATTERN),
            |s| contract::update_user(Some(s), None, None).is_ok(),
            Some(|s| account::DisplayName::parse(s).is_ok()),
            true,
            name,
        ),
        text(
            body("UpdateUser", "password"),
            None,
            |s| contract::update_user(None, Some(s), Some("current")).is_ok(),
            Some(|s| account::check_new_password(s).is_ok()),
            true,
            pass,
        ),
        text(
            body("UpdateUser", "current_password"),
            None,
            |s| contract::update_user(Some("Ada"), None, Some(s)).is_ok(),
            Some(|s| !account::password_too_long(s)),
            false,
            pass,
        ),
        // The service looks a sign-in's email up as given: none is malformed, only unknown.
        text(
            body("SignIn", "email"),
            Some(account::EMAIL_PATTERN),
            |s| contract::email("email", s).is_ok(),
            None,
            false,
            email,
        ),
        text(
            body("SignIn", "password"),
            None,
            |s| contract::password("password", s, 1).is_ok(),
            Some(|s| !account::password_too_long(s)),
            false,
            pass,
        ),
        text(
            param(doc, "/api/v1/books/search", "get", "q"),
            None,
            |s| contract::query(s).is_ok(),
            Some(|s| rules::length(s) <= books::QUERY_MAX),
            false,
            |n| "q".repeat(n),
        ),
    ];
    for path in ["/api/v1/users/{id}"] {
        for method in ["get", "patch", "delete"] {
            out.push(text(
                param(doc, path, method, "id"),
                Some(account::USER_ID_PATTERN),
                |s| contract::user_id(s).is_ok(),
                Some(account::is_user_id),
                true,
                |_| "0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61".to_owned(),
            ));
        }
    }
    // A token the service did not issue is refused there whatever its form.
    for path in [
        "/api/v1/books",
        "/api/v1/books/search",
        "/api/v1/me/ratings",
        "/api/v1/recommendations/popular",
    ] {
        out.push(text(
            param(doc, path, "get", "page_token"),
            Some(paging::PAGE_TOKEN_PATTERN),
            |s| contract::page_token(Some(s.to_owned())).is_ok(),
            None,
            false,
            |n| "A".repeat(n),
        ));
    }
    out
}

fn ints(doc: &Value) -> Vec<Int> {
    let int = |at, gateway, service, service_min| Int {
        at,
        gateway,
        service,
        service_min,
        default: None,
    };
    let mut out = vec![int(
        body("RateBook", "stars"),
        |n| contract::stars(n as i32).is_ok(),
        |n| rules::Stars::try_from(n as i32).is_ok(),
        true,
    )];
    let listing: [IntCheck; 2] = [
        |n| contract::page_size(Some(n as i32), contract::PAGE_SIZE_MAX).is_ok(),
        |n| paging::LISTING.on_the_wire(n as i32).is_ok(),
    ];
    let recommendations: [IntCheck; 2] = [
        |n| contract::page_size(Some(n as i32), contract::RECS_SIZE_MAX).is_ok(),
        |n| paging::RECOMMENDATIONS.on_the_wire(n as i32).is_ok(),
    ];
    for (path, [gateway, service], sizes) in [
        ("/api/v1/books", listing, paging::LISTING),
        ("/api/v1/books/search", listing, paging::LISTING),
        ("/api/v1/me/ratings", listing, paging::LISTING),
        ("/api/v1/recommendations/popular", listing, paging::LISTING),
        (
            "/api/v1/books/{id}/similar",
            recommendations,
            paging::RECOMMENDATIONS,
        ),
        (
            "/api/v1/me/recommendations",
            recommendations,
            paging::RECOMMENDATIONS,
        ),
    ] {
        out.push(Int {
            default: Some(sizes.default),
            ..int(
                param(doc, path, "get", "page_size"),
                gateway,
                service,
                false,
            )
        });
    }
    let book: [IntCheck; 2] = [
        |n| contract::book_id("id", n).is_ok(),
        |n| books::book_id("id", n).is_ok(),
    ];
    for (path, method, name) in [
        ("/api/v1/books/{id}", "get", "id"),
        ("/api/v1/books/{id}/similar", "get", "id"),
        ("/api/v1/me/ratings/{book_id}", "put", "book_id"),
        ("/api/v1/me/ratings/{book_id}", "delete", "book_id"),
        ("/api/v1/ratings/stream", "get", "book_id"),
    ] {
        let [gateway, service] = book;
        out.push(int(param(doc, path, method, name), gateway, service, true));
    }
    out
}

/// The bounds a description states in prose (`1..=64 characters`) and the default it names
/// (`(default 20)`), on a property or on a parameter (not on its schema).
fn prose(doc: &Value, at: &str) -> (Option<(usize, usize)>, Option<usize>) {
    let described = doc.pointer(at.trim_end_matches("/schema")).unwrap();
    let d = described["description"].as_str().unwrap_or_default();
    let number = |s: &str| {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let bounds = d
        .split_once("..=")
        .and_then(|(a, b)| Some((number(a)?, number(b)?)));
    let default = d.split_once("(default ").and_then(|(_, n)| number(n));
    (bounds, default)
}

fn document() -> Value {
    serde_json::from_str(gateway::openapi::OPENAPI_JSON.as_str()).unwrap()
}

const CONSTRAINTS: [&str; 5] = ["minLength", "maxLength", "pattern", "minimum", "maximum"];

/// Every input of the document (body property or parameter) that states a constraint.
fn constrained(doc: &Value) -> BTreeSet<String> {
    let mut at = BTreeSet::new();
    let states = |s: &Value| CONSTRAINTS.iter().any(|c| s.get(c).is_some());
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        // Input schemas take no unknown properties; the others describe answers.
        if schema["additionalProperties"] != false {
            continue;
        }
        for (prop, s) in schema["properties"].as_object().into_iter().flatten() {
            if states(s) {
                at.insert(body(name, prop));
            }
        }
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if states(&p["schema"]) {
                    at.insert(param(doc, path, method, p["name"].as_str().unwrap()));
                }
            }
        }
    }
    at
}

#[test]
fn every_constraint_the_document_states_is_held_to_a_rule_here() {
    let doc = document();
    let covered: BTreeSet<String> = texts(&doc)
        .into_iter()
        .map(|t| t.at)
        .chain(ints(&doc).into_iter().map(|i| i.at))
        .collect();
    assert_eq!(constrained(&doc), covered);
}

#[test]
fn the_documents_string_bounds_are_the_bounds_the_gateway_and_services_enforce() {
    let doc = document();
    for t in texts(&doc) {
        let s = doc.pointer(&t.at).unwrap();
        assert_eq!(s["pattern"].as_str(), t.pattern, "{}", t.at);
        let service = t.service.unwrap_or(|_| true);
        let min = s["minLength"].as_u64().map(|n| n as usize);
        let max = s["maxLength"].as_u64().map(|n| n as usize);
        let inside = (t.sample)(min.or(max).unwrap_or(36));
        assert!(
            (t.gateway)(&inside) && service(&inside),
            "{}: {inside:?}",
            t.at
        );
        if let Some(min) = min {
            let v = (t.sample)(min);
            assert!((t.gateway)(&v) && service(&v), "{} at minLength", t.at);
            if min > 0 {
                let v = (t.sample)(min - 1);
                assert!(!(t.gateway)(&v), "{} below minLength: gateway", t.at);
                assert!(
                    !t.service_min || !service(&v),
                    "{} below minLength: service",
                    t.at
                );
            }
        }
        if let (Some((low, high)), _) = prose(&doc, &t.at) {
            assert_eq!(Some(high), max, "{}: the description's bound", t.at);
            let (v, below) = ((t.sample)(low), (t.sample)(low - 1));
            assert!(
                (t.gateway)(&v) && service(&v),
                "{} at the described minimum",
                t.at
            );
            assert!(!(t.gateway)(&below), "{} below the described minimum", t.at);
        }
        if let Some(max) = max {
            let v = (t.sample)(max);
            assert!((t.gateway)(&v) && service(&v), "{} at maxLength", t.at);
            let v = (t.sample)(max + 1);
            assert!(!(t.gateway)(&v), "{} above maxLength: gateway", t.at);
            assert!(
                t.service.is_none() || !service(&v),
                "{} above maxLength: service",
                t.at
            );
        }
    }
}

#[test]
fn the_documents_integer_ranges_are_the_ranges_the_gateway_and_services_enforce() {
    let doc = document();
    for i in ints(&doc) {
        let s = doc.pointer(&i.at).unwrap();
        let min = s["minimum"].as_i64().unwrap();
        assert!((i.gateway)(min) && (i.service)(min), "{} at minimum", i.at);
        assert!(!(i.gateway)(min - 1), "{} below minimum: gateway", i.at);
        assert!(
            !i.service_min || !(i.service)(min - 1),
            "{} below minimum: service",
            i.at
        );
        let (described, default) = prose(&doc, &i.at);
        if let Some((low, high)) = described {
            assert_eq!(low as i64, min, "{}: the description's minimum", i.at);
            assert_eq!(
                s["maximum"].as_i64(),
                Some(high as i64),
                "{}: its maximum",
                i.at
            );
        }
        assert_eq!(default, i.default, "{}: the described default", i.at);
        if let Some(max) = s["maximum"].as_i64() {
            assert!((i.gateway)(max) && (i.service)(max), "{} at maximum", i.at);
            assert!(!(i.gateway)(max + 1), "{} above maximum: gateway", i.at);
            assert!(!(i.service)(max + 1), "{} above maximum: service", i.at);
        }
    }
}
