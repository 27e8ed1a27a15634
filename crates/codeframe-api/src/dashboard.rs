//! The web dashboard at `/`: one page, a script and a style sheet, embedded in the binary.
//!
//! No front-end toolchain builds it and nothing is loaded from elsewhere (the content security
//! policy allows only this origin). The page itself needs no token: it asks for one and keeps
//! it in the tab's session storage; everything it shows comes from `/api` and `/ws` with it.
//! The page is revalidated on every load (`no-cache` with an `ETag`), so a new binary is seen
//! at once; the assets it names carry the build's version in their URL and are cached for a
//! year.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// What the dashboard may load and connect to: this origin only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An asset as served: its bytes, type and entity tag.
struct Asset {
    body: String,
    content_type: &'static str,
    etag: String,
}

fn tag(text: &str) -> String {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The version in the assets' URLs: a hash of both, so a new build changes it.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| tag(&format!("{SCRIPT}{STYLE}")))
}

fn asset(which: &str) -> &'static Asset {
    static ASSETS: OnceLock<[Asset; 3]> = OnceLock::new();
    let all = ASSETS.get_or_init(|| {
        let page = INDEX.replace("{{version}}", version());
        let make =
            |body: String, content_type| Asset { etag: format!("\"{}\"", tag(&body)), body, content_type };
        [
            make(page, "text/html; charset=utf-8"),
            make(SCRIPT.to_owned(), "text/javascript; charset=utf-8"),
            make(STYLE.to_owned(), "text/css; charset=utf-8"),
        ]
    });
    match which {
        "script" => &all[1],
        "style" => &all[2],
        _ => &all[0],
    }
}

fn serve(a: &'static Asset, headers: &HeaderMap, cache: &'static str) -> Response {
    let mut out = HeaderMap::new();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&a.etag) {
        out.insert(header::ETAG, etag);
    }
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    (StatusCode::OK, out, a.body.clone()).into_response()
}

async fn index(headers: HeaderMap) -> Response {
    serve(asset("page"), &headers, "no-cache")
}

async fn script(headers: HeaderMap) -> Response {
    serve(asset("script"), &headers, "public, max-age=31536000, immutable")
}

async fn style(headers: HeaderMap) -> Response {
    serve(asset("style"), &headers, "public, max-age=31536000, immutable")
}

/// The dashboard's routes: `/`, `/assets/app.js`, `/assets/app.css` (no token needed).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(script))
        .route("/assets/app.css", get(style))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_assets_by_version_and_embeds_nothing_remote() {
        let page = &asset("page").body;
        assert!(page.contains(&format!("/assets/app.js?v={}", version())));
        assert!(page.contains(&format!("/assets/app.css?v={}", version())));
        for text in [page.as_str(), SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"), "nothing loaded from elsewhere");
        }
        assert!(!SCRIPT.contains("innerHTML"), "data is inserted as text only");
    }
}
