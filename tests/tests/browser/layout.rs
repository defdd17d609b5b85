//! Home and a book page at a phone's width (390×844) and a desktop's (1366×900): a screenshot of
//! each in `target/screenshots/` every run (`make screenshots` copies some into
//! `docs/screenshots/`), and nothing wider than the viewport.

use serde_json::json;
use tests::Suite;

use crate::helpers::{Browser, hobbit_id, screenshot_dir, within};

/// The page's width against the device's (`arguments[0]`), the width the page is shown at (a
/// phone zooms out, widening `innerWidth`, to fit a page too wide), and the outermost visible
/// elements whose right edge passes the device's width (not those inside a scrolling or
/// clipping box that itself fits).
const OVERFLOW: &str = r##"
var vw = arguments[0];
function name(el) {
  var s = el.tagName.toLowerCase();
  if (el.id) s += "#" + el.id;
  if (el.classList.length) s += "." + Array.from(el.classList).join(".");
  var text = (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 40);
  return text ? s + " \"" + text + "\"" : s;
}
function path(el) {
  var parts = [];
  for (var e = el.parentElement; e && e !== document.body && parts.length < 3; e = e.parentElement) parts.unshift(name(e).split(" ")[0]);
  return parts.concat([name(el)]).join(" > ");
}
function sticksOut(el) {
  var r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0 || r.right <= vw + 0.5) return false;
  var cs = getComputedStyle(el);
  if (cs.visibility === "hidden" || cs.display === "none") return false;
  for (var a = el.parentElement; a && a !== document.body && a !== document.documentElement; a = a.parentElement) {
    if (getComputedStyle(a).overflowX !== "visible") return a.getBoundingClientRect().right > vw + 0.5;
  }
  return true;
}
var out = [];
var all = document.body.querySelectorAll("*");
for (var i = 0; i < all.length; i++) {
  var el = all[i];
  if (!sticksOut(el) || (el.parentElement && el.parentElement !== document.body && sticksOut(el.parentElement))) continue;
  out.push(path(el) + " (right edge at " + Math.round(el.getBoundingClientRect().right) + "px)");
}
return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, offenders: out.slice(0, 15) };
"##;

/// Width and height in a PNG's header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 24,
        "not a PNG"
    );
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[tokio::test]
async fn home_and_book_pages_fit_phone_and_desktop_widths_with_screenshots() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open(&suite).await else {
        return suite.stop().await;
    };
    within("screenshots", async {
        let book = hobbit_id(&suite).await;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let mut problems = Vec::new();
        for (device, width, height, mobile) in
            [("phone", 390, 844, true), ("desktop", 1366, 900, false)]
        {
            b.viewport(width, height, mobile).await;
            for (page, path) in [("home", "/".to_owned()), ("book", format!("/books/{book}"))] {
                b.goto(&path).await;
                b.wait_for("//h1").await;
                let png = b.client.screenshot().await.expect("screenshot");
                assert_eq!(png_size(&png), (width, height), "{page}-{device}.png size");
                let file = dir.join(format!("{page}-{device}.png"));
                std::fs::write(&file, &png).expect("screenshot written");
                eprintln!("screenshot: {} ({} KiB)", file.display(), png.len() / 1024);

                let o = b
                    .client
                    .execute(OVERFLOW, vec![json!(width)])
                    .await
                    .expect("overflow measured");
                let scroll = o["scrollWidth"].as_i64().unwrap_or(-1);
                let inner = o["innerWidth"].as_i64().unwrap_or(-1);
                let offenders: Vec<String> = o["offenders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                if scroll > i64::from(width) || inner != i64::from(width) || !offenders.is_empty() {
                    problems.push(format!(
                        "{page} ({path}) at {width}px: page {scroll}px wide, shown {inner}px wide; \
                         past the right edge:\n    {}",
                        offenders.join("\n    ")
                    ));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "horizontal overflow:\n  {}",
            problems.join("\n  ")
        );
    })
    .await;
    b.close().await;
    suite.stop().await;
}
