//! Throughput with each node on a core of its own, as in a deployment where the primary and
//! the replica are separate machines: the primary (with the LiteFS stand-in) in this process
//! pinned to core 0, the replica in a child process pinned to core 1.
//!
//! Local writes run on the primary's core alone; forwarded writes run on the replica's core
//! and reach the primary over loopback. The in-process throughput section cannot show this:
//! there every forwarded write's replica half competes with the primary for the same cores.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use litefs_orm::{Config, ReplicatedDb};
use litefs_orm_testkit::Cluster;
use nix::errno::Errno;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;
use sea_orm::ActiveModelTrait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::Options;
use crate::cluster::{NO_WAIT, SECRET, clear, registry, stand_in};
use crate::entity::item;
use crate::report::{Report, Unit};
use crate::throughput::{phase, writing};

/// The argument that makes the bench binary a replica node serving this section:
/// `--replica-node <mount> <core>`.
pub const NODE_FLAG: &str = "--replica-node";

const DB: &str = "app.db";

/// The replica node's configuration: its mount, the primary found through `.primary`.
fn config(mount: &Path) -> Config {
    Config::litefs(mount, DB)
        .with_primary_url("http://{primary}")
        .with_rpc_secret(SECRET)
}

/// Pins every thread of this process (and so the threads they start later) to `core`.
pub fn pin_this_process(core: usize) -> Result<()> {
    let mut cores = CpuSet::new();
    cores.set(core)?;
    pin_threads(&cores)
}

/// Lets every thread of this process run on every core again.
fn unpin_this_process() -> Result<()> {
    let mut cores = CpuSet::new();
    for core in 0..available_cores() {
        cores.set(core)?;
    }
    pin_threads(&cores)
}

fn pin_threads(cores: &CpuSet) -> Result<()> {
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Ok(tid) = entry?.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        match sched_setaffinity(Pid::from_raw(tid), cores) {
            // ESRCH: the thread ended since the directory was read.
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => return Err(e).context("pinning the benchmark's threads to a core"),
        }
    }
    Ok(())
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The replica node: a child process of the bench binary on its own core.
struct ReplicaNode {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl ReplicaNode {
    async fn spawn(exe: &Path, mount: &Path, core: usize) -> Result<ReplicaNode> {
        let mut child = Command::new(exe)
            .arg(NODE_FLAG)
            .arg(mount)
            .arg(core.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the replica node {}", exe.display()))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?).lines();
        let mut node = ReplicaNode {
            child,
            stdin,
            stdout,
        };
        let hello = node.line().await?;
        ensure!(hello == "ready", "the replica node said `{hello}`");
        Ok(node)
    }

    async fn line(&mut self) -> Result<String> {
        match self.stdout.next_line().await? {
            Some(line) => Ok(line),
            None => bail!("the replica node exited: {:?}", self.child.try_wait()),
        }
    }

    /// `writers` forwarded writers for `length` on the replica; writes per second. Without
    /// `wait`, through a handle that does not wait for replication (the forwarding alone).
    async fn phase(&mut self, writers: usize, length: Duration, wait: bool) -> Result<f64> {
        let command = format!("{writers} {} {}\n", length.as_millis(), u8::from(wait));
        self.stdin.write_all(command.as_bytes()).await?;
        self.stdin.flush().await?;
        let answer = self.line().await?;
        answer
            .parse()
            .with_context(|| format!("the replica node answered `{answer}`"))
    }

    /// CPU time the node has used so far.
    fn cpu(&self) -> Duration {
        self.child.id().map_or(Duration::ZERO, cpu_time)
    }
}

/// User + system CPU time of process `pid` (`/proc/<pid>/stat`, in clock ticks of 10 ms).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The child's side: a replica `ReplicatedDb` on `mount` that runs the phases the parent
/// asks for on stdin (`<writers> <milliseconds> <1: wait for replication | 0: do not>`) and
/// answers each with its writes per second.
pub async fn serve_replica_node(mount: PathBuf) -> Result<()> {
    let db = ReplicatedDb::connect(config(&mount), registry()).await?;
    // A forwarded write returns "committed, replication still behind" after at most
    // `NO_WAIT`, which `phase` counts as written.
    let no_wait = config(&mount).with_replication_timeout(NO_WAIT);
    let no_wait = ReplicatedDb::connect(no_wait, registry()).await?;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(b"ready\n").await?;
    stdout.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(writers)), Some(Ok(ms)), Some(Ok(wait))) =
            (words.next(), words.next(), words.next())
        else {
            bail!("expected `<writers> <milliseconds> <wait>`, got `{line}`");
        };
        let handle = if wait == 1 { &db } else { &no_wait };
        let (rate, _) = phase(handle, writers as usize, Duration::from_millis(ms)).await?;
        stdout.write_all(format!("{rate}\n").as_bytes()).await?;
        stdout.flush().await?;
    }
    Ok(())
}

/// Share of one core a process used between two CPU-time readings, `length` apart.
fn busy(before: Duration, after: Duration, length: Duration) -> f64 {
    after.saturating_sub(before).as_secs_f64() / length.as_secs_f64()
}

