//! Waiting on a real cluster: node readiness and replication catch-up.

use std::time::{Duration, Instant};

use super::cluster::{RealCluster, SIGNAL_READY};
use super::error::{RealError, Result};
use super::node::{self, MountState};

impl RealCluster {
    /// Waits until every running, unpaused replica's position equals the primary's.
    ///
    /// The primary is the configured one with a static lease (an error when it is not running
    /// or paused), and the one LiteFS names now ([`current_primary`](Self::current_primary))
    /// with a Consul lease; while there is none, the wait goes on.
    pub async fn sync(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let consul = self.consul.is_some();
        if !consul {
            let p = self.primary;
            if !self.is_running(p) {
                return Err(RealError::BadState {
                    index: p,
                    state: "the primary and not running",
                });
            }
            self.check_unpaused(p)?;
        }
        loop {
            let primary = if consul {
                self.current_primary().await
            } else {
                Some(self.primary)
            };
            let seen = match primary {
                Some(p) => match self.caught_up(p)? {
                    None => return Ok(()),
                    Some(seen) => seen,
                },
                None => "no primary".to_owned(),
            };
            if start.elapsed() >= timeout {
                let what = format!("replicas to reach the primary ({seen})");
                return Err(RealError::Timeout {
                    what,
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `None` when every running, unpaused node is at primary `p`'s position; otherwise what
    /// each one is at.
    fn caught_up(&mut self, p: usize) -> Result<Option<String>> {
        let running: Vec<usize> = (0..self.nodes())
            .filter(|&i| self.is_running(i) && !self.is_paused(i))
            .collect();
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
        Ok((!done).then(|| seen.join(", ")))
    }

    /// Ready: the mount is live and `/info` answers; with a static lease, the primary reports
    /// `isPrimary`, and a replica (while the primary runs) names the primary's hostname; with a
    /// Consul lease, the node is primary or names one, and LiteFS has finished starting.
    /// Returns the node's last `/info`.
    pub(super) async fn wait_ready(&mut self, i: usize) -> Result<serde_json::Value> {
        let timeout = self.ready_timeout();
        let start = Instant::now();
        let consul = self.consul.is_some();
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
                        let ready = if consul {
                            let named = info["primary"]["hostname"]
                                .as_str()
                                .is_some_and(|h| !h.is_empty());
                            (info["isPrimary"] == true || named)
                                && self.run_log(i).contains(SIGNAL_READY)
                        } else if i == self.primary {
                            info["isPrimary"] == true
                        } else {
                            !primary_up || info["primary"]["hostname"] == *want_primary
                        };
                        if ready {
                            return Ok(info);
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
