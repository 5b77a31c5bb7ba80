//! The console's static files, part of the binary: no build step, no network at run time.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../../console/index.html");
const CONSOLE_CSS: &str = include_str!("../../console/console.css");
const CONSOLE_JS: &str = include_str!("../../console/console.js");

/// Every page is `index.html`; the script routes on the URL's fragment.
pub(super) fn routes() -> axum::Router {
    axum::Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/console.css",
            get(|| async { page(CONSOLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/console.js",
            get(|| async { page(CONSOLE_JS, "text/javascript; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The console renders data as text and loads nothing from elsewhere; say so, so
            // a slip that would inject markup is blocked by the browser too.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                 connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
