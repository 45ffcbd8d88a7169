//! The counter binary as a primary and two replicas, separate processes on real LiteFS
//! v0.5.14 (static lease, one FUSE mount per node). The LiteFS hostnames `n1`..`n3` do not
//! resolve: every node maps them to the apps with `LITEFS_ORM_PRIMARY_URLS`.

mod support;

use std::time::Duration;

use litefs_orm_testkit::real::{RealCluster, RealOptions};
use reqwest::StatusCode;
use support::{Node, SECRET, committed, count, counts, free_ports, log_dir};

/// One deployment at a time: three app processes and three LiteFS processes on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three counter processes on real LiteFS, node 0 the primary.
struct RealDeployment {
    /// The app processes; declared first, so they are killed before LiteFS stops.
    nodes: Vec<Node>,
    litefs: RealCluster,
    envs: Vec<Vec<(&'static str, String)>>,
    ports: Vec<u16>,
    logs: std::path::PathBuf,
}

impl RealDeployment {
    async fn start(test: &str, write_timeout: Duration) -> RealDeployment {
        let litefs = RealCluster::start(RealOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot start real LiteFS: {e}"));
        let ports = free_ports(3);
        let urls: Vec<String> = (0..3)
            .map(|i| format!("{}=http://127.0.0.1:{}", litefs.hostname(i), ports[i]))
            .collect();
        let logs = log_dir(test);
        let mut envs = Vec::new();
        for i in 0..3 {
            envs.push(vec![
                ("LITEFS_ORM_MOUNT", litefs.mount(i).display().to_string()),
                ("LITEFS_ORM_DATABASE", "app.db".to_owned()),
                ("LITEFS_ORM_LITEFS_HTTP", litefs.http_url(i)),
                ("LITEFS_ORM_PRIMARY_URLS", urls.join(",")),
                ("LITEFS_ORM_SECRET", SECRET.to_owned()),
                (
                    "LITEFS_ORM_WRITE_TIMEOUT_MS",
                    write_timeout.as_millis().to_string(),
                ),
            ]);
        }
        let mut d = RealDeployment {
            nodes: Vec::new(),
            litefs,
            envs,
            ports,
            logs,
        };
        // The primary creates the database and migrates; replicas wait for it to replicate.
        for i in 0..3 {
            let node = d.spawn(i, &format!("n{}.log", i + 1)).await;
            d.nodes.push(node);
        }
        d
    }

    async fn spawn(&self, i: usize, log: &str) -> Node {
        let mut node = Node::spawn(
            self.ports[i],
            &self.envs[i],
            &self.logs,
            self.logs.join(log),
        );
        node.wait_healthy(&reqwest::Client::new()).await;
        node
    }

    fn url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }
}

async fn view(client: &reqwest::Client, url: &str, page: &str) -> (StatusCode, String) {
    let response = client
        .get(format!("{url}/pages/{page}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}/pages/{page}: {e:?}"));
    let status = response.status();
    (status, response.text().await.expect("the page's body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_from_eight_clients_on_every_real_litefs_node_are_each_counted_once() {
    const CLIENTS: usize = 8;
    const VIEWS: usize = 25;
    let _serial = SERIAL.lock().await;
    let mut d = RealDeployment::start("real-concurrent", Duration::from_secs(10)).await;
    let urls: Vec<String> = d.nodes.iter().map(|n| n.url.clone()).collect();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let urls = urls.clone();
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen = Vec::new();
            for k in 0..VIEWS {
                let url = &urls[(c + k) % urls.len()];
                let (status, body) = view(&client, url, "e2e").await;
                assert_eq!(status, StatusCode::OK, "{url}: {body}");
                let n = count(&body).unwrap_or_else(|| panic!("no count in {body}"));
                if let Some(&last) = seen.last() {
                    assert!(n > last, "client {c} saw {n} after {last} (from {url})");
                }
                seen.push(n);
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.await.unwrap());
    }
    all.sort_unstable();
    let total = (CLIENTS * VIEWS) as i64;
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    d.litefs.sync(Duration::from_secs(10)).await.unwrap();
    let client = reqwest::Client::new();
    for node in &d.nodes {
        let counts = counts(&client, &node.url).await;
        assert_eq!(counts["counts"]["e2e"], total, "{}: {counts}", node.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_primarys_app_is_killed_replica_views_fail_uncounted_and_count_again_after() {
    let _serial = SERIAL.lock().await;
    let mut d = RealDeployment::start("real-app-killed", Duration::from_secs(2)).await;
    let client = reqwest::Client::new();
    let (status, _) = view(&client, d.url(1), "crash").await;
    assert_eq!(status, StatusCode::OK);

    // The primary's app dies; its LiteFS stays up, so replicas still see it as primary.
    d.nodes[0].kill();
    let (status, body) = view(&client, d.url(1), "crash").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(committed(&body).as_deref(), Some("no"), "{body}");

    d.nodes[0] = d.spawn(0, "n1-restarted.log").await;
    let (status, body) = view(&client, d.url(2), "crash").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        count(&body),
        Some(2),
        "the failed view was not counted: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_real_litefs_an_api_client_carrying_its_token_sees_each_view_on_another_node() {
    let _serial = SERIAL.lock().await;
    let d = RealDeployment::start("real-session-api", Duration::from_secs(10)).await;
    let client = reqwest::Client::new();
    for n in 1..=20 {
        let token = support::api_view(&client, d.url(1), "real-api-session").await;
        let seen = support::counts_with(&client, d.url(2), &token).await;
        assert_eq!(seen["counts"]["real-api-session"], n, "{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_real_litefs_chromium_posts_a_view_on_one_node_and_sees_it_on_another() {
    let _serial = SERIAL.lock().await;
    let d = RealDeployment::start("real-session-browser", Duration::from_secs(10)).await;
    let work = d.logs.clone();
    let (balancer, _lb) = support::split::start(d.url(1), d.url(2)).await;
    let start = format!("{balancer}/start/real-session");
    let dom = tokio::task::spawn_blocking(move || {
        support::chrome::browse(
            &work,
            &["--dump-dom", "--virtual-time-budget=20000"],
            &start,
        )
    })
    .await
    .unwrap();
    assert_eq!(
        support::element(&dom, "node").as_deref(),
        Some(d.nodes[2].name.as_str()),
        "{dom}"
    );
    assert_eq!(count(&dom), Some(1), "{dom}");
}
