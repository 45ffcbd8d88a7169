//! Tests of `dispatch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use super::*;
use crate::api::operation::{OpError, Operation};
use crate::api::registry::Registry;
use crate::config::Config;
use crate::error::DbFailure;
use crate::litefs::role::RoleWatch;
use crate::replica::client::Transport;

#[derive(serde::Serialize, serde::Deserialize)]
pub(in crate::db) struct Noop;

impl Operation for Noop {
    const NAME: &'static str = "noop";
    type Output = i64;
    type Error = DbFailure;
    async fn run(self, _txn: &sea_orm::DatabaseTransaction) -> Result<i64, DbFailure> {
        Ok(1)
    }
}

/// A primary that is gone: every request is refused after `delay`, before it is sent.
pub(super) struct Refused {
    pub(super) delay: Duration,
    pub(super) sent: AtomicUsize,
}

impl Transport for Refused {
    fn send<'a>(
        &'a self,
        url: &'a str,
        _body: Bytes,
        _timeout: Duration,
    ) -> crate::BoxFut<'a, Result<Bytes>> {
        Box::pin(async move {
            self.sent.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            Err(Error::Transport {
                url: url.to_owned(),
                message: "error trying to connect: Connection refused (os error 111)".into(),
                maybe_committed: false,
                attempts: 1,
            })
        })
    }
}

const PRIMARY_WAIT: Duration = Duration::from_millis(300);

/// A replica handle on a fresh database whose role the returned sender sets.
pub(super) async fn replica(
    dir: &tempfile::TempDir,
    transport: Arc<dyn Transport>,
    role: Role,
) -> (ReplicatedDb, watch::Sender<Role>) {
    let path = dir.path().join("app.db");
    std::fs::File::create(&path).unwrap();
    let config = Config::standalone(path)
        .with_primary_wait(PRIMARY_WAIT)
        .with_write_timeout(Duration::from_secs(5));
    let (watch, tx) = RoleWatch::manual(role);
    let db = ReplicatedDb::open_with(
        config,
        Registry::new().operation::<Noop>(),
        transport,
        watch,
        None,
    )
    .await
    .unwrap();
    (db, tx)
}

pub(in crate::db) fn replica_of_n1() -> Role {
    Role::Replica {
        primary: "n1".into(),
    }
}

fn replicated(e: OpError<DbFailure>) -> Error {
    match e {
        OpError::Replicated(e) => e,
        OpError::Failed(f) => panic!("the operation itself failed: {f}"),
    }
}

#[tokio::test]
async fn a_write_while_the_role_flaps_ends_after_the_primary_wait_as_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Refused {
        delay: Duration::from_millis(2),
        sent: AtomicUsize::new(0),
    });
    let (db, role) = replica(&dir, transport.clone(), Role::NoPrimary).await;
    // LiteFS's flap: "replica of n1" for an instant, then "no primary" again.
    let flapper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(60)).await;
            role.send_replace(replica_of_n1());
            tokio::time::sleep(Duration::from_millis(5)).await;
            role.send_replace(Role::NoPrimary);
        }
    });
    let start = Instant::now();
    let e = replicated(db.run(Noop).await.unwrap_err());
    let took = start.elapsed();
    flapper.abort();
    assert!(matches!(e, Error::NoPrimary { .. }), "{e}");
    assert!(!e.may_be_committed(), "{e}");
    assert!(took >= PRIMARY_WAIT, "ended after {took:?}");
    // Well before the 5 s write timeout: the flaps did not restart the wait.
    assert!(took < Duration::from_secs(3), "ended after {took:?}");
    assert!(
        transport.sent.load(Ordering::SeqCst) > 0,
        "no flap was tried"
    );
}

#[tokio::test]
async fn an_attempt_refused_just_after_the_role_changed_is_not_maybe_committed() {
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Refused {
        delay: Duration::from_millis(50),
        sent: AtomicUsize::new(0),
    });
    let (db, role) = replica(&dir, transport, replica_of_n1()).await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        role.send_replace(Role::NoPrimary);
        // Keep the sender alive past the write.
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let e = replicated(db.run(Noop).await.unwrap_err());
    assert!(matches!(e, Error::NoPrimary { .. }), "{e}");
    assert!(!e.may_be_committed(), "{e}");
}

/// A primary that takes the request and never answers.
struct Silent;

impl Transport for Silent {
    fn send<'a>(
        &'a self,
        _url: &'a str,
        _body: Bytes,
        _timeout: Duration,
    ) -> crate::BoxFut<'a, Result<Bytes>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn an_attempt_unanswered_after_the_role_changed_may_be_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (db, role) = replica(&dir, Arc::new(Silent), replica_of_n1()).await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        role.send_replace(Role::NoPrimary);
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let e = replicated(db.run(Noop).await.unwrap_err());
    assert!(e.may_be_committed(), "{e}");
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Insert;

