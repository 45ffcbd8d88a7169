//! `GET /info` and `GET /events`.

use std::time::Duration;

use super::{cluster, exec, with_table};
use crate::ClusterOptions;
use litefs_orm::litefs::{Event, NodeInfo, PrimaryEventData};

fn opts() -> ClusterOptions {
    ClusterOptions::default().nodes(2)
}

async fn info(addr: std::net::SocketAddr) -> NodeInfo {
    reqwest::get(format!("http://{addr}/info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Reads `/events` line by line.
struct Events {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Events {
    async fn open(addr: std::net::SocketAddr) -> Events {
        let resp = reqwest::get(format!("http://{addr}/events")).await.unwrap();
        assert_eq!(resp.headers()["content-type"], "application/json");
        Events {
            resp,
            buf: Vec::new(),
        }
    }

    async fn next(&mut self) -> Event {
        loop {
            if let Some(n) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=n).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(2), self.resp.chunk())
                .await
                .expect("an event within 2 s")
                .unwrap()
                .expect("stream open");
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// The next event of type `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> Event {
        loop {
            let e = self.next().await;
            if e.kind == kind {
                return e;
            }
        }
    }
}

fn primary_data(e: &Event) -> PrimaryEventData {
    serde_json::from_value(e.data.clone().unwrap()).unwrap()
}

#[tokio::test]
async fn info_reports_role_and_primary_hostname() {
    let c = cluster(opts()).await;
    let primary = info(c.http_addr(0).unwrap()).await;
    assert!(primary.is_primary && primary.candidate);
    assert_eq!(primary.primary.hostname, "n1");
    let replica = info(c.http_addr(1).unwrap()).await;
    assert!(!replica.is_primary);
    assert_eq!(replica.primary.hostname, "n1");
    assert!(replica.cluster_id.starts_with("LFSC"));
    c.lose_primary().await;
    let none = info(c.http_addr(0).unwrap()).await;
    assert!(!none.is_primary);
    assert_eq!(none.primary.hostname, "");
}

#[tokio::test]
async fn events_start_with_init_then_report_primary_changes() {
    let c = cluster(opts()).await;
    let mut replica = Events::open(c.http_addr(1).unwrap()).await;
    let init = replica.next().await;
    assert_eq!(init.kind, "init");
    assert_eq!(
        primary_data(&init),
        PrimaryEventData {
            is_primary: false,
            hostname: "n1".into()
        }
    );
    let mut primary = Events::open(c.http_addr(0).unwrap()).await;
    assert!(primary_data(&primary.next().await).is_primary);

    c.switch_primary(1).await;
    let change = replica.next_of("primaryChange").await;
    assert_eq!(
        primary_data(&change),
        PrimaryEventData {
            is_primary: true,
            hostname: String::new()
        }
    );
    let change = primary.next_of("primaryChange").await;
    assert_eq!(
        primary_data(&change),
        PrimaryEventData {
            is_primary: false,
            hostname: "n2".into()
        }
    );

    c.lose_primary().await;
    let change = primary.next_of("primaryChange").await;
    assert_eq!(primary_data(&change), PrimaryEventData::default());
}

#[tokio::test]
async fn events_report_each_transaction_with_its_txid() {
    let (c, mut conn) = with_table(opts()).await;
    let mut primary = Events::open(c.http_addr(0).unwrap()).await;
    let mut replica = Events::open(c.http_addr(1).unwrap()).await;
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    c.sync().await.unwrap();
    let want = format!("{:016x}", c.pos(0).txid);
    for stream in [&mut primary, &mut replica] {
        let tx = stream.next_of("tx").await;
        assert_eq!(tx.db.as_deref(), Some("app.db"));
        assert_eq!(tx.data.as_ref().unwrap()["txID"], want.as_str());
    }
}

#[tokio::test]
async fn a_lost_primary_blinks_on_a_replicas_events_once_a_second_as_on_litefs() {
    let c = cluster(opts()).await;
    let mut events = Events::open(c.http_addr(1).unwrap()).await;
    events.next_of("init").await;
    c.lose_primary().await;
    let lost = primary_data(&events.next_of("primaryChange").await);
    assert_eq!(lost.hostname, "");
    let named = primary_data(&events.next_of("primaryChange").await);
    let cleared = primary_data(&events.next_of("primaryChange").await);
    assert_eq!((named.is_primary, named.hostname.as_str()), (false, "n1"));
    assert_eq!((cleared.is_primary, cleared.hostname.as_str()), (false, ""));
    assert_eq!(info(c.http_addr(1).unwrap()).await.primary.hostname, "");
}
