//! The admin UI's static files at `/ui`: the shell, its assets, their headers. The pages
//! themselves are tested in a real browser by `tests/ui`.

use reqwest::{Method, StatusCode, header};

use crate::helpers::{TestApp, send};

/// The body and headers of a GET without a token.
async fn fetch(app: &TestApp, path: &str) -> (StatusCode, header::HeaderMap, String) {
    let response = app
        .raw_request(Method::GET, path)
        .send()
        .await
        .expect("the request failed");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn value(headers: &header::HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header"))
}

fn assert_strict_policy(headers: &header::HeaderMap) {
    let csp = value(headers, header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(value(headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(value(headers, header::REFERRER_POLICY), "no-referrer");
}

#[tokio::test]
async fn the_shell_is_served_for_every_ui_path_without_a_token() {
    let app = TestApp::spawn().await;
    for path in [
        "/ui",
        "/ui/",
        "/ui/apps",
        "/ui/app/app_01J0000000000000000000000/endpoint/ep_x",
        "/ui/portal/app_01J0000000000000000000000",
        "/ui/no/such/page",
    ] {
        let (status, headers, body) = fetch(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            value(&headers, header::CONTENT_TYPE),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(value(&headers, header::CACHE_CONTROL), "no-cache");
        assert_strict_policy(&headers);
        assert!(
            body.contains(r#"<script type="module" src="/ui/assets/app.js"></script>"#),
            "{path}: {body}"
        );
        assert!(!body.contains("<script>"), "no inline script");
        assert!(headers.get(header::SET_COOKIE).is_none(), "{path}");
        assert!(!body.contains(&app.token), "{path} shows the admin token");
    }
    // A token changes nothing: the UI's files are the same for everyone.
    let (_, _, without) = fetch(&app, "/ui").await;
    let with_token = app
        .raw_request(Method::GET, "/ui")
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), StatusCode::OK);
    assert_eq!(with_token.text().await.unwrap(), without);
}

#[tokio::test]
async fn assets_have_their_content_types_and_revalidate() {
    let app = TestApp::spawn().await;
    for (path, content_type) in [
        ("/ui/assets/app.js", "text/javascript; charset=utf-8"),
        ("/ui/assets/endpoint.js", "text/javascript; charset=utf-8"),
        ("/ui/assets/style.css", "text/css; charset=utf-8"),
        ("/ui/assets/icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = fetch(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            value(&headers, header::CONTENT_TYPE),
            content_type,
            "{path}"
        );
        assert_strict_policy(&headers);
        assert!(!body.is_empty() && !body.contains(&app.token), "{path}");
        let etag = value(&headers, header::ETAG).to_owned();
        let again = app
            .raw_request(Method::GET, path)
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        let stale = app
            .raw_request(Method::GET, path)
            .header(header::IF_NONE_MATCH, "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }
    let (_, _, app_js) = fetch(&app, "/ui/assets/app.js").await;
    assert!(app_js.contains("sessionStorage") || app_js.contains("signIn"));
}

#[tokio::test]
async fn missing_assets_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/ui/assets/missing.js",
        "/ui/assets/index.html",
        "/ui/assets/..%2Fmod.rs",
    ] {
        let (status, headers, _) = fetch(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_strict_policy(&headers);
    }
    // The API's own unknown routes are still its JSON 404s.
    let (status, body) = send(app.raw_request(Method::GET, "/api/v1/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
}
