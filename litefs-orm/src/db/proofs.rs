//! The proof that a replica holds a commit — its idempotency key's record, of the run that
//! committed it, is in the local database — read for many waiters at once.
//!
//! Under load the calls of one batch answer reach their TXID together (one `/events` notice
//! wakes them all), and each would read its own record: on a LiteFS replica every read is a
//! transaction through the FUSE mount, a few hundred microseconds of CPU across the app and
//! LiteFS. So the first waiter reads its own key, and the keys of the waiters that arrive
//! meanwhile are read together, in one query, when it is done — as group commit does for
//! writes. Each key still gets its own answer.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::oneshot;

use crate::primary::idempotency::recorded;

/// Most keys in one query (SQLite allows 32 766 parameters).
const MAX_KEYS: usize = 256;
/// Most queries a caller runs for the keys queued behind it before it returns its own
/// answer; the callers still queued then enter again (one of them reads next).
const MAX_ROUNDS: usize = 4;

type Reply = oneshot::Sender<Result<bool, String>>;

/// A key waiting for its read: the run its record must name (any run when `None`), and
/// where the answer goes.
struct Wanted {
    key: String,
    run: Option<String>,
    reply: Reply,
}

/// The keys waiting for a read while one runs.
#[derive(Default)]
pub(super) struct Proofs {
    /// `None` while no read runs; while one does, the keys queued behind it.
    queue: Mutex<Option<Vec<Wanted>>>,
}

/// Whether `held` (keys read, with their records' runs) proves the commit of `key` by
/// `run`: the key is recorded, by that run when the commit names one.
fn proves(held: &HashMap<String, Option<String>>, key: &str, run: Option<&str>) -> bool {
    match (held.get(key), run) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(recorded), Some(run)) => recorded.as_deref() == Some(run),
    }
}

impl Proofs {
    fn lock(&self) -> MutexGuard<'_, Option<Vec<Wanted>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the database `reader` reads holds the record of `key` written by `run` (by
    /// any run when `None`: a commit of a primary older than runs). Reads it at once when no
    /// read runs; otherwise waits for the next read, which takes every key queued by then.
    pub(super) async fn is_recorded(
        &self,
        reader: impl Fn() -> DatabaseConnection,
        key: &str,
        run: Option<&str>,
    ) -> Result<bool, DbErr> {
        loop {
            let queued = {
                let mut queue = self.lock();
                match queue.as_mut() {
                    Some(keys) => {
                        let (tx, rx) = oneshot::channel();
                        keys.push(Wanted {
                            key: key.to_owned(),
                            run: run.map(str::to_owned),
                            reply: tx,
                        });
                        Some(rx)
                    }
                    None => {
                        *queue = Some(Vec::new());
                        None
                    }
                }
            };
            let Some(answer) = queued else {
                return self.read(&reader, key, run).await;
            };
            match answer.await {
                Ok(held) => return held.map_err(DbErr::Custom),
                // The reading caller stopped before it got to this key (it was cancelled,
                // or done with its rounds): enter again, to read or to queue.
                Err(_) => continue,
            }
        }
    }

    /// Reads `key` as the reading caller, then up to [`MAX_ROUNDS`] times the keys queued
    /// behind it.
    async fn read(
        &self,
        reader: &impl Fn() -> DatabaseConnection,
        key: &str,
        run: Option<&str>,
    ) -> Result<bool, DbErr> {
        let mut reading = Reading {
            proofs: self,
            done: false,
        };
        let own = recorded(&reader(), &[key]).await;
        for _ in 0..MAX_ROUNDS {
            let Some(batch) = reading.next_keys() else {
                break;
            };
            let keys: Vec<&str> = batch.iter().map(|w| w.key.as_str()).collect();
            let held = recorded(&reader(), &keys).await.map_err(|e| e.to_string());
            for w in batch {
                let answer = held.as_ref().map(|h| proves(h, &w.key, w.run.as_deref()));
                let _ = w.reply.send(answer.map_err(Clone::clone));
            }
        }
        Ok(proves(&own?, key, run))
    }
}

/// The caller that reads, for as long as keys queue behind it.
struct Reading<'a> {
    proofs: &'a Proofs,
    done: bool,
}

impl Reading<'_> {
    /// The next keys to read; `None` (and no read runs any more) when none queued.
    fn next_keys(&mut self) -> Option<Vec<Wanted>> {
        let mut queue = self.proofs.lock();
        let keys = queue.get_or_insert_with(Vec::new);
        if keys.is_empty() {
            *queue = None;
            self.done = true;
            return None;
        }
        let n = keys.len().min(MAX_KEYS);
        Some(keys.drain(..n).collect())
    }
}

impl Drop for Reading<'_> {
    /// Cancelled mid-read, or done with its rounds while keys still queue: no read runs any
    /// more, and the callers queued behind it, whose replies are dropped here, enter again.
    fn drop(&mut self) {
        if !self.done {
            *self.proofs.lock() = None;
        }
    }
}

#[cfg(test)]
mod tests;
