//! [`Replicator`]: `litestream replicate` running exactly while this node is the primary,
//! restarted when it fails, its health in a [`BackupStatus`].

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::BackupConfig;
use super::error::BackupError;
use super::litestream::Litestream;
use super::process::Exit;
use super::status::BackupStatus;
use crate::litefs::role::{Role, RoleWatch};
use child::{Event, LogEvent, Replicating, child_event, shut_down, spawn, terminate};

mod child;

/// First wait before restarting a Litestream that failed.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A Litestream that replicates this long without an error resets the failure count (and
/// the backoff): the backup is healthy again.
pub const STABLE: Duration = Duration::from_secs(60);
/// How long a failed Litestream may take to stop before it is killed, when it is restarted.
const RESTART_GRACE: Duration = Duration::from_secs(5);
/// How long the supervisor sleeps between role checks when nothing else happens; role
/// changes wake it at once.
const IDLE: Duration = Duration::from_secs(3600);

/// Runs `litestream replicate` while the node's role writes locally (primary or
/// standalone), and only then: started when the node becomes primary, stopped when it stops
/// being primary.
///
/// **Failures after start-up.** Litestream retries a failing storage by itself and only
/// logs it; here, a Litestream that logs an error (`level=ERROR`) or exits on its own is a
/// *failure*: it is logged at error level, recorded in the [`BackupStatus`] (health checks,
/// metrics), and Litestream is restarted after a backoff (1 s, doubling up to 30 s). After
/// [`BackupConfig::max_failures`] failures in a row (0: never) the replicator gives up
/// ([`gave_up`](Self::gave_up)): `run` then stops the app and exits 1. A Litestream that
/// replicates for [`STABLE`] without an error resets the count. The binary itself is
/// checked when the node first needs it, so a replica needs no `litestream` until it
/// becomes primary.
///
/// So at most one node of a LiteFS cluster writes the backup at a time, up to the moment
/// it takes a demoted primary to notice (LiteFS refuses its writes meanwhile). Dropping a
/// `Replicator` kills Litestream; [`stop`](Self::stop) lets it finish its last sync.
/// Litestream's log is passed on to this process's stdout and stderr.
#[derive(Debug)]
pub struct Replicator {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), BackupError>>>,
    state: watch::Receiver<State>,
    status: watch::Receiver<BackupStatus>,
    timeout: Duration,
}

/// Where the current Litestream process stands, for [`Replicator::started`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Not wanted: this node is a replica.
    Idle,
    /// Started, not yet replicating.
    Starting,
    /// Replicating.
    Ready,
    /// Exited (or could not start, or logged an error) before it was replicating.
    Failed(String),
}