impl Operation for Insert {
    const NAME: &'static str = "insert";
    type Output = ();
    type Error = DbFailure;
    async fn run(self, txn: &sea_orm::DatabaseTransaction) -> Result<(), DbFailure> {
        use sea_orm::ConnectionTrait;
        txn.execute_unprepared("INSERT INTO t DEFAULT VALUES")
            .await?;
        Ok(())
    }
}

/// A primary whose writer refuses writes as read-only, as SQLite does on a mount that
/// LiteFS no longer serves as the primary's.
async fn read_only_primary(dir: &tempfile::TempDir) -> ReplicatedDb {
    use sea_orm::ConnectionTrait;
    let config = Config::standalone(dir.path().join("app.db"))
        .with_primary_wait(PRIMARY_WAIT)
        .with_write_timeout(Duration::from_secs(5));
    let (watch, tx) = RoleWatch::manual(Role::Primary);
    std::mem::forget(tx);
    let db = ReplicatedDb::open_with(
        config,
        Registry::new().operation::<Insert>(),
        Arc::new(Silent),
        watch,
        None,
    )
    .await
    .unwrap();
    db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    db.writer()
        .execute_unprepared("PRAGMA query_only = ON")
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn a_read_only_refusal_on_a_node_still_primary_is_an_io_error_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let db = read_only_primary(&dir).await;
    let start = Instant::now();
    let e = replicated(db.run(Insert).await.unwrap_err());
    assert!(matches!(e, Error::Io(_)), "{e}");
    assert!(!e.may_be_committed(), "{e}");
    assert!(
        e.to_string().contains("LiteFS mount may have gone away"),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "retried: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_plain_write_refused_on_a_node_still_primary_keeps_sqlite_s_error() {
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let db = read_only_primary(&dir).await;
    let e = db
        .execute_unprepared("INSERT INTO t DEFAULT VALUES")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("this node is a"), "{e}");
    assert!(crate::error::is_replica_write_error(&e), "{e}");
}

/// A primary on a fresh database with table `t`, its `-pos` at TXID 5 and followed by a
/// tracker; `-pos` moves only when a test moves it.
async fn primary_with_position(dir: &tempfile::TempDir, write_timeout: Duration) -> ReplicatedDb {
    use sea_orm::ConnectionTrait;
    let path = dir.path().join("app.db");
    let pos = crate::litefs::Pos {
        txid: 5,
        checksum: 1,
    };
    std::fs::write(crate::litefs::pos_path(&path), pos.to_string()).unwrap();
    let config = Config::standalone(path.clone()).with_write_timeout(write_timeout);
    let (watch, tx) = RoleWatch::manual(Role::Primary);
    std::mem::forget(tx);
    let db = ReplicatedDb::open_with(
        config,
        Registry::new().operation::<Insert>(),
        Arc::new(Silent),
        watch,
        Some(crate::litefs::position::PositionTracker::new(&path)),
    )
    .await
    .unwrap();
    db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn a_commit_litefs_did_not_record_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing moves `-pos`: LiteFS records none of this node's commits.
    let db = primary_with_position(&dir, Duration::from_secs(5)).await;
    let e = replicated(db.run(Insert).await.unwrap_err());
    assert!(
        matches!(e, Error::CommitNotRecorded { txid: 6, local: 5 }),
        "{e}"
    );
    assert!(e.may_be_committed(), "{e}");
}

#[tokio::test]
async fn a_commit_litefs_did_not_record_reopens_the_connections() {
    let dir = tempfile::tempdir().unwrap();
    let db = primary_with_position(&dir, Duration::from_secs(5)).await;
    let before = db.inner.reopened.load(Ordering::SeqCst);
    let _ = db.run(Insert).await;
    let start = Instant::now();
    while db.inner.reopened.load(Ordering::SeqCst) == before {
        assert!(start.elapsed() < Duration::from_secs(5), "never reopened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_write_whose_database_does_not_answer_ends_at_its_deadline_uncommitted() {
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let db = primary_with_position(&dir, Duration::from_millis(300)).await;
    // Another connection holds SQLite's write lock, as a frozen mount holds every call.
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let other = sea_orm::Database::connect(&url).await.unwrap();
    other.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
    let start = Instant::now();
    let e = replicated(db.run(Insert).await.unwrap_err());
    assert!(
        matches!(
            e,
            Error::WriteStalled {
                maybe_committed: false
            }
        ),
        "{e}"
    );
    assert!(!e.may_be_committed(), "{e}");
    // Well before SQLite's 5 s busy timeout.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_new_primary_term_opens_the_connections_anew_before_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = read_only_primary(&dir).await;
    // The writer refuses writes; a term's fresh connections do not.
    db.role_watch().begin_term();
    db.run(Insert).await.unwrap();
    assert_eq!(db.inner.reopened.load(Ordering::SeqCst), 1);
}
