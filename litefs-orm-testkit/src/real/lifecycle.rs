//! Starting, stopping and restarting nodes, and the static lease's primary changes.

use std::time::Duration;

use super::cluster::{RealCluster, SIGNAL_READY};
use super::config;
use super::error::{RealError, Result};
use super::lease::Lease;
use super::node;

impl RealCluster {
    /// Stops node `i`'s LiteFS with SIGTERM (SIGKILL after `stop_timeout`, or at once when
    /// this run never connected to the cluster: LiteFS ignores SIGTERM until then), waits for it
    /// to exit, and lazily unmounts whatever is left at its mount (LiteFS cannot unmount while an
    /// app holds files open there). Returns the exit status as text.
    ///
    /// A paused node is resumed first, so that it can handle SIGTERM.
    pub async fn stop_node(&mut self, i: usize) -> Result<String> {
        if self.is_paused(i) {
            self.resume_node(i)?;
        }
        // Until it has connected to the cluster, LiteFS ignores SIGTERM and SIGINT.
        let grace = if self.run_log(i).contains(SIGNAL_READY) {
            self.opts.stop_timeout
        } else {
            Duration::ZERO
        };
        let mut child = self.take_child(i)?;
        let (status, forced) = node::terminate(&mut child, grace, self.mount(i)).await?;
        node::clear_mount(self.mount(i))?;
        let killed = if forced { " after SIGKILL" } else { "" };
        Ok(format!("{status}{killed}"))
    }

    /// Kills node `i`'s LiteFS with SIGKILL (paused or not) and lazily unmounts its (now
    /// stale) mount.
    pub async fn kill_node(&mut self, i: usize) -> Result<()> {
        let mut child = self.take_child(i)?;
        node::kill(&mut child, self.mount(i)).await?;
        node::clear_mount(self.mount(i))
    }

    /// Starts node `i`'s LiteFS again with its current config and waits until it is ready
    /// (for the static primary: also until every running replica has reconnected, up to about
    /// 1 s). Works while an app still holds files of the old mount open.
    ///
    /// With a Consul lease, ready means: the mount is live, `/info` answers, the node is the
    /// primary or names one, and LiteFS has finished starting (with `promote`, after taking the
    /// lease by handoff, so a started node is then the primary). The other nodes follow a new
    /// primary about a second later: [`wait_for_primary`](Self::wait_for_primary) waits for it.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        self.check(i)?;
        if self.is_running(i) {
            return Err(RealError::BadState {
                index: i,
                state: "already running",
            });
        }
        let node = &mut self.nodes[i];
        node.runs += 1;
        node.follows = self.primary;
        node.paused = false;
        node.child = Some(node.spec.spawn(&self.bin, node.runs)?);
        let info = self.wait_ready(i).await?;
        if self.consul.is_some() {
            let named = info["primary"]["hostname"].as_str().unwrap_or_default();
            let known = (0..self.nodes()).find(|&n| self.hostname(n) == named);
            if let Some(p) = (info["isPrimary"] == true).then_some(i).or(known) {
                self.primary = p;
            }
            return Ok(());
        }
        if i == self.primary {
            // Replicas retry a lost primary once a second; wait until they are back.
            for r in (0..self.nodes()).filter(|&r| r != i) {
                if self.is_running(r) && self.nodes[r].follows == i {
                    self.wait_ready(r).await?;
                }
            }
        }
        Ok(())
    }

    /// Stops then starts node `i`.
    pub async fn restart_node(&mut self, i: usize) -> Result<()> {
        self.stop_node(i).await?;
        self.start_node(i).await
    }

    /// A planned primary change: stops every node, rewrites every config with node `to` as the
    /// static primary, then starts the new primary and the others, and waits until all are
    /// ready.
    ///
    /// With a Consul lease nothing is restarted: node `to` is asked to take the lease by
    /// handoff (LiteFS's `POST /promote`), and the call waits until it is the primary every
    /// running node follows.
    pub async fn change_primary(&mut self, to: usize) -> Result<()> {
        self.check(to)?;
        if self.consul.is_some() {
            return self.promote(to).await;
        }
        for i in (0..self.nodes()).rev() {
            if self.is_running(i) {
                self.stop_node(i).await?;
            }
        }
        self.set_primary(to)?;
        self.start_all().await
    }

    /// Rewrites every config with node `to` as the static primary, restarting nothing: nodes
    /// started from now on follow it, running ones keep following the primary they started
    /// with. A replica of a stopped primary thus stays on that primary's history (which the
    /// new primary may never have had) until it is restarted, as after an unplanned failover.
    ///
    /// A static-lease operation: with a Consul lease it is an error.
    pub fn set_primary(&mut self, to: usize) -> Result<()> {
        self.check(to)?;
        if self.consul.is_some() {
            return Err(RealError::WrongLease {
                op: "set_primary",
                needs: "a static lease (with a Consul lease the nodes elect the primary; \
                        change_primary asks one to take the lease by handoff)",
            });
        }
        self.primary = to;
        self.write_configs()
    }

    /// Stops every node with SIGTERM and unmounts; the cluster can be started node by node
    /// again afterwards.
    pub async fn stop_all(&mut self) -> Result<()> {
        for i in (0..self.nodes()).rev() {
            if self.is_running(i) {
                self.stop_node(i).await?;
            }
        }
        Ok(())
    }

    pub(super) fn write_configs(&self) -> Result<()> {
        if let (Lease::Consul(lease), Some(server)) = (&self.opts.lease, &self.consul) {
            for (i, n) in self.nodes.iter().enumerate() {
                let url = server.url(i).unwrap_or_default();
                config::write_consul(&n.spec, lease, &url)?;
            }
            return Ok(());
        }
        let primary = &self.nodes[self.primary].spec;
        for (i, n) in self.nodes.iter().enumerate() {
            config::write_static(&n.spec, primary, i == self.primary)?;
        }
        Ok(())
    }

    pub(super) async fn start_all(&mut self) -> Result<()> {
        let p = self.primary;
        self.start_node(p).await?;
        for i in (0..self.nodes()).filter(|&i| i != p) {
            self.start_node(i).await?;
        }
        if self.consul.is_some() {
            let timeout = self.ready_timeout();
            self.wait_for_primary(timeout).await?;
        }
        Ok(())
    }
}