impl Replicator {
    /// Starts following `role`: Litestream starts now if the node is primary or standalone.
    /// [`BackupConfig::stop_timeout`] bounds [`stop`](Self::stop);
    /// [`BackupConfig::max_failures`] says when to give up.
    pub fn start(litestream: Litestream, role: RoleWatch, config: &BackupConfig) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel();
        let wanted = role.current().writes_locally();
        let first = if wanted { State::Starting } else { State::Idle };
        let (state_tx, state) = watch::channel(first);
        let (status_tx, status) = watch::channel(BackupStatus {
            wanted,
            max_failures: config.max_failures,
            ..BackupStatus::default()
        });
        let timeout = litestream.timeout();
        let supervisor = Supervisor {
            litestream,
            role,
            state: state_tx,
            status: status_tx,
            stop_timeout: config.stop_timeout,
            max_failures: config.max_failures,
            backoff: MIN_BACKOFF,
            restart_at: None,
            stable_at: None,
        };
        let task = tokio::spawn(supervisor.run(stop_rx));
        Replicator {
            stop: Some(stop_tx),
            task: Some(task),
            state,
            status,
            timeout,
        }
    }

    /// Waits until Litestream replicates (or is not wanted, on a replica). Fails when it
    /// exits or logs an error first, or is not replicating within the backup timeout.
    pub async fn started(&self) -> Result<(), BackupError> {
        let mut state = self.state.clone();
        let waited = tokio::time::timeout(self.timeout, state.wait_for(|s| *s != State::Starting));
        let failed = |detail: String| BackupError::Failed {
            command: "replicate",
            status: "not replicating".into(),
            detail,
        };
        match waited.await {
            Ok(Ok(s)) => match &*s {
                State::Failed(why) => Err(failed(why.clone())),
                _ => Ok(()),
            },
            Ok(Err(_)) => Err(failed("its supervisor stopped".into())),
            Err(_) => Err(failed(format!(
                "it did not start replicating within {:?} (LITEFS_ORM_BACKUP_TIMEOUT_MS); its log is above",
                self.timeout
            ))),
        }
    }

    /// The backup's health, updated as it changes.
    pub fn status(&self) -> watch::Receiver<BackupStatus> {
        self.status.clone()
    }

    /// Completes once the replicator has given up ([`BackupConfig::max_failures`] failures
    /// in a row), with the status then; never completes otherwise.
    pub async fn gave_up(&self) -> BackupStatus {
        let mut status = self.status.clone();
        match status.wait_for(|s| s.gave_up).await {
            Ok(s) => s.clone(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops Litestream and makes sure the backup has the last writes, within
    /// [`BackupConfig::stop_timeout`] in all: SIGTERM (Litestream syncs what is left, then
    /// exits; it is killed after half the timeout, or at once when its sync fails), then, if
    /// this node still writes locally, a last `litestream replicate -once` within the rest.
    /// An error when that last sync fails or does not finish in time. Dropping the future
    /// kills them.
    pub async fn stop(mut self) -> Result<(), BackupError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let result = match self.task.as_mut() {
            Some(task) => task.await.unwrap_or_else(|e| {
                Err(BackupError::Io {
                    action: "the backup supervisor failed".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            }),
            None => Ok(()),
        };
        // Done: nothing left for `drop` to abort. Cancelled before this, `drop` kills it.
        self.task = None;
        result
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Dropping the task's child kills Litestream.
            task.abort();
        }
    }
}

struct Supervisor {
    litestream: Litestream,
    role: RoleWatch,
    state: watch::Sender<State>,
    status: watch::Sender<BackupStatus>,
    stop_timeout: Duration,
    max_failures: u32,
    backoff: Duration,
    restart_at: Option<Instant>,
    stable_at: Option<Instant>,
}

impl Supervisor {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) -> Result<(), BackupError> {
        let mut current = self.role.current();
        let mut running: Option<Replicating> = None;
        if !current.writes_locally() {
            announce(&current, &self.litestream);
        }
        loop {
            let wanted = current.writes_locally();
            let gave_up = self.status.borrow().gave_up;
            self.status.send_if_modified(|s| {
                let changed = s.wanted != wanted;
                s.wanted = wanted;
                changed
            });
            if !wanted {
                self.restart_at = None;
                self.stable_at = None;
                self.backoff = MIN_BACKOFF;
                self.state.send_replace(State::Idle);
                self.status.send_modify(|s| s.consecutive_failures = 0);
                if let Some(r) = running.take() {
                    tracing::info!(
                        "this node is now {current}: stopping litestream, the primary backs up"
                    );
                    shut_down(r, self.stop_timeout).await;
                    self.status.send_modify(|s| s.replicating = false);
                }
            } else if running.is_none()
                && !gave_up
                && self.restart_at.is_none_or(|t| t <= Instant::now())
            {
                self.restart_at = None;
                match self.spawn(&current).await {
                    Ok(r) => {
                        self.state.send_replace(State::Starting);
                        running = Some(r);
                    }
                    Err(e) => self.failed(format!("cannot start litestream: {e}"), false),
                }
            }
            tokio::select! {
                _ = &mut stop => return self.finish(running.take(), &current).await,
                next = self.role.changed_from(&current, IDLE) => {
                    if next != current {
                        if next.writes_locally() && !current.writes_locally() {
                            tracing::info!("this node became {next}: starting litestream, backups continue from here");
                        }
                        current = next;
                    }
                }
                event = child_event(&mut running) => self.on_event(event, &mut running).await,
                _ = sleep_until(self.restart_at), if running.is_none() && self.restart_at.is_some() => {}
                _ = sleep_until(self.stable_at), if self.stable_at.is_some() => {
                    self.stable_at = None;
                    self.backoff = MIN_BACKOFF;
                    if self.status.borrow().consecutive_failures > 0 {
                        tracing::info!("litestream has replicated for {STABLE:?} without an error: the backup is healthy again");
                    }
                    self.status.send_modify(|s| s.consecutive_failures = 0);
                }
            }
        }
    }

    /// Checks the binary the first time it is needed, then starts `litestream replicate`.
    async fn spawn(&mut self, role: &Role) -> Result<Replicating, BackupError> {
        if self.litestream.version().is_empty() {
            self.litestream = self.litestream.verified().await?;
            announce(role, &self.litestream);
        }
        spawn(&self.litestream).map_err(|source| BackupError::Io {
            action: format!(
                "cannot start `{} replicate`",
                self.litestream.bin().display()
            ),
            source,
        })
    }

    async fn on_event(&mut self, event: Event, running: &mut Option<Replicating>) {
        match event {
            Event::Log(LogEvent::Ready) => {
                if let Some(r) = running.as_mut() {
                    r.ready = true;
                }
                self.state.send_replace(State::Ready);
                self.status.send_modify(|s| s.replicating = true);
                self.stable_at = Some(Instant::now() + STABLE);
            }
            // Only a stopping Litestream logs it; `shut_down` watches for it.
            Event::Log(LogEvent::SyncFailed(_)) => {}
            Event::Log(LogEvent::Error(line)) => {
                let Some(r) = running.take() else { return };
                let was_ready = r.ready;
                let reason = format!("litestream logged an error: {line}");
                self.status.send_modify(|s| s.replicating = false);
                self.failed(reason, was_ready);
                // Its own retries may never succeed (a state that does not match the
                // replica, a replica that is gone): a fresh process re-reads both.
                terminate(r, RESTART_GRACE).await;
            }
            Event::Exited(status) => {
                let Some(mut r) = running.take() else { return };
                let how = match status {
                    Ok(s) => Exit::from_status(s).to_string(),
                    Err(e) => e.to_string(),
                };
                // Its last error line, if it logged one before exiting.
                let mut last = None;
                while let Ok(event) = r.log.try_recv() {
                    if let LogEvent::Error(line) = event {
                        last = Some(line);
                    }
                }
                let reason = match last {
                    Some(line) => format!("litestream exited on its own ({how}): {line}"),
                    None => format!("litestream exited on its own ({how})"),
                };
                self.status.send_modify(|s| s.replicating = false);
                self.failed(reason, r.ready);
            }
        }
    }

    /// Records a failure; schedules a restart, or gives up after `max_failures` in a row.
    /// `was_ready`: it failed after it had started replicating.
    fn failed(&mut self, reason: String, was_ready: bool) {
        self.stable_at = None;
        if !was_ready {
            self.state.send_replace(State::Failed(format!(
                "{reason}; it never started replicating (its log is above)"
            )));
        }
        let max = self.max_failures;
        let mut gave_up = false;
        self.status.send_modify(|s| {
            s.consecutive_failures += 1;
            s.failures_total += 1;
            s.last_error = Some(reason.clone());
            gave_up = max > 0 && s.consecutive_failures >= max;
            s.gave_up = gave_up;
        });
        let n = self.status.borrow().consecutive_failures;
        if gave_up {
            tracing::error!(
                "{reason}; that is {n} failure(s) in a row (LITEFS_ORM_BACKUP_MAX_FAILURES={max}): giving up on backups"
            );
            self.restart_at = None;
        } else {
            let of = if max > 0 {
                format!(" of at most {max}")
            } else {
                String::new()
            };
            tracing::error!(
                "{reason}; failure {n}{of} in a row, restarting litestream in {:?}",
                self.backoff
            );
            self.restart_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The stop: Litestream's final sync within half the stop timeout, then
    /// `replicate -once` within the rest, if this node still writes locally.
    async fn finish(
        &mut self,
        running: Option<Replicating>,
        current: &Role,
    ) -> Result<(), BackupError> {
        let deadline = Instant::now() + self.stop_timeout;
        if let Some(r) = running {
            tracing::info!("stopping litestream");
            shut_down(r, self.stop_timeout / 2).await;
            self.status.send_modify(|s| s.replicating = false);
        }
        if !current.writes_locally() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let result = if left.is_zero() {
            Err(BackupError::Timeout {
                command: "replicate -once",
                url: self.litestream.url().to_owned(),
                timeout: self.stop_timeout,
            })
        } else {
            self.litestream.sync_once(left).await
        };
        match &result {
            Ok(()) => tracing::info!("final sync of the backup done"),
            Err(e) => tracing::error!("the final sync of the backup failed: {e}"),
        }
        result
    }
}

/// Says what this node does about backups.
fn announce(role: &Role, litestream: &Litestream) {
    if role.writes_locally() {
        tracing::info!(
            "this node is {role}: backing up with litestream {} (config {})",
            litestream.version(),
            litestream.config_file().display()
        );
    } else {
        tracing::info!(
            "this node is a {role}: the primary backs up; litestream starts here if this node becomes primary"
        );
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
