//! The project's promises on real LiteFS v0.5.14: forwarded writes and operations with
//! read-your-writes, group commit, replica writes refused, and the TXID the primary answers.
//!
//! Needs the LiteFS binary (`LITEFS_BIN`, `litefs` on `PATH`, or `../shared/litefs/litefs`) and
//! FUSE; without them every test here fails and says how to install them.

use litefs_orm::wire::WriteResponse;
use litefs_orm::{Error, JournalMode, ReplicatedActiveModel, Role};
use litefs_orm_testkit::apps::AppOptions;
use litefs_orm_tests::entities::post;
use litefs_orm_tests::operations::IncrementPage;
use litefs_orm_tests::real::{self, setup};
use litefs_orm_tests::{post_insert_body, post_signed};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};

fn delete_mode() -> AppOptions {
    setup().journal_mode(JournalMode::Delete)
}

#[tokio::test]
async fn replicas_know_the_real_primary() {
    let c = real::start(setup()).await;
    assert_eq!(c.db(0).role(), Role::Primary);
    let primary = c.real().hostname(0).to_owned();
    assert_eq!(c.db(1).role(), Role::Replica { primary });
}

#[tokio::test]
async fn an_insert_from_a_replica_is_read_back_there_at_once() {
    let c = real::start(setup()).await;
    let saved = post::new("hello").insert_replicated(c.db(1)).await.unwrap();
    let local = post::Entity::find_by_id(saved.id)
        .one(c.db(1))
        .await
        .unwrap();
    assert_eq!(local, Some(saved));
}

#[tokio::test]
async fn an_update_and_a_delete_from_a_replica_are_read_back_there_at_once() {
    let c = real::start(setup()).await;
    let saved = post::new("draft").insert_replicated(c.db(2)).await.unwrap();
    let mut edit: post::ActiveModel = saved.clone().into();
    edit.body = Set("final".into());
    let updated = edit.update_replicated(c.db(2)).await.unwrap();
    let local = post::Entity::find_by_id(saved.id)
        .one(c.db(2))
        .await
        .unwrap();
    assert_eq!(local.map(|p| p.body), Some("final".to_owned()));
    let gone: post::ActiveModel = updated.into();
    gone.delete_replicated(c.db(2)).await.unwrap();
    let local = post::Entity::find_by_id(saved.id)
        .one(c.db(2))
        .await
        .unwrap();
    assert_eq!(local, None);
}

#[tokio::test]
async fn a_save_from_a_replica_inserts_then_updates() {
    let c = real::start(setup()).await;
    let mut saved = post::new("saved").save_replicated(c.db(1)).await.unwrap();
    saved.body = Set("saved again".into());
    let again = saved.save_replicated(c.db(1)).await.unwrap();
    let id = *again.id.as_ref();
    let local = post::Entity::find_by_id(id).one(c.db(1)).await.unwrap();
    assert_eq!(local.map(|p| p.body), Some("saved again".to_owned()));
}

#[tokio::test]
async fn an_operation_from_replicas_counts_exactly_on_the_primary() {
    let c = real::start(setup()).await;
    let page = || IncrementPage {
        page: "home".into(),
    };
    assert_eq!(c.db(1).run(page()).await.unwrap(), 1);
    assert_eq!(c.db(2).run(page()).await.unwrap(), 2);
    assert_eq!(c.db(0).run(page()).await.unwrap(), 3);
}

#[tokio::test]
async fn concurrent_writes_from_every_node_all_land_once() {
    let c = real::start(setup()).await;
    let mut writes = Vec::new();
    for n in 0..48 {
        let db = c.db(n % 3).clone();
        writes.push(tokio::spawn(async move {
            post::new(&format!("post {n}")).insert_replicated(&db).await
        }));
    }
    for w in writes {
        w.await.unwrap().unwrap();
    }
    for node in 0..3 {
        let rows = post::Entity::find().count(c.db(node)).await.unwrap();
        assert!(rows <= 48, "node {node} has {rows} rows");
    }
    assert_eq!(post::Entity::find().count(c.db(0)).await.unwrap(), 48);
}

