//! One LiteFS node: its directories, config file, process and FUSE mount.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::binary::{find_on_path, fusermount};
use super::error::{RealError, Result};

/// The fixed facts of one node: where it lives and how it is reached.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    /// `<root>/n{i+1}`.
    pub dir: PathBuf,
    /// The FUSE mount directory.
    pub mnt: PathBuf,
    /// LiteFS's data directory.
    pub data: PathBuf,
    /// The node's `litefs.yml`.
    pub config: PathBuf,
    /// Where the process's stdout and stderr go.
    pub log: PathBuf,
    /// The HTTP port on 127.0.0.1.
    pub port: u16,
    /// The node's hostname (what replicas see while it is the primary).
    pub hostname: String,
}

impl NodeSpec {
    /// Lays out node `index` under `root`, creating its directories.
    pub fn create(root: &Path, index: usize, port: u16, hostname: String) -> Result<Self> {
        let dir = root.join(format!("n{}", index + 1));
        let spec = Self {
            mnt: dir.join("mnt"),
            data: dir.join("data"),
            config: dir.join("litefs.yml"),
            log: dir.join("litefs.log"),
            dir,
            port,
            hostname,
        };
        clear_mount(&spec.mnt)?;
        for d in [&spec.mnt, &spec.data] {
            std::fs::create_dir_all(d)
                .map_err(|e| RealError::io(format!("create {}", d.display()), e))?;
        }
        Ok(spec)
    }

    /// The base URL of the node's HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts `litefs mount` for this node in its own process group, logging to `log`.
    pub fn spawn(&self, bin: &Path, run: u32) -> Result<Child> {
        clear_mount(&self.mnt)?;
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map_err(|e| RealError::io(format!("open {}", self.log.display()), e))
        };
        let mut out = open()?;
        writeln!(out, "==== harness: start #{run} of {} ====", self.hostname)
            .map_err(|e| RealError::io("write log", e))?;
        // Under `setpriv --pdeathsig KILL` LiteFS dies with the thread that started it, even
        // when the test process is killed or crashes before any `Drop` runs.
        let mut cmd = match find_on_path("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .arg("mount")
            .arg("-config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(open()?)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RealError::io(format!("spawn {}", bin.display()), e))?;
        if let Some(pid) = child.id() {
            std::fs::write(self.pid_file(), pid.to_string())
                .map_err(|e| RealError::io("write the pid file", e))?;
        }
        Ok(child)
    }

    /// Where the running LiteFS's pid is kept, for telling a stale mount from a live one.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("litefs.pid")
    }

    /// The node's log so far (lossy UTF-8, NUL bytes dropped).
    pub fn read_log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).replace('\0', ""))
            .unwrap_or_default()
    }
}

/// Sends `signal` to the process group led by `child`, if it is still known.
pub(crate) fn signal_group(child: &Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        // The process may already be gone; that is what we want.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// Sends SIGTERM, waits up to `grace` for exit, then SIGKILLs (see [`kill`]). Returns the
/// exit status and whether SIGKILL was needed.
pub(crate) async fn terminate(
    child: &mut Child,
    grace: Duration,
    mnt: &Path,
) -> Result<(ExitStatus, bool)> {
    signal_group(child, Signal::SIGTERM);
    if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
        return Ok((
            status.map_err(|e| RealError::io("wait for litefs", e))?,
            false,
        ));
    }
    Ok((kill(child, mnt).await?, true))
}

/// How long a SIGKILLed LiteFS may take to exit before its mount's connection is aborted.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// SIGKILLs the process group and reaps the child. A LiteFS that does not exit — a thread of
/// its own stuck on its own mount — gets its FUSE connection aborted, which frees it.
pub(crate) async fn kill(child: &mut Child, mnt: &Path) -> Result<ExitStatus> {
    signal_group(child, Signal::SIGKILL);
    let _ = child.start_kill();
    if let Ok(status) = tokio::time::timeout(KILL_GRACE, child.wait()).await {
        return status.map_err(|e| RealError::io("wait for litefs", e));
    }
    super::fusectl::abort(mnt);
    child
        .wait()
        .await
        .map_err(|e| RealError::io("wait for litefs", e))
}

