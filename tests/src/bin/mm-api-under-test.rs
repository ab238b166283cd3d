//! `mm-api-under-test`: serves the lobby API through [`mm_testkit::app::TestApp`] (private
//! Redis, two reference game servers for product `chess`, header auth) on a fixed port, for
//! black-box tools such as Schemathesis (`scripts/schemathesis.sh`). Test use only: the real
//! daemon is `matchmakerd`.

use clap::Parser;
use mm_testkit::app::{TestApp, TestAppOptions};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Serve the lobby API in-process for black-box API tests")]
struct Args {
    /// Port on 127.0.0.1 to serve the API on.
    #[arg(long, default_value_t = 18080)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let app = TestApp::spawn(TestAppOptions {
        api_port: args.port,
        ..TestAppOptions::default()
    })
    .await?;
    println!("serving the lobby API on {}", app.base_url);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    app.shutdown().await;
    Ok(())
}
