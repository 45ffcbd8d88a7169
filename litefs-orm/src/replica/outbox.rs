//! Coalescing on the replica: calls that queue behind requests in flight to the same primary
//! go out together, as one batch request.
//!
//! A call that finds fewer than [`MAX_IN_FLIGHT`] requests in flight to its primary is sent
//! alone, at once — a lone writer sees no batching at all. A call that finds them busy waits
//! in the primary's queue; when a request in flight ends, everything queued by then (up to
//! [`MAX_CALLS`] calls and the body limit) leaves as one [`BatchRequest`](crate::protocol::wire::BatchRequest),
//! whose calls the primary runs together (sharing group-commit transactions) and answers one
//! by one. So under load, each round trip carries as many calls as arrived during the last
//! one, and the HTTP, signing and framing work per call falls with the load.
//!
//! Each call keeps its own answer, error, deadline and idempotency key; a failure of the
//! batch request itself (connection, authentication) is each of its calls' failure.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::config::BATCH_PATH;
use crate::error::{Error, Result};
use crate::protocol::wire::{BatchResponse, ErrorBody, SUPPORTED_WIRE_VERSIONS, WIRE_VERSION};
use crate::replica::client::{self, Transport};

/// Requests in flight to one primary before calls queue.
pub(crate) const MAX_IN_FLIGHT: usize = 2;
/// Most calls in one batch request.
pub(crate) const MAX_CALLS: usize = 128;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns coalescing on (the default) or off for the whole process. Off, every call is a
/// request of its own; for benchmarks.
#[doc(hidden)]
pub fn set_coalescing(enabled: bool) {
    ENABLED.store(enabled, Ordering::SeqCst);
}

/// The replica's queues of calls, by primary base URL.
pub(crate) struct Outbox {
    transport: Arc<dyn Transport>,
    /// The database every call of this outbox writes to: a batch names it.
    db: String,
    /// Largest batch body sent (the primaries' body limit).
    max_body: usize,
    primaries: Mutex<HashMap<String, Lane>>,
}

/// One primary's traffic.
#[derive(Default)]
struct Lane {
    in_flight: usize,
    queued: VecDeque<Queued>,
    /// The id of the next queued call.
    next_id: u64,
}

/// A call waiting for a batch.
struct Queued {
    id: u64,
    path: &'static str,
    body: Bytes,
    deadline: Instant,
    reply: oneshot::Sender<Result<Bytes>>,
}

impl Outbox {
    pub(crate) fn new(transport: Arc<dyn Transport>, max_body: usize, db: String) -> Arc<Self> {
        Arc::new(Outbox {
            transport,
            db,
            max_body,
            primaries: Mutex::new(HashMap::new()),
        })
    }

