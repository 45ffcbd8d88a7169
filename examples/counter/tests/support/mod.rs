//! Test support: the counter binary as child processes, alone or on the LiteFS stand-in.
//!
//! Every process is killed when its [`Node`] is dropped, so a failing test leaves none behind.
// Each test file uses a part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use litefs_orm::testkit::{Cluster, ClusterOptions};

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

/// A primary and replicas as separate counter processes on the LiteFS stand-in.
pub struct Deployment {
    /// The processes, node 0 the primary. Declared first: dropped (killed) before the cluster.
    pub nodes: Vec<Node>,
    /// The stand-in replicating between the nodes' directories.
    pub litefs: Cluster,
}

impl Deployment {
    /// Starts the stand-in with 3 nodes whose LiteFS hostnames are their apps' addresses,
    /// then the counter on each, with `LITEFS_ORM_REPLICATION_TIMEOUT_MS` set to
    /// `replication_timeout`; returns once every node is healthy. Logs go to
    /// `<CARGO_TARGET_TMPDIR>/counter-tests/<test>/`.
    pub async fn start(test: &str, replication_timeout: Duration) -> Deployment {
        let ports = free_ports(3);
        let hostnames: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let litefs = Cluster::start(ClusterOptions::default().nodes(3).hostnames(hostnames))
            .await
            .expect("start the LiteFS stand-in");
        let logs = log_dir(test);
        let mut nodes = Vec::new();
        for (i, port) in ports.into_iter().enumerate() {
            let http = litefs.http_addr(i).expect("the stand-in's HTTP API");
            let env = [
                ("LITEFS_ORM_MOUNT", litefs.mount(i).display().to_string()),
                ("LITEFS_ORM_DATABASE", "app.db".to_owned()),
                ("LITEFS_ORM_LITEFS_HTTP", format!("http://{http}")),
                ("LITEFS_ORM_PRIMARY_URL", "http://{primary}".to_owned()),
                ("LITEFS_ORM_SECRET", SECRET.to_owned()),
                (
                    "LITEFS_ORM_REPLICATION_TIMEOUT_MS",
                    replication_timeout.as_millis().to_string(),
                ),
            ];
            let log = logs.join(format!("n{}.log", i + 1));
            nodes.push(Node::spawn(port, &env, &logs, log));
        }
        let client = reqwest::Client::new();
        for node in &mut nodes {
            node.wait_healthy(&client).await;
        }
        Deployment { nodes, litefs }
    }

    /// Node `i`'s base URL.
    pub fn url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }
}

/// `n` distinct free loopback ports: bound together, then released for the apps to take.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
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

/// Every page's count as node `url` has it (`GET /api/counts`).
pub async fn counts(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = client
        .get(format!("{url}/api/counts"))
        .send()
        .await
        .expect("GET /api/counts");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("counts as JSON")
}
