//! The counter binary as a primary and two replicas, separate processes on the LiteFS stand-in.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::{Deployment, count, counts, element};

/// One deployment (three app processes and the stand-in) at a time: together they would
/// crowd a small machine's cores, and this file is about behaviour, not contention.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CLIENTS: usize = 8;
const VIEWS_PER_CLIENT: usize = 25;

/// One view of `page` through node `url`: the status, the page, and how long it took.
async fn view(client: &reqwest::Client, url: &str, page: &str) -> (StatusCode, String, Duration) {
    let start = Instant::now();
    let response = client
        .get(format!("{url}/pages/{page}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}/pages/{page}: {e:?}"));
    let status = response.status();
    let body = response.text().await.expect("the page's body");
    (status, body, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_from_eight_clients_on_every_node_are_each_counted_once_and_only_rise() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("concurrent", Duration::from_secs(5)).await;
    let urls: Vec<String> = d.nodes.iter().map(|n| n.url.clone()).collect();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let urls = urls.clone();
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            let (mut seen, mut failures) = (Vec::new(), Vec::new());
            for k in 0..VIEWS_PER_CLIENT {
                let url = &urls[(c + k) % urls.len()];
                let (status, body, _) = view(&client, url, "e2e").await;
                if status != StatusCode::OK {
                    failures.push(format!("{url}: {status}: {:?}", element(&body, "error")));
                    continue;
                }
                let n = count(&body).unwrap_or_else(|| panic!("no count in {body}"));
                if let Some(&last) = seen.last() {
                    assert!(n > last, "client {c} saw {n} after {last} (from {url})");
                }
                seen.push(n);
            }
            (seen, failures)
        }));
    }
    let (mut all, mut failures) = (Vec::new(), Vec::new());
    for client in clients {
        let (seen, failed) = client.await.unwrap();
        all.extend(seen);
        failures.extend(failed);
    }
    assert!(failures.is_empty(), "failed views: {failures:#?}");

    // Every successful view got its own count: 1, 2, ... with no gap and no repeat.
    all.sort_unstable();
    let successes = all.len() as i64;
    assert_eq!(successes, (CLIENTS * VIEWS_PER_CLIENT) as i64);
    assert_eq!(all, (1..=successes).collect::<Vec<_>>());

    d.litefs.sync().await.expect("replicas catch up");
    let client = reqwest::Client::new();
    for node in &d.nodes {
        let counts = counts(&client, &node.url).await;
        assert_eq!(
            counts["counts"]["e2e"], successes,
            "{}: {counts}",
            node.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_replication_gives_bounded_503s_on_replicas_and_resuming_recovers() {
    let timeout = Duration::from_millis(600);
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("paused", timeout).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let (status, _, _) = view(&client, d.url(1), "paused").await;
    assert_eq!(status, StatusCode::OK);

    d.litefs.pause_replication();
    // Views through the replicas are committed on the primary, and the replicas cannot
    // show them: each answers 503 once its replication timeout has passed, no later.
    let mut stalled = Vec::new();
    for i in 0..CLIENTS {
        let (client, url) = (client.clone(), d.url(1 + i % 2).to_owned());
        stalled.push(tokio::spawn(
            async move { view(&client, &url, "paused").await },
        ));
    }
    // Meanwhile the primary counts, and the replicas serve reads (stale) and health at once.
    let (status, body, _) = view(&client, d.url(0), "paused").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for i in 1..3 {
        let start = Instant::now();
        let health = client
            .get(format!("{}/health", d.url(i)))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        counts(&client, d.url(i)).await;
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
    let mut committed_503s = 0;
    for task in stalled {
        let (status, body, took) = task.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(took >= timeout, "answered in {took:?}, before the timeout");
        assert!(
            took < timeout + Duration::from_secs(3),
            "answered in {took:?}"
        );
        assert!(body.contains("counted on the primary"), "{body}");
        assert!(body.contains(r#"data-committed="yes""#), "{body}");
        committed_503s += 1;
    }

    d.litefs.resume_replication();
    let mut successes = 2;
    for i in [1, 2, 1, 2] {
        let (status, body, _) = view(&client, d.url(i), "paused").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        successes += 1;
    }

    // Nothing was lost or counted twice: 503s said "committed", and they were.
    d.litefs.sync().await.expect("replicas catch up");
    for node in &d.nodes {
        let counts = counts(&client, &node.url).await;
        assert_eq!(
            counts["counts"]["paused"],
            successes + committed_503s,
            "{}: {counts}",
            node.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_shows_its_own_role_and_the_same_primary() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("roles", Duration::from_secs(5)).await;
    let client = reqwest::Client::new();
    let primary = &d.nodes[0].name;
    for (i, node) in d.nodes.iter().enumerate() {
        let (status, body, _) = view(&client, &node.url, "roles").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(element(&body, "node").as_deref(), Some(node.name.as_str()));
        assert_eq!(count(&body), Some(i as i64 + 1));
        let role = element(&body, "role").unwrap();
        if i == 0 {
            assert_eq!(role, "primary");
        } else {
            assert_eq!(role, format!("replica of {primary}"));
            assert_eq!(element(&body, "primary").as_deref(), Some(primary.as_str()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_client_carrying_its_token_sees_its_view_on_another_node() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("session-api", Duration::from_secs(5)).await;
    // Node 3 holds no new transaction until a moment after the view: without the token it
    // would answer without it.
    d.litefs.pause_replication_to(2);
    let client = reqwest::Client::new();
    let token = support::api_view(&client, d.url(1), "api-session").await;
    let resume = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        d.litefs.resume_replication_to(2);
    };
    let (seen, ()) = tokio::join!(support::counts_with(&client, d.url(2), &token), resume);
    assert_eq!(seen["counts"]["api-session"], 1, "{seen}");
    assert_eq!(seen["node"], d.nodes[2].name.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_view_while_no_primary_is_known_is_a_503_to_retry_and_not_counted() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("api-no-primary", Duration::from_secs(5)).await;
    d.litefs.lose_primary().await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/pages/no-primary/views", d.url(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry = response.headers().get("retry-after").cloned();
    assert_eq!(retry.as_ref().and_then(|v| v.to_str().ok()), Some("1"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["committed"], "no", "{body}");
}
