//! Clients viewing one page under load, and the exactly-once check of what they saw.
//!
//! The counter makes exactly-once checkable: an acknowledged view shows the count its own
//! increment produced. So over a run on one page, acknowledged counts are pairwise distinct
//! and none is above the final count, and the final count exceeds the views known to be
//! counted by at most the number of views whose fate is unknown.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::task::JoinHandle;

use super::{committed, count, element};

/// Clients hammering each loaded node.
pub const CLIENTS_PER_NODE: usize = 4;
/// How long a wait for progress may last before the test gives up as stuck: a bound against
/// hanging, far above what any phase needs, not a speed requirement.
pub const STUCK: Duration = Duration::from_secs(60);
/// A client's deadline for one view; the apps' own deadlines (10 s to write, 5 s to
/// replicate) end every view well before it.
const VIEW_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed view, so failing clients do not spin.
const FAILURE_PAUSE: Duration = Duration::from_millis(20);

/// Where a run stands; each view records the phase it was sent in and answered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The cluster is healthy.
    Before = 0,
    /// The fault is on: the primary's answers are held back or reset, or it is dead.
    Fault = 1,
    /// The fault is over: a new primary is promoted, or connections pass again.
    After = 2,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 3] = [Phase::Before, Phase::Fault, Phase::After];
}

/// What one view came to, read off the page the node answered with.
#[derive(Debug)]
pub enum Outcome {
    /// 200: counted; the page shows the count after this view and the node's role.
    Acked { count: i64, role: String },
    /// An error page saying the view was counted (`data-committed="yes"`), count unknown.
    Committed(String),
    /// An error page saying nobody knows whether it was counted (`maybe`).
    Unknown(String),
    /// An error page saying it was not counted (`no`).
    NotCommitted(String),
}

/// One view through a node.
#[derive(Debug)]
pub struct View {
    /// The node's index in the deployment.
    pub node: usize,
    /// The phase when the view was sent.
    pub sent: Phase,
    /// The phase when its answer came.
    pub answered: Phase,
    /// What it came to.
    pub outcome: Outcome,
}

/// Clients viewing one page through some nodes until stopped, recording every outcome.
pub struct Load {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Acknowledged views by phase sent in, then node.
    acks: Arc<[[AtomicUsize; 3]; 3]>,
    nodes: Vec<usize>,
    tasks: Vec<JoinHandle<Vec<View>>>,
}

impl Load {
    /// Starts [`CLIENTS_PER_NODE`] clients viewing `page` on each of `nodes` (index below 3, base URL).
    pub fn start(page: &str, nodes: &[(usize, &str)]) -> Load {
        let load = Load {
            phase: Arc::new(AtomicUsize::new(Phase::Before as usize)),
            stop: Arc::new(AtomicBool::new(false)),
            acks: Arc::default(),
            nodes: nodes.iter().map(|(i, _)| *i).collect(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for &(node, url) in nodes {
            for _ in 0..CLIENTS_PER_NODE {
                let (phase, stop, acks) =
                    (load.phase.clone(), load.stop.clone(), load.acks.clone());
                let (url, page) = (url.to_owned(), page.to_owned());
                tasks.push(tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .timeout(VIEW_TIMEOUT)
                        .build()
                        .unwrap();
                    let mut views = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let sent = Phase::ALL[phase.load(Ordering::SeqCst)];
                        let outcome = view(&client, &url, &page).await;
                        let answered = Phase::ALL[phase.load(Ordering::SeqCst)];
                        let acked = matches!(outcome, Outcome::Acked { .. });
                        if acked {
                            acks[sent as usize][node].fetch_add(1, Ordering::SeqCst);
                        }
                        views.push(View {
                            node,
                            sent,
                            answered,
                            outcome,
                        });
                        if !acked {
                            tokio::time::sleep(FAILURE_PAUSE).await;
                        }
                    }
                    views
                }));
            }
        }
        Load { tasks, ..load }
    }

    /// Views sent from now on are sent in `phase`.
    pub fn enter(&self, phase: Phase) {
        self.phase.store(phase as usize, Ordering::SeqCst);
    }

    /// Waits until every loaded node has acknowledged `n` views sent in `phase`.
    pub async fn wait_for_acks(&self, phase: Phase, n: usize) {
        wait_until(|| async {
            // A client ends early only by panicking: fail now, not when the wait gives up.
            assert!(
                !self.tasks.iter().any(JoinHandle::is_finished),
                "a client failed; its panic is printed above"
            );
            let acked: Vec<usize> = self
                .nodes
                .iter()
                .map(|&i| self.acks[phase as usize][i].load(Ordering::SeqCst))
                .collect();
            match acked.iter().all(|&a| a >= n) {
                true => Ok(()),
                false => Err(format!(
                    "nodes {:?} acknowledged {acked:?} views sent {phase:?}, want {n} each",
                    self.nodes
                )),
            }
        })
        .await;
    }

    /// Stops the clients after their current view; returns every view they made.
    pub async fn stop(self) -> Vec<View> {
        self.stop.store(true, Ordering::SeqCst);
        let mut views = Vec::new();
        for task in self.tasks {
            match task.await {
                Ok(v) => views.extend(v),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("a client task was cancelled: {e}"),
            }
        }
        views
    }
}

