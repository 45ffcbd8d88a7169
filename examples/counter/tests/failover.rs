//! Crashes and faults under load, with the counter as separate processes on the LiteFS
//! stand-in: a SIGKILLed primary and a promoted replica (with views in flight at the kill,
//! and with views committed but not yet answered), and connections reset after the request
//! reached the primary. Clients view one page through the replicas n2 and n3 throughout;
//! every acknowledged view is counted exactly once, and every failed one says it was not
//! counted, or that nobody can know (`support::load` checks it).

mod support;

use std::time::Duration;

use litefs_orm_tests::proxy::Fault;
use support::load::{Load, Outcome, Phase, View, check_exactly_once, count_on, wait_until};
use support::{Deployment, Setup, count, element};

/// One deployment (three app processes, the stand-in and the load) at a time: together they
/// would crowd a small machine's cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The page every view of a run counts.
const PAGE: &str = "failover";
/// Views each loaded node must acknowledge in a phase before the test moves on.
const ACKS_PER_NODE: usize = 40;
/// Answers the proxy in front of the primary replaces with a reset before the fault ends.
const RESETS: usize = 40;
/// How long the primary's app stays dead before its node ships its commits and a replica is
/// promoted: time for forwarded views to find it gone and pile up in retries.
const DEAD_PRIMARY: Duration = Duration::from_millis(300);
/// How long no node is primary between n1's death and n2's election.
const NO_PRIMARY: Duration = Duration::from_millis(800);

/// True when some view through node `node` that `when` selects was acknowledged with role
/// `role`.
fn acked_with_role(views: &[View], node: usize, role: &str, when: impl Fn(&View) -> bool) -> bool {
    views.iter().any(|v| {
        v.node == node
            && when(v)
            && matches!(&v.outcome, Outcome::Acked { role: r, .. } if r == role)
    })
}

/// Kills n1's app (SIGKILL) under load; after `dead_for`, lets its node's LiteFS ship what
/// the app had committed and promotes n2: the app died, its machine's LiteFS did not.
async fn kill_n1_and_promote_n2(d: &mut Deployment, dead_for: Duration) {
    d.nodes[0].kill();
    tokio::time::sleep(dead_for).await;
    d.litefs
        .sync()
        .await
        .expect("the dead app's commits reach the replicas");
    d.litefs.switch_primary(1).await;
}

/// After n2's promotion: waits until n2 and n3 have acknowledged views sent since, stops the
/// load, and checks exactly-once against n2's final count, and that the views went through
/// n1 before and through the promoted n2 after. Returns the final count and the views.
async fn finish_failover(test: &str, d: &Deployment, load: Load) -> (i64, Vec<View>) {
    load.enter(Phase::After);
    load.wait_for_acks(Phase::After, ACKS_PER_NODE).await;
    let views = load.stop().await;
    d.litefs.sync().await.expect("replicas catch up");
    let total = count_on(&reqwest::Client::new(), d.url(1), PAGE).await;
    check_exactly_once(test, &views, total);
    let (n1, n2) = (d.litefs.hostname(0), d.litefs.hostname(1));
    assert!(
        acked_with_role(&views, 1, &format!("replica of {n1}"), |v| {
            v.answered == Phase::Before
        }),
        "{test}: n2 acknowledged no view as a replica of n1 before the fault"
    );
    assert!(
        acked_with_role(&views, 1, "primary", |v| v.sent == Phase::After),
        "{test}: n2 acknowledged no view as the promoted primary"
    );
    assert!(
        acked_with_role(&views, 2, &format!("replica of {n2}"), |v| {
            v.sent == Phase::After
        }),
        "{test}: n3 acknowledged no view forwarded to the promoted n2"
    );
    (total, views)
}

