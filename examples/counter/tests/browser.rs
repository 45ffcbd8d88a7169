//! A real browser: headless Chromium renders the counter page and the cluster page served by
//! a replica.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`; `scripts/test` installs it when
//! run as root). Without it this test fails, saying so. `CHROMIUM` overrides the path.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Deployment, count, counts, element};

/// Where Debian's `chromium` package installs the browser.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Longest one browser run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM));
    assert!(
        path.exists(),
        "no Chromium at {}: install it with `sudo apt-get install -y chromium` (Debian), \
         run `scripts/test` as root (it installs it), or set CHROMIUM to the browser's path",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `args`; returns its stdout. Panics with its output
/// if it fails or takes longer than a minute.
fn browse(work: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir_in(work).expect("a fresh browser profile");
    let (out_path, err_path) = (work.join("chromium.out"), work.join("chromium.err"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll chromium") {
            break status;
        }
        if start.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {args:?} {url} still running after {BROWSER_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium {args:?} {url}: {status}\n{stdout}\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    stdout
}

/// `target/test-output/`, beside `CARGO_TARGET_TMPDIR` (`target/tmp`).
fn output_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-output");
    std::fs::create_dir_all(&dir).expect("create the test output directory");
    dir
}

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
    let browser = chromium();
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
    let browser = chromium();
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
