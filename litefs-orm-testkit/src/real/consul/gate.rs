//! A node's gate: a TCP forwarder in front of the lease server that a test can cut and heal.
//!
//! Open, it passes bytes both ways. Hung ([`Cut::Hang`]), it keeps accepting and reading but
//! holds what it read — requests of new and open (keep-alive) connections get no answer — and
//! delivers it on heal, as TCP would after a partition. Refusing ([`Cut::Refuse`]), it resets
//! every open connection and closes its listener, so connecting is refused; on heal it listens
//! on the same port again.

use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use crate::real::Cut;

/// How long a cut or heal waits for the gate's task to act.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The gate's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Cut(Cut),
}

/// What the accept loop is told to do with its listener.
enum Listen {
    /// Drop the listener, then acknowledge.
    Stop(std_mpsc::Sender<()>),
    /// Accept on this listener from now on.
    Start(TcpListener),
}

/// One node's gate. Dropping it stops nothing: its tasks end with the server's runtime.
#[derive(Debug)]
pub(crate) struct Gate {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    listen: mpsc::UnboundedSender<Listen>,
    rt: Handle,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stop(_) => "Stop",
            Self::Start(_) => "Start",
        })
    }
}

impl Gate {
    /// Opens a gate on a free port of 127.0.0.1 forwarding to `upstream`, its tasks on `rt`.
    pub fn open(rt: &Handle, upstream: SocketAddr) -> std::io::Result<Self> {
        let _guard = rt.enter();
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Open);
        let (listen, cmds) = mpsc::unbounded_channel();
        rt.spawn(accept_loop(listener, cmds, upstream, mode.clone()));
        Ok(Self {
            addr,
            mode,
            listen,
            rt: rt.clone(),
        })
    }

    /// The address nodes connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether and how the gate is cut now.
    pub fn cut_state(&self) -> Option<Cut> {
        match *self.mode.borrow() {
            Mode::Open => None,
            Mode::Cut(how) => Some(how),
        }
    }

    /// Cuts the gate. Returns once open connections are held or reset and, for
    /// [`Cut::Refuse`], the port refuses connections.
    pub fn cut(&self, how: Cut) -> std::io::Result<()> {
        let was = self.cut_state();
        if was == Some(how) {
            return Ok(());
        }
        let listener = self.listener_back(was)?;
        self.mode.send_replace(Mode::Cut(how));
        if let Some(l) = listener {
            self.send(Listen::Start(l))?;
        }
        if how == Cut::Refuse {
            let (ack, acked) = std_mpsc::channel();
            self.send(Listen::Stop(ack))?;
            acked
                .recv_timeout(ACK_TIMEOUT)
                .map_err(|_| std::io::Error::other("the gate did not close its listener"))?;
        }
        Ok(())
    }

    /// Opens the gate again: held bytes flow, and a refusing gate listens on its port again.
    pub fn heal(&self) -> std::io::Result<()> {
        let listener = self.listener_back(self.cut_state())?;
        // Open before accepting again, so no new connection is taken for a refused one.
        self.mode.send_replace(Mode::Open);
        if let Some(l) = listener {
            self.send(Listen::Start(l))?;
        }
        Ok(())
    }

    /// A listener on the gate's port again when it was refusing (the kernel queues new
    /// connections from now on; the accept loop takes them once told).
    fn listener_back(&self, was: Option<Cut>) -> std::io::Result<Option<TcpListener>> {
        if was != Some(Cut::Refuse) {
            return Ok(None);
        }
        let _guard = self.rt.enter();
        bind(self.addr).map(Some)
    }

    fn send(&self, cmd: Listen) -> std::io::Result<()> {
        self.listen
            .send(cmd)
            .map_err(|_| std::io::Error::other("the gate's task has stopped"))
    }
}

/// Listens on `addr` with `SO_REUSEADDR`, so a port given up by a refusing gate can be taken
/// again while old connections linger.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections and serves each on a task of its own; obeys listener commands.
async fn accept_loop(
    listener: TcpListener,
    mut cmds: mpsc::UnboundedReceiver<Listen>,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
) {
    let mut listener = Some(listener);
    loop {
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(Listen::Stop(ack)) => {
                    listener = None;
                    let _ = ack.send(());
                }
                Some(Listen::Start(l)) => listener = Some(l),
            },
            accepted = accept => match accepted {
                Ok((client, _)) => {
                    tokio::spawn(serve(client, upstream, mode.subscribe()));
                }
                Err(e) => {
                    tracing::debug!("lease gate accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

/// Forwards one connection both ways under the gate's mode; resets it when the gate refuses.
async fn serve(mut client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let _ = client.set_nodelay(true);
    let mut refused = mode.clone();
    let reset = {
        let forward = async {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.split();
            let (sr, sw) = server.split();
            // Both ways until both end; either failing ends the connection.
            let _ = tokio::try_join!(pump(cr, sw, mode.clone()), pump(sr, cw, mode.clone()));
        };
        tokio::select! {
            () = forward => false,
            _ = refused.wait_for(|m| *m == Mode::Cut(Cut::Refuse)) => true,
        }
    };
    if reset {
        // Linger 0: closing sends RST, as a peer whose network dropped the connection would.
        // (Deprecated because a positive linger blocks the dropping thread; zero never does.)
        #[allow(deprecated)]
        let _ = client.set_linger(Some(Duration::ZERO));
    }
}

/// Copies `from` to `to` chunk by chunk, holding each chunk while the gate hangs; ends at EOF
/// (shutting `to`'s write side), on an error, or when the gate refuses (dropping the chunk).
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    mut mode: watch::Receiver<Mode>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        let open = matches!(
            mode.wait_for(|m| *m != Mode::Cut(Cut::Hang))
                .await
                .as_deref(),
            Ok(Mode::Open)
        );
        if !open {
            return Ok(());
        }
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
    }
}
