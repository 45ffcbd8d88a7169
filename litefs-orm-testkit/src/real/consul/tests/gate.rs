//! The gates: held bytes on a hang, resets and refusals on a refuse, and both healed.
//!
//! The runtime is multi-threaded: cutting waits (blocking) for the gate's task to act, as the
//! harness does from the test's thread while the gates run on the lease server's runtime.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

use crate::real::Cut;
use crate::real::consul::gate::Gate;

/// An echo server on a free port.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn gate() -> Gate {
    Gate::open(&Handle::current(), echo().await).unwrap()
}

/// Sends `msg` and reads the echo back, or `None` when nothing comes within 300 ms.
async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
    s.write_all(msg).await.unwrap();
    read(s, msg.len()).await
}

async fn read(s: &mut TcpStream, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let got = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await;
    got.ok().map(|r| r.map(|_| buf).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_gate_forwards_both_ways() {
    let g = gate().await;
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut s, b"ping").await.as_deref(),
        Some(&b"ping"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_gate_holds_an_open_connection_until_healed() {
    let g = gate().await;
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    round_trip(&mut s, b"a").await.unwrap();
    g.cut(Cut::Hang).unwrap();
    assert_eq!(round_trip(&mut s, b"held").await, None);
    g.heal().unwrap();
    assert_eq!(read(&mut s, 4).await.as_deref(), Some(&b"held"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_gate_accepts_new_connections_but_answers_nothing_until_healed() {
    let g = gate().await;
    g.cut(Cut::Hang).unwrap();
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"held").await, None);
    g.heal().unwrap();
    assert_eq!(read(&mut s, 4).await.as_deref(), Some(&b"held"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_gate_resets_open_connections() {
    let g = gate().await;
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    round_trip(&mut s, b"a").await.unwrap();
    g.cut(Cut::Refuse).unwrap();
    let mut buf = [0u8; 1];
    let got = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    let err = got.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_gate_refuses_new_connections_until_healed() {
    let g = gate().await;
    g.cut(Cut::Refuse).unwrap();
    let err = TcpStream::connect(g.addr()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    g.heal().unwrap();
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut s, b"back").await.as_deref(),
        Some(&b"back"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_gate_turned_refusing_drops_what_it_held() {
    let g = gate().await;
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    g.cut(Cut::Hang).unwrap();
    assert_eq!(round_trip(&mut s, b"held").await, None);
    g.cut(Cut::Refuse).unwrap();
    assert_eq!(g.cut_state(), Some(Cut::Refuse));
    let mut buf = [0u8; 4];
    let got = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    assert!(got.unwrap().is_err());
    g.heal().unwrap();
    assert_eq!(g.cut_state(), None);
}
