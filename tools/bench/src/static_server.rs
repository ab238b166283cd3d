//! A fallback HTTP ceiling: an axum server inside mm-bench answering every GET with the same
//! fixed bytes. Used only when the daemon build lacks its own static bench route.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;

/// A running static server; stopped when dropped.
#[derive(Debug)]
pub struct StaticServer {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StaticServer {
    /// Serves `bytes` bytes of JSON-typed filler on a loopback port.
    pub async fn start(bytes: usize) -> anyhow::Result<StaticServer> {
        let body = Bytes::from(vec![b'x'; bytes]);
        let app = Router::new().fallback(get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the static ceiling server")?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(StaticServer { address, task })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}/static", self.address)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