#[tokio::test]
async fn a_plain_write_on_a_replica_is_refused_naming_the_replicated_method_in_wal_mode() {
    let c = real::start(setup()).await;
    let err = c
        .db(1)
        .execute_unprepared("INSERT INTO page_view (page, count) VALUES ('x', 1)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("insert_replicated"), "{err}");
}

#[tokio::test]
async fn a_plain_write_on_a_replica_is_refused_naming_the_replicated_method_in_delete_mode() {
    let c = real::start(delete_mode()).await;
    let err = c
        .db(2)
        .execute_unprepared("INSERT INTO page_view (page, count) VALUES ('x', 1)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("insert_replicated"), "{err}");
}

#[tokio::test]
async fn a_write_on_a_replica_outside_the_handle_fails_inside_sqlite() {
    use sea_orm::sqlx::{Connection, sqlite::SqliteConnection};
    let c = real::start(setup()).await;
    let url = format!("sqlite://{}", c.real().db_path(1).display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let err = sea_orm::sqlx::query("INSERT INTO page_view (page, count) VALUES ('x', 1)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    let code = err.as_database_error().and_then(|e| e.code()).unwrap();
    // WAL mode: SQLITE_IOERR_WRITE (disk I/O error), LiteFS's refusal.
    assert_eq!(code, "778", "{err}");
}

async fn answered_txid_is_the_commits_txid(options: AppOptions) {
    let c = real::start(options).await;
    for n in 0..5 {
        let before = c.real().pos(0).unwrap().0;
        let resp = post_signed(
            &c.rpc_url(0),
            post_insert_body(&format!("t{n}"), &format!("key-t{n}")),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 200);
        let answer: WriteResponse = resp.json().await.unwrap();
        let after = c.real().pos(0).unwrap().0;
        assert_eq!(answer.txid, before + 1);
        assert_eq!(answer.txid, after, "-pos after the commit");
    }
}

#[tokio::test]
async fn the_answered_txid_is_the_txid_litefs_gives_the_commit_in_wal_mode() {
    answered_txid_is_the_commits_txid(setup()).await;
}

#[tokio::test]
async fn the_answered_txid_is_the_txid_litefs_gives_the_commit_in_delete_mode() {
    answered_txid_is_the_commits_txid(delete_mode()).await;
}

#[tokio::test]
async fn group_committed_answers_name_txids_litefs_reported() {
    let c = real::start(setup()).await;
    let events = tx_events(&c.real().http_url(0)).await;
    let mut calls = Vec::new();
    for n in 0..32 {
        let url = c.rpc_url(0);
        calls.push(tokio::spawn(async move {
            let resp = post_signed(
                &url,
                post_insert_body(&format!("g{n}"), &format!("key-g{n}")),
            )
            .await;
            let body = resp.text().await.unwrap();
            serde_json::from_str::<WriteResponse>(&body)
                .unwrap_or_else(|e| panic!("{e}: {body}"))
                .txid
        }));
    }
    let mut answered = Vec::new();
    for call in calls {
        answered.push(call.await.unwrap());
    }
    let last = c.real().pos(0).unwrap().0;
    assert_eq!(answered.iter().max(), Some(&last));
    let seen = events.until(last).await;
    for txid in &answered {
        assert!(
            seen.contains(txid),
            "txid {txid} answered, LiteFS reported {seen:?}"
        );
    }
    // Nothing else commits on the primary meanwhile (the idempotency records are pruned inside
    // the calls' own transactions): every commit LiteFS reported carried calls.
    for txid in &seen {
        assert!(
            answered.contains(txid),
            "LiteFS reported txid {txid}, no call was answered with it: {answered:?}"
        );
    }
}

#[tokio::test]
async fn an_error_on_a_replica_says_nothing_was_committed_when_the_primary_refused_it() {
    let c = real::start(setup()).await;
    post::new("taken").insert_replicated(c.db(1)).await.unwrap();
    let err = post::new("taken")
        .insert_replicated(c.db(2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected(_)), "{err}");
    assert!(!err.may_be_committed());
}

/// The TXIDs of the `tx` events on a LiteFS node's `/events` stream, collected in the
/// background from the moment of the call.
struct TxEvents {
    rx: tokio::sync::mpsc::UnboundedReceiver<u64>,
}

async fn tx_events(base: &str) -> TxEvents {
    use futures_util::StreamExt;
    let resp = reqwest::get(format!("{base}/events")).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<litefs_orm::litefs::Event>(&line) else {
                    continue;
                };
                let pos = event
                    .data
                    .as_ref()
                    .and_then(|d| {
                        serde_json::from_value::<litefs_orm::litefs::TxEventData>(d.clone()).ok()
                    })
                    .and_then(|d| d.pos());
                if let (litefs_orm::litefs::EVENT_TX, Some(pos)) = (event.kind.as_str(), pos)
                    && tx.send(pos.txid).is_err()
                {
                    return;
                }
            }
        }
    });
    TxEvents { rx }
}

impl TxEvents {
    /// Every TXID reported until `last` (inclusive).
    async fn until(mut self, last: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        let deadline = std::time::Duration::from_secs(10);
        while seen.last() != Some(&last) {
            match tokio::time::timeout(deadline, self.rx.recv()).await {
                Ok(Some(txid)) => seen.push(txid),
                _ => panic!("no tx event for {last}; saw {seen:?}"),
            }
        }
        seen
    }
}
