//! A stand-in worker: a named thread with its own current-thread runtime and a stop flag.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// A running worker thread. Dropping it stops and joins the thread.
///
/// Workers are threads rather than tasks so they can poll and back off in steps well under
/// tokio's 1 ms timer resolution, and so a test that blocks its own runtime cannot stall them.
pub(crate) struct Worker {
    stop: Arc<AtomicBool>,
    done: Option<oneshot::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts `body` on a thread named `name`. `body` gets the thread's runtime, the stop flag
    /// and a sender to fire once it is ready; the returned receiver fires then (or when `body`
    /// returns early).
    pub fn spawn<F>(name: String, body: F) -> io::Result<(Worker, oneshot::Receiver<()>)>
    where
        F: FnOnce(&Runtime, &AtomicBool, oneshot::Sender<()>) + Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            body(&rt, &flag, ready_tx);
            let _ = done_tx.send(());
        })?;
        Ok((
            Worker {
                stop,
                done: Some(done_rx),
                thread: Some(thread),
            },
            ready_rx,
        ))
    }

    /// Asks the worker to stop and waits for it without blocking the async caller.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
