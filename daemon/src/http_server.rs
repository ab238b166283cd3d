//! The HTTP/1.1 server under both listeners (lobby API and admin), with connection hygiene
//! (contract section 7, `[http]`): what a hostile network cannot do to it.
//!
//! - **Header-read timeout** (`http.header_read_timeout_ms`): hyper closes a connection that
//!   has not delivered a complete request head within the timeout of being accepted or of its
//!   previous answer (slowloris: headers started and never finished).
//! - **Idle keep-alive timeout** (`http.keepalive_idle_timeout_ms`): a per-connection watchdog
//!   closes a connection with no request in flight for that long (hyper's graceful close: an
//!   answer being written is finished first).
//! - **Connection cap** (`http.max_connections`): a semaphore permit is taken before each
//!   `accept`; with every permit held, new connections wait in the kernel's listen backlog
//!   until one closes (queued, not refused: no answer written to a socket whose request was
//!   never read).
//! - **Header size** (`http.max_header_bytes`): the request middleware answers a head larger
//!   than the setting `431 header_too_large` (a problem document); hyper itself refuses heads
//!   larger than twice the setting and closes (nothing of such a request reaches the
//!   application; its answer is made a problem as below).
//!
//! - **Problem documents from the HTTP stack**: hyper answers a request it cannot parse (a
//!   malformed request line or header, a head over its ceiling, a target too long) itself,
//!   with an empty body, before the application sees anything. [`ProblemIo`] recognises that
//!   answer on its way to the socket and sends a problem document in its place.
//!
//! Each request carries axum's `ConnectInfo<SocketAddr>` (the peer address), as
//! `into_make_service_with_connect_info` would provide.
//!
//! Shutdown: when the shutdown future completes the listener is dropped (no new connections),
//! every connection is told to close once its in-flight request is answered, and [`serve`]
//! returns when all have.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use mm_config::HttpSettings;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The connection limits of one listener (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `http.header_read_timeout_ms`.
    pub header_read_timeout: Duration,
    /// `http.keepalive_idle_timeout_ms`.
    pub idle_timeout: Duration,
    /// `http.max_connections`.
    pub max_connections: usize,
    /// `http.max_header_bytes` (hyper's own ceiling is twice this).
    pub max_header_bytes: usize,
}

impl ConnectionLimits {
    /// The limits `[http]` configures.
    pub fn from_settings(http: &HttpSettings) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: http.header_read_timeout(),
            idle_timeout: http.keepalive_idle_timeout(),
            max_connections: http.max_connections,
            max_header_bytes: http.max_header_bytes,
        }
    }

    /// The largest head hyper parses at all (above it: hyper's bare 431 and a close).
    fn hard_header_ceiling(&self) -> usize {
        self.max_header_bytes.saturating_mul(2)
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes; then stops
/// accepting, lets in-flight requests finish and returns when every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            limits,
            closing.clone(),
            permit,
        ));
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// A failed `accept`: per-connection errors (the peer already gone) are skipped; resource
/// errors (out of file descriptors) are logged and the loop pauses before trying again, as
/// `axum::serve` does, instead of spinning.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(%err, "accepting a connection failed; pausing before the next accept");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// When a connection last had a request in flight, for the idle watchdog.
#[derive(Debug)]
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `started` at which the last request finished (or the connection
    /// was accepted).
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// When the connection becomes idle too long if nothing happens (a request in flight
    /// postpones the check by a whole period).
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Instant::now() + idle;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        self.started + since + idle
    }
}

