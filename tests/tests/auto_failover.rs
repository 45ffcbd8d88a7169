//! Automatic failover on real LiteFS v0.5.14 with a Consul lease (every node a candidate,
//! `promote: true`, TTL 10 s, lock delay 1 s): clients write unique values through every
//! node while a fault strikes — the primary killed, paused 20 s or cut off the lease 25 s, a
//! replica killed, every node restarted in turn — and the history checker compares every
//! write's outcome with what every node holds once the cluster healed.
//!
//! Each test runs its scenario `AUTO_FAILOVER_ROUNDS` times (default 1) and prints one
//! `history scenario=… run=…` line per run (also appended to
//! `<target tmp>/auto-failover/summary.log`). Many rounds by hand:
//!
//! ```text
//! AUTO_FAILOVER_ROUNDS=10 cargo test -p litefs-orm-tests --test auto_failover -- --nocapture
//! ```
//!
//! What must hold in every run: no acknowledged write lost, except one LiteFS itself lost by
//! electing a node that lacked it (named in the summary); none applied twice; none reported
//! not committed yet present; all nodes agree; no write past its deadline; and writes resume
//! without any process being restarted.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use litefs_orm_testkit::real::Cut;
use litefs_orm_tests::failover::{Deployment, Load, Settings, gap};
use litefs_orm_tests::history::{Election, Verdict, Write, check};

/// One deployment (three LiteFS and three app processes, eight clients) at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Concurrent clients, spread over every node, unless `AUTO_FAILOVER_CLIENTS` says.
fn clients() -> usize {
    std::env::var("AUTO_FAILOVER_CLIENTS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(8)
}
/// Writes each live node must acknowledge before a fault, and after it (writes resumed).
const ACKS: usize = 15;
/// How long writes may take to resume after a fault ends (an election included).
const RESUME: Duration = Duration::from_secs(60);

fn rounds() -> usize {
    std::env::var("AUTO_FAILOVER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
}

fn run_dir(scenario: &str, round: usize) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("auto-failover")
        .join(format!("{scenario}-{round}"))
}

/// A deployment with load running and every node's first writes acknowledged.
async fn loaded(scenario: &str, round: usize) -> (Deployment, Load) {
    loaded_with(scenario, round, Settings::default()).await
}

/// [`loaded`], with `settings`.
async fn loaded_with(scenario: &str, round: usize, settings: Settings) -> (Deployment, Load) {
    let d = Deployment::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_history_node")),
        run_dir(scenario, round),
        settings,
    )
    .await;
    let patience = d.settings.deadline() + Duration::from_secs(10);
    let load = Load::start(d.urls(), clients(), d.began, patience);
    let all: Vec<usize> = (0..d.nodes()).collect();
    assert!(
        load.wait_for_acks(Duration::ZERO, &all, ACKS, RESUME).await,
        "{scenario}: writes never got going"
    );
    (d, load)
}

/// After a fault ends: once LiteFS has a primary again, restarts the nodes whose LiteFS
/// exited by itself (as a supervisor would; see `Deployment::revive_exited`), and waits
/// until every node acknowledged writes sent after that.
async fn resumed(scenario: &str, d: &mut Deployment, load: &Load) {
    // LiteFS steps down within milliseconds of a heal or a handoff, and exits then if it does.
    let _ = d.litefs.wait_for_primary(RESUME).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    d.revive_exited().await;
    let all: Vec<usize> = (0..d.nodes()).collect();
    assert!(
        load.wait_for_acks(d.now(), &all, ACKS, RESUME).await,
        "{scenario}: writes did not resume on every node within {RESUME:?}; logs in {}",
        d.logs().display()
    );
}

/// Stops the load, reads the final state, checks it, prints and records the summary with
/// the gap after `fault` and the nodes whose LiteFS exited by itself, and fails the test
/// when a promise broke.
async fn finish(
    scenario: &str,
    round: usize,
    mut d: Deployment,
    load: Load,
    fault: Duration,
    elections: &[Election],
) -> Verdict {
    let writes: Vec<Write> = load.stop().await;
    let holdings = d.holdings().await;
    // Besides the elections the scenario saw, every reset LiteFS logged is one.
    let mut elections = elections.to_vec();
    elections.extend(
        d.litefs_resets()
            .into_iter()
            .map(|(node, _, txid)| Election {
                node,
                txid,
                at: Duration::MAX,
            }),
    );
    let verdict = check(&writes, &holdings, &elections, d.settings.deadline());
    let (resumed, kinds) = gap(&writes, fault);
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    let line = format!(
        "{} resumed_after_ms={} gap=[{}] elections=[{}] litefs_exited=[{}]",
        verdict.summary(scenario, round),
        resumed.map_or("never".to_owned(), |r| r.as_millis().to_string()),
        kinds.join(","),
        elections
            .iter()
            .map(|e| format!("n{}@{}", e.node + 1, e.txid))
            .collect::<Vec<_>>()
            .join(","),
        d.self_exits().join(",")
    );
    println!("{line}");
    let summary = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("auto-failover")
        .join("summary.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(summary)
    {
        let _ = writeln!(f, "{line}");
    }
    if !verdict.holds() {
        let lines: Vec<String> = writes.iter().map(|w| format!("{w:?}")).collect();
        let _ = std::fs::write(d.logs().join("writes.txt"), lines.join("\n"));
    }
    assert!(
        verdict.holds(),
        "{line}\nlease events:\n{}\nlogs in {}",
        d.litefs.lease_events().join("\n"),
        d.logs().display()
    );
    verdict
}

/// The primary's machine dies: LiteFS and app SIGKILLed together. Its lease runs out, a
/// survivor takes it, and writes resume by themselves; the dead node comes back later (and,
/// with `promote: true`, takes the lease by handoff). With `local` durability LiteFS may
/// elect a survivor that lacks writes the dead primary acknowledged: the summary names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_fails_over_by_itself_losing_only_what_litefs_never_replicated() {
    let _serial = SERIAL.lock().await;
    for round in 1..=rounds() {
        primary_killed("primary_killed", round, Settings::default()).await;
    }
}

