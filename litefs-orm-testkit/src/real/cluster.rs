//! A running real LiteFS cluster on loopback with a static lease.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Child;

use super::binary::{check_fuse, litefs_binary};
use super::config;
use super::error::{RealError, Result};
use super::node::{self, NodeSpec, free_ports, read_pos};
use super::options::RealOptions;

/// The log line after which LiteFS handles SIGTERM.
const SIGNAL_READY: &str = "waiting for signal or subprocess to exit";

/// Name prefix of the temporary root folders.
const TMP_PREFIX: &str = "litefs-real-";

/// One node: its layout and, while LiteFS runs, its process.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) spec: NodeSpec,
    pub(super) child: Option<Child>,
    pub(super) runs: u32,
    /// The primary named in the config the running LiteFS started with.
    pub(super) follows: usize,
}

/// A real LiteFS cluster. Dropping it SIGKILLs every LiteFS and lazily unmounts every mount.
///
/// When `setpriv` is on `PATH`, each LiteFS also gets SIGKILL if the thread that started it
/// exits (so a crashed test leaves no process behind); start nodes from the thread that owns
/// the cluster. Dead mounts left by crashed runs are cleared at the next start.
#[derive(Debug)]
pub struct RealCluster {
    pub(super) bin: PathBuf,
    pub(super) opts: RealOptions,
    pub(super) root: PathBuf,
    pub(super) nodes: Vec<Node>,
    pub(super) primary: usize,
    pub(super) http: reqwest::Client,
    _tmp: Option<tempfile::TempDir>,
}

impl RealCluster {
    /// Lays out the nodes, writes their configs, starts the primary, then the replicas, and
    /// waits until every node is ready.
    pub async fn start(opts: RealOptions) -> Result<Self> {
        if opts.nodes == 0 || opts.primary >= opts.nodes {
            return Err(RealError::Options(format!(
                "primary {} out of {} nodes",
                opts.primary, opts.nodes
            )));
        }
        let bin = litefs_binary()?;
        check_fuse()?;
        node::clear_stale_under_tmp(TMP_PREFIX);
        let (tmp, root) = match &opts.root {
            Some(r) => (None, r.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix(TMP_PREFIX)
                    .tempdir()
                    .map_err(|e| RealError::io("create temporary root", e))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        std::fs::create_dir_all(&root).map_err(|e| RealError::io("create root", e))?;
        let root = root
            .canonicalize()
            .map_err(|e| RealError::io("canonicalize root", e))?;
        let ports = free_ports(opts.nodes)?;
        let mut nodes = Vec::with_capacity(opts.nodes);
        for (i, port) in ports.into_iter().enumerate() {
            let spec = NodeSpec::create(&root, i, port, opts.hostname(i))?;
            nodes.push(Node {
                spec,
                child: None,
                runs: 0,
                follows: opts.primary,
            });
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| RealError::Http {
                url: String::new(),
                source: e,
            })?;
        let mut cluster = Self {
            bin,
            primary: opts.primary,
            opts,
            root,
            nodes,
            http,
            _tmp: tmp,
        };
        cluster.write_configs()?;
        cluster.start_all().await?;
        Ok(cluster)
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The folder holding the nodes' directories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Node `i`'s directory (`<root>/n{i+1}`: `mnt/`, `data/`, `litefs.yml`, `litefs.log`).
    pub fn node_dir(&self, i: usize) -> &Path {
        &self.nodes[i].spec.dir
    }

    /// Node `i`'s FUSE mount directory.
    pub fn mount(&self, i: usize) -> &Path {
        &self.nodes[i].spec.mnt
    }

    /// Path of the database file through node `i`'s mount.
    pub fn db_path(&self, i: usize) -> PathBuf {
        self.mount(i).join(&self.opts.db)
    }

    /// Base URL of node `i`'s LiteFS HTTP API, e.g. `http://127.0.0.1:40123`.
    pub fn http_url(&self, i: usize) -> String {
        self.nodes[i].spec.http_url()
    }

    /// Node `i`'s hostname (what replicas read in `.primary` while it is the primary).
    pub fn hostname(&self, i: usize) -> &str {
        &self.nodes[i].spec.hostname
    }

    /// Index of the configured static primary.
    pub fn primary(&self) -> usize {
        self.primary
    }

    /// Whether node `i`'s LiteFS process is running (started and not stopped by the harness).
    pub fn is_running(&mut self, i: usize) -> bool {
        let child = &mut self.nodes[i].child;
        match child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                *child = None;
                false
            }
            None => false,
        }
    }

    /// The process id of node `i`'s LiteFS, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().and_then(Child::id)
    }

