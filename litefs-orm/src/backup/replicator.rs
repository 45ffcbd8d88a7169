//! [`Replicator`]: `litestream replicate` running exactly while this node is the primary.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::BackupError;
use super::litestream::Litestream;
use super::process::{self, Exit};
use crate::litefs::role::{Role, RoleWatch};

/// First wait before restarting a Litestream that exited on its own.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A Litestream that ran this long before exiting is restarted after [`MIN_BACKOFF`] again.
const STABLE: Duration = Duration::from_secs(60);
/// How long the supervisor sleeps between role checks when nothing else happens; role
/// changes wake it at once.
const IDLE: Duration = Duration::from_secs(3600);
/// What Litestream logs once it has opened the database and is replicating (and has set
/// up its signal handling, so a SIGTERM from then on gets a final sync).
const READY_LINE: &str = "initialized db";

/// Runs `litestream replicate` while the node's role writes locally (primary or
/// standalone), and only then: started when the node becomes primary, stopped (after its
/// final sync) when it stops being primary, restarted with backoff if it exits on its own.
///
/// So at most one node of a LiteFS cluster writes the backup at a time, up to the moment
/// it takes a demoted primary to notice (LiteFS refuses its writes meanwhile). Dropping a
/// `Replicator` kills Litestream; [`stop`](Self::stop) lets it finish its last sync.
/// Litestream's log (its stdout) is passed on to this process's stdout.
#[derive(Debug)]
pub struct Replicator {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    state: watch::Receiver<State>,
    timeout: Duration,
}

/// Where the current Litestream process stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Not wanted: this node is a replica.
    Idle,
    /// Started, not yet replicating.
    Starting,
    /// Replicating.
    Ready,
    /// Exited (or could not start) before it was replicating.
    Failed(String),
}

impl Replicator {
    /// Starts following `role`: Litestream starts now if the node is primary or standalone.
    /// `stop_timeout` bounds its final sync when it is stopped.
    pub fn start(litestream: Litestream, role: RoleWatch, stop_timeout: Duration) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel();
        let first = if role.current().writes_locally() {
            State::Starting
        } else {
            State::Idle
        };
        let (state_tx, state) = watch::channel(first);
        let timeout = litestream.timeout();
        let task = tokio::spawn(supervise(litestream, role, stop_rx, state_tx, stop_timeout));
        Replicator {
            stop: Some(stop_tx),
            task: Some(task),
            state,
            timeout,
        }
    }

    /// Waits until Litestream replicates (or is not wanted, on a replica). Fails when it
    /// exits first, or is not replicating within the backup timeout.
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

    /// Stops Litestream (SIGTERM: it syncs what is left, then exits; killed after the stop
    /// timeout), runs a last `litestream replicate -once` (within the stop timeout too) if
    /// this node still writes locally, and waits for both. Dropping the future kills them.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
        }
        // Done: nothing left for `drop` to abort. Cancelled before this, `drop` kills it.
        self.task = None;
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
    since: Instant,
    ready: watch::Receiver<bool>,
}