/// Clients viewing [`PAGE`] on n2 and n3, once each has had its first views acknowledged.
async fn load_on_the_replicas(d: &Deployment) -> Load {
    let load = Load::start(PAGE, &[(1, d.url(1)), (2, d.url(2))]);
    load.wait_for_acks(Phase::Before, ACKS_PER_NODE).await;
    load
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_primary_and_a_promoted_replica_lose_and_duplicate_no_acknowledged_view() {
    let _serial = SERIAL.lock().await;
    let mut d = Deployment::start("sigkill", Duration::from_secs(5)).await;
    let load = load_on_the_replicas(&d).await;

    // Forwarded views in flight lose their answer; new ones find nobody listening and are
    // retried by the replicas until n2 is promoted.
    load.enter(Phase::Fault);
    kill_n1_and_promote_n2(&mut d, DEAD_PRIMARY).await;
    let (total, _) = finish_failover("sigkill", &d, load).await;

    // The crashed node comes back as a replica of n2, converges, and counts through n2.
    d.restart(0).await;
    d.litefs
        .sync()
        .await
        .expect("the restarted node catches up");
    let client = reqwest::Client::new();
    for node in &d.nodes {
        assert_eq!(
            count_on(&client, &node.url, PAGE).await,
            total,
            "{}",
            node.name
        );
    }
    let body = client
        .get(format!("{}/pages/{PAGE}", d.url(0)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count(&body), Some(total + 1), "{body}");
    let role = format!("replica of {}", d.litefs.hostname(1));
    assert_eq!(element(&body, "role"), Some(role), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_sent_while_no_primary_is_known_wait_for_the_election_and_count_once() {
    let _serial = SERIAL.lock().await;
    let mut d = Deployment::start("no-primary", Duration::from_secs(5)).await;
    let load = load_on_the_replicas(&d).await;

    // n1 dies and its lease lapses: for a while no node is primary (`.primary` gone
    // everywhere, `/events` says so), then n2 wins the election. Views sent meanwhile wait
    // for a primary within the write deadline instead of failing.
    load.enter(Phase::Fault);
    d.nodes[0].kill();
    d.litefs
        .sync()
        .await
        .expect("the dead app's commits reach the replicas");
    d.litefs.lose_primary().await;
    tokio::time::sleep(NO_PRIMARY).await;
    d.litefs.switch_primary(1).await;
    let (_, views) = finish_failover("no-primary", &d, load).await;
    assert!(
        views.iter().any(|v| v.sent != Phase::After
            && v.answered == Phase::After
            && matches!(v.outcome, Outcome::Acked { .. })),
        "no view in flight while no primary was known was acknowledged after the election"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_a_sigkilled_primary_committed_but_never_answered_are_neither_lost_nor_duplicated() {
    let _serial = SERIAL.lock().await;
    let setup = Setup {
        replication_timeout: Duration::from_secs(5),
        proxied: true,
    };
    let mut d = Deployment::start_with("unanswered", setup).await;
    let client = reqwest::Client::new();
    let load = load_on_the_replicas(&d).await;

    // n1's answers are held back until each replica has views n1 committed and did not
    // answer (the replicas' other views queue behind those requests, unsent); then n1 dies
    // with them, and n2 is promoted. A SIGKILL alone rarely lands between a commit and its
    // answer; this makes several views do so.
    load.enter(Phase::Fault);
    let from = count_on(&client, d.url(0), PAGE).await;
    d.proxies[0].set(Fault::Stall);
    let held = 2;
    wait_until(|| async {
        let now = count_on(&client, d.url(0), PAGE).await;
        match now >= from + held {
            true => Ok(()),
            false => Err(format!(
                "n1 committed {} views since {from}, want {held}",
                now - from
            )),
        }
    })
    .await;
    kill_n1_and_promote_n2(&mut d, Duration::ZERO).await;
    // The held answers are lost: their connections are reset.
    d.proxies[0].set(Fault::ResetAfterRequest);
    finish_failover("unanswered", &d, load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_after_the_request_lose_and_duplicate_no_acknowledged_view() {
    let _serial = SERIAL.lock().await;
    let setup = Setup {
        replication_timeout: Duration::from_secs(5),
        proxied: true,
    };
    let d = Deployment::start_with("resets", setup).await;
    let client = reqwest::Client::new();
    let load = load_on_the_replicas(&d).await;

    // Every forwarded view reaches the primary, which runs it; its answer is replaced by a
    // reset, until enough have been.
    load.enter(Phase::Fault);
    for proxy in &d.proxies {
        proxy.set(Fault::ResetAfterRequest);
    }
    wait_until(|| async {
        match d.proxies[0].answers_replaced() {
            n if n >= RESETS => Ok(()),
            n => Err(format!("{n} answers reset, want {RESETS}")),
        }
    })
    .await;
    for proxy in &d.proxies {
        proxy.set(Fault::None);
    }
    load.enter(Phase::After);
    load.wait_for_acks(Phase::After, ACKS_PER_NODE).await;
    let views = load.stop().await;
    eprintln!("resets: {} answers reset", d.proxies[0].answers_replaced());

    d.litefs.sync().await.expect("replicas catch up");
    let total = count_on(&client, d.url(0), PAGE).await;
    check_exactly_once("resets", &views, total);
    for node in &d.nodes {
        assert_eq!(
            count_on(&client, &node.url, PAGE).await,
            total,
            "{}",
            node.name
        );
    }
}

/// Views acknowledged with `acked` counts, plus `unknown` and `not_committed` failures.
fn views_of(acked: &[i64], unknown: usize, not_committed: usize) -> Vec<View> {
    let view = |outcome| View {
        node: 1,
        sent: Phase::Before,
        answered: Phase::Before,
        outcome,
    };
    let acked = acked.iter().map(|&count| {
        view(Outcome::Acked {
            count,
            role: "primary".into(),
        })
    });
    let unknown = (0..unknown).map(|_| view(Outcome::Unknown("maybe".into())));
    let not_committed = (0..not_committed).map(|_| view(Outcome::NotCommitted("no".into())));
    acked.chain(unknown).chain(not_committed).collect()
}

#[test]
fn the_check_accepts_a_surplus_the_unknown_views_explain() {
    check_exactly_once("check", &views_of(&[1, 2, 4], 1, 3), 4);
    check_exactly_once("check", &views_of(&[1, 2, 3], 2, 0), 3);
}

#[test]
#[should_panic(expected = "counts acknowledged to more than one view: [2]")]
fn the_check_catches_a_count_acknowledged_twice() {
    check_exactly_once("check", &views_of(&[1, 2, 2], 1, 0), 3);
}

#[test]
#[should_panic(expected = "acknowledged counts outside 1..=2")]
fn the_check_catches_a_lost_acknowledged_view() {
    check_exactly_once("check", &views_of(&[1, 2, 3], 0, 0), 2);
}

#[test]
#[should_panic(expected = "exceeds the 2 views known counted by 1, but only 0 views")]
fn the_check_catches_a_view_counted_though_said_not_counted() {
    check_exactly_once("check", &views_of(&[1, 3], 0, 1), 3);
}
