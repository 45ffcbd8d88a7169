//! A running real LiteFS cluster on loopback: its layout, its start, what it tells about each
//! node, and its teardown.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Child;

use super::binary::{check_fuse, litefs_binary};
use super::consul::ConsulServer;
use super::error::{RealError, Result};
use super::lease::{ConsulLease, Lease};
use super::node::{self, NodeSpec, free_ports, read_pos};
use super::options::RealOptions;

/// The log line after which LiteFS handles SIGTERM: it has connected to the cluster (and, with
/// `promote`, taken the lease).
pub(super) const SIGNAL_READY: &str = "waiting for signal or subprocess to exit";

/// The line the harness writes to a node's log before each start.
const RUN_MARK: &str = "==== harness: start #";

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
    /// Whether the harness stopped its LiteFS with SIGSTOP.
    pub(super) paused: bool,
}

/// A real LiteFS cluster. Dropping it SIGKILLs every LiteFS (resuming paused ones first),
/// lazily unmounts every mount and stops the lease server.
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
    /// The lease server of a Consul lease (boxed: most clusters have none).
    pub(super) consul: Option<Box<ConsulServer>>,
    _tmp: Option<tempfile::TempDir>,
}

impl RealCluster {
    /// Lays out the nodes, writes their configs, starts the primary (with a Consul lease: the
    /// lease server, then node [`RealOptions::primary`]), then the other nodes, and waits until
    /// every node is ready — with a Consul lease, until [`wait_for_primary`](Self::wait_for_primary)
    /// holds.
    pub async fn start(opts: RealOptions) -> Result<Self> {
        if opts.nodes == 0 || opts.primary >= opts.nodes {
            return Err(RealError::Options(format!(
                "primary {} out of {} nodes",
                opts.primary, opts.nodes
            )));
        }
        if let Lease::Consul(c) = &opts.lease {
            check_consul(c)?;
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
        // The lease server's gates take their ports first: the nodes' ports are picked free
        // and released, and a gate bound after that could be handed one of them.
        let consul = match &opts.lease {
            Lease::Consul(_) => {
                let labels = (0..opts.nodes).map(|i| opts.hostname(i)).collect();
                Some(Box::new(ConsulServer::start(labels)?))
            }
            _ => None,
        };
        let ports = free_ports(opts.nodes)?;
        let mut nodes = Vec::with_capacity(opts.nodes);
        for (i, port) in ports.into_iter().enumerate() {
            let spec = NodeSpec::create(&root, i, port, opts.hostname(i))?;
            nodes.push(Node {
                spec,
                child: None,
                runs: 0,
                follows: opts.primary,
                paused: false,
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
            consul,
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

    /// Index of the configured static primary. With a Consul lease: the primary the harness
    /// learned last (at start, at a node's start, or from
    /// [`current_primary`](Self::current_primary) and [`wait_for_primary`](Self::wait_for_primary));
    /// it may have changed since — ask those for the primary now.
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
    /// An absent file (no database yet, or the node is not mounted) reads as `(0, 0)`. A paused
    /// node's mount would block the read until it resumes: that is an error instead.
    pub fn pos(&self, i: usize) -> Result<(u64, u64)> {
        self.check_unpaused(i)?;
        read_pos(&self.mount(i).join(format!("{}-pos", self.opts.db)))
    }

    /// Node `i`'s log file contents (every run, separated by a harness line).
    pub fn log(&self, i: usize) -> String {
        self.nodes[i].spec.read_log()
    }

    /// The part of node `i`'s log written since its latest start.
    pub(super) fn run_log(&self, i: usize) -> String {
        let log = self.log(i);
        log.rsplit(RUN_MARK).next().unwrap_or_default().to_owned()
    }

    /// Node `i`'s `GET /info` as JSON (2 s timeout; an error at once while it is paused).
    pub async fn info(&self, i: usize) -> Result<serde_json::Value> {
        self.check_unpaused(i)?;
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

    /// How long a node may take to be ready: the start timeout, and with a Consul lease at
    /// least long enough for a dead primary's session to run out and its lock delay to pass.
    pub(super) fn ready_timeout(&self) -> Duration {
        match &self.opts.lease {
            Lease::Consul(c) => {
                let failover = c.ttl + c.lock_delay + Duration::from_secs(5);
                self.opts.start_timeout.max(failover)
            }
            _ => self.opts.start_timeout,
        }
    }

    pub(super) fn check(&self, i: usize) -> Result<()> {
        if i < self.nodes() {
            Ok(())
        } else {
            Err(RealError::NoSuchNode {
                index: i,
                nodes: self.nodes(),
            })
        }
    }

    /// An error when node `i` does not exist or is paused.
    pub(super) fn check_unpaused(&self, i: usize) -> Result<()> {
        self.check(i)?;
        if self.nodes[i].paused {
            return Err(RealError::BadState {
                index: i,
                state: "paused (its mount and HTTP API do not answer until resumed)",
            });
        }
        Ok(())
    }

    pub(super) fn take_child(&mut self, i: usize) -> Result<Child> {
        self.check(i)?;
        self.nodes[i].paused = false;
        self.nodes[i].child.take().ok_or(RealError::BadState {
            index: i,
            state: "not running",
        })
    }
}

/// Checks a Consul lease's options: LiteFS reads a zero TTL or lock delay as its default, and
/// gives up a lease whose renewal fails when less than a second of its TTL is left.
fn check_consul(c: &ConsulLease) -> Result<()> {
    if c.ttl < Duration::from_secs(2) {
        return Err(RealError::Options(format!(
            "consul ttl {:?} is under 2 s (LiteFS renews every ttl/2 and retries renewals once \
             a second)",
            c.ttl
        )));
    }
    if c.lock_delay.is_zero() {
        return Err(RealError::Options(
            "consul lock delay 0 would be read by LiteFS as its default, 1 s".to_owned(),
        ));
    }
    if c.key.is_empty() || c.key.starts_with('/') {
        return Err(RealError::Options(format!(
            "consul key {:?} must be a non-empty relative key",
            c.key
        )));
    }
    Ok(())
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(child) = n.child.as_mut() {
                if n.paused {
                    node::signal_group(child, nix::sys::signal::Signal::SIGCONT);
                }
                node::signal_group(child, nix::sys::signal::Signal::SIGKILL);
                let _ = child.start_kill();
            }
        }
        for n in &self.nodes {
            // Every LiteFS was just killed: nothing serves these mounts any more.
            super::fusectl::abort(&n.spec.mnt);
            let _ = node::clear_mount(&n.spec.mnt);
        }
        drop(self.consul.take());
    }
}
