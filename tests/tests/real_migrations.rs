//! Primary-only migrations on real LiteFS: the primary applies, a replica skips, waits for the
//! replicated schema, or refuses to change it.

use std::time::Duration;

use litefs_orm::migrate::{self, Outcome, UpOptions};
use litefs_orm::{Config, Error, JournalMode, Registry, ReplicatedDb, Role};
use litefs_orm_testkit::real::{RealCluster, RealOptions};
use migrations::Migrator;
use sea_orm::ConnectionTrait;

const SECRET: &str = "migrations test secret, 32 chars";

/// Two nodes with a database on the primary, replicated. DELETE mode: the tests drop their
/// handles lazily, and no `-shm` must be mapped from a mount when its LiteFS stops.
async fn cluster() -> RealCluster {
    let mut cluster = RealCluster::start(RealOptions::default().with_nodes(2))
        .await
        .unwrap_or_else(|e| panic!("cannot start real LiteFS: {e}"));
    let primary = node(&cluster, 0).await;
    primary
        .execute_unprepared("CREATE TABLE created_first (x)")
        .await
        .unwrap();
    primary.close().await.unwrap();
    cluster.sync(Duration::from_secs(10)).await.unwrap();
    cluster
}

fn config(cluster: &RealCluster, i: usize) -> Config {
    Config::litefs(cluster.mount(i), "app.db")
        .with_litefs_http(cluster.http_url(i))
        .with_rpc_secret(SECRET)
        .with_primary_wait(Duration::from_millis(300))
        .with_journal_mode(JournalMode::Delete)
}

async fn node(cluster: &RealCluster, i: usize) -> ReplicatedDb {
    ReplicatedDb::connect(config(cluster, i), Registry::new())
        .await
        .expect("open the node")
}

#[tokio::test]
async fn up_on_the_primary_applies_and_the_replica_receives_every_migration() {
    let mut cluster = cluster().await;
    let report = migrate::up::<Migrator>(&node(&cluster, 0).await, UpOptions::default())
        .await
        .unwrap();
    assert_eq!(report.role, Role::Primary);
    assert!(matches!(report.outcome, Outcome::Ran { ref applied, .. } if applied.len() == 2));
    cluster.sync(Duration::from_secs(10)).await.unwrap();
    let status = migrate::status::<Migrator>(&node(&cluster, 1).await)
        .await
        .unwrap();
    assert!(status.is_up_to_date());
}

#[tokio::test]
async fn up_on_a_replica_changes_nothing_and_names_the_primary() {
    let cluster = cluster().await;
    let before = cluster.pos(1).unwrap();
    let report = migrate::up::<Migrator>(&node(&cluster, 1).await, UpOptions::default())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            primary: "n1".into()
        }
    );
    assert_eq!(cluster.pos(1).unwrap(), before);
    assert_eq!(cluster.pos(0).unwrap(), before);
}

#[tokio::test]
async fn prepare_on_a_replica_returns_once_the_schema_has_replicated() {
    let cluster = cluster().await;
    let replica = node(&cluster, 1).await;
    let waiting = tokio::spawn(async move { migrate::prepare::<Migrator>(&replica).await });
    migrate::up::<Migrator>(&node(&cluster, 0).await, UpOptions::default())
        .await
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the replica got the schema")
        .unwrap()
        .unwrap();
    assert!(
        matches!(report.outcome, Outcome::Replicated { migrations: 2, .. }),
        "{report}"
    );
}

#[tokio::test]
async fn down_on_a_replica_is_refused_and_changes_nothing() {
    let mut cluster = cluster().await;
    migrate::up::<Migrator>(&node(&cluster, 0).await, UpOptions::default())
        .await
        .unwrap();
    cluster.sync(Duration::from_secs(10)).await.unwrap();
    let before = cluster.pos(0).unwrap();
    let err = migrate::down::<Migrator>(&node(&cluster, 1).await, Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotPrimary { primary: Some(p), .. } if p == "n1"),
        "{err}"
    );
    assert_eq!(cluster.pos(0).unwrap(), before);
}
