//! axe-core (pinned in `tests/browser/package.json`) run inside the real pages: no violation of
//! impact `serious` or `critical` on home, search results, a book (signed in and out) and the
//! sign-in area; minor and moderate ones are printed.

use serde_json::{Value, json};
use tests::Suite;

use crate::helpers::{Browser, PASSWORD, api_reader, axe_source, hobbit_id, within};

/// Runs axe on the loaded page; its violations, or an error string.
const RUN_AXE: &str = r#"
var done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ["violations"] }).then(function (r) {
  done(r.violations.map(function (v) {
    return { id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(function (n) {
      return { target: n.target.join(" "), summary: n.failureSummary };
    }) };
  }));
}, function (e) { done({ error: String(e) }); });
"#;

async fn axe(b: &Browser, source: &str) -> Vec<Value> {
    let loaded = b
        .client
        .execute(&format!("{source}\n;return typeof window.axe;"), vec![])
        .await
        .expect("axe-core injected");
    assert_eq!(loaded, json!("object"), "axe-core did not load");
    match b.client.execute_async(RUN_AXE, vec![]).await {
        Ok(Value::Array(v)) => v,
        other => panic!("axe.run failed: {other:?}"),
    }
}

#[tokio::test]
async fn pages_have_no_serious_or_critical_accessibility_violations() {
    let Some(source) = axe_source() else {
        return;
    };
    let suite = Suite::start().await;
    let Some(b) = Browser::open(&suite).await else {
        return suite.stop().await;
    };
    within("axe-core", async {
        let book = hobbit_id(&suite).await;
        let reader = api_reader(&suite, "axe").await;
        let signed_out = [
            ("home", "/".to_owned()),
            ("search results", "/?q=the+hobbit".to_owned()),
            ("book, signed out", format!("/books/{book}")),
            (
                "sign-in area after a failed sign-in",
                "/?notice=bad-credentials#account".to_owned(),
            ),
        ];
        let signed_in = [
            ("home, signed in", "/".to_owned()),
            ("book, signed in", format!("/books/{book}")),
        ];
        let mut serious = Vec::new();
        let mut check = async |b: &Browser, page: &str, path: &str| {
            b.goto(path).await;
            b.wait_for("//h1").await;
            let violations = axe(b, &source).await;
            if violations.is_empty() {
                eprintln!("axe: {page} ({path}): no violations");
            }
            for v in violations {
                let impact = v["impact"].as_str().unwrap_or("unknown").to_owned();
                let nodes: Vec<String> = v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| n["target"].as_str().unwrap_or("?").to_owned())
                    .collect();
                let line = format!(
                    "{page} ({path}): [{impact}] {} ({}) at {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or(""),
                    nodes.join(", ")
                );
                eprintln!("axe: {line}");
                if impact == "serious" || impact == "critical" {
                    serious.push(line);
                }
            }
        };
        for (page, path) in &signed_out {
            check(&b, page, path).await;
        }
        b.goto("/").await;
        b.fill("Sign in", "email", &reader.email).await;
        b.fill("Sign in", "password", PASSWORD).await;
        b.submit("Sign in").await;
        b.button("Sign out").await;
        for (page, path) in &signed_in {
            check(&b, page, path).await;
        }
        assert!(
            serious.is_empty(),
            "axe-core found serious or critical violations:\n{}",
            serious.join("\n")
        );
    })
    .await;
    b.close().await;
    suite.stop().await;
}
