//! Fuzzes the RPC handler of a node: every input, correctly signed, must get an answer
//! below 500, and a refused one must leave the database unchanged.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use litefs_orm::{Config, Registry, ReplicatedDb, auth};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tower::ServiceExt;

const SECRET: &str = "fuzzing secret of sufficient length";

mod post {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, litefs_orm::Replicated)]
    #[sea_orm(table_name = "post")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub title: String,
        pub score: Option<f64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

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
        let db = rt.block_on(async {
            let db = ReplicatedDb::connect(config, Registry::new().entity::<post::Entity>())
                .await
                .unwrap();
            db.execute_unprepared(
                "CREATE TABLE post (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE, score REAL)",
            )
            .await
            .unwrap();
            db
        });
        Node { rt, db, _dir: dir }
    })
}

async fn rows(db: &ReplicatedDb) -> i64 {
    let stmt = Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM post");
    db.query_one_raw(stmt).await.unwrap().unwrap().try_get_by_index(0).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let node = node();
    let path = match data.first().map(|b| b % 3) {
        Some(1) => litefs_orm::OPERATION_PATH,
        Some(2) => litefs_orm::BATCH_PATH,
        _ => litefs_orm::RPC_PATH,
    };
    let body = data.get(1..).unwrap_or_default().to_vec();
    let sig = auth::sign(SECRET.as_bytes(), path, &body);
    let request = Request::post(path)
        .header(auth::TIMESTAMP_HEADER, sig.timestamp_ms.to_string())
        .header(auth::NONCE_HEADER, sig.nonce)
        .header(auth::SIGNATURE_HEADER, sig.signature)
        .body(Body::from(body))
        .unwrap();
    node.rt.block_on(async {
        let before = rows(&node.db).await;
        let response = litefs_orm::router(node.db.clone()).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        assert!(status < 500, "status {status}");
        if status >= 400 {
            assert_eq!(before, rows(&node.db).await, "a refused request changed the database");
        }
    });
});
