//! The history app on real LiteFS with a Consul lease, for the automatic-failover tests: one
//! `history_node` process per node, clients writing unique values through every node, and
//! the faults production LiteFS meets — a machine killed (LiteFS and app together), LiteFS
//! paused, a node cut off the lease, a restart — with every write's outcome recorded in a
//! [`History`] and checked against what every node holds at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use litefs_orm_testkit::real::{ConsulLease, Lease, RealCluster, RealOptions};
use tokio::task::JoinHandle;

use crate::history::{History, Holdings, Outcome, Write};

/// How a deployment's apps and lease are set up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Nodes, all candidates. Default: 3.
    pub nodes: usize,
    /// The Consul lease. Default: LiteFS's (TTL 10 s, lock delay 1 s), `promote: true`.
    pub lease: ConsulLease,
    /// `LITEFS_ORM_WRITE_TIMEOUT_MS`. Default: 10 s.
    pub write_timeout: Duration,
    /// `LITEFS_ORM_REPLICATION_TIMEOUT_MS`. Default: 5 s.
    pub replication_timeout: Duration,
    /// `LITEFS_ORM_PRIMARY_WAIT_MS`. Default: 5 s.
    pub primary_wait: Duration,
    /// `LITEFS_ORM_DURABILITY`. Default: local.
    pub durability: litefs_orm::Durability,
    /// `LITEFS_ORM_DURABILITY_TIMEOUT_MS`. Default: 1 s.
    pub durability_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nodes: 3,
            lease: ConsulLease::default(),
            write_timeout: Duration::from_secs(10),
            replication_timeout: Duration::from_secs(5),
            primary_wait: Duration::from_secs(5),
            durability: litefs_orm::Durability::Local,
            durability_timeout: Duration::from_secs(1),
        }
    }
}

impl Settings {
    /// The longest a write may take: its write deadline, then the durability wait and the
    /// read-your-writes wait of an answer that came just before it, and a second for
    /// scheduling.
    pub fn deadline(&self) -> Duration {
        self.write_timeout
            + self.durability_timeout
            + self.replication_timeout
            + Duration::from_secs(1)
    }
}

/// One node's app process; killed with its process group when dropped.
struct App {
    child: Child,
}