async fn supervise(
    litestream: Litestream,
    role: RoleWatch,
    mut stop: oneshot::Receiver<()>,
    state: watch::Sender<State>,
    stop_timeout: Duration,
) {
    let mut current = role.current();
    let mut running: Option<Replicating> = None;
    let mut restart_at: Option<Instant> = None;
    let mut backoff = MIN_BACKOFF;
    announce(&current, &litestream);
    loop {
        let wanted = current.writes_locally();
        if !wanted {
            restart_at = None;
            state.send_replace(State::Idle);
            if let Some(r) = running.take() {
                tracing::info!(
                    "this node is now {current}: stopping litestream, the primary backs up"
                );
                shut_down(r, stop_timeout).await;
            }
        } else if running.is_none() && restart_at.is_none_or(|t| t <= Instant::now()) {
            restart_at = None;
            match spawn(&litestream) {
                Ok(r) => {
                    state.send_replace(State::Starting);
                    running = Some(r);
                }
                Err(e) => {
                    tracing::error!("cannot start litestream: {e}; retrying in {backoff:?}");
                    state.send_replace(State::Failed(format!("cannot start it: {e}")));
                    restart_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tokio::select! {
            _ = &mut stop => {
                if let Some(r) = running.take() {
                    tracing::info!("stopping litestream");
                    shut_down(r, stop_timeout).await;
                }
                if current.writes_locally() {
                    final_sync(&litestream, stop_timeout).await;
                }
                return;
            }
            next = role.changed_from(&current, IDLE) => {
                if next != current {
                    if next.writes_locally() && !current.writes_locally() {
                        tracing::info!("this node became {next}: starting litestream, backups continue from here");
                    }
                    current = next;
                }
            }
            event = child_event(&mut running) => {
                let status = match event {
                    Event::Ready => {
                        state.send_replace(State::Ready);
                        continue;
                    }
                    Event::Exited(status) => status,
                };
                let r = running.take();
                let ran = r.as_ref().map(|r| r.since.elapsed()).unwrap_or_default();
                let was_ready = r.is_some_and(|r| *r.ready.borrow());
                if ran >= STABLE {
                    backoff = MIN_BACKOFF;
                }
                let how = match status {
                    Ok(s) => Exit::from_status(s).to_string(),
                    Err(e) => e.to_string(),
                };
                if !was_ready {
                    state.send_replace(State::Failed(format!(
                        "litestream replicate ended ({how}) before it replicated; its log is above"
                    )));
                }
                tracing::error!("litestream exited on its own ({how}); restarting it in {backoff:?}");
                restart_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            _ = sleep_until(restart_at), if running.is_none() && restart_at.is_some() => {}
        }
    }
}

/// Says what this node does about backups, once at start.
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
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    // Its own process group: a terminal's ctrl-c reaches `run`, which stops Litestream only
    // after the app, so the app's last writes are backed up.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn()?;
    let (ready_tx, ready) = watch::channel(false);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pass_on(out, ready_tx));
    }
    Ok(Replicating {
        child,
        since: Instant::now(),
        ready,
    })
}

/// Copies Litestream's log to stdout, and says when it has started replicating.
async fn pass_on(out: ChildStdout, ready: watch::Sender<bool>) {
    let mut lines = BufReader::new(out).lines();
    let mut stdout = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains(READY_LINE) {
            ready.send_replace(true);
        }
        let _ = stdout.write_all(format!("{line}\n").as_bytes()).await;
        let _ = stdout.flush().await;
    }
}

/// Stops a Litestream process; one still starting is given the grace period to become
/// ready first, since before that a SIGTERM ends it without a final sync.
async fn shut_down(mut r: Replicating, grace: Duration) {
    let start = Instant::now();
    let _ = tokio::time::timeout(grace, r.ready.wait_for(|ready| *ready)).await;
    let left = grace
        .saturating_sub(start.elapsed())
        .max(Duration::from_secs(1));
    match process::stop(&mut r.child, left).await {
        Ok(s) if s.success() => tracing::info!("litestream stopped"),
        Ok(s) => tracing::warn!(
            "litestream stopped with {}: its final sync may not have completed",
            Exit::from_status(s)
        ),
        Err(e) => tracing::warn!("cannot wait for litestream: {e}"),
    }
}

/// One last `litestream replicate -once`: Litestream syncs on SIGTERM only once it has
/// opened the database (a second after it starts), so a short-lived app's writes would
/// otherwise be missed.
async fn final_sync(litestream: &Litestream, timeout: Duration) {
    match litestream.sync_once(timeout).await {
        Ok(()) => tracing::info!("final sync of the backup done"),
        Err(e) => tracing::error!("the final sync of the backup failed: {e}"),
    }
}

/// What happened to the running Litestream.
enum Event {
    /// It started replicating.
    Ready,
    /// It exited.
    Exited(std::io::Result<std::process::ExitStatus>),
}

/// The next [`Event`] of the running Litestream; never completes when none runs.
async fn child_event(running: &mut Option<Replicating>) -> Event {
    let Some(r) = running else {
        return std::future::pending().await;
    };
    let starting = !*r.ready.borrow();
    tokio::select! {
        status = r.child.wait() => Event::Exited(status),
        // An error means its log closed without the line: it is exiting.
        Ok(_) = r.ready.wait_for(|ready| *ready), if starting => Event::Ready,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
