//! Single-row insert latency, one write at a time: local on the primary, forwarded from the
//! replica with and without the read-your-writes wait, and the loopback round trips they
//! are compared with. The series are interleaved so that drift hits them all alike.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use litefs_orm::client::Transport;
use litefs_orm::position::PositionTracker;
use litefs_orm::wire::{Op, Outcome, WIRE_VERSION, WriteRequest, WriteResponse};
use litefs_orm::{RPC_PATH, Replicated, ReplicatedActiveModel};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, TryIntoModel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Options;
use crate::cluster::{Bench, NOOP_PATH};
use crate::entity::item;
use crate::report::Report;
use crate::stats::Samples;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The series of one latency run.
#[derive(Default)]
struct Series {
    local: Samples,
    forwarded: Samples,
    wait: Samples,
    forwarded_ryw: Samples,
    http_rtt: Samples,
    refused_rtt: Samples,
    encode: Samples,
    send: Samples,
    handler: Samples,
    http: Samples,
    decode: Samples,
    /// Per write: the forward minus its own handler time (encode, HTTP, decode).
    beyond_handler: Samples,
}

/// The request body of a forwarded insert of item `n`, as the replica's dispatcher encodes it
/// (with a key shaped like its keys: the time in milliseconds, then random bits).
pub fn insert_body(n: u64) -> Result<Bytes> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let random = uuid::Uuid::new_v4().simple().to_string();
    body(n, format!("{ms:012x}{}", &random[..20]))
}

fn body(n: u64, key: String) -> Result<Bytes> {
    let model = item::new(n);
    let body = serde_json::to_vec(&WriteRequest {
        v: WIRE_VERSION,
        entity: <item::Entity as Replicated>::NAME.to_owned(),
        op: Op::Insert,
        model: <item::Entity as Replicated>::to_wire(&model),
        key,
        db: None,
        durability: None,
    })?;
    Ok(Bytes::from(body))
}

/// A forwarded insert through the transport alone, as the replica's dispatcher does it
/// (encode, sign and POST, decode), timed step by step; returns the commit's TXID.
async fn forward(bench: &Bench, n: u64, s: &mut Series) -> Result<u64> {
    let url = bench.primary_url(RPC_PATH);
    let start = Instant::now();
    let body = insert_body(n)?;
    let encoded = Instant::now();
    bench.handler.start();
    let answer = bench.transport.send(&url, body, TIMEOUT).await?;
    let handler = bench.handler.take();
    let sent = Instant::now();
    let response: WriteResponse = serde_json::from_slice(&answer)?;
    let Outcome::Model(wire) = response.outcome else {
        bail!("an insert answered with a delete's outcome");
    };
    let saved: item::Model = <item::Entity as Replicated>::from_wire(wire)?.try_into_model()?;
    let decoded = Instant::now();
    anyhow::ensure!(saved.name == format!("item {n}"), "wrong row back");
    let send = sent - encoded;
    let on_server = handler.p50();
    s.encode.push(encoded - start);
    s.send.push(send);
    s.handler.push(Duration::from_secs_f64(on_server / 1e6));
    s.http
        .push(send.saturating_sub(Duration::from_secs_f64(on_server / 1e6)));
    s.decode.push(decoded - sent);
    s.forwarded.push(decoded - start);
    s.beyond_handler
        .push((decoded - start).saturating_sub(Duration::from_secs_f64(on_server / 1e6)));
    Ok(response.txid)
}

/// One POST of `body` to the primary's no-op route through the same transport.
async fn http_rtt(bench: &Bench, body: &Bytes) -> Result<Duration> {
    let url = bench.primary_url(NOOP_PATH);
    let start = Instant::now();
    bench.transport.send(&url, body.clone(), TIMEOUT).await?;
    Ok(start.elapsed())
}

/// A forwarded write the primary refuses right after its intake (size limit, signature,
/// JSON, version, entity look-up): an entity nobody registered. Its round trip minus the
/// no-op's is the intake's cost.
async fn refused_rtt(bench: &Bench) -> Result<Duration> {
    let body = serde_json::to_vec(&WriteRequest {
        v: WIRE_VERSION,
        entity: "not_registered".to_owned(),
        op: Op::Insert,
        model: <item::Entity as Replicated>::to_wire(&item::new(0)),
        key: "0123456789abcdef0123456789abcdef".to_owned(),
        db: None,
        durability: None,
    })?;
    let url = bench.primary_url(RPC_PATH);
    let start = Instant::now();
    match bench.transport.send(&url, Bytes::from(body), TIMEOUT).await {
        Err(litefs_orm::Error::UnknownEntity(_)) => Ok(start.elapsed()),
        other => bail!("expected an unknown-entity refusal, got {other:?}"),
    }
}

