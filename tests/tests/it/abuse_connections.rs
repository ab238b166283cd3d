//! Issue 13's attacks on the connection layer and on the API's unbounded state, replayed
//! against a real daemon (in process, real sockets, real Redis and game servers): slowloris,
//! connection floods, random HTTP methods, junk listing regions, unknown products and bodies
//! that are not JSON objects. Each test prints a `FIGURES` line with what it measured; timing
//! bounds are asserted generously (a loaded 2-core machine), the figures are the real ones.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mm_config::Settings;
use mm_testkit::app::{ServerSpec, TestApp, TestAppOptions};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The header-read timeout of the slowloris test.
const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);

fn short_header_timeout(settings: &mut Settings) {
    settings.http.header_read_timeout_ms = HEADER_TIMEOUT.as_millis() as u64;
    settings.http.keepalive_idle_timeout_ms = HEADER_TIMEOUT.as_millis() as u64;
}

fn small_connection_cap(settings: &mut Settings) {
    settings.http.max_connections = 8;
}

async fn app_with(adjust: fn(&mut Settings), servers: Vec<ServerSpec>) -> TestApp {
    let mut options = TestAppOptions {
        adjust_settings: Some(adjust),
        ..TestAppOptions::default()
    };
    if !servers.is_empty() {
        options.servers = servers;
    }
    TestApp::spawn(options).await.unwrap()
}

/// A connection that sends the start of a request head and never finishes it.
async fn slowloris(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /v1/games?product=chess HTTP/1.1\r\nHost: matchmaker\r\nX-Slow: ")
        .await
        .unwrap();
    stream
}

