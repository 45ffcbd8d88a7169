//! The lease server's state: Consul sessions and KV entries, moved on by an injected clock.
//!
//! Pure: every operation takes the time it happens at ([`Call`]), so tests drive expiry and lock
//! delays with made-up instants instead of sleeping. Semantics follow Consul's documentation of
//! sessions and of `/v1/kv` (see the module docs of [`super`]).

mod kv;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// What happens to the keys a session holds when the session is invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    /// The keys are released: their `Session` is cleared, their value kept (Consul's default).
    Release,
    /// The keys are deleted.
    Delete,
}

impl Behavior {
    /// Consul's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Delete => "delete",
        }
    }
}

/// A session as asked for by `PUT /v1/session/create`.
#[derive(Debug, Clone)]
pub(crate) struct SessionSpec {
    /// `Name`.
    pub name: String,
    /// `Node`.
    pub node: String,
    /// `Behavior`.
    pub behavior: Behavior,
    /// `LockDelay`: how long the keys it held stay locked after it is invalidated.
    pub lock_delay: Duration,
    /// `TTL`; `None` for a session that lives until destroyed.
    pub ttl: Option<Duration>,
}

/// A live session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Its ID.
    pub id: String,
    /// What it was created with.
    pub spec: SessionSpec,
    /// The index at its creation.
    pub create_index: u64,
    /// When it expires unless renewed before.
    deadline: Option<Instant>,
    /// The gate of its last create or renew, for the event log.
    via: Option<usize>,
}

/// A KV entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The value (bytes as put).
    pub value: Vec<u8>,
    /// Opaque flags given with the last write.
    pub flags: u64,
    /// The session holding the key's lock, if any.
    pub session: Option<String>,
    /// How many times the lock was acquired by a new holder.
    pub lock_index: u64,
    /// The index at its creation.
    pub create_index: u64,
    /// The index of its last change.
    pub modify_index: u64,
}

/// When an operation happens and through which node's gate it came.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    /// The time it happens at.
    pub now: Instant,
    /// The gate (node index) it came through; `None` for the server's own timer.
    pub via: Option<usize>,
}

/// One line of the server's log of what happened.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// When it happened (a session's expiry is dated at its deadline, not when noticed).
    pub at: Instant,
    /// The gate the request came through (for an expiry: that of the session's last renewal).
    pub via: Option<usize>,
    /// What happened.
    pub what: String,
}

/// Why an acquire was refused or a release did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The session does not exist (never created, destroyed or expired).
    NoSession,
    /// The key is locked for this much longer after its holder was invalidated.
    LockDelay(Duration),
    /// Another session holds the key.
    Held(String),
    /// The session does not hold the key.
    NotHolder,
}

/// Most events kept; older ones are dropped.
const MAX_EVENTS: usize = 10_000;

/// Sessions, keys and lock delays.
#[derive(Debug)]
pub(crate) struct State {
    index: u64,
    sessions: HashMap<String, Session>,
    kv: BTreeMap<String, Entry>,
    delays: HashMap<String, Instant>,
    events: Vec<Event>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            index: 1,
            sessions: HashMap::new(),
            kv: BTreeMap::new(),
            delays: HashMap::new(),
            events: Vec::new(),
        }
    }
}

/// The first eight characters of a session ID, for the event log.
pub(crate) fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl State {
    /// The index of the last change (Consul's `X-Consul-Index`).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The events so far, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The session `id`, if it is live at `now`.
    #[cfg(test)]
    pub fn session(&mut self, id: &str, now: Instant) -> Option<&Session> {
        self.expire(now);
        self.sessions.get(id)
    }

    /// Creates session `id` (chosen by the caller).
    pub fn create_session(&mut self, id: String, spec: SessionSpec, call: Call) {
        self.expire(call.now);
        let index = self.bump();
        let ttl = spec.ttl.map_or("none".to_owned(), |t| format!("{t:?}"));
        let what = format!(
            "session {} created (name {:?}, ttl {ttl}, lock delay {:?}, behavior {})",
            short(&id),
            spec.name,
            spec.lock_delay,
            spec.behavior.as_str()
        );
        self.log(call.now, call.via, what);
        let deadline = spec.ttl.map(|t| call.now + t);
        let session = Session {
            id: id.clone(),
            spec,
            create_index: index,
            deadline,
            via: call.via,
        };
        self.sessions.insert(id, session);
    }

    /// Resets session `id`'s TTL; `None` when it is gone.
    pub fn renew(&mut self, id: &str, call: Call) -> Option<Session> {
        self.expire(call.now);
        let Some(s) = self.sessions.get_mut(id) else {
            self.log(
                call.now,
                call.via,
                format!("session {} not found to renew", short(id)),
            );
            return None;
        };
        s.deadline = s.spec.ttl.map(|t| call.now + t);
        s.via = call.via;
        let session = s.clone();
        self.log(call.now, call.via, format!("session {} renewed", short(id)));
        Some(session)
    }

    /// Destroys session `id` (nothing when it is gone already): its keys go as its behaviour
    /// says, and stay locked for its lock delay.
    pub fn destroy(&mut self, id: &str, call: Call) {
        self.expire(call.now);
        if self.sessions.contains_key(id) {
            self.invalidate(id, call.now, call.via, "destroyed");
        } else {
            let what = format!("session {} destroyed (was gone already)", short(id));
            self.log(call.now, call.via, what);
        }
    }

    /// Invalidates every session whose TTL ran out at or before `now`, each at its deadline.
    pub fn expire(&mut self, now: Instant) {
        let mut due: Vec<(Instant, String)> = self
            .sessions
            .values()
            .filter_map(|s| s.deadline.filter(|d| *d <= now).map(|d| (d, s.id.clone())))
            .collect();
        due.sort();
        for (at, id) in due {
            let via = self.sessions.get(&id).and_then(|s| s.via);
            self.invalidate(&id, at, via, "expired");
        }
    }

    /// Ends session `id` at `at`: each key it holds is deleted or released and locked for the
    /// session's lock delay.
    fn invalidate(&mut self, id: &str, at: Instant, via: Option<usize>, how: &str) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        let index = self.bump();
        self.log(at, via, format!("session {} {how}", short(id)));
        let held: Vec<String> = self
            .kv
            .iter()
            .filter(|(_, e)| e.session.as_deref() == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        let delay = session.spec.lock_delay;
        for key in held {
            let what = match session.spec.behavior {
                Behavior::Delete => {
                    self.kv.remove(&key);
                    "deleted"
                }
                Behavior::Release => {
                    if let Some(e) = self.kv.get_mut(&key) {
                        e.session = None;
                        e.modify_index = index;
                    }
                    "released"
                }
            };
            if !delay.is_zero() {
                self.delays.insert(key.clone(), at + delay);
            }
            let what = format!(
                "key {key} {what} (session {} {how}); locked for {delay:?}",
                short(id)
            );
            self.log(at, via, what);
        }
    }

    /// Adds a line from outside the API (the harness's cuts and heals) to the event log.
    pub fn note(&mut self, at: Instant, via: Option<usize>, what: String) {
        self.log(at, via, what);
    }

    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    fn log(&mut self, at: Instant, via: Option<usize>, what: String) {
        if self.events.len() >= MAX_EVENTS {
            self.events.drain(..MAX_EVENTS / 10);
        }
        self.events.push(Event { at, via, what });
    }
}
