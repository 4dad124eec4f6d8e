//! The dashboard page: `assets/dashboard/` embedded in the binary and served by the dashboard
//! listener at `/` (and `/index.html`, `/app.js`, `/style.css`). The page talks to the same
//! `/api/*` handlers on its own origin, so it needs no CORS; it is plain HTML, CSS and JS with
//! nothing loaded from elsewhere.

use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, header};
use warp::path::FullPath;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use super::method_not_allowed;

const INDEX_HTML: &str = include_str!("../../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../../assets/dashboard/app.js");
const STYLE_CSS: &str = include_str!("../../../assets/dashboard/style.css");

/// Only what the page itself ships, plus WebSockets to its own host.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The page's files; any other path is left to the API routes.
pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path::full()
        .and(warp::method())
        .and_then(|path: FullPath, method: Method| async move {
            let (body, content_type) = match path.as_str() {
                "/" | "/index.html" => (INDEX_HTML, "text/html; charset=utf-8"),
                "/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
                "/style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
                _ => return Err::<Response, Rejection>(warp::reject::not_found()),
            };
            if method != Method::GET && method != Method::HEAD {
                return Ok(method_not_allowed(&method, path.as_str(), "GET").into_response());
            }
            Ok(asset(body, content_type))
        })
        .boxed()
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = Response::new(body.into());
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_embedded_page_and_leaves_other_paths() {
        let f = routes();
        for (path, ty) in [
            ("/", "text/html"),
            ("/index.html", "text/html"),
            ("/app.js", "text/javascript"),
            ("/style.css", "text/css"),
        ] {
            let resp = warp::test::request().path(path).reply(&f).await;
            assert_eq!(resp.status(), 200, "{path}");
            let ct = resp.headers()["content-type"].to_str().expect("ascii");
            assert!(ct.starts_with(ty), "{path}: {ct}");
            assert!(!resp.body().is_empty());
        }
        let html = warp::test::request().path("/").reply(&f).await;
        assert!(html.headers().contains_key("content-security-policy"));
        // Nothing is loaded from elsewhere (the favicon is a data: URL).
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            for external in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "@import",
                "src=\"//",
            ] {
                assert!(!text.contains(external), "external resource: {external}");
            }
        }
        assert!(!warp::test::request().path("/api/state").matches(&f).await);
        let post = warp::test::request()
            .method("POST")
            .path("/")
            .reply(&f)
            .await;
        assert_eq!(post.status(), 405);
    }
}