impl App {
    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The apps and LiteFS of one run.
pub struct Deployment {
    /// The apps, `None` while one is down. Declared first: killed before LiteFS.
    apps: Vec<Option<App>>,
    /// Real LiteFS under them.
    pub litefs: RealCluster,
    bin: PathBuf,
    envs: Vec<Vec<(String, String)>>,
    urls: Vec<String>,
    logs: PathBuf,
    starts: Vec<u32>,
    self_exits: Vec<String>,
    /// How it was set up.
    pub settings: Settings,
    /// When the deployment was up: the origin of every time in the history.
    pub began: Instant,
}

impl Deployment {
    /// Starts LiteFS with a Consul lease under `logs/litefs`, waits for its first primary,
    /// starts that node's app (which creates the table), lets it replicate, then starts the
    /// other apps. `bin` is the `history_node` binary; each app logs to `logs/nN-K.log`.
    pub async fn start(bin: &Path, logs: PathBuf, settings: Settings) -> Deployment {
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).expect("create the run's log folder");
        let options = RealOptions::default()
            .with_nodes(settings.nodes)
            .with_root(logs.join("litefs"))
            .with_lease(Lease::Consul(settings.lease.clone()));
        let mut litefs = RealCluster::start(options)
            .await
            .unwrap_or_else(|e| panic!("cannot start real LiteFS: {e}"));
        let ports = crate::free_ports(settings.nodes);
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let map: Vec<String> = (0..settings.nodes)
            .map(|i| format!("{}={}", litefs.hostname(i), urls[i]))
            .collect();
        let envs = (0..settings.nodes)
            .map(|i| {
                let ms = |d: Duration| d.as_millis().to_string();
                vec![
                    ("LITEFS_ORM_MOUNT", litefs.mount(i).display().to_string()),
                    ("LITEFS_ORM_DATABASE", "app.db".to_owned()),
                    ("LITEFS_ORM_LITEFS_HTTP", litefs.http_url(i)),
                    ("LITEFS_ORM_PRIMARY_URLS", map.join(",")),
                    ("LITEFS_ORM_SECRET", crate::SECRET.to_owned()),
                    ("LITEFS_ORM_WRITE_TIMEOUT_MS", ms(settings.write_timeout)),
                    (
                        "LITEFS_ORM_REPLICATION_TIMEOUT_MS",
                        ms(settings.replication_timeout),
                    ),
                    ("LITEFS_ORM_PRIMARY_WAIT_MS", ms(settings.primary_wait)),
                    ("LITEFS_ORM_DURABILITY", settings.durability.to_string()),
                    (
                        "LITEFS_ORM_DURABILITY_TIMEOUT_MS",
                        ms(settings.durability_timeout),
                    ),
                    ("HISTORY_ADDR", format!("127.0.0.1:{}", ports[i])),
                    ("HISTORY_NODE", format!("n{}", i + 1)),
                    ("RUST_LOG", "info".to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect()
            })
            .collect();
        let first = litefs
            .wait_for_primary(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("no first primary: {e}"));
        let mut d = Deployment {
            apps: (0..settings.nodes).map(|_| None).collect(),
            litefs,
            bin: bin.to_path_buf(),
            envs,
            urls,
            logs,
            starts: vec![0; settings.nodes],
            self_exits: Vec::new(),
            settings,
            began: Instant::now(),
        };
        d.start_app(first).await;
        d.litefs
            .sync(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("the table does not replicate: {e}"));
        for i in (0..d.nodes()).filter(|&i| i != first) {
            d.start_app(i).await;
        }
        d.began = Instant::now();
        d
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.urls.len()
    }

    /// Node `i`'s app URL.
    pub fn url(&self, i: usize) -> &str {
        &self.urls[i]
    }

    /// Every app's URL, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.urls.clone()
    }

    /// Time since the deployment was up.
    pub fn now(&self) -> Duration {
        self.began.elapsed()
    }