/// What `/proc/self/mountinfo` and `stat` say about a mount directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountState {
    /// Nothing is mounted there.
    NotMounted,
    /// A file system is mounted and answers (its device differs from the parent's).
    Live,
    /// Listed as mounted but does not answer (e.g. `Transport endpoint is not connected`).
    Stale,
}

/// Inspects the mount at `dir`.
pub fn mount_state(dir: &Path) -> MountState {
    if !is_listed(dir) {
        return MountState::NotMounted;
    }
    use std::os::unix::fs::MetadataExt;
    let parent = dir.parent().and_then(|p| std::fs::metadata(p).ok());
    // `stat` may be answered from the kernel's attribute cache after the daemon died;
    // listing the directory reaches the daemon.
    let answers = std::fs::read_dir(dir).is_ok();
    match (std::fs::metadata(dir), parent) {
        (Ok(m), Some(p)) if answers && m.dev() != p.dev() => MountState::Live,
        _ => MountState::Stale,
    }
}

/// Whether `/proc/self/mountinfo` lists `dir` as a mount point.
pub fn is_listed(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| unescape(p) == want)
}

/// Undoes the octal escapes (`\040` and friends) of `/proc/self/mountinfo`.
pub(crate) fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        match code.and_then(|d| u8::from_str_radix(d, 8).ok()) {
            Some(c) if b[i] == b'\\' => {
                out.push(c);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily detaches dead LiteFS mounts (daemon gone) left under the temporary directory by
/// earlier runs whose folder name starts with `prefix`.
pub(crate) fn clear_stale_under_tmp(prefix: &str) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let tmp = std::env::temp_dir().join(prefix);
    let tmp = tmp.to_string_lossy();
    let stale = info
        .lines()
        .filter(|l| l.contains(" - fuse litefs "))
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .filter(|p| p.starts_with(&*tmp))
        .map(PathBuf::from)
        // Never touch the mount itself: a dead one that was not aborted blocks every access.
        .filter(|p| {
            let pid_file = p.parent().map(|n| n.join("litefs.pid"));
            !pid_file.is_some_and(|f| super::fusectl::litefs_alive(&f))
        });
    for dir in stale.collect::<Vec<_>>() {
        super::fusectl::abort(&dir);
        let _ = clear_mount(&dir);
    }
}

/// Lazily detaches every mount stacked at `dir` (`fusermount3 -uz`, or `umount -l` as root).
/// Open files of the old mount stay usable by their holders until closed; the path is free.
pub fn clear_mount(dir: &Path) -> Result<()> {
    for _ in 0..16 {
        if !is_listed(dir) {
            return Ok(());
        }
        let fuser =
            fusermount().map(|f| std::process::Command::new(f).arg("-uz").arg(dir).output());
        let ok = matches!(&fuser, Some(Ok(o)) if o.status.success());
        if !ok {
            let out = std::process::Command::new("umount")
                .arg("-l")
                .arg(dir)
                .output()
                .map_err(|e| RealError::io(format!("umount -l {}", dir.display()), e))?;
            if !out.status.success() && is_listed(dir) {
                let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                return Err(RealError::io(
                    format!("unmount {}", dir.display()),
                    std::io::Error::other(msg),
                ));
            }
        }
    }
    Ok(())
}

/// Reads a `-pos` file: `%016x/%016x\n`; absent reads as `(0, 0)`.
pub fn read_pos(path: &Path) -> Result<(u64, u64)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(RealError::io(format!("read {}", path.display()), e)),
    };
    let bad = || RealError::BadPos {
        path: path.to_path_buf(),
        content: text.clone(),
    };
    let (a, b) = text
        .trim_end_matches('\n')
        .split_once('/')
        .ok_or_else(bad)?;
    let txid = u64::from_str_radix(a, 16).map_err(|_| bad())?;
    let sum = u64::from_str_radix(b, 16).map_err(|_| bad())?;
    Ok((txid, sum))
}

/// Picks `n` distinct free TCP ports on 127.0.0.1.
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| RealError::io("pick a free port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| RealError::io("pick a free port", e))
}
