//! CORS (contract section 5.8): browser games of the origins in `http.cors_origins` may call
//! the lobby API; other origins get no CORS header; with the list empty (the default) there is
//! no CORS at all and a preflight is an unknown method.

use mm_config::Settings;
use mm_testkit::app::{TestApp, TestAppOptions};
use reqwest::Method;
use reqwest::header::HeaderMap;

const ALLOWED: &str = "https://play.example.com";
const REFUSED: &str = "https://evil.example.net";

fn allow_play_example(settings: &mut Settings) {
    settings.http.cors_origins = vec![ALLOWED.into(), "http://localhost:5173".into()];
}

async fn preflight(app: &TestApp, origin: &str, method: &str) -> (u16, HeaderMap) {
    let answer = app
        .http
        .request(Method::OPTIONS, format!("{}/v1/games", app.base_url))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", "content-type,x-player-id")
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_is_answered_and_a_refused_one_gets_no_cors() {
    let app = TestApp::spawn(TestAppOptions {
        adjust_settings: Some(allow_play_example),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();

    let (status, headers) = preflight(&app, ALLOWED, "POST").await;
    assert!(
        status == 200 || status == 204,
        "preflight answered {status}"
    );
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    let methods = header(&headers, "access-control-allow-methods").unwrap_or_default();
    for method in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(method), "allow-methods {methods:?}");
    }
    let allowed_headers = header(&headers, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["content-type", "x-player-id", "authorization"] {
        assert!(
            allowed_headers.contains(name),
            "allow-headers {allowed_headers:?}"
        );
    }
    assert_eq!(header(&headers, "access-control-max-age"), Some("600"));

    let (status, headers) = preflight(&app, REFUSED, "POST").await;
    assert!(
        status < 400,
        "a refused preflight is still answered: {status}"
    );
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        None,
        "a refused origin gets no allow-origin, so the browser blocks the call"
    );

    // An actual request from the allowed origin: its answer, a problem here, carries the
    // origin and exposes the headers a client reads.
    let answer = app
        .http
        .get(format!("{}/v1/games?product=nosuchgame", app.base_url))
        .header("Origin", ALLOWED)
        .header("X-Player-Id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let headers = answer.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    let exposed = header(headers, "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["retry-after", "location", "x-request-id"] {
        assert!(exposed.contains(name), "expose-headers {exposed:?}");
    }
    let answer = app
        .http
        .get(format!("{}/healthz", app.base_url))
        .header("Origin", REFUSED)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(
        header(answer.headers(), "access-control-allow-origin"),
        None
    );
    app.shutdown().await;
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = TestApp::spawn(TestAppOptions::default()).await.unwrap();
    let (status, headers) = preflight(&app, ALLOWED, "POST").await;
    assert_eq!(
        status, 405,
        "without CORS a preflight is an unsupported method"
    );
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    app.shutdown().await;
}
