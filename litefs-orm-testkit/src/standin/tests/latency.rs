//! A measurement, not a check: commit → `-pos` bump → replicas' `-pos` latencies.

use std::time::{Duration, Instant};

use super::{connect, exec, with_table};
use crate::{ClusterOptions, JournalMode};

async fn measure(mode: JournalMode, poll: Duration) {
    let opts = ClusterOptions::default()
        .nodes(3)
        .http_api(false)
        .journal_mode(mode);
    let (c, mut conn) = with_table(opts.poll_interval(poll)).await;
    let _reader = connect(&c, 1).await;
    let (mut bump, mut replicas) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let before = c.pos(0);
        exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
        let committed = Instant::now();
        while c.pos(0) == before {
            std::thread::sleep(Duration::from_micros(50));
        }
        bump.push(committed.elapsed());
        let p = c.pos(0);
        while c.pos(1) != p || c.pos(2) != p {
            std::thread::sleep(Duration::from_micros(50));
        }
        replicas.push(committed.elapsed());
    }
    bump.sort();
    replicas.sort();
    let pct = |v: &[Duration], p: usize| v[v.len() * p / 100];
    println!(
        "{mode:?}, poll {poll:?}: -pos bump p50 {:?} p95 {:?}; both replicas p50 {:?} p95 {:?} p99 {:?}",
        pct(&bump, 50),
        pct(&bump, 95),
        pct(&replicas, 50),
        pct(&replicas, 95),
        pct(&replicas, 99)
    );
}

#[tokio::test]
#[ignore = "measurement: cargo test --release -p litefs-orm-testkit latency -- --ignored --nocapture"]
async fn measure_commit_to_pos_latency() {
    for mode in [JournalMode::Delete, JournalMode::Wal] {
        for poll in [200, 500, 1000].map(Duration::from_micros) {
            measure(mode, poll).await;
        }
    }
}
