//! One `litestream replicate` process: started with its log passed on, read for what matters
//! to the supervisor, and stopped so that it gets its final sync.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backup::litestream::Litestream;
use crate::backup::process::{self, Exit};

/// What Litestream logs once it has opened the database and is replicating (and has set
/// up its signal handling, so a SIGTERM from then on gets a final sync).
const READY_LINE: &str = "initialized db";
/// How Litestream marks an error in its log (`monitor error`, `compaction failed`, ...).
const ERROR_MARK: &str = "level=ERROR";
/// What a stopping Litestream logs when its final sync fails (it then retries for 30 s).
const SYNC_FAILED_LINE: &str = "shutdown sync failed";

/// One `litestream replicate` process.
pub(super) struct Replicating {
    pub(super) child: Child,
    pub(super) ready: bool,
    pub(super) log: mpsc::UnboundedReceiver<LogEvent>,
}

/// What Litestream's log says.
#[derive(Debug)]
pub(super) enum LogEvent {
    /// It opened the database and replicates.
    Ready,
    /// An error line (from `level=ERROR` on).
    Error(String),
    /// Its final sync at shutdown failed (it would retry for 30 s).
    SyncFailed(String),
}

/// What happened to the running Litestream.
pub(super) enum Event {
    Log(LogEvent),
    Exited(std::io::Result<std::process::ExitStatus>),
}

pub(super) fn spawn(litestream: &Litestream) -> std::io::Result<Replicating> {
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
pub(super) fn classify(line: &str) -> Option<LogEvent> {
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
pub(super) async fn shut_down(mut r: Replicating, grace: Duration) {
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
pub(super) async fn terminate(mut r: Replicating, grace: Duration) -> bool {
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
pub(super) async fn child_event(running: &mut Option<Replicating>) -> Event {
    let Some(r) = running else {
        return std::future::pending().await;
    };
    tokio::select! {
        status = r.child.wait() => Event::Exited(status),
        Some(event) = r.log.recv() => Event::Log(event),
    }
}
