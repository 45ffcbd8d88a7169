//! [`Replicator`]: `litestream replicate` running exactly while this node is the primary,
//! restarted when it fails, its health in a [`BackupStatus`].

use std::fmt;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::BackupConfig;
use super::error::BackupError;
use super::litestream::Litestream;
use super::process::{self, Exit};
use crate::litefs::role::{Role, RoleWatch};

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
/// What Litestream logs once it has opened the database and is replicating (and has set
/// up its signal handling, so a SIGTERM from then on gets a final sync).
const READY_LINE: &str = "initialized db";
/// How Litestream marks an error in its log (`monitor error`, `compaction failed`, ...).
const ERROR_MARK: &str = "level=ERROR";
/// What a stopping Litestream logs when its final sync fails (it then retries for 30 s).
const SYNC_FAILED_LINE: &str = "shutdown sync failed";

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

/// How the backup of this node is doing, for health checks and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupStatus {
    /// This node writes locally (primary or standalone), so it should be backing up.
    pub wanted: bool,
    /// A Litestream process runs and has opened the database.
    pub replicating: bool,
    /// Failures since Litestream last replicated [`STABLE`] without an error.
    pub consecutive_failures: u32,
    /// Every failure since start.
    pub failures_total: u64,
    /// The last failure: Litestream's error line, or how it exited.
    pub last_error: Option<String>,
    /// [`BackupConfig::max_failures`] failures in a row: no more restarts.
    pub gave_up: bool,
    /// The configured [`BackupConfig::max_failures`].
    pub max_failures: u32,
}

impl BackupStatus {
    /// No failure since the backup was last healthy (or this node does not back up).
    pub fn healthy(&self) -> bool {
        !self.gave_up && self.consecutive_failures == 0
    }

    /// The status in the Prometheus text format (`litefs_orm_backup_*`).
    pub fn metrics(&self) -> String {
        let line = |name: &str, kind: &str, help: &str, value: u64| {
            format!(
                "# HELP litefs_orm_backup_{name} {help}\n# TYPE litefs_orm_backup_{name} {kind}\nlitefs_orm_backup_{name} {value}\n"
            )
        };
        [
            line(
                "healthy",
                "gauge",
                "1 when backups work (or this node does not back up), 0 after a Litestream failure",
                self.healthy().into(),
            ),
            line(
                "wanted",
                "gauge",
                "1 when this node writes locally (primary or standalone) and so backs up",
                self.wanted.into(),
            ),
            line(
                "replicating",
                "gauge",
                "1 while a Litestream process replicates",
                self.replicating.into(),
            ),
            line(
                "consecutive_failures",
                "gauge",
                "Litestream failures in a row",
                self.consecutive_failures.into(),
            ),
            line(
                "failures_total",
                "counter",
                "Litestream failures (an error logged, or an exit) since start",
                self.failures_total,
            ),
            line(
                "gave_up",
                "gauge",
                "1 once LITEFS_ORM_BACKUP_MAX_FAILURES failures in a row stopped the backup",
                self.gave_up.into(),
            ),
        ]
        .concat()
    }
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failing = |f: &mut fmt::Formatter<'_>, what: &str| {
            write!(
                f,
                "backup {what}: {} failure(s) in a row",
                self.consecutive_failures
            )?;
            if let Some(e) = &self.last_error {
                write!(f, "; last: {e}")?;
            }
            Ok(())
        };
        if self.gave_up {
            failing(f, "stopped (LITEFS_ORM_BACKUP_MAX_FAILURES reached)")
        } else if self.consecutive_failures > 0 {
            failing(f, "failing")
        } else if !self.wanted {
            f.write_str("backup: not this node's job (a replica); ok")
        } else if self.replicating {
            f.write_str("backup: replicating; ok")
        } else {
            f.write_str("backup: starting litestream; ok")
        }
    }
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

/// One `litestream replicate` process.
struct Replicating {
    child: Child,
    ready: bool,
    log: mpsc::UnboundedReceiver<LogEvent>,
}

