//! Who is primary on a Consul-lease cluster, and the faults that make it change: pausing a
//! node's LiteFS and cutting a node off the lease server.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::cluster::RealCluster;
use super::error::{RealError, Result};
use super::lease::{Cut, Lease};
use super::node;

/// How long one `/info` of a primary survey may take.
const SURVEY_TIMEOUT: Duration = Duration::from_millis(500);

/// How many of the lease server's last events a timeout message carries.
const EVENTS_IN_ERRORS: usize = 12;

impl RealCluster {
    /// How the cluster's nodes agree on a primary.
    pub fn lease(&self) -> &Lease {
        &self.opts.lease
    }

    /// The running node LiteFS says is primary now: asks `/info` of each running, unpaused
    /// node (at most 500 ms each, all at once). `None` when none or more than one claims it.
    ///
    /// ```no_run
    /// # async fn demo(cluster: &mut litefs_orm_testkit::real::RealCluster) {
    /// if let Some(p) = cluster.current_primary().await {
    ///     println!("{} is primary", cluster.hostname(p));
    /// }
    /// # }
    /// ```
    pub async fn current_primary(&mut self) -> Option<usize> {
        let survey = self.survey().await;
        let p = sole_primary(&survey)?;
        self.primary = p;
        Some(p)
    }