    /// Node `i`'s position read from `<mount>/<db>-pos`: (TXID, post-apply checksum).
    /// An absent file (no database yet, or the node is not mounted) reads as `(0, 0)`.
    pub fn pos(&self, i: usize) -> Result<(u64, u64)> {
        read_pos(&self.mount(i).join(format!("{}-pos", self.opts.db)))
    }

    /// Node `i`'s log file contents (every run, separated by a harness line).
    pub fn log(&self, i: usize) -> String {
        self.nodes[i].spec.read_log()
    }

    /// Node `i`'s `GET /info` as JSON.
    pub async fn info(&self, i: usize) -> Result<serde_json::Value> {
        let url = format!("{}/info", self.http_url(i));
        let http = |source| RealError::Http {
            url: url.clone(),
            source,
        };
        let resp = self.http.get(&url).send().await.map_err(http)?;
        resp.error_for_status()
            .map_err(http)?
            .json()
            .await
            .map_err(http)
    }

    /// Stops node `i`'s LiteFS with SIGTERM (SIGKILL after `stop_timeout`, or at once when
    /// this run never connected to the cluster: LiteFS ignores SIGTERM until then), waits for it
    /// to exit, and lazily unmounts whatever is left at its mount (LiteFS cannot unmount while an
    /// app holds files open there). Returns the exit status as text.
    pub async fn stop_node(&mut self, i: usize) -> Result<String> {
        // Until it has connected to the cluster, LiteFS ignores SIGTERM and SIGINT.
        let log = self.log(i);
        let run = log
            .rsplit("==== harness: start #")
            .next()
            .unwrap_or_default();
        let grace = if run.contains(SIGNAL_READY) {
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

    /// Kills node `i`'s LiteFS with SIGKILL and lazily unmounts its (now stale) mount.
    pub async fn kill_node(&mut self, i: usize) -> Result<()> {
        let mut child = self.take_child(i)?;
        node::kill(&mut child, self.mount(i)).await?;
        node::clear_mount(self.mount(i))
    }

    /// Starts node `i`'s LiteFS again with its current config and waits until it is ready
    /// (for the primary: also until every running replica has reconnected, up to about 1 s).
    /// Works while an app still holds files of the old mount open.
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
        node.child = Some(node.spec.spawn(&self.bin, node.runs)?);
        self.wait_ready(i).await?;
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
    pub async fn change_primary(&mut self, to: usize) -> Result<()> {
        self.check(to)?;
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
    pub fn set_primary(&mut self, to: usize) -> Result<()> {
        self.check(to)?;
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

    fn write_configs(&self) -> Result<()> {
        let primary = &self.nodes[self.primary].spec;
        for (i, n) in self.nodes.iter().enumerate() {
            config::write_static(&n.spec, primary, i == self.primary)?;
        }
        Ok(())
    }

    async fn start_all(&mut self) -> Result<()> {
        let p = self.primary;
        self.start_node(p).await?;
        for i in (0..self.nodes()).filter(|&i| i != p) {
            self.start_node(i).await?;
        }
        Ok(())
    }

    fn check(&self, i: usize) -> Result<()> {
        if i < self.nodes() {
            Ok(())
        } else {
            Err(RealError::NoSuchNode {
                index: i,
                nodes: self.nodes(),
            })
        }
    }

    fn take_child(&mut self, i: usize) -> Result<Child> {
        self.check(i)?;
        self.nodes[i].child.take().ok_or(RealError::BadState {
            index: i,
            state: "not running",
        })
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(child) = n.child.as_mut() {
                node::signal_group(child, nix::sys::signal::Signal::SIGKILL);
                let _ = child.start_kill();
            }
        }
        for n in &self.nodes {
            // Every LiteFS was just killed: nothing serves these mounts any more.
            super::fusectl::abort(&n.spec.mnt);
            let _ = node::clear_mount(&n.spec.mnt);
        }
    }
}
