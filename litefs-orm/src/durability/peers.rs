//! The primary's view of the other nodes — what each reported holding, whether it is live
//! — and the wait until a commit is held by as many as the durability asks.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Durability;
use crate::litefs::Pos;
use crate::litefs::position::PositionTracker;

/// How often a wait counts again without a report: a node's liveness lapses by the clock.
const RECOUNT: Duration = Duration::from_millis(50);

/// A commit that fewer nodes than [`Config::durability`](crate::Config::durability) asks
/// held within the bound: committed on the primary, and lost if the primary dies before
/// they catch up. Carried in the primary's answer
/// ([`WriteResponse::not_durable`](crate::wire::WriteResponse::not_durable)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NotDurable {
    /// Nodes besides the primary that held it.
    pub held_by: usize,
    /// Nodes besides the primary the durability asked for.
    pub wanted: usize,
}

/// One node as the primary sees it ([`NodeStatus::peers`](crate::NodeStatus::peers)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PeerStatus {
    /// The node's id (random, made when its handle opened).
    pub node: String,
    /// Its LiteFS is a lease candidate.
    pub candidate: bool,
    /// It spoke within the durability timeout (a node that stays silent still counts while
    /// its report is open: commits it lacks are not durable).
    pub live: bool,
    /// It missed a commit's bound: not waited for, and every commit it lacks is not durable,
    /// until it catches up.
    pub set_aside: bool,
    /// The TXID it last reported.
    pub txid: u64,
    /// Whether that position is on this node's history (its checksum is this node's at
    /// that TXID).
    pub on_this_history: bool,
}

#[derive(Debug)]
struct Peer {
    candidate: bool,
    /// Report streams open from it (a reconnect may overlap the old stream's end).
    streams: usize,
    last_seen: Instant,
    pos: Pos,
    /// Missed a bound: not counted until it holds this TXID.
    set_aside_until: Option<u64>,
}

/// The other nodes, by id, on the primary.
#[derive(Debug)]
pub(crate) struct Peers {
    nodes: Mutex<HashMap<String, Peer>>,
    changed: watch::Sender<()>,
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            nodes: Mutex::default(),
            changed: watch::channel(()).0,
        }
    }
}

/// How many nodes a commit needs and how many hold it.
#[derive(Debug, Default)]
struct Tally {
    wanted: usize,
    held: usize,
    /// Nodes counted, not set aside, that do not hold it: the ones to wait for.
    missing: Vec<String>,
}

impl Peers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Peer>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A report stream from `node` opened.
    pub(crate) fn opened(&self, node: &str, candidate: bool) {
        let mut nodes = self.lock();
        let peer = nodes.entry(node.to_owned()).or_insert_with(|| Peer {
            candidate,
            streams: 0,
            last_seen: Instant::now(),
            pos: Pos::default(),
            set_aside_until: None,
        });
        peer.candidate = candidate;
        peer.streams += 1;
        peer.last_seen = Instant::now();
        drop(nodes);
        tracing::debug!(
            node,
            candidate,
            "a node reports its position to this primary"
        );
        self.changed.send_replace(());
    }

    /// `node` reported its position.
    pub(crate) fn report(&self, node: &str, pos: Pos) {
        if let Some(peer) = self.lock().get_mut(node) {
            peer.pos = pos;
            peer.last_seen = Instant::now();
        }
        self.changed.send_replace(());
    }

    /// A report stream from `node` ended.
    pub(crate) fn closed(&self, node: &str) {
        let mut nodes = self.lock();
        if let Some(peer) = nodes.get_mut(node) {
            peer.streams = peer.streams.saturating_sub(1);
            if peer.streams == 0 {
                nodes.remove(node);
                tracing::debug!(
                    node,
                    "a node stopped reporting its position to this primary"
                );
            }
        }
        drop(nodes);
        self.changed.send_replace(());
    }

    /// Waits until as many nodes as `durability` asks hold the commit at `txid` — a node
    /// holds it when it reported a position at or past it that this node (the primary, whose
    /// `tracker` it is) went through — at most `bound`. Every node whose report is open
    /// counts, silent or not: only a report that ended (its node went away) stops counting,
    /// so a slow candidate LiteFS may elect is never left out quietly. Past the bound the
    /// nodes that do not hold it are set aside, and the commit is [`NotDurable`]; while a
    /// node is set aside it is not waited for (the others are), and every commit it lacks is
    /// [`NotDurable`], until it catches up.
    pub(crate) async fn wait(
        &self,
        txid: u64,
        durability: Durability,
        bound: Duration,
        tracker: &PositionTracker,
    ) -> Result<(), NotDurable> {
        if durability == Durability::Local {
            return Ok(());
        }
        let deadline = Instant::now() + bound;
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let tally = self.tally(txid, durability, tracker);
            let not_durable = NotDurable {
                held_by: tally.held,
                wanted: tally.wanted,
            };
            if tally.held >= tally.wanted {
                return Ok(());
            }
            // Every node waited for holds it; the ones set aside do not.
            if tally.missing.is_empty() {
                return Err(not_durable);
            }
            let now = Instant::now();
            if now >= deadline {
                self.set_aside(&tally.missing, tracker.last().txid);
                return Err(not_durable);
            }
            let _ = tokio::time::timeout_at(deadline.min(now + RECOUNT), changed.changed()).await;
        }
    }

    fn tally(&self, txid: u64, durability: Durability, tracker: &PositionTracker) -> Tally {
        let nodes = self.lock();
        let holds = |p: &Peer, txid: u64| p.pos.txid >= txid && tracker.went_through(p.pos);
        let counted = nodes.iter().filter(|(_, p)| {
            p.streams > 0 && (p.candidate || durability != Durability::Candidates)
        });
        let mut tally = Tally::default();
        for (id, peer) in counted {
            if durability == Durability::Candidates {
                tally.wanted += 1;
            }
            let set_aside = peer
                .set_aside_until
                .is_some_and(|until| !holds(peer, until));
            if holds(peer, txid) {
                tally.held += 1;
            } else if !set_aside {
                tally.missing.push(id.clone());
            }
        }
        if let Durability::Count(k) = durability {
            tally.wanted = k as usize;
        }
        tally
    }

    fn set_aside(&self, missing: &[String], until: u64) {
        let mut nodes = self.lock();
        for id in missing {
            if let Some(peer) = nodes.get_mut(id) {
                peer.set_aside_until = Some(until);
                tracing::warn!(node = %id, until, "a node did not hold a commit within the durability timeout: commits it lacks are not durable, without a wait, until it holds txid {until}");
            }
        }
    }

    /// Every node that reports to this one, as this node sees it.
    pub(crate) fn status(&self, bound: Duration, tracker: &PositionTracker) -> Vec<PeerStatus> {
        let now = Instant::now();
        let nodes = self.lock();
        let mut out: Vec<PeerStatus> = nodes
            .iter()
            .map(|(id, p)| {
                let on_this_history = tracker.went_through(p.pos);
                PeerStatus {
                    node: id.clone(),
                    candidate: p.candidate,
                    live: p.streams > 0 && now.duration_since(p.last_seen) <= bound,
                    set_aside: p
                        .set_aside_until
                        .is_some_and(|u| p.pos.txid < u || !on_this_history),
                    txid: p.pos.txid,
                    on_this_history,
                }
            })
            .collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        out
    }
}

#[cfg(test)]
mod tests;