    /// Waits until exactly one running node is primary and every other running, unpaused node
    /// names it as its primary in `/info`; returns its index. On timeout the error shows what
    /// each node said last and the lease server's last events.
    ///
    /// ```no_run
    /// # async fn demo(cluster: &mut litefs_orm_testkit::real::RealCluster)
    /// # -> litefs_orm_testkit::real::Result<()> {
    /// use std::time::Duration;
    ///
    /// let old = cluster.wait_for_primary(Duration::from_secs(5)).await?;
    /// cluster.kill_node(old).await?;
    /// let new = cluster.wait_for_primary(Duration::from_secs(20)).await?;
    /// assert_ne!(new, old);
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_primary(&mut self, timeout: Duration) -> Result<usize> {
        let start = Instant::now();
        loop {
            let survey = self.survey().await;
            if let Some(p) = sole_primary(&survey) {
                let want = self.hostname(p).to_owned();
                let followed = survey
                    .iter()
                    .all(|(i, info)| *i == p || named_primary(info) == Some(want.as_str()));
                if followed {
                    self.primary = p;
                    return Ok(p);
                }
            }
            if start.elapsed() >= timeout {
                let what = format!(
                    "one primary that every running node follows (last: {}; lease events:\n{})",
                    self.describe(&survey),
                    self.last_events()
                );
                return Err(RealError::Timeout {
                    what,
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops node `i`'s LiteFS with SIGSTOP to its process group, as a machine that freezes.
    ///
    /// While paused its FUSE mount blocks every access and its HTTP API does not answer: the
    /// harness does not touch either ([`pos`](Self::pos) and [`info`](Self::info) are errors,
    /// [`sync`](Self::sync) and the primary surveys skip it), and nor should the test.
    pub fn pause_node(&mut self, i: usize) -> Result<()> {
        let child = self.running_child(i)?;
        node::signal_group(child, Signal::SIGSTOP);
        self.nodes[i].paused = true;
        Ok(())
    }

    /// Lets a paused node's LiteFS run again (SIGCONT). Nothing when it is not paused.
    pub fn resume_node(&mut self, i: usize) -> Result<()> {
        let child = self.running_child(i)?;
        node::signal_group(child, Signal::SIGCONT);
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Whether node `i`'s LiteFS is paused by [`pause_node`](Self::pause_node).
    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.paused)
    }

    /// Cuts node `i` off the lease server (its gate); the other nodes keep reaching it. An
    /// error on a static lease.
    pub fn cut_lease(&mut self, i: usize, how: Cut) -> Result<()> {
        self.check(i)?;
        self.lease_server("cut_lease")?.cut(i, how)
    }

    /// Reconnects node `i` to the lease server. An error on a static lease.
    pub fn heal_lease(&mut self, i: usize) -> Result<()> {
        self.check(i)?;
        self.lease_server("heal_lease")?.heal(i)
    }

    /// The Consul URL node `i`'s LiteFS is configured with (its gate), `None` on a static
    /// lease.
    pub fn consul_url(&self, i: usize) -> Option<String> {
        self.consul.as_ref().and_then(|c| c.url(i))
    }

    /// The lease server's own log of what happened, oldest first: sessions created, renewed,
    /// expired and destroyed, keys acquired (or refused, and why), released and deleted, and
    /// the harness's cuts and heals, each with its time (UTC wall clock, as in LiteFS's log
    /// lines, and seconds since the server started) and the node whose gate it came through.
    /// Empty on a static lease.
    ///
    /// ```text
    /// 19:03:30.475 +4.102s n2: session 25e8ab74 expired
    /// 19:03:30.475 +4.102s n2: key litefs/app deleted (session 25e8ab74 expired); locked for 1s
    /// ```
    pub fn lease_events(&self) -> Vec<String> {
        self.consul.as_ref().map(|c| c.events()).unwrap_or_default()
    }

    /// Asks node `to` to take the lease by handoff and waits until every node follows it.
    pub(super) async fn promote(&mut self, to: usize) -> Result<()> {
        if !self.is_running(to) {
            return Err(RealError::BadState {
                index: to,
                state: "not running",
            });
        }
        self.check_unpaused(to)?;
        let url = format!("{}/promote", self.http_url(to));
        let http = |source| RealError::Http {
            url: url.clone(),
            source,
        };
        let resp = self.http.post(&url).send().await.map_err(http)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(RealError::Api {
                url,
                status: status.as_u16(),
                body: body.trim().to_owned(),
            });
        }
        let timeout = self.ready_timeout();
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if self.wait_for_primary(left).await? == to {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(RealError::Timeout {
                    what: format!(
                        "{} to take the lease (primary: {}; lease events:\n{})",
                        self.hostname(to),
                        self.hostname(self.primary),
                        self.last_events()
                    ),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/info` of every running, unpaused node (`None` for one that did not answer in time).
    async fn survey(&mut self) -> Vec<(usize, Option<Value>)> {
        let asked: Vec<usize> = (0..self.nodes())
            .filter(|&i| self.is_running(i) && !self.is_paused(i))
            .collect();
        let this = &*self;
        let answers = futures_util::future::join_all(asked.iter().map(|&i| async move {
            let url = format!("{}/info", this.http_url(i));
            let resp = this.http.get(&url).timeout(SURVEY_TIMEOUT).send().await;
            match resp {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            }
        }))
        .await;
        asked.into_iter().zip(answers).collect()
    }

    /// One line per surveyed node: whether it is primary and whom it names.
    fn describe(&self, survey: &[(usize, Option<Value>)]) -> String {
        let mut parts: Vec<String> = survey
            .iter()
            .map(|(i, info)| match info {
                Some(v) if v["isPrimary"] == true => format!("{} primary", self.hostname(*i)),
                Some(v) => format!(
                    "{} follows {:?}",
                    self.hostname(*i),
                    named_primary(&Some(v.clone())).unwrap_or_default()
                ),
                None => format!("{} no answer", self.hostname(*i)),
            })
            .collect();
        for i in (0..self.nodes()).filter(|&i| self.is_paused(i)) {
            parts.push(format!("{} paused", self.hostname(i)));
        }
        parts.join(", ")
    }

    /// The lease server's last events, one per line.
    fn last_events(&self) -> String {
        let events = self.lease_events();
        let skip = events.len().saturating_sub(EVENTS_IN_ERRORS);
        events[skip..].join("\n")
    }

    fn running_child(&mut self, i: usize) -> Result<&tokio::process::Child> {
        self.check(i)?;
        if !self.is_running(i) {
            return Err(RealError::BadState {
                index: i,
                state: "not running",
            });
        }
        self.nodes[i].child.as_ref().ok_or(RealError::BadState {
            index: i,
            state: "not running",
        })
    }

    fn lease_server(&self, op: &'static str) -> Result<&super::consul::ConsulServer> {
        self.consul.as_deref().ok_or(RealError::WrongLease {
            op,
            needs: "a Consul lease (RealOptions::with_lease(Lease::Consul(..)))",
        })
    }
}

/// The one surveyed node that says it is primary, if exactly one does.
fn sole_primary(survey: &[(usize, Option<Value>)]) -> Option<usize> {
    let mut primaries = survey
        .iter()
        .filter(|(_, info)| info.as_ref().is_some_and(|v| v["isPrimary"] == true));
    match (primaries.next(), primaries.next()) {
        (Some((p, _)), None) => Some(*p),
        _ => None,
    }
}

/// The primary hostname a node's `/info` names (empty names none).
fn named_primary(info: &Option<Value>) -> Option<&str> {
    info.as_ref()?["primary"]["hostname"]
        .as_str()
        .filter(|h| !h.is_empty())
}
