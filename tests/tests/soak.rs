//! A bounded soak: mixed local reads and forwarded writes on three nodes, with no errors
//! and no growth of memory or open files. `LITEFS_ORM_SOAK_SECS` sets the length (default
//! 20 s; run e.g. 600 for a long soak).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use litefs_orm::ReplicatedActiveModel;
use litefs_orm_tests::TestCluster;
use litefs_orm_tests::entities::post;
use litefs_orm_tests::operations::IncrementPage;
use sea_orm::ActiveValue::Set;
use sea_orm::{EntityTrait, PaginatorTrait};

/// Resident memory in KiB and open file descriptors of this process.
fn usage() -> (u64, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_reads_and_forwarded_writes_run_without_errors_or_growth() {
    let secs: u64 = std::env::var("LITEFS_ORM_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let c = TestCluster::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..6usize {
        let db = c.db(worker % 3).clone();
        let (stop, writes, reads) = (stop.clone(), writes.clone(), reads.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if worker % 2 == 0 {
                    let title = format!("w{worker}-{n}");
                    post::ActiveModel {
                        title: Set(title),
                        body: Set("soak".into()),
                        ..Default::default()
                    }
                    .insert_replicated(&db)
                    .await
                    .expect("forwarded insert");
                    db.run(IncrementPage {
                        page: format!("p{}", n % 7),
                    })
                    .await
                    .expect("operation");
                    writes.fetch_add(2, Ordering::Relaxed);
                } else {
                    post::Entity::find().count(&db).await.expect("count");
                    post::Entity::find_by_id(n as i32)
                        .one(&db)
                        .await
                        .expect("read by id");
                    reads.fetch_add(2, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let warm_up = Duration::from_secs((secs / 4).max(2));
    tokio::time::sleep(warm_up).await;
    let (rss_start, fds_start) = usage();
    tokio::time::sleep(Duration::from_secs(secs) - warm_up).await;
    let (rss_end, fds_end) = usage();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a soak task failed");
    }
    let (w, r) = (
        writes.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
    );
    println!(
        "soak {secs}s: {w} writes, {r} reads; RSS {rss_start} → {rss_end} KiB; fds {fds_start} → {fds_end}"
    );
    assert!(w > 0 && r > 0);
    assert!(
        rss_end <= rss_start + 32 * 1024,
        "memory grew from {rss_start} to {rss_end} KiB"
    );
    assert!(
        fds_end <= fds_start + 16,
        "open files grew from {fds_start} to {fds_end}"
    );
    c.litefs.sync().await.unwrap();
    let total = post::Entity::find().count(c.db(1)).await.unwrap();
    assert_eq!(
        total * 2,
        w,
        "every acknowledged insert is on a replica exactly once"
    );
}
