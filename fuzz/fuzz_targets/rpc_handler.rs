//! Fuzzes the RPC handler of a node: every input, correctly signed, must get an answer
//! below 500, and a refused one must leave the database unchanged (every table's schema and
//! rows). The node has the test suite's entities (a post with hooks, a row of every column
//! type) and operations.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use litefs_orm::{Config, Registry, ReplicatedDb};
use litefs_orm_tests::SECRET;
use litefs_orm_tests::endpoint::check_request;
use litefs_orm_tests::entities::{kitchen, post};
use litefs_orm_tests::operations::{IncrementPage, InsertPair, PAGE_VIEW_SCHEMA};
use sea_orm::ConnectionTrait;

/// Rows past which the tables are emptied between inputs, so the per-input dumps stay cheap.
const MAX_ROWS: i64 = 256;

struct Node {
    rt: tokio::runtime::Runtime,
    db: ReplicatedDb,
    _dir: tempfile::TempDir,
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Config::standalone(dir.path().join("fuzz.db")).with_rpc_secret(SECRET);
        // The suite's registry less `HoldWriter`, which sleeps as long as it is told.
        let registry = Registry::new()
            .entity::<post::Entity>()
            .entity::<kitchen::Entity>()
            .operation::<IncrementPage>()
            .operation::<InsertPair>();
        let db = rt.block_on(async {
            let db = ReplicatedDb::connect(config, registry).await.unwrap();
            for schema in [post::SCHEMA, kitchen::SCHEMA, PAGE_VIEW_SCHEMA] {
                db.execute_unprepared(schema).await.unwrap();
            }
            db
        });
        Node { rt, db, _dir: dir }
    })
}

/// Empties the tables once they hold more than [`MAX_ROWS`] rows between them.
async fn trim(db: &ReplicatedDb) {
    let count = "SELECT (SELECT count(*) FROM post) + (SELECT count(*) FROM kitchen) \
                 + (SELECT count(*) FROM page_view)";
    let rows: i64 = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            count,
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    if rows > MAX_ROWS {
        db.execute_unprepared("DELETE FROM post; DELETE FROM kitchen; DELETE FROM page_view")
            .await
            .unwrap();
        // Absent until a keyed call succeeds.
        let _ = db
            .execute_unprepared("DELETE FROM _litefs_orm_idempotency")
            .await;
    }
}

fuzz_target!(|data: &[u8]| {
    let node = node();
    let path = match data.first().map(|b| b % 3) {
        Some(1) => litefs_orm::OPERATION_PATH,
        Some(2) => litefs_orm::BATCH_PATH,
        _ => litefs_orm::RPC_PATH,
    };
    let body = data.get(1..).unwrap_or_default().to_vec();
    node.rt.block_on(async {
        trim(&node.db).await;
        if let Err(broken) = check_request(&node.db, path, body).await {
            panic!("{broken}");
        }
    });
});
