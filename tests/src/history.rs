//! The history of a run under faults: every write a client made, how it ended, and what
//! every node holds once the cluster healed — checked for writes lost, applied twice, or
//! contradicted by the final state, with one summary line per run that a script can read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How one write ended, as its client saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Acknowledged, with the commit's TXID when the node said.
    Acked {
        /// The commit's TXID.
        txid: Option<u64>,
    },
    /// A typed error from the node's app.
    Failed {
        /// `Error::kind()`.
        kind: String,
        /// `Error::may_be_committed()`.
        may_be_committed: bool,
        /// `Error::is_committed()`.
        committed: bool,
        /// The commit's TXID, when the error names it (a committed write's).
        txid: Option<u64>,
        /// The error's message.
        message: String,
    },
    /// The request never reached the app (its connection was refused): not written.
    NotSent {
        /// What failed.
        message: String,
    },
    /// The app took the request and no answer came back (it died, or the client gave up):
    /// nobody can say.
    NoAnswer {
        /// What failed.
        message: String,
    },
}

impl Outcome {
    /// Whether the client was told the write is committed (and, with a durability, that
    /// the nodes it asks for hold it).
    pub fn acknowledged(&self) -> bool {
        match self {
            Outcome::Acked { .. } => true,
            Outcome::Failed {
                committed, kind, ..
            } => *committed && kind != NOT_DURABLE,
            _ => false,
        }
    }

    /// Whether the client was told the write is committed but not yet durable: it may be
    /// lost with the primary, and was said to be.
    pub fn not_durable(&self) -> bool {
        matches!(self, Outcome::Failed { kind, .. } if kind == NOT_DURABLE)
    }

    /// Whether the client was told the write was not committed.
    pub fn denied(&self) -> bool {
        matches!(
            self,
            Outcome::NotSent { .. }
                | Outcome::Failed {
                    may_be_committed: false,
                    ..
                }
        )
    }
}

/// The `Error::kind()` of a write committed but not yet durable.
pub const NOT_DURABLE: &str = "not_durable";

/// One write: its value (unique in the run), the node it went through, when it started
/// (since the run began), how long it took, and how it ended.
#[derive(Clone, Debug)]
pub struct Write {
    /// The value written.
    pub value: String,
    /// The node's index.
    pub node: usize,
    /// When it was sent, since the run began.
    pub sent: Duration,
    /// How long until it ended.
    pub took: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// The writes of a run, recorded by any number of clients.
#[derive(Clone, Debug, Default)]
pub struct History(Arc<Mutex<Vec<Write>>>);

impl History {
    /// Records one write.
    pub fn record(&self, write: Write) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(write);
    }

    /// Every write recorded so far, in the order they ended.
    pub fn writes(&self) -> Vec<Write> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What one node holds at the end: each value, with the number of rows holding it.
pub type Holdings = BTreeMap<String, usize>;

/// A primary LiteFS elected during the run: which node, and its TXID when it took the
/// lease. An acknowledged write of an earlier primary with a higher TXID was not on it:
/// LiteFS's asynchronous replication lost it, and the new primary's history replaced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Election {
    /// The new primary's index.
    pub node: usize,
    /// Its position when it took the lease.
    pub txid: u64,
    /// When it took the lease, since the run began.
    pub at: Duration,
}

/// What the final state says of a run's writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Writes made.
    pub writes: usize,
    /// Writes acknowledged (or reported committed).
    pub acknowledged: usize,
    /// Acknowledged and missing on some node, without an election to explain it.
    pub lost: Vec<String>,
    /// Acknowledged and missing everywhere, at a TXID past the position of a node LiteFS
    /// elected afterwards: `value@txid>position`.
    pub lost_by_election: Vec<String>,
    /// Held in more than one row on some node.
    pub duplicated: Vec<String>,
    /// Reported not committed, yet held.
    pub contradicted: Vec<String>,
    /// Held by some nodes and not others.
    pub diverged: Vec<String>,
    /// Committed but not yet durable (`Error::NotDurable`), and held.
    pub not_durable_held: usize,
    /// Committed but not yet durable, and not held: lost with the primary, as the client
    /// was told it could be.
    pub not_durable_lost: usize,
    /// Of unknown outcome and held.
    pub maybe_held: usize,
    /// Of unknown outcome and not held.
    pub maybe_absent: usize,
    /// Reported not committed, and not held.
    pub denied: usize,
    /// Ended later than the deadline: `value` (ms).
    pub over_deadline: Vec<String>,
    /// The longest a write took.
    pub slowest: Duration,
}

