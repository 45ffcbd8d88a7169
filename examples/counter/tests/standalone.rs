//! The counter binary alone, with no LiteFS: what `cargo run -p counter` starts.

mod support;

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use support::{Node, count, element, free_ports, log_dir};

async fn start(test: &str) -> Node {
    let dir = log_dir(test);
    let port = free_ports(1)[0];
    let mut node = Node::spawn(port, &[], &dir, dir.join("node.log"));
    node.wait_healthy(&reqwest::Client::new()).await;
    node
}

#[tokio::test]
async fn with_no_configuration_it_counts_views_in_a_local_sqlite_file() {
    let node = start("standalone-counts").await;
    let client = reqwest::Client::new();
    for expected in 1..=3 {
        let body = client.get(format!("{}/", node.url)).send().await.unwrap();
        assert_eq!(body.status(), StatusCode::OK);
        let body = body.text().await.unwrap();
        assert_eq!(count(&body), Some(expected), "{body}");
        assert_eq!(element(&body, "role").as_deref(), Some("standalone"));
    }
    let counts: serde_json::Value = client
        .get(format!("{}/api/counts", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["counts"]["home"], 3, "{counts}");
    let db = node.log.parent().unwrap().join("app.db");
    assert!(db.exists(), "no {}", db.display());
}

#[tokio::test]
async fn bad_page_names_are_refused_with_400_and_nothing_is_counted() {
    let node = start("standalone-names").await;
    let client = reqwest::Client::new();
    let long = "x".repeat(65);
    for name in ["a%20b", "%3Cscript%3E", "dot.html", long.as_str()] {
        let response = client
            .get(format!("{}/pages/{name}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("<script>"), "{body}");
    }
    let counts: serde_json::Value = client
        .get(format!("{}/api/counts", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["counts"], serde_json::json!({}), "{counts}");
}

#[tokio::test]
async fn sigterm_stops_the_app_cleanly() {
    let mut node = start("standalone-sigterm").await;
    let kill = Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = node
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM:\n{}", node.log_text()));
    assert!(status.success(), "{status}:\n{}", node.log_text());
    assert!(
        node.log_text().contains("SIGTERM received"),
        "{}",
        node.log_text()
    );
}
