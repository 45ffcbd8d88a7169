//! Worker lifecycle and role changes: the watcher, the replicators, `switch_primary` and
//! `lose_primary`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use super::error::Result;
use super::files::{write_lag, write_primary};
use super::state::{PrimaryPos, Role, Shared, lock};
use super::worker::Worker;
use super::{replicator, watcher};
use litefs_orm::litefs::read_pos;

/// What the [`Cluster`](super::Cluster) handle shares with the tasks it runs on its runtime.
pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    pub workers: tokio::sync::Mutex<Workers>,
    pub rt: Handle,
}

/// The running workers: the primary's watcher and one replicator per other node.
#[derive(Default)]
pub(crate) struct Workers {
    pub watcher: Option<Worker>,
    pub replicators: Vec<Worker>,
}

impl Inner {
    pub async fn start_watcher(&self, w: &mut Workers) -> Result<()> {
        let role = self.shared.role();
        if let Some(p) = role.primary {
            let (watcher, ready) = watcher::spawn(self.shared.clone(), p, role.generation)?;
            w.watcher = Some(watcher);
            let _ = ready.await;
        }
        Ok(())
    }

    pub async fn start_replicators(&self, w: &mut Workers) -> Result<()> {
        let role = self.shared.role();
        let mut readies = Vec::new();
        for i in (0..self.shared.nodes.len()).filter(|&i| role.primary != Some(i)) {
            let (r, ready) = replicator::spawn(self.shared.clone(), i)?;
            w.replicators.push(r);
            readies.push(ready);
        }
        for ready in readies {
            let _ = ready.await;
        }
        Ok(())
    }

    pub async fn stop_workers(&self, w: &mut Workers) {
        if let Some(watcher) = w.watcher.take() {
            watcher.stop().await;
        }
        for r in w.replicators.drain(..) {
            r.stop().await;
        }
    }

    pub async fn switch_primary(&self, to: usize) {
        let mut w = self.workers.lock().await;
        let old = self.shared.role();
        if old.primary == Some(to) {
            return;
        }
        self.stop_workers(&mut w).await;
        let generation = old.generation + 1;
        let pos = read_pos(&self.shared.nodes[to].paths.pos()).unwrap_or_default();
        self.shared
            .primary_pos
            .send_replace(PrimaryPos::initial(generation, pos));
        self.shared.set_role(Role {
            primary: Some(to),
            generation,
        });
        if let Err(e) = self.start_watcher(&mut w).await {
            tracing::error!("testkit: cannot start the watcher on node {to}: {e}");
        }
        let hostname = self.shared.nodes[to].hostname.clone();
        for (i, node) in self.shared.nodes.iter().enumerate() {
            let result = if i == to {
                write_primary(&node.paths, None).and_then(|()| write_lag(&node.paths, 0))
            } else {
                write_primary(&node.paths, Some(&hostname))
            };
            if let Err(e) = result {
                tracing::error!("testkit: updating {}: {e}", node.paths.mount.display());
            }
        }
        self.shared.notify_primary_change();
        if let Err(e) = self.start_replicators(&mut w).await {
            tracing::error!("testkit: cannot start the replicators: {e}");
        }
    }

    pub async fn lose_primary(&self) {
        let mut w = self.workers.lock().await;
        let old = self.shared.role();
        let Some(old_primary) = old.primary else {
            return;
        };
        self.stop_workers(&mut w).await;
        let generation = old.generation + 1;
        self.shared.set_role(Role {
            primary: None,
            generation,
        });
        self.rt.spawn(blink_lost_primary(
            self.shared.clone(),
            old_primary,
            generation,
        ));
        let node = &self.shared.nodes[old_primary];
        lock(&node.state).last_contact = Some(Instant::now());
        if let Err(e) = write_lag(&node.paths, 1) {
            tracing::error!("testkit: updating {}: {e}", node.paths.mount.display());
        }
        for node in &self.shared.nodes {
            if let Err(e) = write_primary(&node.paths, None) {
                tracing::error!("testkit: updating {}: {e}", node.paths.mount.display());
            }
        }
        self.shared.notify_primary_change();
        if let Err(e) = self.start_replicators(&mut w).await {
            tracing::error!("testkit: cannot start the replicators: {e}");
        }
    }
}

/// What LiteFS replicas do while their primary is gone: retry it once a second, and at each
/// retry send a `primaryChange` naming it and, in the same millisecond, one clearing it.
/// Runs until the role changes again.
async fn blink_lost_primary(shared: Arc<Shared>, lost: usize, generation: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        if shared.role().generation != generation {
            return;
        }
        shared.blink_primary(lost);
    }
}
