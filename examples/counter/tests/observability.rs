//! What the counter shows of its cluster: `/metrics` in Prometheus text format,
//! `/api/cluster` with every node, how far each is behind, and the nodes that do not answer.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::Deployment;

/// One deployment (three app processes and the stand-in) at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"))
}

async fn text(url: &str) -> String {
    let response = get(url).await;
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.text().await.expect("a body")
}

async fn cluster(url: &str) -> Value {
    let body = text(&format!("{url}/api/cluster")).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The entry of node `name` in a `/api/cluster` answer.
fn entry<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["nodes"]
        .as_array()
        .expect("a list of nodes")
        .iter()
        .find(|n| n["status"]["node"] == name || n["url"] == format!("http://{name}"))
        .unwrap_or_else(|| panic!("no node {name} in {view:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_forwarded_by_a_replica_shows_in_its_prometheus_metrics() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("metrics", Duration::from_secs(5)).await;
    text(&format!("{}/", d.url(1))).await;
    let metrics = text(&format!("{}/metrics", d.url(1))).await;
    assert!(
        metrics.contains("# TYPE litefs_orm_calls_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"litefs_orm_calls_total{name="counter.count_view",op="run",route="forwarded",outcome="ok"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE litefs_orm_forward_duration_seconds histogram"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_api_lists_every_node_with_its_role_and_txid() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("cluster-api", Duration::from_secs(5)).await;
    let view = cluster(d.url(2)).await;
    assert_eq!(view["nodes"].as_array().unwrap().len(), 3, "{view:#}");
    let primary = entry(&view, &d.nodes[0].name);
    assert_eq!(primary["status"]["role"], "primary", "{view:#}");
    for replica in &d.nodes[1..] {
        let e = entry(&view, &replica.name);
        assert_eq!(
            e["status"]["role"],
            format!("replica of {}", d.nodes[0].name),
            "{view:#}"
        );
        assert!(e["status"]["txid"].as_u64().is_some(), "{view:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_the_primary_show_how_far_in_the_cluster_api() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("cluster-behind", Duration::from_secs(5)).await;
    d.litefs.sync().await.expect("replicas catch up");
    d.litefs.pause_replication();
    // Counted on the primary itself: one transaction the paused replicas do not have.
    text(&format!("{}/", d.url(0))).await;
    let view = cluster(d.url(1)).await;
    d.litefs.resume_replication();
    assert_eq!(entry(&view, &d.nodes[0].name)["behind"], 0, "{view:#}");
    for replica in &d.nodes[1..] {
        assert_eq!(entry(&view, &replica.name)["behind"], 1, "{view:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_answer_is_listed_as_unreachable() {
    let _serial = SERIAL.lock().await;
    let mut d = Deployment::start("cluster-unreachable", Duration::from_secs(5)).await;
    d.nodes[2].kill();
    let view = cluster(d.url(1)).await;
    let gone = entry(&view, &d.nodes[2].name);
    assert!(gone["status"].is_null(), "{view:#}");
    assert!(gone["error"].as_str().is_some(), "{view:#}");
    assert_eq!(entry(&view, &d.nodes[0].name)["status"]["role"], "primary");
}
