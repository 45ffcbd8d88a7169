//! Real LiteFS with a Consul lease served by the testkit: election, failover after a kill, a
//! primary cut off the lease server or paused, and the handoff of `promote`.
//!
//! A short TTL (4 s, lock delay 1 s) keeps them quick; each prints what it measured.

use std::time::{Duration, Instant};

use litefs_orm_testkit::real::{ConsulLease, Cut, Lease, RealCluster, RealError, RealOptions};

const TTL: Duration = Duration::from_secs(4);
const LOCK_DELAY: Duration = Duration::from_secs(1);
/// Slack for LiteFS's once-a-second retries and a loaded machine.
const SLACK: Duration = Duration::from_secs(3);

async fn start() -> RealCluster {
    let lease = ConsulLease::default()
        .with_ttl(TTL)
        .with_lock_delay(LOCK_DELAY);
    let opts = RealOptions::default().with_lease(Lease::Consul(lease));
    RealCluster::start(opts).await.expect("start")
}

async fn sql(path: &std::path::Path, sql: &'static str) {
    use sea_orm::sqlx::{Connection, sqlite::SqliteConnection};
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut c = SqliteConnection::connect(&url).await.unwrap();
    sea_orm::sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

/// The lease server's events and every node's log since `from` (bytes into each log).
fn story(c: &RealCluster, from: &[usize]) -> String {
    let mut out = format!("lease events:\n{}\n", c.lease_events().join("\n"));
    for i in 0..c.nodes() {
        let log = c.log(i);
        let since = log
            .get(from.get(i).copied().unwrap_or(0)..)
            .unwrap_or_default();
        out += &format!("---- {} log:\n{since}\n", c.hostname(i));
    }
    out
}

fn log_lengths(c: &RealCluster) -> Vec<usize> {
    (0..c.nodes()).map(|i| c.log(i).len()).collect()
}

/// Waits until node `i`'s log past byte `from` contains `line`; returns how long it took.
async fn wait_for_log(
    c: &RealCluster,
    i: usize,
    from: usize,
    line: &str,
    timeout: Duration,
) -> Duration {
    let start = Instant::now();
    while !c.log(i).get(from..).unwrap_or_default().contains(line) {
        assert!(
            start.elapsed() < timeout,
            "no {line:?} in {}'s log:\n{}",
            c.hostname(i),
            story(c, &[])
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn three_candidates_elect_one_primary_and_the_others_follow_it() {
    let mut c = start().await;
    let p = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
    assert_eq!(c.current_primary().await, Some(p));
    assert_eq!(c.primary(), p);
    for i in 0..3 {
        let info = c.info(i).await.unwrap();
        assert_eq!(info["isPrimary"], i == p, "{info}");
        assert_eq!(info["primary"]["hostname"], c.hostname(p), "{info}");
    }
    sql(
        &c.db_path(p),
        "CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    )
    .await;
    c.sync(Duration::from_secs(5)).await.unwrap();
    assert!(c.pos((p + 1) % 3).unwrap().0 >= 2);
}

#[tokio::test]
async fn killing_the_primary_makes_another_node_primary_within_ttl_and_lock_delay() {
    let mut c = start().await;
    let old = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
    sql(&c.db_path(old), "CREATE TABLE t(x);").await;
    c.sync(Duration::from_secs(5)).await.unwrap();
    let from = log_lengths(&c);
    let killed = Instant::now();
    c.kill_node(old).await.unwrap();
    let new = c.wait_for_primary(TTL + LOCK_DELAY + SLACK).await;
    let took = killed.elapsed();
    let new = new.unwrap_or_else(|e| panic!("{e}\n{}", story(&c, &from)));
    eprintln!("failover after a kill took {took:?}\n{}", story(&c, &from));
    assert_ne!(new, old);
    assert!(took <= TTL + LOCK_DELAY + SLACK, "{took:?}");
    let events = c.lease_events().join("\n");
    assert!(events.contains("expired"), "{events}");
    sql(&c.db_path(new), "INSERT INTO t VALUES (1);").await;
    c.sync(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_primary_cut_off_with_hang_stays_primary_until_healed() {
    let mut c = start().await;
    let p = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
    let from = log_lengths(&c);
    c.cut_lease(p, Cut::Hang).unwrap();
    let cut = Instant::now();
    while cut.elapsed() < TTL * 5 / 2 {
        let now = c.current_primary().await;
        assert_eq!(
            now,
            Some(p),
            "{:?} into the cut\n{}",
            cut.elapsed(),
            story(&c, &from)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = c.lease_events().join("\n");
    assert!(events.contains("expired"), "{events}");
    c.heal_lease(p).unwrap();
    let healed = Instant::now();
    let stepped = wait_for_log(&c, p, from[p], "exiting primary", Duration::from_secs(5)).await;
    let q = c.wait_for_primary(TTL + LOCK_DELAY + SLACK).await;
    let took = healed.elapsed();
    eprintln!(
        "after a {:?} hang: stepped down {stepped:?} after heal, primary again after {took:?}\n{}",
        healed - cut,
        story(&c, &from)
    );
    q.unwrap();
}

#[tokio::test]
async fn a_primary_refused_by_the_lease_server_steps_down_and_another_node_takes_over() {
    let mut c = start().await;
    let p = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
    let from = log_lengths(&c);
    c.cut_lease(p, Cut::Refuse).unwrap();
    let cut = Instant::now();
    let timeout = TTL + LOCK_DELAY + SLACK;
    let new = loop {
        match c.current_primary().await {
            Some(q) if q != p => break q,
            _ => {}
        }
        assert!(cut.elapsed() < timeout, "{}", story(&c, &from));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = cut.elapsed();
    assert!(
        c.log(p)[from[p]..].contains("exiting primary"),
        "{}",
        story(&c, &from)
    );
    c.heal_lease(p).unwrap();
    let follows = c.wait_for_primary(timeout).await.unwrap();
    eprintln!(
        "refused: {} primary {took:?} after the cut\n{}",
        c.hostname(new),
        story(&c, &from)
    );
    assert_ne!(follows, p);
}

#[tokio::test]
async fn pausing_the_primary_for_two_ttls_does_not_fail_over() {
    let mut c = start().await;
    let p = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
    let from = log_lengths(&c);
    c.pause_node(p).unwrap();
    assert!(c.is_paused(p));
    assert!(c.pos(p).is_err());
    let paused = Instant::now();
    while paused.elapsed() < TTL * 2 {
        let now = c.current_primary().await;
        assert_eq!(
            now,
            None,
            "{:?} into the pause\n{}",
            paused.elapsed(),
            story(&c, &from)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.resume_node(p).unwrap();
    let resumed = Instant::now();
    let line = "exiting primary, destroying lease";
    let stepped = wait_for_log(&c, p, from[p], line, Duration::from_secs(2)).await;
    let primary_again = loop {
        if c.current_primary().await.is_some() {
            break resumed.elapsed();
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(2),
            "{}",
            story(&c, &from)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let q = c.wait_for_primary(Duration::from_secs(3)).await;
    let all = resumed.elapsed();
    eprintln!(
        "after a {:?} pause: stepped down {stepped:?} after resume, a primary after \
         {primary_again:?}, followed by all after {all:?}\n{}",
        resumed - paused,
        story(&c, &from)
    );
    q.unwrap();
}

#[tokio::test]
async fn restarting_a_replica_with_promote_makes_it_primary() {
    let mut c = start().await;
    let p = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
    let r = (p + 1) % 3;
    let from = log_lengths(&c);
    let t = Instant::now();
    c.restart_node(r).await.unwrap();
    let ready = t.elapsed();
    assert_eq!(c.primary(), r);
    assert_eq!(c.wait_for_primary(Duration::from_secs(5)).await.unwrap(), r);
    eprintln!(
        "restart took {ready:?}, all follow after {:?}\n{}",
        t.elapsed(),
        story(&c, &from)
    );
    assert!(c.log(r)[from[r]..].contains("acquiring existing lease from handoff"));
    assert!(c.log(p)[from[p]..].contains("exiting primary, preserving lease for handoff"));
}

#[tokio::test]
async fn change_primary_hands_the_lease_to_the_named_node() {
    let mut c = start().await;
    let p = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
    let to = (p + 2) % 3;
    c.change_primary(to).await.unwrap();
    assert_eq!(c.current_primary().await, Some(to));
    assert!(matches!(
        c.set_primary(p),
        Err(RealError::WrongLease { .. })
    ));
}

#[tokio::test]
async fn a_static_cluster_has_no_lease_to_cut() {
    let mut c = RealCluster::start(RealOptions::default().with_nodes(1))
        .await
        .unwrap();
    assert!(matches!(
        c.cut_lease(0, Cut::Hang),
        Err(RealError::WrongLease { .. })
    ));
    assert_eq!(c.consul_url(0), None);
    assert!(c.lease_events().is_empty());
}

/// The default lease (TTL 10 s, lock delay 1 s), three kills at different points of the
/// primary's renewal cycle; prints each failover time. Run by hand:
/// `cargo test -p litefs-orm-testkit --test consul_lease -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "about a minute: measures failovers with the default 10 s TTL"]
async fn with_the_default_lease_a_killed_primary_is_replaced_within_ttl_and_lock_delay() {
    let lease = ConsulLease::default();
    let bound = lease.ttl + lease.lock_delay + SLACK;
    let opts = RealOptions::default().with_lease(Lease::Consul(lease));
    let mut c = RealCluster::start(opts).await.unwrap();
    for wait_ms in [0, 2_500, 4_900] {
        let old = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let from = log_lengths(&c);
        let killed = Instant::now();
        c.kill_node(old).await.unwrap();
        let new = c.wait_for_primary(bound).await;
        let took = killed.elapsed();
        let new = new.unwrap_or_else(|e| panic!("{e}\n{}", story(&c, &from)));
        eprintln!(
            "kill {wait_ms} ms after the primary was found: {} primary after {took:?}\n{}",
            c.hostname(new),
            story(&c, &from)
        );
        assert!(took <= bound, "{took:?}");
        c.start_node(old).await.unwrap();
    }
}

/// The default lease (TTL 10 s): a primary paused for 2×TTL is not replaced, and steps down
/// and takes the lease again at resume; prints the times. Run by hand with `--ignored`.
#[tokio::test]
#[ignore = "about half a minute: a 20 s pause with the default 10 s TTL"]
async fn with_the_default_lease_a_primary_paused_for_two_ttls_is_not_replaced() {
    let lease = ConsulLease::default();
    let ttl = lease.ttl;
    let opts = RealOptions::default().with_lease(Lease::Consul(lease));
    let mut c = RealCluster::start(opts).await.unwrap();
    let p = c.wait_for_primary(Duration::from_secs(5)).await.unwrap();
    let from = log_lengths(&c);
    c.pause_node(p).unwrap();
    let paused = Instant::now();
    while paused.elapsed() < ttl * 2 {
        assert_eq!(c.current_primary().await, None, "{}", story(&c, &from));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.resume_node(p).unwrap();
    let resumed = Instant::now();
    let line = "exiting primary, destroying lease";
    let stepped = wait_for_log(&c, p, from[p], line, Duration::from_secs(2)).await;
    let q = c.wait_for_primary(Duration::from_secs(3)).await.unwrap();
    eprintln!(
        "{} paused {:?}: stepped down {stepped:?} after resume, {} primary and followed \
         {:?} after resume\n{}",
        c.hostname(p),
        resumed - paused,
        c.hostname(q),
        resumed.elapsed(),
        story(&c, &from)
    );
}
