//! Following LiteFS's HTTP API: the `/events` stream, `/info` to confirm, and the
//! [`Debounce`] that keeps a primary's flap from being published.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{POLL, Publisher, Role, Source, publish};
use crate::litefs::position::TxFeed;
use crate::litefs::{EVENT_INIT, EVENT_PRIMARY_CHANGE, Event, NodeInfo, PrimaryEventData};

/// How long connecting to `/events` and getting its headers may take.
const EVENTS_CONNECT: Duration = Duration::from_secs(2);
/// How long `/events` may stay silent before it is connected again.
pub(super) const EVENTS_IDLE: Duration = Duration::from_secs(30);
/// How long a "replica of X" seen on `/events` after "no primary" is held before `/info`
/// confirms it. LiteFS sends a flap's two events in the same millisecond.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(75);

/// Holds a "replica of X" that `/events` reports after "no primary" until it has lasted
/// [`DEBOUNCE`]: the events of a flap cancel each other, a real change comes out.
#[derive(Debug, Default)]
pub(super) struct Debounce {
    pending: Option<(Role, Instant)>,
}

impl Debounce {
    /// Folds in a role `/events` reported, `current` being the published one; returns the
    /// role to publish now, if any.
    pub(super) fn on_event(&mut self, current: &Role, role: Role, now: Instant) -> Option<Role> {
        let from_no_primary = *current == Role::NoPrimary || self.pending.is_some();
        match role {
            Role::Replica { .. } if from_no_primary => {
                if *current == role {
                    self.pending = None;
                    return None;
                }
                match &self.pending {
                    // The same change again: it keeps its first deadline.
                    Some((held, _)) if *held == role => {}
                    _ => self.pending = Some((role, now + DEBOUNCE)),
                }
                None
            }
            role => {
                self.pending = None;
                Some(role)
            }
        }
    }

    /// When the held change is due.
    pub(super) fn due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, at)| *at)
    }

    /// The held change, once due.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<Role> {
        match &self.pending {
            Some((_, at)) if *at <= now => self.pending.take().map(|(role, _)| role),
            _ => None,
        }
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

/// LiteFS's `/info` at API base URL `base`, within 2 s.
pub(crate) async fn fetch_info(client: &reqwest::Client, base: &str) -> reqwest::Result<NodeInfo> {
    client
        .get(format!("{}/info", base.trim_end_matches('/')))
        .timeout(Duration::from_secs(2))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

/// Follows `/events`; while the stream is down, polls `/info`, and while LiteFS's API is
/// unreachable altogether, falls back to the files.
pub(super) async fn follow_http(
    base: String,
    source: Arc<Source>,
    tx: Publisher,
    refresh: Arc<Notify>,
    feed: TxFeed,
    idle: Duration,
) {
    let client = &source.client;
    let events_url = format!("{}/events", base.trim_end_matches('/'));
    loop {
        if tx.is_closed() {
            return;
        }
        let connect = tokio::time::timeout(EVENTS_CONNECT, client.get(&events_url).send());
        let connected = match connect.await {
            Err(_) => Err(format!("no answer within {EVENTS_CONNECT:?}")),
            Ok(sent) => sent
                .and_then(|r| r.error_for_status())
                .map_err(|e| e.to_string()),
        };
        match connected {
            Ok(resp) => {
                let mut stream = resp.bytes_stream();
                let mut buf = Vec::new();
                let mut debounce = Debounce::default();
                let mut idle_at = Instant::now() + idle;
                feed.set_live(true);
                loop {
                    let due = debounce.due();
                    tokio::select! {
                        _ = tx.closed() => return,
                        // A stream gone quiet may be a connection that died without a word
                        // (a half-open TCP connection): ask again; `init` restates the role.
                        () = tokio::time::sleep_until(idle_at) => {
                            tracing::debug!("LiteFS /events quiet for {idle:?}; reconnecting");
                            break;
                        }
                        _ = refresh.notified() => {
                            if let Ok(info) = fetch_info(client, &base).await {
                                debounce = Debounce::default();
                                publish(&tx, Role::from_flags(info.is_primary, &info.primary.hostname));
                            }
                        }
                        () = sleep_until(due) => {
                            if let Some(held) = debounce.take_due(Instant::now()) {
                                // It lasted: publish what `/info` says now (the held role
                                // when LiteFS's API does not answer).
                                let role = match fetch_info(client, &base).await {
                                    Ok(info) => Role::from_flags(info.is_primary, &info.primary.hostname),
                                    Err(_) => held,
                                };
                                publish(&tx, role);
                            }
                        }
                        chunk = stream.next() => {
                            let Some(Ok(chunk)) = chunk else { break };
                            idle_at = Instant::now() + idle;
                            buf.extend_from_slice(&chunk);
                            while let Some(n) = buf.iter().position(|b| *b == b'\n') {
                                let line: Vec<u8> = buf.drain(..=n).collect();
                                let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                                    continue;
                                };
                                feed.on_event(&event);
                                if let Some(role) = role_from_event(event) {
                                    let current = tx.current();
                                    if let Some(role) = debounce.on_event(&current, role, Instant::now()) {
                                        publish(&tx, role);
                                    }
                                }
                            }
                        }
                    }
                }
                feed.set_live(false);
            }
            Err(e) => {
                tracing::debug!(error = %e, "LiteFS /events unavailable");
                let role = match fetch_info(client, &base).await {
                    Ok(info) => Role::from_flags(info.is_primary, &info.primary.hostname),
                    Err(_) => source.files.read().await,
                };
                publish(&tx, role);
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(POLL) => {}
            _ = refresh.notified() => {}
        }
    }
}

/// Sleeps until `at`; forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(super) fn role_from_event(event: Event) -> Option<Role> {
    if event.kind != EVENT_INIT && event.kind != EVENT_PRIMARY_CHANGE {
        return None;
    }
    let data: PrimaryEventData = serde_json::from_value(event.data?).ok()?;
    Some(Role::from_flags(data.is_primary, &data.hostname))
}