/// A request in flight on a connection (dropped when its service future ends or is dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let now_ms = activity.started.elapsed().as_millis() as u64;
        activity.idle_since_ms.store(now_ms, Ordering::SeqCst);
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection: hyper's HTTP/1.1 with the header limits, under the idle watchdog, until
/// it closes, fails, or is told to close by shutdown. The permit is released on return.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    closing: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            let in_flight = activity.begin();
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let answer = router.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                answer
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.hard_header_ceiling())
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(ProblemIo::new(stream)), service);
    tokio::pin!(connection);
    let mut closing_gracefully = false;
    loop {
        let idle_deadline = activity.idle_deadline(limits.idle_timeout);
        tokio::select! {
            outcome = connection.as_mut() => {
                if let Err(err) = outcome {
                    // Timeouts, resets and malformed requests end here; they are the
                    // client's doing, so not warnings.
                    tracing::debug!(%peer, %err, "connection closed with an error");
                }
                return;
            }
            _ = closing.cancelled(), if !closing_gracefully => {
                connection.as_mut().graceful_shutdown();
                closing_gracefully = true;
            }
            _ = tokio::time::sleep_until(idle_deadline), if !closing_gracefully => {
                if activity.idle_deadline(limits.idle_timeout) <= Instant::now() {
                    connection.as_mut().graceful_shutdown();
                    closing_gracefully = true;
                }
            }
        }
    }
}

/// A connection's socket that replaces hyper's automatic answer to an unparsable request (a
/// bare `4xx` head with `content-length: 0`: the application never answers an error without
/// a problem body, so only hyper writes one) with a problem document. Everything else passes
/// through untouched.
struct ProblemIo {
    inner: TcpStream,
    /// A replacement answer still to be written, and how much of it has been.
    pending: Vec<u8>,
    written: usize,
}

impl ProblemIo {
    fn new(inner: TcpStream) -> ProblemIo {
        ProblemIo {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }

    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `bytes` (all of them, as written) in place of a problem answer if they are
    /// hyper's bare error answer.
    fn replace(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let replacement = problem_for_bare_error(bytes)?;
        self.pending = replacement;
        self.written = 0;
        // Start writing now; whatever is left goes out on the flush hyper makes next.
        if let Poll::Ready(Err(err)) = self.poll_pending(cx) {
            return Some(Poll::Ready(Err(err)));
        }
        Some(Poll::Ready(Ok(bytes.len())))
    }
}

/// The bytes hyper writes before its automatic answers start with this.
const BARE_ERROR_PREFIX: &[u8] = b"HTTP/1.1 4";

/// The problem answer replacing `head` when it is hyper's automatic answer to an unparsable
/// request: a `4xx` head alone, with `content-length: 0`.
fn problem_for_bare_error(head: &[u8]) -> Option<Vec<u8>> {
    if !head.starts_with(BARE_ERROR_PREFIX) || head.len() > 1024 {
        return None;
    }
    let head = std::str::from_utf8(head).ok()?;
    if !head.ends_with("\r\n\r\n")
        || !head
            .to_ascii_lowercase()
            .contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let status = StatusCode::from_u16(head.get(9..12)?.parse().ok()?).ok()?;
    use crate::api::error::{PROBLEM_JSON, Problem, ProblemCode};
    let (code, detail) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            ProblemCode::HeaderTooLarge,
            "the request's head is larger than this server reads",
        ),
        StatusCode::URI_TOO_LONG => (
            ProblemCode::InvalidRequest,
            "the request target is longer than this server reads",
        ),
        _ => (
            ProblemCode::InvalidRequest,
            "the request line or a header is not valid HTTP/1.1",
        ),
    };
    let body = serde_json::to_vec(&Problem::new(status, code, detail)).ok()?;
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

impl AsyncRead for ProblemIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProblemIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(replaced) = this.replace(cx, buf) {
            return replaced;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if bufs
            .first()
            .is_some_and(|b| b.starts_with(BARE_ERROR_PREFIX))
        {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            if let Some(replaced) = this.replace(cx, &joined) {
                return replaced;
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_error_answers_become_problems() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Fri, 27 Nov 2026 07:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(problem_for_bare_error(bare).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "invalid_request");
        assert_eq!(problem["status"], 400);
        let too_large =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let answer = String::from_utf8(problem_for_bare_error(too_large).unwrap()).unwrap();
        assert!(answer.contains(r#""code":"header_too_large""#), "{answer}");
    }

    #[test]
    fn other_answers_pass_through() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n{}",
            b"{\"games\":[]}",
        ] {
            assert!(problem_for_bare_error(bytes).is_none(), "{}", String::from_utf8_lossy(bytes));
        }
    }
}
