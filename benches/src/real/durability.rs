//! What `candidates` durability costs on real LiteFS v0.5.14: three candidates of a Consul
//! lease (the testkit's lease server, `promote: false` so node 0 stays the primary), WAL,
//! 1, 4, 16 and 64 writers of the same single-row insert — local on the primary and
//! forwarded from a replica — each acknowledged with `local` and with `candidates`
//! durability, the two phases of a pair back to back on the same cluster.

use std::time::Duration;

use anyhow::{Result, anyhow};
use litefs_orm::{Durability, JournalMode, ReplicatedDb};
use litefs_orm_testkit::apps::{AppCluster, AppOptions, Engine};
use litefs_orm_testkit::real::{ConsulLease, Lease, check_fuse, litefs_binary};

use super::load::load;
use super::writer::Writer;
use super::{WRITERS, loadavg};
use crate::Options;
use crate::cluster::registry;
use crate::entity::item;
use crate::report::{Report, Unit};

/// The two durabilities compared, by their key.
const LEVELS: [(&str, Durability); 2] = [
    ("local", Durability::Local),
    ("candidates", Durability::Candidates),
];

/// Where the writes are made, by their key: node 0 (the primary) or node 1 (a replica).
const ROUTES: [(&str, usize); 2] = [("local", 0), ("forwarded", 1)];

/// The keys a run of this section produces.
pub fn expected() -> Vec<String> {
    let mut keys = Vec::new();
    for n in WRITERS {
        for (route, _) in ROUTES {
            for (level, _) in LEVELS {
                let key = format!("durability.{route}.{level}.{n}");
                keys.extend([key.clone(), format!("{key}.p50"), format!("{key}.p99")]);
            }
            keys.push(format!("durability.{route}.candidates_over_local.{n}"));
        }
    }
    for (route, _) in ROUTES {
        keys.push(format!("durability.{route}.p50_gap.1"));
    }
    keys
}

/// Runs the section, or notes why it cannot run here.
pub async fn run(opts: &Options, report: &mut Report) -> Result<()> {
    if !opts.real {
        report
            .notes
            .push("Durability: skipped (not measured in this mode).".into());
        return Ok(());
    }
    if let Err(e) = litefs_binary().and_then(|_| check_fuse()) {
        report.notes.push(format!(
            "Durability: skipped, real LiteFS cannot run here: {e}"
        ));
        return Ok(());
    }
    report.expected.extend(expected());
    let before = loadavg();
    let lease = ConsulLease::default().with_promote(false);
    let options = AppOptions::new(Engine::Real)
        .nodes(3)
        .schema(item::SCHEMA)
        .journal_mode(JournalMode::Wal)
        .lease(Lease::Consul(lease))
        .replication_timeout(Duration::from_secs(10))
        .write_timeout(Duration::from_secs(30));
    let mut cluster = AppCluster::start(options, registry, litefs_orm::router)
        .await
        .map_err(|e| anyhow!(e))?;
    let measured = phases(opts, &mut cluster, report).await;
    drop(cluster);
    measured?;
    report.notes.push(format!(
        "Durability: real LiteFS v0.5.14, 3 candidates of a Consul lease (TTL 10 s, \
         `promote: false`), WAL, each node's app on a one-worker runtime of this process; \
         every phase {:.1} s, `local` and `candidates` back to back at each count; load \
         average before / after: {before} / {}.",
        opts.real_phase.as_secs_f64(),
        loadavg()
    ));
    report.notes.push(table(report));
    Ok(())
}

async fn phases(opts: &Options, cluster: &mut AppCluster, report: &mut Report) -> Result<()> {
    // Both replicas report to the primary before anything is measured.
    let start = std::time::Instant::now();
    while cluster
        .db(0)
        .status()
        .peers
        .iter()
        .filter(|p| p.live)
        .count()
        < 2
    {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "the replicas never reported to the primary"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, node) in ROUTES {
        for (_, level) in LEVELS {
            run_phase(
                cluster.db(node).with_durability(level),
                4,
                opts.real_phase / 4,
            )
            .await?;
        }
    }
    for n in WRITERS {
        for (route, node) in ROUTES {
            for (level, durability) in LEVELS {
                cluster.sync().await.map_err(|e| anyhow!(e))?;
                let db = cluster.db(node).with_durability(durability);
                let phase = run_phase(db, n, opts.real_phase).await?;
                let key = format!("durability.{route}.{level}.{n}");
                let label = format!("real LiteFS, {n} writer(s), {route}, {level} durability");
                report.add(&key, &label, phase.rate, Unit::PerSec);
                report.latency(&key, &label, &phase.latency);
                if phase.errors > 0 {
                    let first = phase.first_error.as_deref().unwrap_or("?");
                    report
                        .notes
                        .push(format!("`{key}`: {} failed, first: {first}", phase.errors));
                }
            }
            let get = |report: &Report, what: &str| {
                report
                    .get(&format!("durability.{route}.{what}"))
                    .unwrap_or(f64::NAN)
            };
            let ratio =
                get(report, &format!("candidates.{n}")) / get(report, &format!("local.{n}"));
            let gap = get(report, "candidates.1.p50") - get(report, "local.1.p50");
            report.ratio(
                &format!("durability.{route}.candidates_over_local.{n}"),
                &format!(
                    "real LiteFS, {n} writer(s), {route}: candidates / local throughput [target ≥ 0.8 at 16 and 64]"
                ),
                ratio,
            );
            if n == 1 {
                report.add(
                    &format!("durability.{route}.p50_gap.1"),
                    &format!(
                        "real LiteFS, 1 writer, {route}: candidates p50 − local p50 [target ≤ 2 000 µs]"
                    ),
                    gap,
                    Unit::Micros,
                );
            }
        }
    }
    Ok(())
}

async fn run_phase(db: ReplicatedDb, n: usize, length: Duration) -> Result<super::load::Load> {
    let writers = (0..n).map(|_| Writer::Handle(db.clone())).collect();
    let (phase, _) = load(writers, length).await?;
    Ok(phase)
}

/// The section as a table: writes/s (p50 / p99 ms) per route and durability.
fn table(report: &Report) -> String {
    let cell = |key: &str| {
        let rate = report.get(key).unwrap_or(f64::NAN);
        let p50 = report.get(&format!("{key}.p50")).unwrap_or(f64::NAN) / 1e3;
        let p99 = report.get(&format!("{key}.p99")).unwrap_or(f64::NAN) / 1e3;
        format!("{rate:.0} ({p50:.1} / {p99:.1})")
    };
    let mut out = String::from(
        "Durability, real LiteFS, WAL: writes/s (p50 / p99 ms)\n\n\
         | writers | local, local | local, candidates | ratio | forwarded, local | forwarded, candidates | ratio |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for n in WRITERS {
        let ratio = |route: &str| {
            report
                .get(&format!("durability.{route}.candidates_over_local.{n}"))
                .unwrap_or(f64::NAN)
        };
        out += &format!(
            "| {n} | {} | {} | {:.2} | {} | {} | {:.2} |\n",
            cell(&format!("durability.local.local.{n}")),
            cell(&format!("durability.local.candidates.{n}")),
            ratio("local"),
            cell(&format!("durability.forwarded.local.{n}")),
            cell(&format!("durability.forwarded.candidates.{n}")),
            ratio("forwarded"),
        );
    }
    for (route, _) in ROUTES {
        let gap = report
            .get(&format!("durability.{route}.p50_gap.1"))
            .unwrap_or(f64::NAN);
        out += &format!(
            "\n1 writer, {route}: candidates p50 − local p50 = {:.2} ms",
            gap / 1e3
        );
    }
    out
}
