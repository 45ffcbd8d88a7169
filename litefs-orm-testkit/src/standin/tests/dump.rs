//! `dump`: equal exactly when the data is.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use crate::dump;

async fn db(sql: &str) -> DatabaseConnection {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    db.execute_unprepared(sql).await.unwrap();
    db
}

#[tokio::test]
async fn the_same_rows_inserted_in_another_order_dump_equal() {
    let a = db("CREATE TABLE t (x, y); INSERT INTO t VALUES (1, 'a'), (2, NULL)").await;
    let b = db("CREATE TABLE t (x, y); INSERT INTO t VALUES (2, NULL), (1, 'a')").await;
    assert_eq!(dump(&a).await.unwrap(), dump(&b).await.unwrap());
}

#[tokio::test]
async fn a_changed_value_type_changes_the_dump() {
    let a = db("CREATE TABLE t (x); INSERT INTO t VALUES (1)").await;
    let b = db("CREATE TABLE t (x); INSERT INTO t VALUES ('1')").await;
    assert_ne!(dump(&a).await.unwrap(), dump(&b).await.unwrap());
}

#[tokio::test]
async fn a_new_empty_table_changes_the_dump() {
    let a = db("CREATE TABLE t (x)").await;
    let b = db("CREATE TABLE t (x); CREATE TABLE \"odd \"\"name\" (y)").await;
    assert_ne!(dump(&a).await.unwrap(), dump(&b).await.unwrap());
}

#[tokio::test]
async fn a_deleted_row_changes_the_dump() {
    let a = db("CREATE TABLE t (x); INSERT INTO t VALUES (1), (1)").await;
    let before = dump(&a).await.unwrap();
    a.execute_unprepared("DELETE FROM t WHERE rowid = 2")
        .await
        .unwrap();
    assert_ne!(dump(&a).await.unwrap(), before);
}
