//! The admin UI and the customer portal, at `/ui`.
//!
//! A small single-page app in plain JavaScript (ES modules, no framework, no build step, no
//! npm at build or run time), one CSS file and one HTML shell, all under `src/ui/assets/` and
//! compiled into the binary: hookd serves its UI offline, with nothing else to install.
//!
//! The pages read and change everything through the JSON API (`/api/v1/...`) with the
//! signed-in token (`Authorization: Bearer`), so every action goes through the same token
//! checks and the same store operations as any API client: there is no second data path,
//! and a portal token (limited to one application) sees in the UI exactly what the API lets
//! it see. This router is public: it serves static files only, never data, and needs no
//! token.
//!
//! Paths: `/ui/assets/{file}` is an asset (404 when there is none of that name); every
//! other `/ui` path is the shell, so deep links (`/ui/app/{app}/endpoint/{ep}`) and the app
//! portal's links (`/ui/portal/{app}#token=…`, see `api::tokens`) load the app, which routes
//! on `location.pathname`. Every answer carries a strict Content-Security-Policy (only this
//! origin's scripts, styles and API; no inline script), and assets an `ETag` so browsers
//! revalidate them cheaply after an upgrade rather than keep a stale copy.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The route templates this router adds (for the request metrics' labels).
pub const ROUTES: &[&str] = &["/ui", "/ui/{*path}", "/ui/assets/{file}"];

/// The policy of every answer under `/ui`: the app's own files and API only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("charts.js", JS),
    asset!("admin.js", JS),
    asset!("application.js", JS),
    asset!("endpoint.js", JS),
    asset!("messages.js", JS),
    asset!("ingest.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

const SHELL: &[u8] = include_bytes!("assets/index.html");

/// Each asset's `ETag`: a digest of its bytes, so it changes exactly when the file does.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The UI's router, merged into the API's (it needs no state of its own).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(shell))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/{*path}", get(shell))
}

/// Headers every answer under `/ui` carries.
fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The portal's link carries its token in the fragment; never let a page pass on where
    // it came from.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn shell() -> Response {
    guarded(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                // Always asked for again: it names the assets of this hookd's version.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            SHELL,
        )
            .into_response(),
    )
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == file) else {
        let missing = (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such asset",
        );
        return guarded(missing.into_response());
    };
    let asset = &ASSETS[index];
    let etag = ETAGS[index].as_str();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let cache = [(header::CACHE_CONTROL, "no-cache"), (header::ETAG, etag)];
    if fresh {
        return guarded((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let response = (
        [(header::CONTENT_TYPE, asset.content_type)],
        cache,
        asset.body,
    );
    guarded(response.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_have_distinct_names_and_tags() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        assert!(ETAGS.iter().all(|t| t.len() == 26 && t.starts_with('"')));
    }

    #[test]
    fn the_shell_loads_only_embedded_assets() {
        let shell = std::str::from_utf8(SHELL).unwrap();
        assert!(!shell.contains("<script>"), "no inline script");
        for src in shell.split("/ui/assets/").skip(1) {
            let name = src.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "the shell names {name}, which is not embedded"
            );
        }
    }

    #[test]
    fn the_scripts_never_write_html() {
        // Data goes into the page as text (textContent, attribute values): a script that
        // parses a string as HTML could run what an API answer holds.
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!text.contains(sink), "{} uses {sink}", asset.name);
            }
        }
    }

    #[test]
    fn every_module_the_scripts_import_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for import in text.split("from \"./").skip(1) {
                let name = import.split('"').next().unwrap();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{} imports {name}, which is not embedded",
                    asset.name
                );
            }
        }
    }
}
