//! Writes on real LiteFS v0.5.14: three nodes on loopback, each serving litefs-orm's router
//! (`litefs_orm_testkit::apps::AppCluster`), with 1, 4, 16 and 64 concurrent writers of the same
//! single-row insert — local on the primary, forwarded from a replica with read-your-writes,
//! LiteFS's HALT forwarding from that replica, plain SeaORM on the primary — in WAL and in
//! DELETE mode, each phase timed write by write.
//!
//! Needs the LiteFS binary and FUSE (`litefs_orm_testkit::real`); without them, and in the
//! smoke run, the section is skipped with a note saying why.

pub mod cpu;
pub mod durability;
pub mod halt;
pub mod load;
pub mod summary;
pub mod writer;

use std::time::Duration;

use anyhow::{Result, anyhow};
use litefs_orm::JournalMode;
use litefs_orm_testkit::apps::{AppCluster, AppOptions, Engine};
use litefs_orm_testkit::real::{check_fuse, litefs_binary};
use sea_orm::DatabaseConnection;

use self::cpu::Cpu;
use self::halt::HaltWriter;
use self::load::{Load, load};
use self::writer::{Kind, Writer};
use crate::Options;
use crate::cluster::registry;
use crate::entity::item;
use crate::report::{Report, Unit};

/// The writer counts of every phase.
pub const WRITERS: [usize; 4] = [1, 4, 16, 64];

/// The journal modes measured, each on a fresh cluster.
pub const MODES: [JournalMode; 2] = [JournalMode::Wal, JournalMode::Delete];

/// The keys a run of this section produces.
pub fn expected() -> Vec<String> {
    let mut keys = Vec::new();
    for mode in MODES {
        let m = mode.as_str();
        for n in WRITERS {
            for kind in Kind::ALL {
                let k = kind.key();
                keys.extend([
                    format!("real.{m}.{k}.{n}"),
                    format!("real.{m}.{k}.{n}.p50"),
                    format!("real.{m}.{k}.{n}.p99"),
                ]);
            }
            for ratio in RATIOS {
                keys.push(format!("real.{m}.{ratio}.{n}"));
            }
        }
        keys.push(format!("real.{m}.forwarded_p50_minus_local_p50.1"));
    }
    keys
}

/// The ratios recorded at every writer count.
const RATIOS: [&str; 4] = [
    "forwarded_over_local",
    "forwarded_over_halt",
    "forwarded_over_plain",
    "forwarded_p99_over_halt_p99",
];

/// Runs the section, or notes why it cannot run here.
pub async fn run(opts: &Options, report: &mut Report) -> Result<()> {
    if !opts.real {
        report
            .notes
            .push("Real LiteFS: skipped (not measured in this mode).".into());
        return Ok(());
    }
    let found = litefs_binary().and_then(|bin| check_fuse().map(|()| bin));
    let bin = match found {
        Ok(bin) => bin,
        Err(e) => {
            report
                .notes
                .push(format!("Real LiteFS: skipped, it cannot run here: {e}"));
            return Ok(());
        }
    };
    report.expected.extend(expected());
    let before = loadavg();
    for mode in MODES {
        measure(mode, opts, report).await?;
    }
    report.notes.push(format!(
        "Real LiteFS: {} (v0.5.14), 3 nodes on loopback, static lease; each node's app (its \
         ReplicatedDb and litefs-orm's router) on a one-worker runtime of this process; every \
         writer a task on this process's two-worker runtime (HALT writers: each its own \
         `<db>-lock` open file description and SQLite connection, as separate processes would \
         hold); {:.1} s per phase; load average before / after the section: {before} / {}.",
        bin.display(),
        opts.real_phase.as_secs_f64(),
        loadavg(),
    ));
    for mode in MODES {
        report.notes.push(summary::table(report, mode));
    }
    Ok(())
}

/// One journal mode on a fresh cluster: every writer count, every kind.
async fn measure(mode: JournalMode, opts: &Options, report: &mut Report) -> Result<()> {
    let options = AppOptions::new(Engine::Real)
        .nodes(3)
        .schema(item::SCHEMA)
        .journal_mode(mode)
        .replication_timeout(Duration::from_secs(10))
        .write_timeout(Duration::from_secs(30));
    let mut cluster = AppCluster::start(options, registry, litefs_orm::router)
        .await
        .map_err(|e| anyhow!(e))?;
    // What an app without this library writes through, opened as SeaORM's docs show.
    let url = format!("sqlite://{}?mode=rwc", cluster.real().db_path(0).display());
    let plain = sea_orm::Database::connect(&url).await?;
    let measured = phases(mode, opts, &mut cluster, &plain, report).await;
    // Before LiteFS stops: a WAL connection on a mount whose LiteFS is gone gets SIGBUS.
    plain.close().await?;
    drop(cluster);
    measured
}

