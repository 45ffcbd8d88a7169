//! A fault-injecting TCP proxy for tests: added latency, dropped connections, a reset or a
//! gateway's error answer after the request was sent, a stalled response. Tests put it between a replica and the primary.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the traffic passing through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Delay every chunk, both ways.
    Latency(Duration),
    /// Close every new connection at once, and every open one at its next request.
    Drop,
    /// Deliver the request to the upstream, then reset the client's connection instead of
    /// passing the answer back: the request ran, the caller cannot know.
    ResetAfterRequest,
    /// Deliver the request to the upstream, then answer the client as a gateway that gave
    /// up waiting would: `504 Gateway Timeout` with a plain-text body, and close. The
    /// request ran; the answer does not say so.
    GatewayTimeoutAfterRequest,
    /// Deliver the request, hold the answer back for as long as the fault lasts.
    Stall,
}

/// What a gateway answers in place of the upstream's answer under
/// [`Fault::GatewayTimeoutAfterRequest`].
const GATEWAY_TIMEOUT: &[u8] = b"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain\r\n\
content-length: 24\r\nconnection: close\r\n\r\nupstream request timeout";

/// A proxy on `127.0.0.1:0` in front of one upstream address.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    upstream: Arc<Mutex<SocketAddr>>,
    replaced: Arc<Replaced>,
    task: JoinHandle<()>,
}

/// Answers replaced: resets still to make whatever the fault, and answers replaced so far
/// (by a reset or a gateway's error).
#[derive(Default)]
struct Replaced {
    budget: AtomicUsize,
    done: AtomicUsize,
}

impl Replaced {
    /// Takes one reset from the budget, if any is left.
    fn take(&self) -> bool {
        self.budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let (fault, _) = watch::channel(Fault::None);
        let upstream = Arc::new(Mutex::new(upstream));
        let replaced = Arc::new(Replaced::default());
        let task = tokio::spawn(accept(
            listener,
            fault.subscribe(),
            upstream.clone(),
            replaced.clone(),
        ));
        FaultProxy {
            addr,
            fault,
            upstream,
            replaced,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the fault for all traffic from now on.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Resets the connection of the next `n` answers, as [`Fault::ResetAfterRequest`]
    /// does, whatever the fault; later answers pass.
    pub fn reset_next_answers(&self, n: usize) {
        self.replaced.budget.store(n, Ordering::SeqCst);
    }

    /// Points the proxy at another upstream (new connections only).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }

    /// How many answers have been replaced so far, with a reset or a gateway's error: a test
    /// can wait until the fault has bitten, whether or not the caller retries.
    pub fn answers_replaced(&self) -> usize {
        self.replaced.done.load(Ordering::SeqCst)
    }
}

async fn accept(
    listener: TcpListener,
    fault: watch::Receiver<Fault>,
    upstream: Arc<Mutex<SocketAddr>>,
    replaced: Arc<Replaced>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        if *fault.borrow() == Fault::Drop {
            drop(client);
            continue;
        }
        let target = *upstream.lock().unwrap();
        tokio::spawn(relay(client, target, fault.clone(), replaced.clone()));
    }
}

async fn relay(
    client: TcpStream,
    target: SocketAddr,
    fault: watch::Receiver<Fault>,
    replaced: Arc<Replaced>,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let (sent_tx, sent_rx) = watch::channel(false);
    let upstream_fault = fault.clone();
    let to_server = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let current = *upstream_fault.borrow();
            match current {
                Fault::Drop => return,
                Fault::Latency(d) => tokio::time::sleep(d).await,
                _ => {}
            }
            if server_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
            sent_tx.send_replace(true);
        }
    };
    let to_client = async move {
        let mut fault = fault;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            loop {
                let current = *fault.borrow();
                let sent = *sent_rx.borrow();
                // The upstream answered, so it ran the request.
                if sent && (current == Fault::ResetAfterRequest || replaced.take()) {
                    // Reset the client's connection (RST, through a zero linger) instead of
                    // answering.
                    let _ = client_tx.as_ref().set_zero_linger();
                    replaced.done.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if sent && current == Fault::GatewayTimeoutAfterRequest {
                    let _ = client_tx.write_all(GATEWAY_TIMEOUT).await;
                    let _ = client_tx.shutdown().await;
                    replaced.done.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                match current {
                    Fault::Stall => {
                        if fault.changed().await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Fault::Drop => return,
                    Fault::Latency(d) => tokio::time::sleep(d).await,
                    _ => {}
                }
                break;
            }
            if client_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = to_server => {}
        _ = to_client => {}
    }
}