impl Verdict {
    /// Whether the run kept every promise: nothing lost but what an election explains,
    /// nothing applied twice, nothing contradicted, the nodes agree, no write past its
    /// deadline.
    pub fn holds(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.contradicted.is_empty()
            && self.diverged.is_empty()
            && self.over_deadline.is_empty()
    }

    /// One line a script can read: `history scenario=… run=… key=value …`.
    pub fn summary(&self, scenario: &str, run: usize) -> String {
        let list = |items: &[String]| match items {
            [] => String::new(),
            items => format!("[{}]", items.join(",")),
        };
        let mut line = format!("history scenario={scenario} run={run}");
        let _ = write!(
            line,
            " writes={} acknowledged={} lost={}{} lost_by_election={}{} duplicated={}{} \
             contradicted={}{} diverged={}{} not_durable_held={} not_durable_lost={} maybe_held={} maybe_absent={} denied={} \
             over_deadline={}{} slowest_ms={} holds={}",
            self.writes,
            self.acknowledged,
            self.lost.len(),
            list(&self.lost),
            self.lost_by_election.len(),
            list(&self.lost_by_election),
            self.duplicated.len(),
            list(&self.duplicated),
            self.contradicted.len(),
            list(&self.contradicted),
            self.diverged.len(),
            list(&self.diverged),
            self.not_durable_held,
            self.not_durable_lost,
            self.maybe_held,
            self.maybe_absent,
            self.denied,
            self.over_deadline.len(),
            list(&self.over_deadline),
            self.slowest.as_millis(),
            self.holds(),
        );
        line
    }
}

/// Checks `writes` against what each node holds at the end (`holdings`, one per node that
/// answered), with the elections LiteFS held during the run, and `deadline`, the longest a
/// write may take.
pub fn check(
    writes: &[Write],
    holdings: &[Holdings],
    elections: &[Election],
    deadline: Duration,
) -> Verdict {
    let mut v = Verdict {
        writes: writes.len(),
        ..Verdict::default()
    };
    for w in writes {
        let held_by = holdings.iter().filter(|h| h.contains_key(&w.value)).count();
        let rows = holdings
            .iter()
            .filter_map(|h| h.get(&w.value))
            .max()
            .copied()
            .unwrap_or(0);
        let held = held_by > 0;
        v.slowest = v.slowest.max(w.took);
        if w.took > deadline {
            v.over_deadline
                .push(format!("{}({}ms)", w.value, w.took.as_millis()));
        }
        if rows > 1 {
            v.duplicated.push(w.value.clone());
        }
        if held && held_by < holdings.len() {
            v.diverged.push(w.value.clone());
        }
        if w.outcome.acknowledged() {
            v.acknowledged += 1;
            if held_by < holdings.len() {
                match lost_to(w, elections) {
                    Some(e) if !held => v.lost_by_election.push(format!(
                        "{}@{}>{}(n{})",
                        w.value,
                        txid(w).unwrap_or_default(),
                        e.txid,
                        e.node + 1
                    )),
                    _ => v.lost.push(w.value.clone()),
                }
            }
        } else if w.outcome.not_durable() {
            match held {
                true => v.not_durable_held += 1,
                false => v.not_durable_lost += 1,
            }
        } else if w.outcome.denied() {
            if held {
                v.contradicted.push(w.value.clone());
            } else {
                v.denied += 1;
            }
        } else if held {
            v.maybe_held += 1;
        } else {
            v.maybe_absent += 1;
        }
    }
    v
}

fn txid(w: &Write) -> Option<u64> {
    match w.outcome {
        Outcome::Acked { txid } | Outcome::Failed { txid, .. } => txid,
        _ => None,
    }
}

