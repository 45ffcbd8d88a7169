//! Where a phase's CPU went: this process (every node's app and the writers) and each LiteFS
//! process, per write — what the two shared cores are spent on — and how many writes each
//! LiteFS transaction carried.

use std::time::Duration;

use litefs_orm_testkit::apps::AppCluster;

use super::load::Load;
use crate::cores::cpu_time;
use crate::report::{Report, Unit};

/// CPU time used so far — this process, then each node's LiteFS — and the primary's TXID.
pub struct Cpu {
    app: Duration,
    litefs: Vec<Duration>,
    txid: u64,
}

impl Cpu {
    /// Reads the CPU time of this process and of every LiteFS of `cluster`.
    pub fn now(cluster: &AppCluster) -> Cpu {
        let real = cluster.real();
        Cpu {
            app: cpu_time(std::process::id()),
            litefs: (0..real.nodes())
                .map(|i| real.pid(i).map_or(Duration::ZERO, cpu_time))
                .collect(),
            txid: real.pos(real.primary()).map_or(0, |(txid, _)| txid),
        }
    }

    /// What was used between `before` and this reading.
    pub fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            app: self.app.saturating_sub(before.app),
            litefs: self
                .litefs
                .iter()
                .zip(&before.litefs)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            txid: self.txid.saturating_sub(before.txid),
        }
    }

    /// Records, under `key`, the CPU per write of this process (`.cpu_app`), of the primary's
    /// LiteFS (`.cpu_litefs_primary`, node 0) and of the replicas' (`.cpu_litefs_replicas`),
    /// and the writes per commit (`.per_txid`).
    pub fn record(&self, report: &mut Report, key: &str, phase: &Load) {
        let writes = phase.latency.len().max(1) as f64;
        report.ratio(
            &format!("{key}.per_txid"),
            "  writes per LiteFS transaction (commits of the phase: TXIDs of the primary)",
            writes / self.txid.max(1) as f64,
        );
        let per_write = |d: Duration| d.as_secs_f64() * 1e6 / writes;
        let replicas: Duration = self.litefs.iter().skip(1).sum();
        let primary = self.litefs.first().copied().unwrap_or_default();
        for (what, label, used) in [
            ("cpu_app", "this process (apps and writers)", self.app),
            ("cpu_litefs_primary", "the primary's LiteFS", primary),
            ("cpu_litefs_replicas", "the replicas' LiteFS", replicas),
        ] {
            report.add(
                &format!("{key}.{what}"),
                &format!("  CPU per write, {label} (10 ms ticks)"),
                per_write(used),
                Unit::Micros,
            );
        }
    }
}
