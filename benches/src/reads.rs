//! Reads on the replica: by primary key and a 100-row scan, through `ReplicatedDb` and
//! through a plain SeaORM connection on the same file, interleaved.

use std::time::Instant;

use anyhow::Result;
use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};

use crate::Options;
use crate::cluster::Bench;
use crate::entity::item;
use crate::report::Report;
use crate::stats::Samples;

/// Rows the read phase works on.
const ROWS: u64 = 1000;

/// Fills the table (on the primary, one transaction) and replicates it.
async fn seed(bench: &Bench) -> Result<()> {
    bench.reset().await?;
    let sql = format!(
        "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < {}) \
         INSERT INTO item (name, qty, price, note) \
         SELECT 'item ' || x, x % 100, 9.5 + x % 7, 'benchmark' FROM n",
        ROWS - 1
    );
    bench.primary.db.execute_unprepared(&sql).await?;
    bench.litefs.sync().await?;
    Ok(())
}

/// One read by primary key.
async fn by_pk<C: ConnectionTrait>(db: &C, id: i64) -> Result<()> {
    let found = item::Entity::find_by_id(id).one(db).await?;
    anyhow::ensure!(found.is_some(), "row {id} is missing");
    Ok(())
}

/// One 100-row scan.
async fn scan<C: ConnectionTrait>(db: &C, offset: u64) -> Result<()> {
    let rows = item::Entity::find()
        .offset(offset)
        .limit(100)
        .all(db)
        .await?;
    anyhow::ensure!(rows.len() == 100, "scan returned {} rows", rows.len());
    Ok(())
}

/// Handle and plain samples of one kind of read, taken in alternating blocks.
struct Pair {
    handle: Samples,
    plain: Samples,
    /// Per pair, handle − plain, in µs (signed).
    diffs: Vec<f64>,
}

impl Pair {
    /// The median per-pair difference as a ratio to plain's p50: drift between pairs cancels.
    fn paired_ratio(&self) -> f64 {
        let mut d = self.diffs.clone();
        d.sort_unstable_by(f64::total_cmp);
        let median = d.get(d.len() / 2).copied().unwrap_or(f64::NAN);
        1.0 + median / self.plain.p50()
    }
}

/// Runs `rounds × block` pairs of reads, one on each side, in ABBA order (handle first in
/// even pairs, plain first in odd ones), so that noise and cache warmth hit both alike.
async fn interleave<F, Fut>(rounds: usize, block: usize, read: F) -> Result<Pair>
where
    F: Fn(Side, u64) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let pairs = rounds * block;
    let mut pair = Pair {
        handle: Samples::with_capacity(pairs),
        plain: Samples::with_capacity(pairs),
        diffs: Vec::with_capacity(pairs),
    };
    let mut n = 0u64;
    for i in 0..pairs {
        let order = if i % 2 == 0 {
            [Side::Handle, Side::Plain]
        } else {
            [Side::Plain, Side::Handle]
        };
        // Both sides read the same row.
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut diff = 0.0;
        for side in order {
            let start = Instant::now();
            read(side, n >> 33).await?;
            let took = start.elapsed();
            match side {
                Side::Handle => {
                    pair.handle.push(took);
                    diff += took.as_secs_f64() * 1e6;
                }
                Side::Plain => {
                    pair.plain.push(took);
                    diff -= took.as_secs_f64() * 1e6;
                }
            }
        }
        pair.diffs.push(diff);
    }
    Ok(pair)
}

/// Which connection a read goes through.
#[derive(Clone, Copy)]
enum Side {
    Handle,
    Plain,
}

/// Measures both reads and records them in `report`.
pub async fn run(bench: &Bench, opts: &Options, report: &mut Report) -> Result<()> {
    seed(bench).await?;
    let first_id: i64 = item::Entity::find()
        .one(&bench.replica.db)
        .await?
        .map(|m| m.id)
        .unwrap_or(1);
    let (handle, plain) = (&bench.replica.db, &bench.plain);
    // Warm both pools and statement caches.
    interleave(2, 50, |side, r| async move {
        let id = first_id + (r % ROWS) as i64;
        match side {
            Side::Handle => by_pk(handle, id).await,
            Side::Plain => by_pk(plain, id).await,
        }
    })
    .await?;
    let pk = interleave(opts.read_rounds, opts.read_block, |side, r| async move {
        let id = first_id + (r % ROWS) as i64;
        match side {
            Side::Handle => by_pk(handle, id).await,
            Side::Plain => by_pk(plain, id).await,
        }
    })
    .await?;
    let scans = interleave(opts.read_rounds, opts.read_block / 4 + 1, |side, r| {
        let offset = r % (ROWS - 100);
        async move {
            match side {
                Side::Handle => scan(handle, offset).await,
                Side::Plain => scan(plain, offset).await,
            }
        }
    })
    .await?;
    for (key, label, pair) in [
        ("read.pk", "read by primary key", &pk),
        ("read.scan", "100-row scan", &scans),
    ] {
        report.latency(
            &format!("{key}.handle"),
            &format!("{label}, ReplicatedDb"),
            &pair.handle,
        );
        report.latency(
            &format!("{key}.plain"),
            &format!("{label}, plain SeaORM"),
            &pair.plain,
        );
        report.ratio(
            &format!("{key}.ratio"),
            &format!("{label}: ReplicatedDb / plain (p50)"),
            pair.handle.p50() / pair.plain.p50(),
        );
        report.ratio(
            &format!("{key}.paired_ratio"),
            &format!("{label}: 1 + median per-pair (handle − plain) / plain p50"),
            pair.paired_ratio(),
        );
    }
    bench.reset().await
}