/// Round trips of `size` bytes over a loopback TCP connection (echo server).
async fn tcp_rtt(iters: usize, size: usize) -> Result<Samples> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let mut buf = vec![0u8; size];
        loop {
            if socket.read_exact(&mut buf).await.is_err() {
                return Ok::<_, std::io::Error>(());
            }
            socket.write_all(&buf).await?;
        }
    });
    let mut client = TcpStream::connect(addr).await?;
    client.set_nodelay(true)?;
    let mut buf = vec![7u8; size];
    let mut samples = Samples::with_capacity(iters);
    for i in 0..iters + 10 {
        let start = Instant::now();
        client.write_all(&buf).await?;
        client.read_exact(&mut buf).await?;
        if i >= 10 {
            samples.push(start.elapsed());
        }
    }
    drop(client);
    echo.await??;
    Ok(samples)
}

/// Measures the insert paths and records them in `report`.
pub async fn run(bench: &Bench, opts: &Options, report: &mut Report) -> Result<()> {
    bench.reset().await?;
    let tracker = PositionTracker::new(&bench.litefs.db_path(1));
    let mut s = Series::default();
    let noop_body = Bytes::from(vec![b' '; 160]);
    let warmup = 10;
    // Every measured operation starts on a settled cluster, after the same kind of idle
    // wait (`sync`): the stand-in's watcher and replicator take SQLite locks on the primary
    // right after each commit (a write that meets them waits in SQLite's busy handler, in
    // 1 ms steps, which LiteFS does not do), and on this VM an operation that follows an idle
    // wait runs slower than one that follows a busy one, so all of them follow one.
    for i in 0..(opts.latency_iters + warmup) as u64 {
        let mut round = Series::default();
        bench.litefs.sync().await?;
        let start = Instant::now();
        item::new(i).insert_replicated(&bench.primary.db).await?;
        round.local.push(start.elapsed());

        // Replication paused while the answer travels back: the stand-in's whole-database
        // copy would compete with it for this machine's two cores, which the copy on a
        // LiteFS replica never does. The read-your-writes series runs with replication on.
        bench.litefs.sync().await?;
        bench.litefs.pause_replication();
        let forwarded = forward(bench, i, &mut round).await;
        bench.litefs.resume_replication();
        let txid = forwarded?;
        let start = Instant::now();
        tracker
            .wait_for(txid, TIMEOUT)
            .await
            .map_err(|t| anyhow::anyhow!("the replica stayed at {:?}", t.last))?;
        round.wait.push(start.elapsed());

        bench.litefs.sync().await?;
        let start = Instant::now();
        item::new(i).insert_replicated(&bench.replica.db).await?;
        round.forwarded_ryw.push(start.elapsed());

        bench.litefs.sync().await?;
        round.http_rtt.push(http_rtt(bench, &noop_body).await?);
        bench.litefs.sync().await?;
        round.refused_rtt.push(refused_rtt(bench).await?);
        if i >= warmup as u64 {
            s.append(&round);
        }
    }
    let tcp = tcp_rtt(opts.latency_iters * 4, noop_body.len()).await?;
    record(report, &s, &tcp);
    unit_costs(bench, &tracker, opts.latency_iters * 10, report).await?;
    let rows = bench.rows().await.context("counting rows")?;
    report.notes.push(format!(
        "Latency phase: {} writes of each kind, one at a time; the table held {rows} rows at the end.",
        opts.latency_iters
    ));
    bench.reset().await
}

/// The unit costs a write on the primary pays besides its own SQL: one trivial statement
/// round trip inside a transaction (each `total_changes()` read is one), and one `-pos` read.
async fn unit_costs(
    bench: &Bench,
    tracker: &PositionTracker,
    iters: usize,
    report: &mut Report,
) -> Result<()> {
    let txn = bench.plain.begin().await?;
    let count = Statement::from_string(DbBackend::Sqlite, "SELECT total_changes()");
    for _ in 0..10 {
        txn.query_one_raw(count.clone()).await?;
    }
    let start = Instant::now();
    for _ in 0..iters {
        txn.query_one_raw(count.clone()).await?;
    }
    let statement = start.elapsed().as_secs_f64() * 1e6 / iters as f64;
    txn.rollback().await?;
    let start = Instant::now();
    for _ in 0..iters {
        tracker.read()?;
    }
    let pos_read = start.elapsed().as_secs_f64() * 1e6 / iters as f64;
    report.add(
        "path.statement",
        "path: one trivial statement in a transaction (a total_changes() read), mean",
        statement,
        crate::report::Unit::Micros,
    );
    report.add(
        "path.pos_read",
        "path: one -pos read (stand-in: a plain file; LiteFS: FUSE, ~0.5 ms), mean",
        pos_read,
        crate::report::Unit::Micros,
    );
    Ok(())
}