    /// Sends one call (`body` for `path` on the primary at `base`) within `timeout`: alone,
    /// or in a batch with others queued for the same primary. Answers as
    /// [`Transport::send`] would for the call alone.
    pub(crate) async fn send(
        self: &Arc<Self>,
        base: &str,
        path: &'static str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes> {
        let deadline = Instant::now() + timeout;
        let url = format!("{base}{path}");
        if !ENABLED.load(Ordering::Relaxed) {
            return self.transport.send(&url, body, timeout).await;
        }
        let waiting = {
            let mut primaries = self.lock();
            let lane = primaries.entry(base.to_owned()).or_default();
            if lane.in_flight < MAX_IN_FLIGHT {
                lane.in_flight += 1;
                None
            } else {
                let (reply, answer) = oneshot::channel();
                let id = lane.next_id;
                lane.next_id += 1;
                lane.queued.push_back(Queued {
                    id,
                    path,
                    body: body.clone(),
                    deadline,
                    reply,
                });
                Some((id, answer))
            }
        };
        let Some((id, answer)) = waiting else {
            let _flight = InFlight::new(self.clone(), base);
            return self.transport.send(&url, body, timeout).await;
        };
        let mut queued = Dequeue {
            outbox: self,
            base,
            id: Some(id),
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => {
                queued.id = None;
                result
            }
            // The batch task ended without answering: its runtime is shutting down.
            Ok(Err(_)) => Err(lost(&url, "the batch carrying the call was abandoned")),
            Err(_) if queued.remove() => Err(Error::Transport {
                url,
                message: format!(
                    "requests to this primary made no progress within {timeout:?}; the call never left this node"
                ),
                maybe_committed: false,
                attempts: 1,
            }),
            Err(_) => Err(lost(&url, &format!("no answer within {timeout:?}"))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Lane>> {
        self.primaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A request to `base` ended: send what queued meanwhile as a batch, or free the slot.
    fn finished(self: &Arc<Self>, base: &str) {
        let batch = {
            let mut primaries = self.lock();
            let Some(lane) = primaries.get_mut(base) else {
                return;
            };
            let batch = self.take_batch(lane);
            if batch.is_empty() {
                lane.in_flight -= 1;
                if lane.in_flight == 0 && lane.queued.is_empty() {
                    primaries.remove(base);
                }
                return;
            }
            batch
        };
        // The slot passes from the request that ended to the batch; the guard is made before
        // the task first runs, so that a task dropped unpolled still frees it.
        let flight = InFlight::new(self.clone(), base);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn(flight.send_batch(batch))),
            Err(_) => {
                // No runtime left to send on: the queued callers hear so from their channels.
                drop(batch);
                self.lock().remove(base);
                // Its lane is gone: dropping it frees nothing more.
                drop(flight);
            }
        }
    }

    /// The queued calls that fit one batch; calls whose callers gave up are dropped.
    fn take_batch(&self, lane: &mut Lane) -> Vec<Queued> {
        let mut batch = Vec::new();
        let mut size = 64;
        while let Some(next) = lane.queued.front() {
            if next.reply.is_closed() {
                lane.queued.pop_front();
                continue;
            }
            let grown = size + next.body.len() + 48;
            if batch.len() == MAX_CALLS || (!batch.is_empty() && grown > self.max_body) {
                break;
            }
            size = grown;
            batch.extend(lane.queued.pop_front());
        }
        batch
    }
}

/// A request in flight to one primary: frees its slot when it ends, however it ends (a
/// caller that stops waiting drops its request).
struct InFlight {
    outbox: Arc<Outbox>,
    base: String,
}

impl InFlight {
    fn new(outbox: Arc<Outbox>, base: &str) -> Self {
        InFlight {
            outbox,
            base: base.to_owned(),
        }
    }

    /// Sends `calls` as one batch request (a lone call as itself) and answers each caller.
    async fn send_batch(self, mut calls: Vec<Queued>) {
        if calls.len() == 1
            && let Some(call) = calls.pop()
        {
            let url = format!("{}{}", self.base, call.path);
            let timeout = call.deadline.saturating_duration_since(Instant::now());
            let answer = self.outbox.transport.send(&url, call.body, timeout).await;
            let _ = call.reply.send(answer);
            return;
        }
        let url = format!("{}{BATCH_PATH}", self.base);
        let timeout = calls
            .iter()
            .map(|c| c.deadline.saturating_duration_since(Instant::now()))
            .max()
            .unwrap_or_default();
        let result = self
            .outbox
            .transport
            .send(&url, frame(&self.outbox.db, &calls), timeout)
            .await;
        // A batch answer the primary signed but this node cannot split came after the calls
        // ran: each call's fate is unknown, and a retry under its key finds out.
        let split = |answer: Bytes| {
            split(&url, &answer, calls.len()).map_err(|e| lost(&url, &e.to_string()))
        };
        match result.and_then(split) {
            Ok(answers) => {
                for (call, answer) in calls.into_iter().zip(answers) {
                    let _ = call.reply.send(answer);
                }
            }
            Err(e) => {
                for call in calls {
                    let _ = call.reply.send(Err(shared(&e, call.path)));
                }
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.outbox.finished(&self.base);
    }
}

/// Takes a queued call back out of its queue if it is still there — when its caller stops
/// waiting, so that it is never sent.
struct Dequeue<'a> {
    outbox: &'a Outbox,
    base: &'a str,
    id: Option<u64>,
}

impl Dequeue<'_> {
    /// True when the call was still queued: it was never sent.
    fn remove(&mut self) -> bool {
        let Some(id) = self.id.take() else {
            return false;
        };
        let mut primaries = self.outbox.lock();
        let Some(lane) = primaries.get_mut(self.base) else {
            return false;
        };
        let before = lane.queued.len();
        lane.queued.retain(|q| q.id != id);
        lane.queued.len() != before
    }
}

impl Drop for Dequeue<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The batch request body for database `db`: each call's body as it is, no re-encoding.
fn frame(db: &str, calls: &[Queued]) -> Bytes {
    let size: usize = calls.iter().map(|c| c.body.len() + 48).sum();
    let mut out = Vec::with_capacity(size + 64);
    let db = serde_json::to_string(db).unwrap_or_else(|_| "\"\"".to_owned());
    out.extend_from_slice(format!("{{\"v\":{WIRE_VERSION},\"db\":{db},\"calls\":[").as_bytes());
    for (i, call) in calls.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"path\":\"");
        out.extend_from_slice(call.path.as_bytes());
        out.extend_from_slice(b"\",\"body\":");
        out.extend_from_slice(&call.body);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// Each call's answer, as [`Transport::send`] gives it for a call sent alone.
fn split(url: &str, answer: &[u8], calls: usize) -> Result<Vec<Result<Bytes>>> {
    let response: BatchResponse<'_> = serde_json::from_slice(answer)
        .map_err(|e| Error::Protocol(format!("unreadable batch answer from the primary: {e}")))?;
    if !SUPPORTED_WIRE_VERSIONS.contains(&response.v) || response.answers.len() != calls {
        return Err(Error::Protocol(format!(
            "the primary answered {} calls of a batch of {calls} (wire version {})",
            response.answers.len(),
            response.v
        )));
    }
    Ok(response
        .answers
        .into_iter()
        .map(|a| {
            let body = a.body.get().as_bytes();
            if (200..300).contains(&a.status) {
                return Ok(Bytes::copy_from_slice(body));
            }
            match serde_json::from_slice::<ErrorBody>(body) {
                Ok(error) => Err(client::error_from_body(url, error)),
                Err(e) => Err(Error::Protocol(format!(
                    "unreadable error answer ({}) in a batch: {e}",
                    a.status
                ))),
            }
        })
        .collect())
}

/// A call's copy of the error that failed its whole batch.
fn shared(e: &Error, path: &str) -> Error {
    match e {
        Error::Transport {
            url,
            message,
            maybe_committed,
            attempts,
        } => Error::Transport {
            url: url.replace(BATCH_PATH, path),
            message: message.clone(),
            maybe_committed: *maybe_committed,
            attempts: *attempts,
        },
        Error::Unauthorized(m) => Error::Unauthorized(m.clone()),
        Error::UnverifiedAnswer { url, reason } => Error::UnverifiedAnswer {
            url: url.replace(BATCH_PATH, path),
            reason: reason.clone(),
        },
        Error::NotPrimary { primary, hint } => Error::NotPrimary {
            primary: primary.clone(),
            hint: hint.clone(),
        },
        Error::UnknownEntity(m) => Error::UnknownEntity(m.clone()),
        other => Error::Protocol(other.to_string()),
    }
}

fn lost(url: &str, why: &str) -> Error {
    Error::Transport {
        url: url.to_owned(),
        message: why.to_owned(),
        maybe_committed: true,
        attempts: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxFut;
    use std::sync::atomic::AtomicUsize;

    /// A primary that never answers: counts what reaches it.
    #[derive(Default)]
    struct Silent {
        sent: AtomicUsize,
    }

    impl Transport for Silent {
        fn send<'a>(&'a self, _: &'a str, _: Bytes, _: Duration) -> BoxFut<'a, Result<Bytes>> {
            self.sent.fetch_add(1, Ordering::SeqCst);
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_call_queued_behind_stalled_requests_times_out_unsent_and_not_applied() {
        let silent = Arc::new(Silent::default());
        let outbox = Outbox::new(silent.clone(), 1 << 20, "app.db".into());
        for _ in 0..MAX_IN_FLIGHT {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let body = Bytes::from_static(b"{}");
                outbox
                    .send("http://p", "/w", body, Duration::from_secs(60))
                    .await
            });
        }
        tokio::task::yield_now().await;
        let body = Bytes::from_static(b"{}");
        let err = outbox
            .send("http://p", "/w", body, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(!err.may_be_committed(), "{err}");
        assert_eq!(silent.sent.load(Ordering::SeqCst), MAX_IN_FLIGHT);
    }

    #[test]
    fn a_batch_body_carries_each_call_byte_for_byte() {
        let (reply, _answer) = oneshot::channel();
        let call = Queued {
            id: 0,
            path: "/litefs-orm/v1/write",
            body: Bytes::from_static(br#"{"v":1, "key":"k"}"#),
            deadline: Instant::now(),
            reply,
        };
        let framed = frame("app.db", &[call]);
        let batch: crate::protocol::wire::BatchRequest<'_> =
            serde_json::from_slice(&framed).unwrap();
        assert_eq!(batch.calls[0].body.get(), r#"{"v":1, "key":"k"}"#);
    }
}
