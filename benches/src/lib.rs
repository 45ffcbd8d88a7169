//! The litefs-orm benchmark harness: every figure measured side by side in one run on one
//! machine, and printed with the ratios the targets in `BENCHMARKS.md` are stated in.
//!
//! Run it with `cargo run --release -p litefs-orm-bench -- --quick` (about two minutes)
//! or without `--quick` (several minutes). Most sections run on the LiteFS stand-in
//! (`litefs_orm_testkit`) in WAL mode: a primary and a replica in this process, each a real
//! `ReplicatedDb` serving its router over loopback HTTP. The `real` section runs three nodes
//! on real LiteFS, in WAL and DELETE mode, against LiteFS's own HALT-lock forwarding.

pub mod cluster;
pub mod codec;
pub mod cores;
pub mod entity;
pub mod latency;
pub mod observe;
pub mod reads;
pub mod real;
pub mod report;
pub mod session;
pub mod stats;
pub mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

pub use report::Report;

/// How much to measure.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Rounds of interleaved reads (handle, plain). Full: 40; quick: 10.
    pub read_rounds: usize,
    /// Reads by primary key per side and round (scans: a quarter). Full: 200; quick: 100.
    pub read_block: usize,
    /// Writes of each kind in the latency phase. Full: 400; quick: 100.
    pub latency_iters: usize,
    /// Iterations of each codec measurement. Full: 20 000; quick: 5 000.
    pub codec_iters: usize,
    /// Recent nonces in the verifier for `wire.verify_busy`. Full: 20 000; quick: 5 000.
    pub nonce_crowd: usize,
    /// Length of each throughput phase. Full: 2 s; quick: 0.4 s.
    pub phase: Duration,
    /// Run only this section (`codec`, `reads`, `latency`, `observe`, `session`,
    /// `throughput`, `cores`, `real`, `durability`); `None`: all.
    pub only: Option<String>,
    /// The bench binary, started as the replica node of the `cores` section. Default: this
    /// executable.
    pub node_exe: PathBuf,
    /// Run the `real` section (real LiteFS; skipped anyway, with a note, where LiteFS or FUSE
    /// is missing). Full and quick: yes; tiny: no.
    pub real: bool,
    /// Length of each phase of the `real` section. Full: 2 s; quick: 0.5 s.
    pub real_phase: Duration,
}

/// This executable, the default [`Options::node_exe`].
fn this_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("bench"))
}

impl Options {
    /// The full run: a few minutes on 2 cores.
    pub fn full() -> Self {
        Options {
            read_rounds: 40,
            read_block: 200,
            latency_iters: 400,
            codec_iters: 20_000,
            nonce_crowd: 20_000,
            phase: Duration::from_secs(2),
            only: None,
            node_exe: this_exe(),
            real: true,
            real_phase: Duration::from_secs(2),
        }
    }

    /// The quick run: the same figures from fewer samples.
    pub fn quick() -> Self {
        Options {
            read_rounds: 10,
            read_block: 100,
            latency_iters: 100,
            codec_iters: 5_000,
            nonce_crowd: 5_000,
            phase: Duration::from_millis(400),
            only: None,
            node_exe: this_exe(),
            real: true,
            real_phase: Duration::from_millis(500),
        }
    }

    /// Barely measuring: proves that every figure is produced (the smoke test).
    pub fn tiny() -> Self {
        Options {
            read_rounds: 2,
            read_block: 4,
            latency_iters: 3,
            codec_iters: 20,
            nonce_crowd: 50,
            phase: Duration::from_millis(30),
            only: None,
            node_exe: this_exe(),
            real: false,
            real_phase: Duration::from_millis(30),
        }
    }
}

/// Runs every measurement and returns the report.
pub async fn run(opts: &Options) -> Result<Report> {
    let mut report = Report::default();
    report.notes.push(machine());
    let wanted = |section: &str| opts.only.as_deref().is_none_or(|o| o == section);
    if wanted("codec") {
        codec::run(opts, &mut report)?;
    }
    if ["reads", "latency", "observe", "session", "throughput"]
        .iter()
        .any(|s| wanted(s))
    {
        let bench = cluster::Bench::start().await?;
        if wanted("reads") {
            reads::run(&bench, opts, &mut report).await?;
        }
        if wanted("latency") {
            latency::run(&bench, opts, &mut report).await?;
        }
        if wanted("observe") {
            observe::run(&bench, opts, &mut report).await?;
        }
        if wanted("session") {
            session::run(&bench, opts, &mut report).await?;
        }
        if wanted("throughput") {
            throughput::run(&bench, opts, &mut report).await?;
        }
    }
    // Last, with the shared-cores cluster gone: its stand-in's polling threads would run on
    // the primary's core.
    if wanted("cores") {
        cores::run(opts, &mut report).await?;
    }
    if wanted("real") {
        real::run(opts, &mut report).await?;
    }
    if wanted("durability") {
        real::durability::run(opts, &mut report).await?;
    }
    report.notes.push(
        "Stand-in: LiteFS test double, WAL, synchronous=FULL (fsync per commit), 500 µs \
         position poll, whole-database copy per sync; primary and replica share this machine's cores (except in \
         the one-core-per-node section)."
            .into(),
    );
    Ok(report)
}

/// Cores, CPU model and memory of this machine, as one line.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = field(&cpuinfo, "model name").unwrap_or("unknown CPU");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = field(&meminfo, "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("Machine: {cores} cores ({model}), {mem_gib:.1} GiB memory.")
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim())
}
