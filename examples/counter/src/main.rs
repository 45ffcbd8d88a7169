//! Run with `cargo run -p counter`, or `cargo run -p counter -- --local-cluster 3` for three nodes.
//!
//! A page-view counter on LiteFS, after the Phoenix walkthrough's: `GET /` counts a view of
//! `home`, `GET /pages/{name}` of `{name}`, and each page shows its count, the node that
//! served it, its role and the primary. The count is a litefs-orm [`Operation`]
//! (`page_view::CountView`) that runs on the primary in one transaction, from whichever node
//! served the view, so concurrent views from every node are all counted.
//!
//! Configuration comes from the environment: `COUNTER_ADDR` or `PORT`, `COUNTER_NODE`, `COUNTER_PEERS`
//! (see `settings.rs`), litefs-orm's `LITEFS_ORM_*` (no `LITEFS_ORM_MOUNT`: standalone on a
//! local SQLite file), and `RUST_LOG`.
//!
//! [`Operation`]: litefs_orm::Operation

mod app;
mod cluster;
mod cluster_page;
mod html;
mod local_cluster;
mod page_view;
mod settings;
mod shutdown;
mod telemetry;

use anyhow::Context;
use clap::Parser;
use litefs_orm::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::app::AppState;
use crate::settings::Settings;
use crate::shutdown::Shutdown;

/// Command-line options; everything else is read from the environment.
#[derive(Debug, Parser)]
#[command(
    name = "counter",
    about = "A page-view counter on LiteFS: views counted from any node land on the primary",
    after_help = "Environment: COUNTER_ADDR (default 127.0.0.1:8080) or PORT, COUNTER_NODE, COUNTER_PEERS, \
                  RUST_LOG, and litefs-orm's LITEFS_ORM_* (no LITEFS_ORM_MOUNT: standalone on \
                  LITEFS_ORM_DATABASE, default app.db). See examples/counter/README.md."
)]
struct Args {
    /// Run N nodes in this process on litefs-orm's LiteFS stand-in (node 1 primary), on
    /// COUNTER_ADDR's port and the next ones.
    #[arg(long, value_name = "N")]
    local_cluster: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::from_env()?;
    let metrics = telemetry::install()?;
    let shutdown = Shutdown::on_signals();
    match args.local_cluster {
        Some(nodes) => local_cluster::run(nodes, settings.addr, metrics, shutdown).await,
        None => run_node(settings, metrics, shutdown).await,
    }
}

/// One node, configured by `LITEFS_ORM_*`: standalone, or on a LiteFS mount.
async fn run_node(
    settings: Settings,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let database = config.db_path();
    let db = app::open(config).await?;
    let listener = TcpListener::bind(settings.addr).await.with_context(|| {
        format!(
            "cannot listen on {} (set COUNTER_ADDR or PORT)",
            settings.addr
        )
    })?;
    let addr = listener.local_addr()?;
    let node = settings.node.unwrap_or_else(|| addr.to_string());
    println!(
        "counter: http://{}/ (node {node}, {}, database {})",
        settings::reachable(addr),
        db.role(),
        database.display()
    );
    let state = AppState::new(db, &node, settings.peers, Some(metrics));
    app::serve(listener, state, shutdown.wait()).await?;
    tracing::info!("stopped");
    Ok(())
}
