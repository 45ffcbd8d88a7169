//! `Cluster::sync`: wait until every replica has the primary's position.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::state::{Shared, lock};

const STEP: Duration = Duration::from_micros(500);

/// Asks the watcher for one look at `data_version` (so commits made before this call are
/// counted), then waits until each replica applied that position (or a later one).
pub(crate) async fn wait_for_replicas(shared: &Shared, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let timed_out = |behind: String| Error::SyncTimeout {
        waited: start.elapsed(),
        behind,
    };
    let request = shared.flush_requested.fetch_add(1, Ordering::SeqCst) + 1;
    while shared.flush_done.load(Ordering::SeqCst) < request {
        if shared.role().primary.is_none() {
            return Err(Error::NoPrimary);
        }
        if start.elapsed() >= timeout {
            let why = "the primary's watcher has not looked at its commits (write lock held?)";
            return Err(timed_out(why.to_owned()));
        }
        tokio::time::sleep(STEP).await;
    }
    // Fixed once: under a steady stream of commits the replicas need not catch the latest one.
    let mut target = *shared.primary_pos.borrow();
    loop {
        let role = shared.role();
        let Some(primary) = role.primary else {
            return Err(Error::NoPrimary);
        };
        if target.generation != role.generation {
            target = *shared.primary_pos.borrow();
        }
        let mut behind = Vec::new();
        for (i, node) in shared
            .nodes
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != primary)
        {
            let st = shared.node_state(i);
            let caught_up = st.applied.is_some_and(|(g, p)| {
                g == target.generation && g == role.generation && p.txid >= target.pos.txid
            });
            if !caught_up || st.dirty {
                let at = st
                    .applied
                    .map_or("nothing".to_owned(), |(_, p)| format!("{:016x}", p.txid));
                let dirty = if st.dirty {
                    ", written to directly"
                } else {
                    ""
                };
                let failing = lock(&node.replication_error)
                    .as_ref()
                    .map_or(String::new(), |e| format!(", replication failing: {e}"));
                behind.push(format!("{} at {at}{dirty}{failing}", node.hostname));
            }
        }
        if behind.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            let paused = if shared.paused() {
                " (replication paused)"
            } else {
                ""
            };
            let primary = &shared.nodes[primary].hostname;
            return Err(timed_out(format!(
                "{}; primary {primary} at {:016x}{paused}",
                behind.join(", "),
                target.pos.txid
            )));
        }
        tokio::time::sleep(STEP).await;
    }
}