async fn phases(
    mode: JournalMode,
    opts: &Options,
    cluster: &mut AppCluster,
    plain: &DatabaseConnection,
    report: &mut Report,
) -> Result<()> {
    // Warm up: connections, statement caches, the WAL, the HTTP connections.
    for kind in Kind::ALL {
        let writers = writers(kind, 4, cluster, plain).await?;
        run_phase(writers, opts.real_phase / 4).await?;
    }
    let m = mode.as_str();
    for n in WRITERS {
        for kind in Kind::ALL {
            cluster.sync().await.map_err(|e| anyhow!(e))?;
            let writers = writers(kind, n, cluster, plain).await?;
            let before = Cpu::now(cluster);
            let phase = run_phase(writers, opts.real_phase).await?;
            let cpu = Cpu::now(cluster).since(&before);
            record(report, m, kind, n, &phase);
            cpu.record(report, &format!("real.{m}.{}.{n}", kind.key()), &phase);
        }
        ratios(report, m, n);
    }
    Ok(())
}

async fn run_phase(writers: Vec<Writer>, length: Duration) -> Result<Load> {
    let (phase, writers) = load(writers, length).await?;
    for w in writers {
        w.close().await?;
    }
    Ok(phase)
}

/// `n` writers of `kind`: node 0 is the primary, node 1 the replica that forwards.
async fn writers(
    kind: Kind,
    n: usize,
    cluster: &AppCluster,
    plain: &DatabaseConnection,
) -> Result<Vec<Writer>> {
    let replica_db = cluster.real().db_path(1);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match kind {
            Kind::Local => Writer::Handle(cluster.db(0).clone()),
            Kind::Forwarded => Writer::Handle(cluster.db(1).clone()),
            Kind::Plain => Writer::Plain(plain.clone()),
            Kind::Halt => Writer::Halt(Box::new(HaltWriter::open(&replica_db).await?)),
        });
    }
    Ok(out)
}

fn record(report: &mut Report, m: &str, kind: Kind, n: usize, phase: &Load) {
    let key = format!("real.{m}.{}.{n}", kind.key());
    let label = format!("real LiteFS, {m}, {n} writer(s), {}", kind.label());
    report.add(&key, &label, phase.rate, Unit::PerSec);
    report.latency(&key, &label, &phase.latency);
    if phase.errors > 0 {
        report.add(
            &format!("{key}.errors"),
            &format!("{label}: failed writes"),
            phase.errors as f64,
            Unit::Count,
        );
        let first = phase.first_error.as_deref().unwrap_or("?");
        report
            .notes
            .push(format!("`{key}`: {} failed, first: {first}", phase.errors));
    }
}

fn ratios(report: &mut Report, m: &str, n: usize) {
    let get = |kind: Kind, what: &str| {
        report
            .get(&format!("real.{m}.{}.{n}{what}", kind.key()))
            .unwrap_or(f64::NAN)
    };
    let fwd = get(Kind::Forwarded, "");
    let values = [
        (
            "forwarded / local on the primary [target ≥ 0.8 at 4, 16, 64 in WAL]",
            fwd / get(Kind::Local, ""),
        ),
        (
            "forwarded / HALT [target ≥ 3 at 4, ≥ 20 at 64 in WAL]",
            fwd / get(Kind::Halt, ""),
        ),
        (
            "forwarded / plain SeaORM on the primary",
            fwd / get(Kind::Plain, ""),
        ),
        (
            "forwarded p99 / HALT p99 [target ≤ 0.1 at 4 in WAL]",
            get(Kind::Forwarded, ".p99") / get(Kind::Halt, ".p99"),
        ),
    ];
    let p50_gap = get(Kind::Forwarded, ".p50") - get(Kind::Local, ".p50");
    for (ratio, (label, value)) in RATIOS.iter().zip(values) {
        report.ratio(
            &format!("real.{m}.{ratio}.{n}"),
            &format!("real LiteFS, {m}, {n} writer(s): {label}"),
            value,
        );
    }
    if n == 1 {
        report.add(
            &format!("real.{m}.forwarded_p50_minus_local_p50.1"),
            &format!(
                "real LiteFS, {m}, 1 writer: forwarded p50 − local p50 [target ≤ 3 000 µs in WAL]"
            ),
            p50_gap,
            Unit::Micros,
        );
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
