//! Reads of the LiteFS mount, made off the async runtime's threads.
//!
//! While LiteFS is paused (SIGSTOP) or its FUSE server is stuck, every access to its mount
//! blocks in the kernel until it answers. A runtime worker blocked that way runs no other
//! task: with every worker blocked, no timer fires and no deadline ends a request. So the
//! library's own reads of the mount's files run on the blocking pool, where a stuck read
//! holds one thread and nothing else.

use std::io;

/// Runs `read`, a read of the mount, on the blocking pool.
///
/// Callers on a request's path await it under the request's deadline; background loops
/// await it before their next read, so a frozen mount holds at most one thread of each.
pub(crate) async fn off_runtime<T: Send + 'static>(
    read: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(read)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_read_that_blocks_leaves_the_runtime_running() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let stuck = tokio::spawn(off_runtime(move || {
            let _ = released.recv();
            Ok(())
        }));
        // On the one thread of this runtime, a timer still fires while the read blocks.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!stuck.is_finished());
        release.send(()).unwrap();
        stuck.await.unwrap().unwrap();
    }
}