/// What Litestream's log says.
#[derive(Debug)]
enum LogEvent {
    /// It opened the database and replicates.
    Ready,
    /// An error line (from `level=ERROR` on).
    Error(String),
    /// Its final sync at shutdown failed (it would retry for 30 s).
    SyncFailed(String),
}

/// What happened to the running Litestream.
enum Event {
    Log(LogEvent),
    Exited(std::io::Result<std::process::ExitStatus>),
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

fn spawn(litestream: &Litestream) -> std::io::Result<Replicating> {
    let mut cmd = litestream.command("replicate");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // Its own process group: a terminal's ctrl-c reaches `run`, which stops Litestream only
    // after the app, so the app's last writes are backed up.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn()?;
    let (tx, log) = mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pass_on(out, tokio::io::stdout(), tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pass_on(err, tokio::io::stderr(), tx));
    }
    Ok(Replicating {
        child,
        ready: false,
        log,
    })
}

/// Copies one of Litestream's outputs to ours, and reports the lines that matter.
async fn pass_on(
    from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    events: mpsc::UnboundedSender<LogEvent>,
) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(event) = classify(&line) {
            let _ = events.send(event);
        }
        let _ = to.write_all(format!("{line}\n").as_bytes()).await;
        let _ = to.flush().await;
    }
}

/// What a line of Litestream's log means to the supervisor.
fn classify(line: &str) -> Option<LogEvent> {
    if line.contains(READY_LINE) {
        Some(LogEvent::Ready)
    } else if line.contains(SYNC_FAILED_LINE) {
        Some(LogEvent::SyncFailed(line.to_owned()))
    } else {
        let at = line.find(ERROR_MARK)?;
        Some(LogEvent::Error(
            line[at + ERROR_MARK.len()..].trim().to_owned(),
        ))
    }
}

/// Stops a Litestream process within `grace`; one still starting is given time to become
/// ready first, since before that a SIGTERM ends it without a final sync.
async fn shut_down(mut r: Replicating, grace: Duration) {
    let deadline = Instant::now() + grace;
    if !r.ready {
        let became_ready = async {
            while let Some(event) = r.log.recv().await {
                if matches!(event, LogEvent::Ready) {
                    return true;
                }
            }
            false
        };
        r.ready = tokio::time::timeout_at(deadline, became_ready)
            .await
            .unwrap_or(false);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    terminate(r, left.max(Duration::from_secs(1))).await;
}

/// SIGTERM, then SIGKILL after `grace`, or as soon as Litestream says its final sync failed
/// (it would retry for 30 s). True when it exited cleanly after a final sync.
async fn terminate(mut r: Replicating, grace: Duration) -> bool {
    #[cfg(unix)]
    process::send(&r.child, process::Signal::SIGTERM);
    #[cfg(not(unix))]
    let _ = r.child.start_kill();
    let deadline = Instant::now() + grace;
    let mut sync_failed = None;
    let ended = loop {
        tokio::select! {
            status = r.child.wait() => break Some(status),
            Some(event) = r.log.recv() => {
                if let LogEvent::SyncFailed(line) = event {
                    sync_failed = Some(line);
                    break None;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };
    let status = match ended {
        Some(status) => status,
        None => {
            match &sync_failed {
                Some(line) => tracing::warn!("litestream's final sync failed ({line}): killing it"),
                None => tracing::warn!("litestream did not stop within {grace:?}: killing it"),
            }
            let _ = r.child.start_kill();
            r.child.wait().await
        }
    };
    match status {
        Ok(s) if s.success() && sync_failed.is_none() => {
            tracing::info!("litestream stopped");
            true
        }
        Ok(s) => {
            tracing::warn!(
                "litestream stopped with {}: its final sync did not complete",
                Exit::from_status(s)
            );
            false
        }
        Err(e) => {
            tracing::warn!("cannot wait for litestream: {e}");
            false
        }
    }
}

/// The next [`Event`] of the running Litestream; never completes when none runs.
async fn child_event(running: &mut Option<Replicating>) -> Event {
    let Some(r) = running else {
        return std::future::pending().await;
    };
    tokio::select! {
        status = r.child.wait() => Event::Exited(status),
        Some(event) = r.log.recv() => Event::Log(event),
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