/// One view of `page` through `url`, classified by the page it answered with. The nodes
/// under load are never killed, so each answers every request; not answering fails the test.
async fn view(client: &reqwest::Client, url: &str, page: &str) -> Outcome {
    let response = client
        .get(format!("{url}/pages/{page}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}/pages/{page} got no answer: {e:?}"));
    let status = response.status();
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}/pages/{page}: reading the {status} page: {e:?}"));
    if status == StatusCode::OK {
        return Outcome::Acked {
            count: count(&body).unwrap_or_else(|| panic!("{url}: a 200 with no count: {body}")),
            role: element(&body, "role").unwrap_or_else(|| panic!("{url}: no role: {body}")),
        };
    }
    let why = format!(
        "{url}: {status}: {}",
        element(&body, "error").unwrap_or_default()
    );
    match committed(&body).as_deref() {
        Some("yes") => Outcome::Committed(why),
        Some("maybe") => Outcome::Unknown(why),
        Some("no") => Outcome::NotCommitted(why),
        _ => panic!("{url}: {status} without data-committed: {body}"),
    }
}

/// How many views came to each outcome.
#[derive(Debug, Default)]
pub struct Tally {
    /// 200s.
    pub acked: usize,
    /// Error pages saying `yes`.
    pub committed: usize,
    /// Error pages saying `maybe`.
    pub unknown: usize,
    /// Error pages saying `no`.
    pub not_committed: usize,
}

/// Counts the outcomes of `views`.
pub fn tally<'a>(views: impl IntoIterator<Item = &'a View>) -> Tally {
    let mut t = Tally::default();
    for v in views {
        match v.outcome {
            Outcome::Acked { .. } => t.acked += 1,
            Outcome::Committed(_) => t.committed += 1,
            Outcome::Unknown(_) => t.unknown += 1,
            Outcome::NotCommitted(_) => t.not_committed += 1,
        }
    }
    t
}

/// Checks that `views` and the page's final count `total` show every view counted at most
/// once, every acknowledged or committed view counted, and every failure truthful: acked
/// counts distinct and within `1..=total`; `total` at least the views known counted; the
/// surplus over those no larger than the views of unknown fate. Prints the tally (shown with
/// `--nocapture`), and the offending numbers when a check fails.
pub fn check_exactly_once(test: &str, views: &[View], total: i64) {
    let t = tally(views);
    let failures: Vec<&str> = views
        .iter()
        .filter_map(|v| match &v.outcome {
            Outcome::Acked { .. } => None,
            Outcome::Committed(why) | Outcome::Unknown(why) | Outcome::NotCommitted(why) => {
                Some(why.as_str())
            }
        })
        .collect();
    eprintln!(
        "{test}: final count {total}; {} views: {} acked, {} committed unacked, {} unknown, {} not committed",
        views.len(),
        t.acked,
        t.committed,
        t.unknown,
        t.not_committed
    );
    for phase in Phase::ALL {
        let sent: Vec<&View> = views.iter().filter(|v| v.sent == phase).collect();
        eprintln!("  sent {phase:?}: {:?}", tally(sent));
    }
    let mut distinct: BTreeSet<i64> = BTreeSet::new();
    let mut repeated = Vec::new();
    for v in views {
        if let Outcome::Acked { count, .. } = v.outcome
            && !distinct.insert(count)
        {
            repeated.push(count);
        }
    }
    assert!(
        repeated.is_empty(),
        "{test}: counts acknowledged to more than one view: {repeated:?} (final count {total})"
    );
    let out_of_range: Vec<i64> = distinct
        .iter()
        .copied()
        .filter(|c| !(1..=total).contains(c))
        .collect();
    assert!(
        out_of_range.is_empty(),
        "{test}: acknowledged counts outside 1..={total}, so acknowledged views were lost: \
         {out_of_range:?}"
    );
    let known = (t.acked + t.committed) as i64;
    assert!(
        total >= known,
        "{test}: lost views: {} acknowledged and {} reported counted, but the final count is \
         {total}",
        t.acked,
        t.committed
    );
    let holes: Vec<i64> = (1..=total).filter(|c| !distinct.contains(c)).collect();
    assert!(
        total - known <= t.unknown as i64,
        "{test}: the final count {total} exceeds the {known} views known counted by {}, but only \
         {} views were of unknown fate: a view reported not counted was counted, or one was \
         counted twice. Counts no acknowledged view holds: {holes:?}. Failed views: {failures:#?}",
        total - known,
        t.unknown
    );
}

/// The count of `page` on node `url`. On a busy machine a read can fail with 500
/// `database is locked` while writers and the stand-in's copies hold the node's SQLite file
/// (rollback journal); such failures are retried, up to [`STUCK`].
pub async fn count_on(client: &reqwest::Client, url: &str, page: &str) -> i64 {
    let start = Instant::now();
    loop {
        let response = client
            .get(format!("{url}/api/counts"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}/api/counts: {e:?}"));
        let status = response.status();
        let body = response.text().await.expect("the counts' body");
        if status.is_server_error() {
            assert!(
                start.elapsed() < STUCK,
                "stuck: {url}/api/counts: {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        assert!(status.is_success(), "{url}/api/counts: {status}: {body}");
        let counts: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}/api/counts: {e}: {body}"));
        return counts["counts"][page]
            .as_i64()
            .unwrap_or_else(|| panic!("{url}: no count of {page}: {counts}"));
    }
}

/// Polls `check` every 10 ms until it passes; after [`STUCK`], fails with its last complaint.
pub async fn wait_until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) => assert!(start.elapsed() < STUCK, "stuck: {why}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
