//! Headless Chromium, for the browser tests: Debian's `chromium` (`apt-get install -y
//! chromium`; `scripts/test` installs it when run as root). Without it a browser test fails,
//! saying so. `CHROMIUM` overrides the path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `chromium` package installs the browser.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Longest one browser run may take.
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

pub fn chromium() -> PathBuf {
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
pub fn browse(work: &Path, args: &[&str], url: &str) -> String {
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
pub fn output_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-output");
    std::fs::create_dir_all(&dir).expect("create the test output directory");
    dir
}