    /// The run's log folder.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Starts node `i`'s app and waits until it answers.
    pub async fn start_app(&mut self, i: usize) {
        self.starts[i] += 1;
        let log_path = self.logs.join(format!("n{}-{}.log", i + 1, self.starts[i]));
        let log = std::fs::File::create(&log_path).expect("create the app's log");
        let mut command = match which("setpriv") {
            // The app dies with the thread that started it, even if the test crashes.
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        use std::os::unix::process::CommandExt;
        let child = command
            .envs(self.envs[i].iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log, twice"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.apps[i] = Some(App { child });
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            let health = client
                .get(format!("{}/health", self.urls[i]))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(Ok(Some(status))) = self.apps[i].as_mut().map(|a| a.child.try_wait()) {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("node {i}'s app exited ({status}):\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "node {i}'s app never answered; see {}",
                log_path.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills node `i`'s machine: its app and its LiteFS, SIGKILL, at once.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut app) = self.apps[i].take() {
            app.kill();
        }
        self.litefs
            .kill_node(i)
            .await
            .unwrap_or_else(|e| panic!("kill node {i}'s LiteFS: {e}"));
    }

    /// Stops node `i` as a deploy does: its app, then its LiteFS (SIGTERM, which hands the
    /// lease over when it holds it).
    pub async fn stop(&mut self, i: usize) {
        if let Some(mut app) = self.apps[i].take() {
            app.kill();
        }
        self.litefs
            .stop_node(i)
            .await
            .unwrap_or_else(|e| panic!("stop node {i}'s LiteFS: {e}"));
    }

    /// Starts node `i`'s LiteFS and app again. A start that fails because another node's
    /// LiteFS exited by itself meanwhile (with `promote: true` a start needs the primary to
    /// hand the lease over) is tried again once that node is back, as a supervisor would
    /// have it.
    pub async fn restart(&mut self, i: usize) {
        for attempt in 1.. {
            match self.litefs.start_node(i).await {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    tracing::info!(node = i, error = %e, "start failed; reviving the others first");
                    self.revive_exited().await;
                    let _ = self.litefs.wait_for_primary(Duration::from_secs(60)).await;
                }
                Err(e) => panic!("start node {i}'s LiteFS: {e}"),
            }
        }
        self.start_app(i).await;
    }

    /// The nodes whose LiteFS exited by itself since the deployment started, each with the
    /// last fatal line of its log, as `nN(reason)`.
    pub fn self_exits(&self) -> &[String] {
        &self.self_exits
    }

    /// Restarts, as a supervisor would, every node whose LiteFS exited by itself (LiteFS
    /// exits with status 99 when it loses its lease while a write commits): its app goes
    /// down with it (run under LiteFS's `exec`, it would), then both start again. Returns
    /// each such node with the last fatal line of its LiteFS log.
    pub async fn revive_exited(&mut self) -> Vec<(usize, String)> {
        let mut revived = Vec::new();
        for i in 0..self.nodes() {
            if self.apps[i].is_none() || self.litefs.is_running(i) {
                continue;
            }
            let log = self.litefs.log(i);
            let why = log
                .lines()
                .rev()
                .find(|l| l.contains("fatal"))
                .unwrap_or("no fatal line in its log")
                .to_owned();
            if let Some(mut app) = self.apps[i].take() {
                app.kill();
            }
            self.litefs
                .start_node(i)
                .await
                .unwrap_or_else(|e| panic!("start node {i}'s LiteFS again: {e}"));
            self.start_app(i).await;
            self.self_exits
                .push(format!("n{}({})", i + 1, why.replace(' ', "_")));
            revived.push((i, why));
        }
        revived
    }

    /// The resets LiteFS logged: a node whose position was past the primary's on another
    /// history (`client transaction id (X) exceeds primary transaction id (Y), clearing
    /// client position`), each as (the primary that logged it, X, Y). Whatever that node
    /// held past Y is gone: LiteFS lost it, not the library.
    pub fn litefs_resets(&self) -> Vec<(usize, u64, u64)> {
        let mut resets = Vec::new();
        for i in 0..self.nodes() {
            for line in self.litefs.log(i).lines() {
                let Some(rest) = line.split("client transaction id (").nth(1) else {
                    continue;
                };
                let hex = |s: &str| u64::from_str_radix(s, 16).ok();
                let client = rest.split(')').next().and_then(hex);
                let primary = rest
                    .split("primary transaction id (")
                    .nth(1)
                    .and_then(|r| r.split(')').next())
                    .and_then(hex);
                if let (Some(x), Some(y)) = (client, primary) {
                    resets.push((i, x, y));
                }
            }
        }
        resets
    }

    /// The TXID of every running, unpaused node, by index.
    pub fn positions(&mut self) -> BTreeMap<usize, u64> {
        let live: Vec<usize> = (0..self.nodes())
            .filter(|&i| self.litefs.is_running(i) && !self.litefs.is_paused(i))
            .collect();
        live.into_iter()
            .filter_map(|i| self.litefs.pos(i).ok().map(|(txid, _)| (i, txid)))
            .collect()
    }

    /// Once every node runs again: waits for one primary that every node follows and for
    /// every replica to reach it, then reads what each node's app holds.
    pub async fn holdings(&mut self) -> Vec<Holdings> {
        self.litefs
            .wait_for_primary(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("no primary after the run: {e}"));
        self.litefs
            .sync(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("the nodes do not converge: {e}"));
        let client = reqwest::Client::new();
        let mut all = Vec::new();
        for url in &self.urls {
            let start = Instant::now();
            loop {
                let read = client
                    .get(format!("{url}/values"))
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await;
                if let Ok(r) = read
                    && r.status().is_success()
                    && let Ok(h) = r.json::<Holdings>().await
                {
                    all.push(h);
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "{url} never listed its values"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        all
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// Clients writing unique values round-robin through every node until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    history: History,
}

impl Load {
    /// Starts `clients` clients writing through `urls`; times are since `began`. A client
    /// gives up on a request after `patience` (longer than any write's deadline).
    pub fn start(urls: Vec<String>, clients: usize, began: Instant, patience: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let history = History::default();
        let http = reqwest::Client::builder()
            .timeout(patience)
            .build()
            .expect("an HTTP client");
        let tasks = (0..clients)
            .map(|c| {
                let (urls, stop, history, http) =
                    (urls.clone(), stop.clone(), history.clone(), http.clone());
                tokio::spawn(async move {
                    let mut k = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        let node = (c + k) % urls.len();
                        let value = format!("c{c}-{k}");
                        let sent = began.elapsed();
                        let outcome = write(&http, &urls[node], &value).await;
                        let took = began.elapsed() - sent;
                        let pause = !matches!(outcome, Outcome::Acked { .. });
                        history.record(Write {
                            value,
                            node,
                            sent,
                            took,
                            outcome,
                        });
                        k += 1;
                        if pause {
                            // A node that is down refuses at once: do not spin on it.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            tasks,
            history,
        }
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Acknowledged writes sent at or after `since`, through `node` when given.
    pub fn acked_since(&self, since: Duration, node: Option<usize>) -> usize {
        self.history
            .writes()
            .iter()
            .filter(|w| w.sent >= since && node.is_none_or(|n| n == w.node))
            .filter(|w| matches!(w.outcome, Outcome::Acked { .. }))
            .count()
    }

    /// Waits until every node in `nodes` acknowledged `n` writes sent at or after `since`;
    /// false after `timeout`.
    pub async fn wait_for_acks(
        &self,
        since: Duration,
        nodes: &[usize],
        n: usize,
        timeout: Duration,
    ) -> bool {
        let start = Instant::now();
        loop {
            if nodes
                .iter()
                .all(|&node| self.acked_since(since, Some(node)) >= n)
            {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the clients once their requests in flight end; the whole history.
    pub async fn stop(self) -> Vec<Write> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            let _ = task.await;
        }
        self.history.writes()
    }
}

/// One write of `value` through the app at `url`.
async fn write(http: &reqwest::Client, url: &str, value: &str) -> Outcome {
    let sent = http.post(format!("{url}/write/{value}")).send().await;
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            return Outcome::NotSent {
                message: e.to_string(),
            };
        }
        Err(e) => {
            return Outcome::NoAnswer {
                message: e.to_string(),
            };
        }
    };
    let status = response.status();
    let body: serde_json::Value = match response.json().await {
        Ok(body) => body,
        Err(e) => {
            return Outcome::NoAnswer {
                message: format!("{status}: {e}"),
            };
        }
    };
    if status.is_success() {
        return Outcome::Acked {
            txid: body["txid"].as_u64(),
        };
    }
    Outcome::Failed {
        kind: body["kind"].as_str().unwrap_or("?").to_owned(),
        may_be_committed: body["may_be_committed"].as_bool().unwrap_or(true),
        committed: body["committed"].as_bool().unwrap_or(false),
        txid: body["txid"].as_u64(),
        message: body["message"].as_str().unwrap_or_default().to_owned(),
    }
}

/// What happened between a fault at `fault` and the first acknowledged write sent after
/// it: how long writes stopped (`None` when none was acknowledged), and how the writes that
/// ended meanwhile ended, by kind.
pub fn gap(writes: &[Write], fault: Duration) -> (Option<Duration>, BTreeMap<String, usize>) {
    let resumed = writes
        .iter()
        .filter(|w| w.sent >= fault && matches!(w.outcome, Outcome::Acked { .. }))
        .map(|w| w.sent + w.took)
        .min();
    let until = resumed.unwrap_or(Duration::MAX);
    let mut kinds = BTreeMap::new();
    for w in writes {
        let ended = w.sent + w.took;
        if ended >= fault && ended < until {
            let kind = match &w.outcome {
                Outcome::Acked { .. } => "acked".to_owned(),
                Outcome::Failed { kind, .. } => kind.clone(),
                Outcome::NotSent { .. } => "not_sent".to_owned(),
                Outcome::NoAnswer { .. } => "no_answer".to_owned(),
            };
            *kinds.entry(kind).or_default() += 1;
        }
    }
    (resumed.map(|r| r.saturating_sub(fault)), kinds)
}
