//! Testing an app on a cluster, as a user of litefs-orm would: this file is meant to be copied.
//! Each test starts three nodes of the app below, on the stand-in and on real LiteFS.

use litefs_orm::{DbFailureKind, Error, Registry, ReplicatedActiveModel, ReplicatedDb};
use litefs_orm_testkit::apps::{AppCluster, AppOptions, Engine};
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;

mod post {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, litefs_orm::Replicated)]
    #[sea_orm(table_name = "post")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub title: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const SCHEMA: &str = "CREATE TABLE post (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE)";

/// The app: its own routes, and litefs-orm's endpoint merged in.
fn app(db: ReplicatedDb) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { "my app" }))
        .merge(litefs_orm::router(db))
}

fn registry() -> Registry {
    Registry::new().entity::<post::Entity>()
}

async fn cluster(engine: Engine) -> AppCluster {
    AppCluster::start(AppOptions::new(engine).schema(SCHEMA), registry, app)
        .await
        .expect("start the cluster")
}

fn new_post(title: &str) -> post::ActiveModel {
    post::ActiveModel {
        title: Set(title.to_owned()),
        ..Default::default()
    }
}

async fn a_write_on_a_replica_is_read_back_there_at_once(engine: Engine) {
    let c = cluster(engine).await;
    let saved = new_post("hello").insert_replicated(c.db(1)).await.unwrap();
    let read = post::Entity::find_by_id(saved.id)
        .one(c.db(1))
        .await
        .unwrap();
    assert_eq!(read, Some(saved));
}

async fn a_duplicate_title_from_another_replica_is_a_typed_unique_violation(engine: Engine) {
    let c = cluster(engine).await;
    new_post("taken").insert_replicated(c.db(1)).await.unwrap();
    let err = new_post("taken")
        .insert_replicated(c.db(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rejected(f) if f.kind == DbFailureKind::UniqueViolation),
        "{err}"
    );
    assert!(!err.may_be_committed());
}

async fn every_node_serves_the_app(engine: Engine) {
    let c = cluster(engine).await;
    for i in 0..3 {
        let body = reqwest::get(c.url(i)).await.unwrap().text().await.unwrap();
        assert_eq!(body, "my app");
    }
}

#[tokio::test]
async fn on_the_stand_in_a_write_on_a_replica_is_read_back_there_at_once() {
    a_write_on_a_replica_is_read_back_there_at_once(Engine::StandIn).await;
}

#[tokio::test]
async fn on_real_litefs_a_write_on_a_replica_is_read_back_there_at_once() {
    a_write_on_a_replica_is_read_back_there_at_once(Engine::Real).await;
}

#[tokio::test]
async fn on_the_stand_in_a_duplicate_from_another_replica_is_a_typed_unique_violation() {
    a_duplicate_title_from_another_replica_is_a_typed_unique_violation(Engine::StandIn).await;
}

#[tokio::test]
async fn on_real_litefs_a_duplicate_from_another_replica_is_a_typed_unique_violation() {
    a_duplicate_title_from_another_replica_is_a_typed_unique_violation(Engine::Real).await;
}

#[tokio::test]
async fn on_the_stand_in_every_node_serves_the_app() {
    every_node_serves_the_app(Engine::StandIn).await;
}

#[tokio::test]
async fn on_real_litefs_every_node_serves_the_app() {
    every_node_serves_the_app(Engine::Real).await;
}
