//! The marketplace pages in a real browser: headless Chromium driven over WebDriver
//! (chromedriver + fantoccini) against the four real binaries. Reader flows with JavaScript on
//! and off, the live strip, hostile and empty input, forms posted from another origin, axe-core
//! accessibility checks, the services called over gRPC-Web by the client generated from `protos/`,
//! and screenshots with an overflow check at phone and desktop widths
//! (`target/screenshots/`).
//!
//! Needs Debian's `chromium` and `chromium-driver`, and axe-core in `tests/browser/node_modules`
//! (`npm ci --prefix tests/browser`). Without them the tests print `SKIPPED: …` and pass, unless
//! `BOOKSTORE_REQUIRE_BROWSER=1` (CI sets it).

mod accessibility;
mod cross_site;
mod forms;
mod grpc_web;
mod helpers;
mod layout;
mod reading;
mod without_javascript;