/// The same with `candidates` durability: every acknowledged write is on every live
/// candidate, so whichever LiteFS elects has it — none may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_loses_no_acknowledged_write_with_candidates_durability() {
    let _serial = SERIAL.lock().await;
    for round in 1..=rounds() {
        let settings = Settings {
            durability: litefs_orm::Durability::Candidates,
            ..Settings::default()
        };
        let verdict = primary_killed("primary_killed_candidates", round, settings).await;
        assert!(verdict.lost_by_election.is_empty(), "{verdict:?}");
    }
}

async fn primary_killed(scenario: &str, round: usize, settings: Settings) -> Verdict {
    let (mut d, load) = loaded_with(scenario, round, settings).await;
    let old = d.litefs.current_primary().await.expect("a primary");
    let fault = d.now();
    d.kill(old).await;
    // Nothing replicates once the primary is gone: the survivors' positions now are what
    // each brings to the election.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let positions = d.positions();
    let new = d
        .litefs
        .wait_for_primary(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{scenario}: no new primary: {e}"));
    assert_ne!(new, old, "{scenario}");
    let election = Election {
        node: new,
        txid: positions[&new],
        at: d.now(),
    };
    let survivors: Vec<usize> = (0..d.nodes()).filter(|&i| i != old).collect();
    assert!(
        load.wait_for_acks(fault, &survivors, ACKS, RESUME).await,
        "{scenario}: writes did not resume on the survivors"
    );
    d.restart(old).await;
    resumed(scenario, &mut d, &load).await;
    finish(scenario, round, d, load, fault, &[election]).await
}

/// The primary's LiteFS is paused 20 s (SIGSTOP/SIGCONT), twice its lease's TTL: no failover
/// happens (the replicas' streams stay open), writes on it end at their deadline, and after
/// the pause it gives up and retakes the lease — nothing it acknowledges after that may be
/// a commit LiteFS did not record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_primary_acknowledges_no_write_litefs_did_not_record() {
    let _serial = SERIAL.lock().await;
    for round in 1..=rounds() {
        primary_isolated("primary_paused", round, Isolation::Paused).await;
    }
}

/// The primary is cut off the lease server 25 s (its requests hang, as in a partition):
/// LiteFS keeps acting as primary past its session's expiry, and steps down and retakes the
/// lease once healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_cut_off_its_lease_acknowledges_no_write_litefs_did_not_record() {
    let _serial = SERIAL.lock().await;
    for round in 1..=rounds() {
        primary_isolated("primary_cut_off", round, Isolation::CutOff).await;
    }
}

/// How a primary is isolated without dying.
#[derive(Clone, Copy)]
enum Isolation {
    /// Its LiteFS paused 20 s.
    Paused,
    /// Cut off the lease server 25 s, its requests left hanging.
    CutOff,
}

async fn primary_isolated(scenario: &str, round: usize, how: Isolation) {
    let (mut d, load) = loaded(scenario, round).await;
    let p = d.litefs.current_primary().await.expect("a primary");
    let fault = d.now();
    let lasting = match how {
        Isolation::Paused => {
            d.litefs.pause_node(p).expect("pause");
            Duration::from_secs(20)
        }
        Isolation::CutOff => {
            d.litefs.cut_lease(p, Cut::Hang).expect("cut");
            Duration::from_secs(25)
        }
    };
    tokio::time::sleep(lasting).await;
    match how {
        Isolation::Paused => d.litefs.resume_node(p).expect("resume"),
        Isolation::CutOff => d.litefs.heal_lease(p).expect("heal"),
    }
    resumed(scenario, &mut d, &load).await;
    finish(scenario, round, d, load, fault, &[]).await;
}

/// A replica's machine dies and comes back: writes through the others go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_no_acknowledged_write() {
    let _serial = SERIAL.lock().await;
    for round in 1..=rounds() {
        let scenario = "replica_killed";
        let (mut d, load) = loaded(scenario, round).await;
        let p = d.litefs.current_primary().await.expect("a primary");
        let r = (p + 1) % d.nodes();
        let fault = d.now();
        d.kill(r).await;
        let others: Vec<usize> = (0..d.nodes()).filter(|&i| i != r).collect();
        assert!(
            load.wait_for_acks(fault, &others, ACKS, RESUME).await,
            "{scenario}: writes through the other nodes stopped"
        );
        d.restart(r).await;
        resumed(scenario, &mut d, &load).await;
        finish(scenario, round, d, load, fault, &[]).await;
    }
}

/// A deploy: every node stopped (SIGTERM) and started again, one after another. With
/// `promote: true` each restarted candidate takes the lease by handoff, so every restart is
/// a primary change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_loses_no_acknowledged_write() {
    let _serial = SERIAL.lock().await;
    for round in 1..=rounds() {
        let scenario = "rolling_restart";
        let (mut d, load) = loaded(scenario, round).await;
        let fault = d.now();
        for i in 0..d.nodes() {
            d.stop(i).await;
            d.restart(i).await;
            resumed(scenario, &mut d, &load).await;
        }
        finish(scenario, round, d, load, fault, &[]).await;
    }
}
