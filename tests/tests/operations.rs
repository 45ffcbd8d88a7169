//! Operations run on the primary in one transaction, from any node, with typed results.

use litefs_orm::{Error, OpError, Operation, ReplicatedDb};
use litefs_orm_tests::TestCluster;
use litefs_orm_tests::entities::post;
use litefs_orm_tests::operations::{IncrementPage, InsertPair, PairError};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, Statement};
use serde::{Deserialize, Serialize};

async fn count(db: &ReplicatedDb, page: &str) -> Option<i64> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT count FROM page_view WHERE page = ?",
            [page.into()],
        ))
        .await
        .unwrap()?;
    Some(row.try_get_by_index(0).unwrap())
}

fn views(page: &str) -> IncrementPage {
    IncrementPage { page: page.into() }
}

#[tokio::test]
async fn an_operation_from_a_replica_returns_its_output_and_the_replica_sees_the_commit() {
    let c = TestCluster::start().await;
    assert_eq!(c.db(1).run(views("home")).await.unwrap(), 1);
    assert_eq!(c.db(1).run(views("home")).await.unwrap(), 2);
    assert_eq!(count(c.db(1), "home").await, Some(2));
}

#[tokio::test]
async fn an_operation_on_the_primary_runs_locally() {
    let c = TestCluster::start().await;
    assert_eq!(c.db(0).run(views("about")).await.unwrap(), 1);
    assert_eq!(count(c.db(0), "about").await, Some(1));
}

#[tokio::test]
async fn concurrent_increments_from_every_node_lose_nothing() {
    let c = TestCluster::start().await;
    let mut tasks = Vec::new();
    for i in 0..45 {
        let db = c.db(i % 3).clone();
        tasks.push(tokio::spawn(
            async move { db.run(views("hot")).await.unwrap() },
        ));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=45).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_operations_own_error_comes_back_typed_and_its_writes_are_rolled_back() {
    let c = TestCluster::start().await;
    let op = InsertPair {
        first: "one".into(),
        second: "two".into(),
        refuse: true,
    };
    let err = c.db(2).run(op).await.unwrap_err();
    assert_eq!(
        err.failed(),
        Some(&PairError::Refused {
            after: "one".into()
        })
    );
    assert!(post::Entity::find().all(c.db(0)).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_operation_commits_all_its_writes_together() {
    let c = TestCluster::start().await;
    let op = InsertPair {
        first: "one".into(),
        second: "two".into(),
        refuse: false,
    };
    let (a, b) = c.db(2).run(op).await.unwrap();
    let local = post::Entity::find().all(c.db(2)).await.unwrap();
    assert_eq!(local.iter().map(|p| p.id).collect::<Vec<_>>(), vec![a, b]);
}

#[tokio::test]
async fn a_database_error_inside_an_operation_comes_back_as_its_error() {
    let c = TestCluster::start().await;
    let op = InsertPair {
        first: "same".into(),
        second: "same".into(),
        refuse: false,
    };
    let err = c.db(1).run(op).await.unwrap_err();
    assert!(
        matches!(err.failed(), Some(PairError::Db(m)) if m.contains("UNIQUE")),
        "{err:?}"
    );
    assert!(post::Entity::find().all(c.db(0)).await.unwrap().is_empty());
}

/// Never registered.
#[derive(Serialize, Deserialize)]
struct Unregistered;

impl Operation for Unregistered {
    const NAME: &'static str = "unregistered";
    type Output = ();
    type Error = litefs_orm::DbFailure;
    async fn run(self, _txn: &DatabaseTransaction) -> Result<(), litefs_orm::DbFailure> {
        Ok(())
    }
}

#[tokio::test]
async fn an_unregistered_operation_is_refused() {
    let c = TestCluster::start().await;
    let err = c.db(1).run(Unregistered).await.unwrap_err();
    assert!(
        matches!(err, OpError::Replicated(Error::UnknownEntity(ref n)) if n == "unregistered"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_standalone_node_runs_operations_locally() {
    let dir = tempfile::tempdir().unwrap();
    let db = litefs_orm_tests::standalone(dir.path()).await;
    assert_eq!(db.run(views("solo")).await.unwrap(), 1);
    assert_eq!(count(&db, "solo").await, Some(1));
}