/// The election after `w` that shows LiteFS lost it: a node elected later, at a position
/// below the write's TXID.
fn lost_to<'a>(w: &Write, elections: &'a [Election]) -> Option<&'a Election> {
    let t = txid(w)?;
    elections.iter().find(|e| e.at >= w.sent && e.txid < t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(value: &str, outcome: Outcome) -> Write {
        Write {
            value: value.into(),
            node: 0,
            sent: Duration::from_secs(1),
            took: Duration::from_millis(5),
            outcome,
        }
    }

    fn acked(value: &str, txid: u64) -> Write {
        write(value, Outcome::Acked { txid: Some(txid) })
    }

    fn failed(value: &str, may_be_committed: bool) -> Write {
        write(
            value,
            Outcome::Failed {
                kind: "transport".into(),
                may_be_committed,
                committed: false,
                txid: None,
                message: String::new(),
            },
        )
    }

    fn holding(values: &[&str]) -> Holdings {
        values.iter().map(|v| (v.to_string(), 1)).collect()
    }

    const DEADLINE: Duration = Duration::from_secs(15);

    #[test]
    fn a_run_whose_acknowledged_writes_are_all_held_holds() {
        let writes = [acked("a", 5), failed("b", false), failed("c", true)];
        let v = check(&writes, &[holding(&["a"]), holding(&["a"])], &[], DEADLINE);
        assert!(v.holds(), "{}", v.summary("t", 1));
        assert_eq!((v.acknowledged, v.denied, v.maybe_absent), (1, 1, 1));
    }

    #[test]
    fn an_acknowledged_write_missing_is_lost() {
        let v = check(&[acked("a", 5)], &[holding(&[])], &[], DEADLINE);
        assert_eq!(v.lost, ["a"]);
        assert!(!v.holds());
    }

    #[test]
    fn a_loss_past_the_position_of_a_later_elected_primary_is_laid_to_the_election() {
        let election = Election {
            node: 1,
            txid: 4,
            at: Duration::from_secs(9),
        };
        let v = check(&[acked("a", 5)], &[holding(&[])], &[election], DEADLINE);
        assert_eq!(v.lost_by_election, ["a@5>4(n2)"]);
        assert!(v.lost.is_empty());
        assert!(v.holds());
    }

    #[test]
    fn a_write_reported_committed_and_lost_past_the_elected_position_is_laid_to_the_election() {
        let w = write(
            "a",
            Outcome::Failed {
                kind: "replication_timeout".into(),
                may_be_committed: true,
                committed: true,
                txid: Some(5),
                message: String::new(),
            },
        );
        let election = Election {
            node: 1,
            txid: 4,
            at: Duration::MAX,
        };
        let v = check(&[w], &[holding(&[])], &[election], DEADLINE);
        assert_eq!(v.lost_by_election, ["a@5>4(n2)"]);
    }

    #[test]
    fn a_loss_below_the_elected_primarys_position_stays_a_loss() {
        let election = Election {
            node: 1,
            txid: 6,
            at: Duration::from_secs(9),
        };
        let v = check(&[acked("a", 5)], &[holding(&[])], &[election], DEADLINE);
        assert_eq!(v.lost, ["a"]);
    }

    #[test]
    fn a_value_in_two_rows_is_duplicated() {
        let holdings = [Holdings::from([("a".to_string(), 2)])];
        let v = check(&[acked("a", 5)], &holdings, &[], DEADLINE);
        assert_eq!(v.duplicated, ["a"]);
    }

    #[test]
    fn a_write_said_not_committed_but_held_is_contradicted() {
        let v = check(&[failed("a", false)], &[holding(&["a"])], &[], DEADLINE);
        assert_eq!(v.contradicted, ["a"]);
    }

    #[test]
    fn a_write_held_by_some_nodes_only_diverges() {
        let v = check(
            &[failed("a", true)],
            &[holding(&["a"]), holding(&[])],
            &[],
            DEADLINE,
        );
        assert_eq!(v.diverged, ["a"]);
    }

    #[test]
    fn a_write_that_took_longer_than_its_deadline_is_named() {
        let mut w = failed("a", true);
        w.took = DEADLINE + Duration::from_secs(1);
        let v = check(&[w], &[holding(&[])], &[], DEADLINE);
        assert_eq!(v.over_deadline, ["a(16000ms)"]);
    }

    #[test]
    fn a_write_said_not_yet_durable_and_lost_breaks_no_promise() {
        let w = write(
            "a",
            Outcome::Failed {
                kind: NOT_DURABLE.into(),
                may_be_committed: true,
                committed: true,
                txid: Some(5),
                message: String::new(),
            },
        );
        let v = check(&[w], &[holding(&[])], &[], DEADLINE);
        assert_eq!((v.not_durable_lost, v.acknowledged), (1, 0));
        assert!(v.holds());
    }

    #[test]
    fn the_summary_is_one_line_of_keys_and_values() {
        let v = check(&[acked("a", 5)], &[holding(&[])], &[], DEADLINE);
        let line = v.summary("kill", 3);
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with("history scenario=kill run=3 writes=1 acknowledged=1 lost=1[a]"),
            "{line}"
        );
        assert!(line.ends_with("holds=false"), "{line}");
    }
}
