//! The KV half of the state: reads, puts, deletes, and the lock operations acquire and release.

use std::time::Instant;

use super::{Call, Entry, Refusal, State, short};

impl State {
    /// The entry at `key`, as of `now`.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        self.expire(now);
        self.kv.get(key)
    }

    /// A plain `PUT`: sets the value and flags, keeping any lock holder.
    pub fn put(&mut self, key: &str, value: Vec<u8>, flags: u64, call: Call) {
        self.expire(call.now);
        let index = self.bump();
        let entry = self.entry(key, index);
        entry.value = value;
        entry.flags = flags;
        entry.modify_index = index;
        self.log(call.now, call.via, format!("key {key} set"));
    }

    /// `PUT ?acquire=<session>`: takes the key's lock for `session` and sets the value.
    pub fn acquire(
        &mut self,
        key: &str,
        session: &str,
        value: Vec<u8>,
        flags: u64,
        call: Call,
    ) -> Result<(), Refusal> {
        self.expire(call.now);
        let refusal = self.acquire_refusal(key, session, call.now);
        if let Some(refusal) = refusal {
            let why = match &refusal {
                Refusal::NoSession => "the session does not exist".to_owned(),
                Refusal::LockDelay(left) => format!("lock delay, {left:?} left"),
                Refusal::Held(by) => format!("held by session {}", short(by)),
                Refusal::NotHolder => "not the holder".to_owned(),
            };
            let what = format!(
                "key {key} not acquired by session {}: {why}",
                short(session)
            );
            self.log(call.now, call.via, what);
            return Err(refusal);
        }
        let index = self.bump();
        let entry = self.entry(key, index);
        let renewed = entry.session.as_deref() == Some(session);
        if !renewed {
            entry.lock_index += 1;
            entry.session = Some(session.to_owned());
        }
        entry.value = value;
        entry.flags = flags;
        entry.modify_index = index;
        let what = if renewed {
            format!(
                "key {key} acquired again by its holder, session {}",
                short(session)
            )
        } else {
            format!(
                "key {key} acquired by session {} (lock index {})",
                short(session),
                entry.lock_index
            )
        };
        self.log(call.now, call.via, what);
        Ok(())
    }

    fn acquire_refusal(&self, key: &str, session: &str, now: Instant) -> Option<Refusal> {
        if !self.sessions.contains_key(session) {
            return Some(Refusal::NoSession);
        }
        let holder = self.kv.get(key).and_then(|e| e.session.as_deref());
        match holder {
            Some(h) if h == session => return None,
            Some(h) => return Some(Refusal::Held(h.to_owned())),
            None => {}
        }
        match self.delays.get(key) {
            Some(until) if *until > now => Some(Refusal::LockDelay(*until - now)),
            _ => None,
        }
    }

    /// `PUT ?release=<session>`: gives up the key's lock and sets the value (no lock delay).
    pub fn release(
        &mut self,
        key: &str,
        session: &str,
        value: Vec<u8>,
        flags: u64,
        call: Call,
    ) -> Result<(), Refusal> {
        self.expire(call.now);
        let index = self.index + 1;
        let held = self
            .kv
            .get_mut(key)
            .filter(|e| e.session.as_deref() == Some(session));
        let Some(entry) = held else {
            let what = format!(
                "key {key} not released by session {}: not the holder",
                short(session)
            );
            self.log(call.now, call.via, what);
            return Err(Refusal::NotHolder);
        };
        entry.session = None;
        entry.value = value;
        entry.flags = flags;
        entry.modify_index = index;
        self.index = index;
        let what = format!("key {key} released by session {}", short(session));
        self.log(call.now, call.via, what);
        Ok(())
    }

    /// `DELETE`: removes the key (nothing when absent).
    pub fn delete(&mut self, key: &str, call: Call) {
        self.expire(call.now);
        if self.kv.remove(key).is_some() {
            self.bump();
            self.log(call.now, call.via, format!("key {key} deleted"));
        }
    }

    /// The entry at `key`, created empty at `index` when absent.
    fn entry(&mut self, key: &str, index: u64) -> &mut Entry {
        self.kv.entry(key.to_owned()).or_insert_with(|| Entry {
            value: Vec::new(),
            flags: 0,
            session: None,
            lock_index: 0,
            create_index: index,
            modify_index: index,
        })
    }
}