/// Runs the section: the stand-in and the primary here on core 0, the replica node on core 1.
pub async fn run(opts: &Options, report: &mut Report) -> Result<()> {
    let cores = available_cores();
    ensure!(
        cores >= 2,
        "one core per node needs 2 cores, this machine has {cores}"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let primary_host = listener.local_addr()?.to_string();
    let litefs = stand_in(vec![primary_host, "127.0.0.1:1".to_owned()]).await?;

    pin_this_process(0)?;
    let measured = measure(opts, &litefs, listener, report).await;
    unpin_this_process()?;
    measured
}

async fn measure(
    opts: &Options,
    litefs: &Cluster,
    listener: TcpListener,
    report: &mut Report,
) -> Result<()> {
    let primary = ReplicatedDb::connect(config(litefs.mount(0)), registry()).await?;
    let app = litefs_orm::router(primary.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut replica = ReplicaNode::spawn(&opts.node_exe, litefs.mount(1), 1).await?;
    // What an app without this library writes through: plain SeaORM on the primary's file,
    // opened as its docs show (a pool; each insert its own transaction).
    let url = format!("sqlite://{}?mode=rwc", litefs.db_path(0).display());
    let plain = sea_orm::Database::connect(&url).await?;
    let plain_phase = |writers| {
        let plain = plain.clone();
        writing(writers, opts.phase, move |n| {
            let plain = plain.clone();
            async move {
                item::new(n).insert(&plain).await?;
                Ok(())
            }
        })
    };
    let reset = async |db: &ReplicatedDb| -> Result<()> {
        clear(db).await?;
        litefs.sync().await?;
        Ok(())
    };
    // Warm up both nodes: connections, statement caches, the WAL.
    reset(&primary).await?;
    phase(&primary, 16, opts.phase / 2).await?;
    replica.phase(16, opts.phase / 2, true).await?;

    let me = std::process::id();
    for writers in [1, 16, 64] {
        reset(&primary).await?;
        let before = (cpu_time(me), replica.cpu());
        let (local, _) = phase(&primary, writers, opts.phase).await?;
        let local_busy = busy(before.0, cpu_time(me), opts.phase);

        reset(&primary).await?;
        let before = (cpu_time(me), replica.cpu());
        let forwarded = replica.phase(writers, opts.phase, true).await?;
        let primary_busy = busy(before.0, cpu_time(me), opts.phase);
        let replica_busy = busy(before.1, replica.cpu(), opts.phase);

        reset(&primary).await?;
        let before = (cpu_time(me), replica.cpu());
        let no_wait = replica.phase(writers, opts.phase, false).await?;
        let no_wait_primary_busy = busy(before.0, cpu_time(me), opts.phase);
        let no_wait_replica_busy = busy(before.1, replica.cpu(), opts.phase);

        reset(&primary).await?;
        let (plain, _) = plain_phase(writers).await?;

        let at = |what: &str| format!("cores.{what}.{writers}");
        report.add(
            &at("local"),
            &format!("one core per node, {writers} writer(s), local on the primary"),
            local,
            Unit::PerSec,
        );
        report.add(
            &at("forwarded"),
            &format!("one core per node, {writers} writer(s), forwarded from the replica"),
            forwarded,
            Unit::PerSec,
        );
        report.ratio(
            &at("forwarded_over_local"),
            &format!(
                "one core per node, {writers} writer(s): forwarded / local [target at 64: ≥ 0.5]"
            ),
            forwarded / local,
        );
        report.add(
            &at("plain"),
            &format!("one core per node, {writers} writer(s), plain SeaORM on the primary's file"),
            plain,
            Unit::PerSec,
        );
        report.ratio(
            &at("forwarded_over_plain"),
            &format!(
                "one core per node, {writers} writer(s): forwarded / plain SeaORM on the primary"
            ),
            forwarded / plain,
        );
        report.add(
            &at("forwarded_no_wait"),
            &format!(
                "one core per node, {writers} writer(s), forwarded without the read-your-writes wait"
            ),
            no_wait,
            Unit::PerSec,
        );
        report.ratio(
            &at("forwarded_no_wait_over_local"),
            &format!("one core per node, {writers} writer(s): forwarded without the wait / local"),
            no_wait / local,
        );
        report.ratio(
            &at("busy.local"),
            "  primary's core busy, local writers",
            local_busy,
        );
        report.ratio(
            &at("busy.forwarded_primary"),
            "  primary's core busy, forwarded writers",
            primary_busy,
        );
        report.ratio(
            &at("busy.forwarded_replica"),
            "  replica's core busy, forwarded writers",
            replica_busy,
        );
        report.ratio(
            &at("busy.no_wait_primary"),
            "  primary's core busy, forwarded writers without the wait",
            no_wait_primary_busy,
        );
        report.ratio(
            &at("busy.no_wait_replica"),
            "  replica's core busy, forwarded writers without the wait",
            no_wait_replica_busy,
        );
    }
    reset(&primary).await?;
    server.abort();
    report.notes.push(
        "One core per node: this process (the primary and the LiteFS stand-in, whose \
         replication work is all charged to the primary's core) pinned to core 0, the replica \
         node in a child process pinned to core 1; busy = CPU time / phase length."
            .into(),
    );
    Ok(())
}
