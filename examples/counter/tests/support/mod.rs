//! Test support: the counter binary as child processes, alone or on the LiteFS stand-in.
//!
//! Every process is killed when its [`Node`] is dropped, so a failing test leaves none behind.
// Each test file uses a part of this module.
#![allow(dead_code)]

pub mod chrome;
pub mod load;
pub mod split;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use litefs_orm_testkit::{Cluster, ClusterOptions};
use litefs_orm_tests::proxy::FaultProxy;

/// The RPC secret of test clusters.
pub const SECRET: &str = "counter e2e secret, long enough to sign";

/// How long a node may take to answer `/health` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running counter process; killed (and reaped) when dropped.
pub struct Node {
    /// Its node name (`COUNTER_NODE`), also its LiteFS hostname in a cluster.
    pub name: String,
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Its stdout and stderr.
    pub log: PathBuf,
    child: Child,
}

impl Node {
    /// Starts the counter binary listening on `127.0.0.1:{port}`, with `env` added to a
    /// clean environment (no inherited `LITEFS_ORM_*`, `COUNTER_*`, `PORT`), in `dir`.
    pub fn spawn(port: u16, env: &[(&str, String)], dir: &Path, log: PathBuf) -> Node {
        let name = format!("127.0.0.1:{port}");
        let out = File::create(&log).expect("create the node's log");
        let err = out.try_clone().expect("clone the log handle");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_counter"));
        for (key, _) in std::env::vars() {
            if key.starts_with("LITEFS_ORM_") || key.starts_with("COUNTER_") || key == "PORT" {
                cmd.env_remove(key);
            }
        }
        cmd.env("COUNTER_ADDR", &name)
            .env("COUNTER_NODE", &name)
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().expect("start the counter binary");
        Node {
            url: format!("http://{name}"),
            name,
            log,
            child,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/health` answers 200; panics with the node's log if it exits or takes
    /// longer than 30 s.
    pub async fn wait_healthy(&mut self, client: &reqwest::Client) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} at start:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            let health = client
                .get(format!("{}/health", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "{} not healthy after {START_TIMEOUT:?}:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process with SIGKILL (on Unix) and reaps it: a crash, with no shutdown and
    /// no chance to answer the requests it holds.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What the process has written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a [`Deployment`].
#[derive(Clone, Debug)]
pub struct Setup {
    /// Every node's `LITEFS_ORM_REPLICATION_TIMEOUT_MS`.
    pub replication_timeout: Duration,
    /// Put a [`FaultProxy`] in front of every app and make the proxies' addresses the LiteFS
    /// hostnames, so every forwarded write passes through the primary's proxy (clients still
    /// reach the apps directly). Off: the hostnames are the apps' own addresses.
    pub proxied: bool,
}

/// A primary and replicas as separate counter processes on the LiteFS stand-in.
pub struct Deployment {
    /// The processes, node 0 the primary. Declared first: dropped (killed) before the cluster.
    pub nodes: Vec<Node>,
    /// The stand-in replicating between the nodes' directories.
    pub litefs: Cluster,
    /// With [`Setup::proxied`]: the proxy in front of each node, in node order.
    pub proxies: Vec<FaultProxy>,
    /// Each node's environment, kept to [`restart`](Self::restart) it as it was.
    envs: Vec<Vec<(&'static str, String)>>,
    logs: PathBuf,
}

impl Deployment {
    /// Starts the stand-in with 3 nodes whose LiteFS hostnames are their apps' addresses,
    /// then the counter on each, with `LITEFS_ORM_REPLICATION_TIMEOUT_MS` set to
    /// `replication_timeout`; returns once every node is healthy. Logs go to
    /// `<CARGO_TARGET_TMPDIR>/counter-tests/<test>/`.
    pub async fn start(test: &str, replication_timeout: Duration) -> Deployment {
        let setup = Setup {
            replication_timeout,
            proxied: false,
        };
        Self::start_with(test, setup).await
    }

    /// Like [`start`](Self::start), as `setup` says.
    pub async fn start_with(test: &str, setup: Setup) -> Deployment {
        // The apps' ports stay bound until the proxies have theirs, so no proxy takes one.
        let held = bind_free_ports(3);
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let mut proxies = Vec::new();
        if setup.proxied {
            for port in &ports {
                proxies.push(FaultProxy::start(([127, 0, 0, 1], *port).into()).await);
            }
        }
        drop(held);
        let hostnames: Vec<String> = match setup.proxied {
            true => proxies.iter().map(|p| p.addr().to_string()).collect(),
            false => ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        };
        let litefs = Cluster::start(ClusterOptions::default().nodes(3).hostnames(hostnames))
            .await
            .expect("start the LiteFS stand-in");
        let logs = log_dir(test);
        let mut nodes = Vec::new();
        let mut envs = Vec::new();
        for (i, &port) in ports.iter().enumerate() {
            let http = litefs.http_addr(i).expect("the stand-in's HTTP API");
            // Every node knows the others' apps, for `/api/cluster`.
            let peers: Vec<String> = ports
                .iter()
                .filter(|p| **p != port)
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect();
            let env = vec![
                ("LITEFS_ORM_MOUNT", litefs.mount(i).display().to_string()),
                ("LITEFS_ORM_DATABASE", "app.db".to_owned()),
                ("LITEFS_ORM_LITEFS_HTTP", format!("http://{http}")),
                ("LITEFS_ORM_PRIMARY_URL", "http://{primary}".to_owned()),
                ("LITEFS_ORM_SECRET", SECRET.to_owned()),
                (
                    "LITEFS_ORM_REPLICATION_TIMEOUT_MS",
                    setup.replication_timeout.as_millis().to_string(),
                ),
                ("COUNTER_PEERS", peers.join(",")),
            ];
            let log = logs.join(format!("n{}.log", i + 1));
            nodes.push(Node::spawn(port, &env, &logs, log));
            envs.push(env);
        }
        let client = reqwest::Client::new();
        for node in &mut nodes {
            node.wait_healthy(&client).await;
        }
        Deployment {
            nodes,
            litefs,
            proxies,
            envs,
            logs,
        }
    }

    /// Node `i`'s base URL.
    pub fn url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }

    /// Kills node `i`'s process if it still runs, starts it again on the same port, mount
    /// and settings (its log goes to `n{i+1}-restarted.log`), and waits until it is healthy:
    /// a crashed machine coming back, in whatever role LiteFS now gives it.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        let port = self.nodes[i]
            .name
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("a node's name is its address");
        let log = self.logs.join(format!("n{}-restarted.log", i + 1));
        self.nodes[i] = Node::spawn(port, &self.envs[i], &self.logs, log);
        self.nodes[i].wait_healthy(&reqwest::Client::new()).await;
    }
}

/// `n` distinct free loopback ports: bound together, then released for the apps to take.
pub fn free_ports(n: usize) -> Vec<u16> {
    bind_free_ports(n)
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// `n` listeners on distinct free loopback ports; dropping them frees the ports.
fn bind_free_ports(n: usize) -> Vec<TcpListener> {
    (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect()
}

/// A fresh directory for test `test`'s logs and files.
pub fn log_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("counter-tests")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    dir
}

/// The text of the element with `id="{id}"` in an HTML page (no nested markup).
pub fn element(html: &str, id: &str) -> Option<String> {
    let open = format!("id=\"{id}\"");
    let start = html.find(&open)?;
    let rest = &html[start..];
    let text = &rest[rest.find('>')? + 1..];
    Some(text[..text.find('<')?].to_owned())
}

/// The count a counted-view page shows.
pub fn count(html: &str) -> Option<i64> {
    element(html, "count")?.trim().parse().ok()
}

/// Whether a failed view's page says it was counted: `yes`, `no` or `maybe` (its
/// `data-committed`).
pub fn committed(html: &str) -> Option<String> {
    let start = html.find("data-committed=\"")? + "data-committed=\"".len();
    let rest = &html[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Every page's count as node `url` has it (`GET /api/counts`).
pub async fn counts(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = client
        .get(format!("{url}/api/counts"))
        .send()
        .await
        .expect("GET /api/counts");
    let status = response.status();
    let body = response.text().await.expect("the counts' body");
    assert!(status.is_success(), "{url}/api/counts: {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}/api/counts: {e}: {body}"))
}

/// Counts a view of `page` through node `url`'s API; returns the session token it answered
/// with (the `x-litefs-orm-token` header).
pub async fn api_view(client: &reqwest::Client, url: &str, page: &str) -> String {
    let response = client
        .post(format!("{url}/api/pages/{page}/views"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}/api/pages/{page}/views: {e:?}"));
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    response
        .headers()
        .get("x-litefs-orm-token")
        .expect("the view's token")
        .to_str()
        .unwrap()
        .to_owned()
}

/// `GET /api/counts` on node `url`, carrying the session token `token`.
pub async fn counts_with(client: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    client
        .get(format!("{url}/api/counts"))
        .header("x-litefs-orm-token", token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}/api/counts: {e:?}"))
        .json()
        .await
        .expect("the counts as JSON")
}
