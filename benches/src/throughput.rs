//! Throughput with 1, 16 and 64 concurrent writers: local on the primary and forwarded from
//! the replica (with the read-your-writes wait), with group commit on and off, and forwarded
//! with the replica's coalescing off.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use litefs_orm::client::Transport;
use litefs_orm::{ReplicatedActiveModel, ReplicatedDb};
use sea_orm::ActiveModelTrait;

use crate::Options;
use crate::cluster::Bench;
use crate::entity::item;
use crate::latency::insert_body;
use crate::report::{Report, Unit};

/// Where the writers write from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Local,
    Forwarded,
}

impl Origin {
    fn key(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Forwarded => "forwarded",
        }
    }
}

/// `writers` tasks inserting on `db` until `length` has passed; writes per second and
/// writes made. A write that returns "committed, replication still behind" counts: that is
/// what [`Bench::replica_no_wait`] answers.
pub(crate) async fn phase(
    db: &ReplicatedDb,
    writers: usize,
    length: Duration,
) -> Result<(f64, u64)> {
    let db = db.clone();
    writing(writers, length, move |n| {
        let db = db.clone();
        async move {
            match item::new(n).insert_replicated(&db).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_committed() => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await
}

/// `writers` tasks each calling `write` with a fresh number until `length` has passed;
/// writes per second and writes made.
pub(crate) async fn writing<F, Fut>(
    writers: usize,
    length: Duration,
    write: F,
) -> Result<(f64, u64)>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    static NEXT: AtomicU64 = AtomicU64::new(1_000_000);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (write, done) = (write.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    write(NEXT.fetch_add(1, Ordering::Relaxed)).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let writes = done.load(Ordering::Relaxed);
    Ok((writes as f64 / start.elapsed().as_secs_f64(), writes))
}

/// Like [`phase`] from the replica, through the transport alone: no read-your-writes wait,
/// and replication paused (the stand-in's whole-database copies use the same two cores).
async fn forward_only(bench: &Bench, writers: usize, length: Duration) -> Result<f64> {
    static NEXT: AtomicU64 = AtomicU64::new(5_000_000);
    let done = Arc::new(AtomicU64::new(0));
    let url = bench.primary_url(litefs_orm::RPC_PATH);
    bench.litefs.pause_replication();
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (transport, done, url) = (bench.transport.clone(), done.clone(), url.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let body = insert_body(NEXT.fetch_add(1, Ordering::Relaxed))?;
                    transport.send(&url, body, Duration::from_secs(10)).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    let mut result = Ok(());
    for t in tasks {
        result = result.and(t.await?);
    }
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    bench.litefs.resume_replication();
    result.map(|()| rate)
}

/// Runs every phase and records rates and ratios in `report`.
pub async fn run(bench: &Bench, opts: &Options, report: &mut Report) -> Result<()> {
    let mut most_rows = 0;
    // Warm up: connections, statement caches, the WAL.
    bench.reset().await?;
    phase(&bench.primary.db, 16, opts.phase / 2).await?;
    phase(&bench.replica.db, 16, opts.phase / 2).await?;
    for group_commit in [true, false] {
        litefs_orm::__private::set_group_commit(group_commit);
        let mode = if group_commit { "gc" } else { "single" };
        for writers in [1, 16, 64] {
            for origin in [Origin::Local, Origin::Forwarded] {
                bench.reset().await?;
                let db = match origin {
                    Origin::Local => &bench.primary.db,
                    Origin::Forwarded => &bench.replica.db,
                };
                let txid = bench.litefs.pos(0).txid;
                let measured = phase(db, writers, opts.phase).await;
                most_rows = most_rows.max(bench.rows().await?);
                let (rate, writes) = measured?;
                // Every commit the watcher saw has a TXID once sync returns.
                bench.litefs.sync().await?;
                let txids = bench.litefs.pos(0).txid - txid;
                let label = format!(
                    "throughput, {writers} writer(s), {}, group commit {}",
                    origin.key(),
                    if group_commit { "on" } else { "off" }
                );
                let key = format!("tput.{mode}.{}.{writers}", origin.key());
                report.add(&key, &label, rate, Unit::PerSec);
                report.ratio(
                    &format!("{key}.per_txid"),
                    &format!("  writes per stand-in TXID ({writes} writes; commits in one poll share one)"),
                    writes as f64 / txids.max(1) as f64,
                );
            }
        }
    }
    litefs_orm::__private::set_group_commit(true);
    // What an app without this library writes through: plain SeaORM on the primary's file.
    let url = format!("sqlite://{}?mode=rwc", bench.litefs.db_path(0).display());
    let plain = sea_orm::Database::connect(&url).await?;
    bench.reset().await?;
    let measured = writing(64, opts.phase, move |n| {
        let plain = plain.clone();
        async move {
            item::new(n).insert(&plain).await?;
            Ok(())
        }
    })
    .await;
    most_rows = most_rows.max(bench.rows().await?);
    report.add(
        "tput.plain.64",
        "throughput, 64 writers, plain SeaORM on the primary's file (a pool, one transaction per insert)",
        measured?.0,
        Unit::PerSec,
    );
    litefs_orm::__private::set_coalescing(false);
    for writers in [16, 64] {
        bench.reset().await?;
        let measured = phase(&bench.replica.db, writers, opts.phase).await;
        most_rows = most_rows.max(bench.rows().await?);
        report.add(
            &format!("tput.gc.uncoalesced.{writers}"),
            &format!(
                "throughput, {writers} writers, forwarded one request per write, group commit on"
            ),
            measured?.0,
            Unit::PerSec,
        );
    }
    litefs_orm::__private::set_coalescing(true);
    // The forwarding path alone against local writes, with the stand-in's replication (a
    // whole-database copy per sync, sharing the two cores) paused for both.
    bench.litefs.pause_replication();
    for (key, label, db) in [
        (
            "tput.gc.local_paused.64",
            "throughput, 64 writers, local, replication paused",
            &bench.primary.db,
        ),
        (
            "tput.gc.forwarded_no_wait.64",
            "throughput, 64 writers, forwarded without the read-your-writes wait, replication paused",
            &bench.replica_no_wait,
        ),
    ] {
        bench.reset_paused().await?;
        let measured = phase(db, 64, opts.phase).await;
        most_rows = most_rows.max(bench.rows().await?);
        report.add(key, label, measured?.0, Unit::PerSec);
    }
    bench.litefs.resume_replication();
    bench.reset().await?;
    let rate = forward_only(bench, 64, opts.phase).await?;
    report.add(
        "tput.gc.forward_only.64",
        "throughput, 64 writers, forwarded through the transport alone (no wait, replication paused), group commit on",
        rate,
        Unit::PerSec,
    );
    bench.reset().await?;
    let get = |k: &str| report.get(k).unwrap_or(f64::NAN);
    let ratios = [
        (
            "tput.forwarded_over_local.64",
            "64 writers: forwarded / local, both with group commit [target ≥ 1]",
            get("tput.gc.forwarded.64") / get("tput.gc.local.64"),
        ),
        (
            "tput.forwarded_no_wait_over_local.64",
            "64 writers, replication paused: forwarded without the wait / local",
            get("tput.gc.forwarded_no_wait.64") / get("tput.gc.local_paused.64"),
        ),
        (
            "tput.forwarded_over_plain.64",
            "64 writers: forwarded (from the replica) / plain SeaORM on the primary",
            get("tput.gc.forwarded.64") / get("tput.plain.64"),
        ),
        (
            "tput.coalescing_gain.16",
            "coalescing gain, 16 forwarded writers (batched / one request per write)",
            get("tput.gc.forwarded.16") / get("tput.gc.uncoalesced.16"),
        ),
        (
            "tput.coalescing_gain.64",
            "coalescing gain, 64 forwarded writers (batched / one request per write)",
            get("tput.gc.forwarded.64") / get("tput.gc.uncoalesced.64"),
        ),
        (
            "tput.forward_only_over_local.64",
            "64 writers: forwarded through the transport alone / local, both with group commit",
            get("tput.gc.forward_only.64") / get("tput.gc.local.64"),
        ),
        (
            "tput.forwarded_over_single_local.64",
            "64 writers: forwarded (group commit) / local one commit per write",
            get("tput.gc.forwarded.64") / get("tput.single.local.64"),
        ),
        (
            "tput.gc_gain.local.16",
            "group commit gain, 16 local writers",
            get("tput.gc.local.16") / get("tput.single.local.16"),
        ),
        (
            "tput.gc_gain.forwarded.16",
            "group commit gain, 16 forwarded writers",
            get("tput.gc.forwarded.16") / get("tput.single.forwarded.16"),
        ),
        (
            "tput.gc_gain.local.64",
            "group commit gain, 64 local writers",
            get("tput.gc.local.64") / get("tput.single.local.64"),
        ),
        (
            "tput.gc_gain.forwarded.64",
            "group commit gain, 64 forwarded writers",
            get("tput.gc.forwarded.64") / get("tput.single.forwarded.64"),
        ),
    ];
    for (key, label, v) in ratios {
        report.ratio(key, label, v);
    }
    report.notes.push(format!(
        "Throughput phases: {:.1} s each, table emptied before each; at most {most_rows} rows at \
         the end of a phase (the stand-in copies the whole database at each sync, so forwarded \
         figures fall as the table grows).",
        opts.phase.as_secs_f64()
    ));
    Ok(())
}
