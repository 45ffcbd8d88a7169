//! `--local-cluster N`: N counter nodes in this process on litefs-orm's LiteFS stand-in.
//!
//! The stand-in (a test double, not LiteFS) keeps N node directories in sync as LiteFS
//! would: node 1 is the primary, the others replicate from it and forward their counts to
//! it. Each node is a full app server on its own port, so a browser or `curl` can talk to
//! any of them. Commands on stdin pause and resume replication or move the primary.

use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use litefs_orm::{Config, ReplicatedDb};
use litefs_orm_testkit::{Cluster, ClusterOptions, ReplicaWrites};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::app::{self, AppState};
use crate::settings::reachable;
use crate::shutdown::Shutdown;

/// The RPC secret of the local cluster: its nodes only talk over loopback, in one process.
const SECRET: &str = "local cluster secret; use a long random one in production";

/// Most nodes `--local-cluster` runs.
pub const MAX_NODES: usize = 9;

/// Runs `nodes` nodes, node `i` on `base`'s port + `i` (every one on a free port when
/// `base`'s port is 0), until `shutdown`.
pub async fn run(
    nodes: usize,
    base: SocketAddr,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    ensure!(
        (1..=MAX_NODES).contains(&nodes),
        "--local-cluster takes 1 to {MAX_NODES} nodes, not {nodes}"
    );
    let mut listeners = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let port = match base.port() {
            0 => 0,
            p => p
                .checked_add(i as u16)
                .with_context(|| format!("no port {p} + {i}"))?,
        };
        let addr = SocketAddr::new(base.ip(), port);
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr}; set COUNTER_ADDR to another base address (port 0: any free ports)")
        })?;
        listeners.push(listener);
    }
    // A node's LiteFS hostname is its app's address, so the primary's URL is `http://{primary}`.
    let hostnames = listeners
        .iter()
        .map(|l| l.local_addr().map(reachable).map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let litefs = Cluster::start(
        ClusterOptions::default()
            .nodes(nodes)
            .hostnames(hostnames.clone())
            // Replicas refuse raw writes through FUSE where this can mount it (as root);
            // elsewhere they are only detected.
            .replica_writes(ReplicaWrites::best_available()),
    )
    .await
    .context("starting the LiteFS stand-in")?;

    let mut dbs = Vec::with_capacity(nodes);
    let mut servers = Vec::with_capacity(nodes);
    // Node 1, the primary, migrates first; each replica then finds the schema replicated.
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut config = Config::from_env()?;
        config.litefs_mount = Some(litefs.mount(i).to_owned());
        config.database = "app.db".into();
        config.litefs_http = litefs.http_addr(i).map(|a| format!("http://{a}"));
        config.primary_url = "http://{primary}".into();
        config.rpc_secret = Some(SECRET.into());
        let db = app::open(config).await?;
        // Every node knows the others; `/metrics` is the process's, all nodes together.
        let peers = hostnames
            .iter()
            .filter(|h| **h != hostnames[i])
            .map(|h| format!("http://{h}"))
            .collect();
        let state = AppState::new(db.clone(), &hostnames[i], peers, Some(metrics.clone()));
        servers.push(tokio::spawn(app::serve(listener, state, shutdown.wait())));
        dbs.push(db);
    }

    println!(
        "A local cluster of {nodes} counter nodes on the LiteFS stand-in (a test double of LiteFS):"
    );
    for (i, db) in dbs.iter().enumerate() {
        println!(
            "  n{}  http://{}/  {}  ({})",
            i + 1,
            hostnames[i],
            db.role(),
            litefs.mount(i).display()
        );
    }
    println!(
        "Open a replica's URL: its views are counted on the primary, and the replica shows them at once."
    );
    println!("Commands: pause | resume | switch N | status | quit   (ctrl-c also stops)");

    let mut commands = stdin_lines();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            line = commands.recv() => match line {
                Some(line) => match command(&line, &litefs, &dbs, &hostnames).await {
                    Ok(Some(reply)) => println!("{reply}"),
                    Ok(None) => shutdown.trigger(),
                    Err(e) => println!("{e}"),
                },
                // No (more) input, e.g. run in the background: serve until a signal.
                None => {
                    shutdown.wait().await;
                    break;
                }
            },
        }
    }
    for server in servers {
        server.await.context("a node's server task failed")??;
    }
    drop(dbs);
    litefs.shutdown().await;
    Ok(())
}

/// Runs one command line; `None` means quit.
async fn command(
    line: &str,
    litefs: &Cluster,
    dbs: &[ReplicatedDb],
    hostnames: &[String],
) -> anyhow::Result<Option<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let reply = match words.as_slice() {
        [] => return Ok(Some(String::new())),
        ["quit" | "exit"] => return Ok(None),
        ["pause"] => {
            litefs.pause_replication();
            "replication paused: replicas keep serving what they have; their counts wait for \
             replication, then answer 503 once LITEFS_ORM_REPLICATION_TIMEOUT_MS has passed"
                .to_owned()
        }
        ["resume"] => {
            litefs.resume_replication();
            "replication resumed".to_owned()
        }
        ["switch", n] => {
            let i = node_index(n, dbs.len())?;
            litefs.switch_primary(i).await;
            format!("n{} ({}) is now the primary", i + 1, hostnames[i])
        }
        ["status"] => {
            let mut out = String::new();
            for (i, db) in dbs.iter().enumerate() {
                let txid = db.local_position().map(|p| p.txid).unwrap_or_default();
                out.push_str(&format!(
                    "  n{}  {}  {}  txid {txid}\n",
                    i + 1,
                    hostnames[i],
                    db.role()
                ));
            }
            out.trim_end().to_owned()
        }
        _ => bail!("unknown command {line:?}; commands: pause | resume | switch N | status | quit"),
    };
    Ok(Some(reply))
}

fn node_index(word: &str, nodes: usize) -> anyhow::Result<usize> {
    let n: usize = word
        .trim_start_matches('n')
        .parse()
        .with_context(|| format!("switch takes a node number 1 to {nodes}, not {word:?}"))?;
    ensure!(
        (1..=nodes).contains(&n),
        "there is no node {n}; nodes are 1 to {nodes}"
    );
    Ok(n - 1)
}

/// Lines from stdin, read on a thread of their own (stdin blocks).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_numbered_from_one() {
        assert_eq!(node_index("1", 3).unwrap(), 0);
        assert_eq!(node_index("n3", 3).unwrap(), 2);
        assert!(node_index("0", 3).is_err());
        assert!(node_index("4", 3).is_err());
        assert!(node_index("two", 3).is_err());
    }
}