impl Series {
    fn append(&mut self, o: &Series) {
        for (a, b) in [
            (&mut self.local, &o.local),
            (&mut self.forwarded, &o.forwarded),
            (&mut self.wait, &o.wait),
            (&mut self.forwarded_ryw, &o.forwarded_ryw),
            (&mut self.http_rtt, &o.http_rtt),
            (&mut self.refused_rtt, &o.refused_rtt),
            (&mut self.encode, &o.encode),
            (&mut self.send, &o.send),
            (&mut self.handler, &o.handler),
            (&mut self.http, &o.http),
            (&mut self.decode, &o.decode),
            (&mut self.beyond_handler, &o.beyond_handler),
        ] {
            a.extend(b);
        }
    }
}

fn record(report: &mut Report, s: &Series, tcp: &Samples) {
    report.latency("insert.local", "insert, local on the primary", &s.local);
    report.latency(
        "insert.forwarded",
        "insert, forwarded from the replica, transport alone (no wait)",
        &s.forwarded,
    );
    report.latency(
        "insert.forwarded_ryw",
        "insert, forwarded, with the read-your-writes wait (insert_replicated)",
        &s.forwarded_ryw,
    );
    report.latency(
        "insert.wait",
        "replication of a forwarded insert (from resuming replication at the answer)",
        &s.wait,
    );
    report.latency(
        "rtt.http",
        "loopback HTTP round trip (no-op route)",
        &s.http_rtt,
    );
    report.latency("rtt.tcp", "loopback TCP round trip (160 B echo)", tcp);
    let over_http = s.forwarded.p50() - (s.local.p50() + s.http_rtt.p50());
    let over_tcp = s.forwarded.p50() - (s.local.p50() + tcp.p50());
    report.add(
        "insert.overhead_vs_http_rtt",
        "forwarded p50 − (local p50 + HTTP round trip p50) [target ≤ 150 µs]",
        over_http,
        crate::report::Unit::Micros,
    );
    report.add(
        "insert.overhead_paired",
        "per write, forwarded − its own handler time, p50, − HTTP round trip p50 (execution's \
         variance removed)",
        s.beyond_handler.p50() - s.http_rtt.p50(),
        crate::report::Unit::Micros,
    );
    report.add(
        "insert.overhead_vs_tcp_rtt",
        "forwarded p50 − (local p50 + TCP round trip p50) [target ≤ 150 µs]",
        over_tcp,
        crate::report::Unit::Micros,
    );
    report.ratio(
        "insert.forwarded_over_local",
        "forwarded (no wait) p50 / local p50",
        s.forwarded.p50() / s.local.p50(),
    );
    for (key, label, samples) in [
        (
            "path.encode",
            "path: encode request (to_wire + JSON)",
            &s.encode,
        ),
        (
            "path.send",
            "path: transport send (sign + HTTP + primary handler)",
            &s.send,
        ),
        (
            "path.handler",
            "path: primary handler (verify, decode, execute, answer)",
            &s.handler,
        ),
        (
            "path.http",
            "path: HTTP and loopback (send − handler)",
            &s.http,
        ),
        (
            "path.decode",
            "path: decode answer (JSON + from_wire)",
            &s.decode,
        ),
    ] {
        report.latency(key, label, samples);
    }
    report.latency(
        "rtt.refused",
        "round trip of a write refused after intake (unknown entity)",
        &s.refused_rtt,
    );
    report.add(
        "path.intake.p50",
        "path: intake (body, verify, JSON, look-up) = refused p50 − no-op p50",
        s.refused_rtt.p50() - s.http_rtt.p50(),
        crate::report::Unit::Micros,
    );
    report.add(
        "path.server_beyond_local.p50",
        "path: handler p50 − local insert p50 (intake, decode, answer)",
        s.handler.p50() - s.local.p50(),
        crate::report::Unit::Micros,
    );
}
