//! Graceful shutdown: one signal (SIGTERM, ctrl-c, or `quit`) stops every server of the process.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// A shutdown switch shared by every server; cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Shutdown {
    /// A switch that SIGTERM and ctrl-c turn on.
    pub fn on_signals() -> Self {
        let shutdown = Shutdown(Arc::new(watch::channel(false).0));
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            let signal = signal_received().await;
            tracing::info!("{signal} received: finishing requests in flight, then stopping");
            trigger.trigger();
        });
        shutdown
    }

    /// Turns the switch on.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Completes once the switch is on.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            // An error means the sender is gone, which never happens while `self` lives;
            // either way it is time to stop.
            let _ = rx.wait_for(|on| *on).await;
        }
    }
}

#[cfg(unix)]
async fn signal_received() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "ctrl-c",
            _ = term.recv() => "SIGTERM",
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only ctrl-c stops the app");
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}

#[cfg(not(unix))]
async fn signal_received() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}
