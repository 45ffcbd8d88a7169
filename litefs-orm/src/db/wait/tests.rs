//! Tests of the read-your-writes wait of a forwarded call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sea_orm::ConnectionTrait;

use crate::api::registry::Registry;
use crate::config::Config;
use crate::consistency::{Token, capture};
use crate::db::ReplicatedDb;
use crate::db::dispatch::tests::{Noop, replica_of_n1};
use crate::error::{Error, Result};
use crate::litefs::Pos;
use crate::litefs::position::PositionTracker;
use crate::litefs::role::RoleWatch;
use crate::replica::client::Transport;

/// This replica's position, and the TXID answers name unless a test says otherwise.
const TXID: u64 = 7;

/// A primary that commits each call at `txid` as run `answered`, after putting the call's
/// record in the replica's database as run `replicated` (when set) — as if LiteFS had
/// replicated that commit there.
struct Primary {
    replica: PathBuf,
    replicated: Option<&'static str>,
    answered: &'static str,
    txid: u64,
}

impl Transport for Primary {
    fn send<'a>(
        &'a self,
        _url: &'a str,
        body: Bytes,
        _timeout: Duration,
    ) -> crate::BoxFut<'a, Result<Bytes>> {
        Box::pin(async move {
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let key = request["key"].as_str().unwrap().to_owned();
            if let Some(run) = self.replicated {
                record(&self.replica, &key, run).await;
            }
            let answer =
                serde_json::json!({"v": 2, "txid": self.txid, "run": self.answered, "output": 1});
            Ok(Bytes::from(answer.to_string()))
        })
    }
}

/// Puts the record of `key` by `run` in the database at `path`.
async fn record(path: &Path, key: &str, run: &str) {
    let url = format!("sqlite://{}", path.display());
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    conn.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS _litefs_orm_idempotency (key TEXT PRIMARY KEY, \
         digest TEXT, response TEXT, created_ms INTEGER, run TEXT); \
         INSERT INTO _litefs_orm_idempotency VALUES ('{key}', '', '1', 0, '{run}')"
    ))
    .await
    .unwrap();
    conn.close().await.unwrap();
}

/// A replica at [`TXID`] whose calls a [`Primary`] answers at [`TXID`].
async fn replica(
    dir: &Path,
    replicated: Option<&'static str>,
    answered: &'static str,
) -> ReplicatedDb {
    replica_answered_at(dir, replicated, answered, TXID).await
}

/// A replica at [`TXID`] whose calls a [`Primary`] answers at `txid`.
async fn replica_answered_at(
    dir: &Path,
    replicated: Option<&'static str>,
    answered: &'static str,
    txid: u64,
) -> ReplicatedDb {
    let path = dir.join("app.db");
    std::fs::File::create(&path).unwrap();
    let pos = Pos {
        txid: TXID,
        checksum: 1,
    };
    std::fs::write(crate::litefs::pos_path(&path), pos.to_string()).unwrap();
    let config = Config::standalone(path.clone())
        .with_replication_timeout(Duration::from_millis(300))
        .with_write_timeout(Duration::from_secs(5));
    let (watch, tx) = RoleWatch::manual(replica_of_n1());
    std::mem::forget(tx);
    let primary = Primary {
        replica: path.clone(),
        replicated,
        answered,
        txid,
    };
    ReplicatedDb::open_with(
        config,
        Registry::new().operation::<Noop>(),
        Arc::new(primary),
        watch,
        Some(PositionTracker::new(&path)),
    )
    .await
    .unwrap()
}

fn replicated(e: crate::OpError<crate::DbFailure>) -> Error {
    match e {
        crate::OpError::Replicated(e) => e,
        crate::OpError::Failed(f) => panic!("the operation itself failed: {f}"),
    }
}

#[tokio::test]
async fn a_call_returns_once_the_replica_holds_its_key_recorded_by_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = replica(dir.path(), Some("00aa"), "00aa").await;
    assert_eq!(db.run(Noop).await.unwrap(), 1);
}

#[tokio::test]
async fn a_record_of_the_key_by_another_run_does_not_prove_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    // An abandoned history's run of the same call is what this replica holds.
    let db = replica(dir.path(), Some("00aa"), "00bb").await;
    let e = replicated(db.run(Noop).await.unwrap_err());
    assert!(matches!(e, Error::ReplicationTimeout { .. }), "{e}");
    assert!(e.is_committed(), "{e}");
}

#[tokio::test]
async fn a_failed_read_of_the_proof_leaves_the_call_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = replica(dir.path(), Some("00aa"), "00aa").await;
    db.reader().close_by_ref().await.unwrap();
    let e = replicated(db.run(Noop).await.unwrap_err());
    assert!(e.is_committed(), "{e}");
    assert!(matches!(e, Error::ReplicationTimeout { .. }), "{e}");
}

#[tokio::test]
async fn a_later_write_at_a_lower_txid_replaces_a_token_this_node_no_longer_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = replica(dir.path(), Some("00aa"), "00aa").await;
    let name = db.database_name().to_owned();
    let (_, tokens) = capture(async {
        // A commit a failover lost: its TXID is past anything this node holds.
        crate::consistency::replace(Token::new(&name, 100, "lost").with_run("00ff"));
        db.run(Noop).await.unwrap();
    })
    .await;
    assert_eq!(tokens.get(&name).unwrap().txid(), TXID);
}

#[tokio::test]
async fn a_later_write_at_a_lower_txid_keeps_a_token_this_node_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = replica_answered_at(dir.path(), Some("00aa"), "00aa", TXID - 2).await;
    record(&dir.path().join("app.db"), "held", "00cc").await;
    let name = db.database_name().to_owned();
    let (_, tokens) = capture(async {
        // Two writes of one history that finished out of order: the higher holds the lower.
        crate::consistency::replace(Token::new(&name, TXID, "held").with_run("00cc"));
        db.run(Noop).await.unwrap();
    })
    .await;
    assert_eq!(tokens.get(&name).unwrap().key(), "held");
}
