//! Waiting on a real cluster: node readiness and replication catch-up.

use std::time::{Duration, Instant};

use super::cluster::RealCluster;
use super::error::{RealError, Result};
use super::node::{self, MountState};

impl RealCluster {
    /// Waits until every running replica's position equals the running primary's.
    pub async fn sync(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let p = self.primary;
        if !self.is_running(p) {
            return Err(RealError::BadState {
                index: p,
                state: "the primary and not running",
            });
        }
        loop {
            let running: Vec<usize> = (0..self.nodes()).filter(|&i| self.is_running(i)).collect();
            let want = self.pos(p)?;
            let mut seen = Vec::new();
            let mut done = true;
            for &i in &running {
                let got = self.pos(i)?;
                done &= got == want;
                seen.push(format!(
                    "{} at {:x}/{:016x}",
                    self.hostname(i),
                    got.0,
                    got.1
                ));
            }
            if done {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let what = format!("replicas to reach the primary ({})", seen.join(", "));
                return Err(RealError::Timeout {
                    what,
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Ready: the mount is live and `/info` answers; the primary reports `isPrimary`, and a
    /// replica (while the primary runs) names the primary's hostname.
    pub(super) async fn wait_ready(&mut self, i: usize) -> Result<()> {
        let timeout = self.opts.start_timeout;
        let start = Instant::now();
        let want_primary = self.hostname(self.primary).to_owned();
        let primary_up = i == self.primary || self.is_running(self.primary);
        loop {
            if let Some(Ok(Some(status))) = self.nodes[i].child.as_mut().map(|c| c.try_wait()) {
                self.nodes[i].child = None;
                let log = self.log(i);
                let tail = log.lines().rev().take(30).collect::<Vec<_>>();
                let log = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(RealError::Exited {
                    index: i,
                    status: status.to_string(),
                    log,
                });
            }
            let mount = node::mount_state(self.mount(i));
            let last;
            if mount == MountState::Live {
                match self.info(i).await {
                    Ok(info) => {
                        let ready = if i == self.primary {
                            info["isPrimary"] == true
                        } else {
                            !primary_up || info["primary"]["hostname"] == *want_primary
                        };
                        if ready {
                            return Ok(());
                        }
                        last = format!("/info = {info}");
                    }
                    Err(e) => last = e.to_string(),
                }
            } else {
                last = format!("mount {mount:?}");
            }
            if start.elapsed() >= timeout {
                let what = format!("node {} to be ready (last: {last})", self.hostname(i));
                return Err(RealError::Timeout {
                    what,
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
