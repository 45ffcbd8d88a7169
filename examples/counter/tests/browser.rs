//! A real browser: headless Chromium renders the counter page and the cluster page served by
//! a replica.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`; `scripts/test` installs it when
//! run as root). Without it this test fails, saying so. `CHROMIUM` overrides the path.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::chrome::{browse, output_dir};
use support::{Deployment, count, counts, element, split};

/// One deployment and one browser at a time: together they would crowd a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes a 1024×768 screenshot of `page` into `file` under the test output directory,
/// checks that it is a PNG of that size with something drawn, and returns its path.
fn screenshot(work: &Path, page: &str, file: &str) -> PathBuf {
    let screenshot = output_dir().join(file);
    let _ = std::fs::remove_file(&screenshot);
    browse(
        work,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1024,768",
            "--hide-scrollbars",
        ],
        page,
    );
    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", screenshot.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (1024, 768), "screenshot size");
    assert!(
        png.len() > 10_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    screenshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_a_replicas_count_and_node_and_sees_it_rise_on_reload() {
    let _serial = SERIAL.lock().await;
    let browser = support::chrome::chromium();
    let d = Deployment::start("browser", Duration::from_secs(5)).await;
    let work = d.nodes[0].log.parent().unwrap().to_owned();
    let (primary, replica) = (&d.nodes[0], &d.nodes[1]);
    let page = format!("{}/", replica.url);

    let first = browse(&work, &["--dump-dom"], &page);
    assert_eq!(count(&first), Some(1), "{first}");
    assert_eq!(
        element(&first, "node").as_deref(),
        Some(replica.name.as_str())
    );
    assert_eq!(
        element(&first, "role"),
        Some(format!("replica of {}", primary.name))
    );
    assert_eq!(
        element(&first, "primary").as_deref(),
        Some(primary.name.as_str())
    );

    let reloaded = browse(&work, &["--dump-dom"], &page);
    assert_eq!(count(&reloaded), Some(2), "{reloaded}");

    let screenshot = screenshot(&work, &page, "counter-browser.png");
    println!(
        "screenshot of {} by {}: {}",
        page,
        browser.display(),
        screenshot.display()
    );

    // Three views through the replica, all counted on the primary.
    d.litefs.sync().await.expect("replicas catch up");
    let counts = counts(&reqwest::Client::new(), &primary.url).await;
    assert_eq!(counts["counts"]["home"], 3, "{counts}");
}

/// The row of node `name` on the cluster page, up to its first cell.
fn row<'a>(dom: &'a str, name: &str) -> &'a str {
    let open = format!("<tr data-node=\"{name}\"");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no row for {name}:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("<td").unwrap_or(rest.len())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_draws_the_cluster_page_with_the_replicas_behind_marked() {
    let _serial = SERIAL.lock().await;
    let browser = support::chrome::chromium();
    let d = Deployment::start("browser-cluster", Duration::from_secs(5)).await;
    let work = d.nodes[0].log.parent().unwrap().to_owned();
    let (primary, replica) = (&d.nodes[0], &d.nodes[1]);
    d.litefs.sync().await.expect("replicas catch up");
    d.litefs.pause_replication();
    // A view counted on the primary itself: one transaction the paused replicas lack.
    let counted = reqwest::get(format!("{}/", primary.url)).await.unwrap();
    assert!(counted.status().is_success(), "{}", counted.status());
    let page = format!("{}/cluster", replica.url);

    let dom = browse(&work, &["--dump-dom"], &page);
    assert_eq!(
        element(&dom, "seen-from").as_deref(),
        Some(replica.name.as_str())
    );
    assert!(dom.contains("<svg id=\"chart\""), "{dom}");
    assert!(
        row(&dom, &primary.name).contains("data-state=\"current\""),
        "{dom}"
    );
    for node in &d.nodes[1..] {
        let row = row(&dom, &node.name);
        assert!(row.contains("data-state=\"behind\""), "{row}");
        assert!(row.contains("data-behind=\"1\""), "{row}");
    }
    assert!(
        dom.contains(&format!(
            "<g class=\"node\" data-node=\"{}\" data-state=\"behind\">",
            replica.name
        )),
        "{dom}"
    );

    let screenshot = screenshot(&work, &page, "counter-cluster.png");
    d.litefs.resume_replication();
    println!(
        "screenshot of {} by {}: {}",
        page,
        browser.display(),
        screenshot.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_posts_a_view_on_one_node_and_sees_it_on_another_after_the_redirect() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start("browser-session", Duration::from_secs(5)).await;
    let work = d.nodes[0].log.parent().unwrap().to_owned();
    // Node 3 holds no new transaction until a moment after the redirect: without the
    // session's cookie it would show the page without the view.
    d.litefs.pause_replication_to(2);
    let (balancer, _lb) = split::start(d.url(1), d.url(2)).await;
    let start = format!("{balancer}/start/session");
    let browsing = tokio::task::spawn_blocking(move || {
        browse(
            &work,
            &["--dump-dom", "--virtual-time-budget=20000"],
            &start,
        )
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.litefs.resume_replication_to(2);
    let dom = browsing.await.unwrap();
    assert_eq!(
        element(&dom, "node").as_deref(),
        Some(d.nodes[2].name.as_str()),
        "{dom}"
    );
    assert_eq!(count(&dom), Some(1), "{dom}");
}
