//! A rolling deploy: for a while a replica and the primary run different versions of the
//! app. What works, and what fails with which typed error — never a write reported wrongly.

use litefs_orm::{Error, Operation, Registry, ReplicatedActiveModel, ReplicatedDb};
use litefs_orm_tests::entities::secret;
use litefs_orm_tests::rolling::{SCHEMA_V1, SCHEMA_V2, note_v1, note_v2};
use litefs_orm_tests::{Served, TestCluster, fresh_key, post_insert_body, post_signed};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait};
use serde::{Deserialize, Serialize};

/// An operation only the new binary has.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Archive;

impl Operation for Archive {
    const NAME: &'static str = "archive";
    type Output = ();
    type Error = litefs_orm::DbFailure;

    async fn run(self, _txn: &DatabaseTransaction) -> Result<(), litefs_orm::DbFailure> {
        Ok(())
    }
}

/// A cluster whose `note` table has `schema`, a primary app on node 0 with `primary`
/// registered, and a replica handle on node 1 with `replica` registered that writes
/// through it.
struct Deploy {
    c: TestCluster,
    replica: ReplicatedDb,
    _primary: (ReplicatedDb, Served),
}

async fn deploy(schema: &str, primary: Registry, replica: Registry) -> Deploy {
    let c = TestCluster::start().await;
    c.db(0).execute_unprepared(schema).await.unwrap();
    c.litefs.sync().await.unwrap();
    let primary_db = ReplicatedDb::connect(c.configs[0].clone(), primary)
        .await
        .unwrap();
    let (url, served) = TestCluster::serve(litefs_orm::router(primary_db.clone())).await;
    let config = c.configs[1]
        .clone()
        .with_primary_url_for(c.hostname(0), url);
    let replica = ReplicatedDb::connect(config, replica).await.unwrap();
    Deploy {
        c,
        replica,
        _primary: (primary_db, served),
    }
}

fn v1() -> Registry {
    Registry::new().entity::<note_v1::Entity>()
}

fn v2() -> Registry {
    Registry::new()
        .entity::<note_v2::Entity>()
        .entity::<secret::Entity>()
        .operation::<Archive>()
}

#[tokio::test]
async fn an_old_replica_reads_the_saved_model_of_a_primary_with_a_column_more() {
    let d = deploy(SCHEMA_V2, v2(), v1()).await;
    let saved = note_v1::ActiveModel {
        text: Set("from the old binary".into()),
        ..Default::default()
    }
    .insert_replicated(&d.replica)
    .await
    .unwrap();
    assert_eq!(saved.text, "from the old binary");
    let stored = note_v2::Entity::find_by_id(saved.id)
        .one(d.c.db(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.tag, None);
}

#[tokio::test]
async fn a_new_replica_setting_a_column_the_old_primary_lacks_is_refused_and_writes_nothing() {
    let d = deploy(SCHEMA_V1, v1(), v2()).await;
    let e = note_v2::ActiveModel {
        text: Set("tagged".into()),
        tag: Set(Some("new".into())),
        ..Default::default()
    }
    .insert_replicated(&d.replica)
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert!(e.to_string().contains("unknown column `tag`"), "{e}");
    assert!(!e.may_be_committed(), "{e}");
    assert!(
        note_v1::Entity::find()
            .all(d.c.db(0))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_new_replica_whose_model_the_old_primary_cannot_fill_is_told_the_write_committed() {
    let d = deploy(SCHEMA_V1, v1(), v2()).await;
    let e = note_v2::ActiveModel {
        text: Set("untagged".into()),
        tag: NotSet,
        ..Default::default()
    }
    .insert_replicated(&d.replica)
    .await
    .unwrap_err();
    assert!(
        matches!(e, Error::AnswerMismatch { txid: Some(_), .. }),
        "{e:?}"
    );
    assert!(e.is_committed(), "{e}");
    // Waited for: the row is on the replica already.
    let rows = note_v1::Entity::find().all(&d.replica).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text, "untagged");
}

#[tokio::test]
async fn a_new_entity_the_old_primary_lacks_is_refused_as_unknown() {
    let d = deploy(SCHEMA_V1, v1(), v2()).await;
    let e = secret::ActiveModel {
        value: Set("new table".into()),
        ..Default::default()
    }
    .insert_replicated(&d.replica)
    .await
    .unwrap_err();
    assert!(matches!(e, Error::UnknownEntity(_)), "{e:?}");
    assert!(!e.may_be_committed());
}

#[tokio::test]
async fn a_new_operation_the_old_primary_lacks_is_refused_as_unknown() {
    let d = deploy(SCHEMA_V1, v1(), v2()).await;
    let e = match d.replica.run(Archive).await.unwrap_err() {
        litefs_orm::OpError::Replicated(e) => e,
        other => panic!("{other:?}"),
    };
    assert!(matches!(e, Error::UnknownEntity(_)), "{e:?}");
    assert!(!e.may_be_committed());
}

#[tokio::test]
async fn an_old_replica_speaking_wire_version_1_is_answered_in_version_1() {
    let c = TestCluster::start().await;
    let mut body: serde_json::Value =
        serde_json::from_slice(&post_insert_body("from version 1", &fresh_key())).unwrap();
    body["v"] = 1.into();
    let resp = post_signed(&c.rpc_url(0), serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["v"], 1);
}