/// Waits until the server closes `stream` (EOF or reset), returning when it did; `None` if it
/// is still open after `limit`. Bytes the server sends before closing are read and ignored.
async fn closed_within(mut stream: TcpStream, limit: Duration) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_at_the_header_timeout_while_others_are_served() {
    let app = app_with(short_header_timeout, vec![]).await;
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..500 {
        held.push(slowloris(app.addr).await);
    }
    let opened = started.elapsed();
    // A normal client, while the 500 connections hang: fresh connections each time.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let asked = Instant::now();
        let answer = client
            .get(app.url("/v1/games?product=chess"))
            .header("x-player-id", "honest")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        worst = worst.max(asked.elapsed());
    }
    let watchers: Vec<_> = held
        .into_iter()
        .map(|stream| tokio::spawn(closed_within(stream, HEADER_TIMEOUT * 10)))
        .collect();
    let mut last_close = started;
    for watcher in watchers {
        let closed = watcher
            .await
            .unwrap()
            .expect("a slowloris connection was still open at 10 × the header timeout");
        last_close = last_close.max(closed);
    }
    let all_closed_after = last_close - started;
    println!(
        "FIGURES slowloris: 500 connections opened in {opened:?}; honest client's worst of 10 \
         requests {worst:?}; all 500 closed {all_closed_after:?} after the first opened \
         (header timeout {HEADER_TIMEOUT:?})"
    );
    assert!(
        worst < Duration::from_secs(1),
        "an honest client waited {worst:?} behind slowloris connections"
    );
    assert!(
        all_closed_after < opened + HEADER_TIMEOUT * 5,
        "closing took {all_closed_after:?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = app_with(short_header_timeout, vec![]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: matchmaker\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let answered = Instant::now();
    let closed = closed_within(stream, HEADER_TIMEOUT * 10)
        .await
        .expect("an idle keep-alive connection stayed open");
    println!(
        "FIGURES keep-alive: idle connection closed {:?} after its answer (idle timeout {HEADER_TIMEOUT:?})",
        closed - answered
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = app_with(small_connection_cap, vec![]).await;
    // Eight connections hold every slot (open, nothing sent; the header timeout is 10 s).
    let mut holders = Vec::new();
    for _ in 0..8 {
        holders.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let client = reqwest::Client::new();
    let url = app.url("/healthz");
    let queued = tokio::spawn(async move {
        let asked = Instant::now();
        let status = client.get(url).send().await.map(|r| r.status().as_u16());
        (status, asked.elapsed())
    });
    // Not answered while the slots are held: a bounded wait for something that must not
    // happen.
    let mut queued = queued;
    let answered_early = tokio::time::timeout(Duration::from_millis(500), &mut queued).await;
    assert!(
        answered_early.is_err(),
        "a request beyond the connection cap was answered at once: {answered_early:?}"
    );
    drop(holders);
    let (status, waited) = tokio::time::timeout(Duration::from_secs(10), queued)
        .await
        .expect("the queued request is answered once the slots are free")
        .unwrap();
    assert_eq!(status.unwrap(), 200);
    println!("FIGURES connection cap 8: the 9th connection waited {waited:?} (held for 500 ms)");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_methods_do_not_grow_the_metrics() {
    let app = app_with(|_| {}, vec![]).await;
    let scrape = || async {
        let answer = app.send(app.request(Method::GET, "/metrics", None)).await;
        assert_eq!(answer.status, 200);
        answer.text
    };
    // Every series the junk can touch exists once one junk request has been counted.
    let junk = |n: usize| Method::from_bytes(format!("JUNK{n:08X}").as_bytes()).unwrap();
    let first = app.send(app.request(junk(0), "/v1/games", None)).await;
    assert_eq!(first.status, 405);
    let before = scrape().await.len();
    for n in 1..2000 {
        let answer = app
            .send(app.request(junk(n), &format!("/nowhere/{n}"), None))
            .await;
        assert!(
            answer.status == 404 || answer.status == 405,
            "{}",
            answer.status
        );
    }
    let text = scrape().await;
    let after = text.len();
    println!("FIGURES metrics: /metrics {before} bytes before 2,000 random methods, {after} after");
    assert!(!text.contains("JUNK"), "a junk method became a label value");
    assert!(
        text.contains(r#"method="other""#),
        "unknown methods are counted as other"
    );
    // Other tests of this binary record metrics in the same process meanwhile: allow for
    // them, far below what 2,000 new label values would add (several MB).
    assert!(
        after < before + 64 * 1024,
        "/metrics grew from {before} to {after} bytes"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_regions_are_answered_from_the_view_and_leave_no_trace() {
    let mut eu = ServerSpec::new("hy-eu", "hygiene");
    eu.region = Some("eu".into());
    let app = app_with(|_| {}, vec![eu, ServerSpec::new("hy-any", "hygiene")]).await;
    let metrics = || async {
        app.send(app.request(Method::GET, "/metrics", None))
            .await
            .text
    };
    let before = metrics().await.len();
    let junk_started = Instant::now();
    for n in 0..4200 {
        let answer = app
            .list("p", &format!("product=hygiene&region=junk-{n}"))
            .await;
        assert_eq!(answer.status, 200);
        assert!(answer.text.starts_with(r#"{"games":[]"#), "{}", answer.text);
    }
    let junk_took = junk_started.elapsed();
    let after = metrics().await.len();
    println!(
        "FIGURES listing: 4,200 junk-region listings from the view in {junk_took:?}; /metrics \
         {before} bytes before, {after} after"
    );
    // Other tests of this binary record metrics in the same process meanwhile: allow for
    // them, far below what 4,200 new label values would add.
    assert!(
        after < before + 64 * 1024,
        "/metrics grew from {before} to {after} bytes"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_an_unknown_product_is_a_404_like_create() {
    let app = app_with(|_| {}, vec![]).await;
    let listed = app.list("p", "product=nosuchgame").await;
    assert_eq!(listed.status, 404, "{}", listed.text);
    assert_eq!(listed.code(), Some("unknown_product"));
    assert_eq!(listed.content_type(), "application/problem+json");
    let created = app
        .create_game(
            "p",
            serde_json::json!({"product": "nosuchgame", "capacity": 2}),
        )
        .await;
    assert_eq!(created.code(), listed.code());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_body_that_is_not_an_object_is_refused() {
    let app = app_with(|_| {}, vec![]).await;
    for body in [r#"["chess", 2]"#, r#""chess""#, "2", "null"] {
        let answer = app
            .send(
                app.request(Method::POST, "/v1/games", Some("p"))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        assert_eq!(answer.code(), Some("invalid_request"), "{body}");
        assert_eq!(answer.content_type(), "application/problem+json");
    }
    let games = mm_testkit::app::redis_keys(&app, "*").await;
    assert!(
        games.iter().all(|key| !key.contains(":game:")),
        "a game was recorded: {games:?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_is_a_431_problem() {
    let app = app_with(|_| {}, vec![]).await;
    let limit = app.settings.http.max_header_bytes;
    let answer = app
        .send(
            app.request(Method::GET, "/v1/games?product=chess", Some("p"))
                .header("x-padding", "p".repeat(limit + 100)),
        )
        .await;
    assert_eq!(answer.status, 431, "{}", answer.text);
    assert_eq!(answer.code(), Some("header_too_large"));
    assert_eq!(answer.content_type(), "application/problem+json");
    // Beyond twice the limit hyper refuses the head itself and closes the connection; the
    // answer is still a problem document.
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: m\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(limit * 2 + 64)
    );
    let (status, problem) = raw_exchange(app.addr, head.as_bytes()).await;
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(problem["code"], "header_too_large");
    app.shutdown().await;
}

/// Sends `request` on a fresh connection and reads the answer to the server's close: its
/// status line and its body parsed as a problem document (checking its content type).
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (String, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete answer");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, serde_json::from_str(body).expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_line_is_a_400_problem() {
    let app = app_with(|_| {}, vec![]).await;
    for request in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /v1 games HTTP/1.1\r\nHost: m\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let (status, problem) = raw_exchange(app.addr, request).await;
        assert_eq!(
            status,
            "HTTP/1.1 400 Bad Request",
            "{}",
            String::from_utf8_lossy(request)
        );
        assert_eq!(problem["code"], "invalid_request");
    }
    // The application's own error answers pass untouched, HEAD ones (no body) included: the
    // same keep-alive connection goes on serving.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"HEAD /nowhere HTTP/1.1\r\nHost: m\r\n\r\nGET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answers = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answers))
        .await
        .expect("both requests are answered")
        .unwrap();
    let answers = String::from_utf8(answers).unwrap();
    assert!(
        answers.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{answers}"
    );
    assert!(!answers.contains("content-length: 0\r\n"), "{answers}");
    assert!(answers.contains("HTTP/1.1 200 OK\r\n"), "{answers}");
    assert!(answers.ends_with(r#"{"status":"ok"}"#), "{answers}");
    app.shutdown().await;
}
