//! Primary-only migrations on the LiteFS stand-in: the primary applies, replicas skip or wait.

use std::path::Path;
use std::time::Duration;

use litefs_orm::migrate::{self, Command, Outcome, Target, UpOptions};
use litefs_orm::{Config, Error, Registry, ReplicatedDb, Role};
use litefs_orm_testkit::{Cluster, ClusterOptions};
use migrations::Migrator;
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{self, Connection, SqliteConnection};

const SECRET: &str = "migrations test secret, 32 chars";
const PAGE_VIEW: &str = "m20261123_000001_create_page_view";
const POST_AND_COMMENT: &str = "m20261123_000002_create_post_and_comment";

async fn cluster() -> Cluster {
    Cluster::start(ClusterOptions::default().nodes(2))
        .await
        .expect("start the LiteFS stand-in")
}

/// Node `i`'s configuration, following its role over the stand-in's LiteFS HTTP API.
fn config(cluster: &Cluster, i: usize) -> Config {
    let addr = cluster.http_addr(i).expect("stand-in HTTP API");
    Config::litefs(cluster.mount(i), "app.db")
        .with_litefs_http(format!("http://{addr}"))
        .with_rpc_secret(SECRET)
        .with_primary_wait(Duration::from_millis(300))
}

async fn node(cluster: &Cluster, i: usize) -> ReplicatedDb {
    ReplicatedDb::connect(config(cluster, i), Registry::new())
        .await
        .expect("open the node")
}

/// The user tables of a database, read on a read-only connection of the test's own.
async fn tables(db: &Path) -> Vec<String> {
    let options = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

const ALL_TABLES: [&str; 4] = ["comment", "page_view", "post", "seaql_migrations"];

#[tokio::test]
async fn up_on_the_primary_applies_every_migration_and_the_replica_receives_the_tables() {
    let cluster = cluster().await;
    let primary = node(&cluster, 0).await;
    let report = migrate::up::<Migrator>(&primary, UpOptions::default())
        .await
        .unwrap();
    assert_eq!(report.role, Role::Primary);
    assert_eq!(
        report.outcome,
        Outcome::Ran {
            rolled_back: vec![],
            applied: vec![PAGE_VIEW.into(), POST_AND_COMMENT.into()]
        }
    );
    cluster.sync().await.unwrap();
    assert_eq!(tables(&cluster.db_path(1)).await, ALL_TABLES);
    assert!(
        migrate::status::<Migrator>(&node(&cluster, 1).await)
            .await
            .unwrap()
            .is_up_to_date()
    );
}

#[tokio::test]
async fn up_on_a_replica_changes_nothing_and_names_the_primary() {
    let cluster = cluster().await;
    let replica = node(&cluster, 1).await;
    let before = cluster.pos(1);
    let report = migrate::up::<Migrator>(&replica, UpOptions::default())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            primary: "n1".into()
        }
    );
    assert!(
        report
            .to_string()
            .contains("migrations run on the primary (n1)"),
        "{report}"
    );
    assert!(tables(&cluster.db_path(1)).await.is_empty());
    assert_eq!(cluster.pos(1), before);
    assert_eq!(cluster.replica_writes_detected(), 0);
}

#[tokio::test]
async fn prepare_on_a_replica_returns_once_the_schema_has_replicated() {
    let cluster = cluster().await;
    let replica = node(&cluster, 1).await;
    let waiting = tokio::spawn(async move { migrate::prepare::<Migrator>(&replica).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "returned before the primary migrated"
    );
    migrate::up::<Migrator>(&node(&cluster, 0).await, UpOptions::default())
        .await
        .unwrap();
    cluster.sync().await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Outcome::Replicated { waited, migrations } = report.outcome else {
        panic!("expected the replicated schema, got {report}");
    };
    assert_eq!(migrations, 2);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(cluster.replica_writes_detected(), 0);
}

#[tokio::test]
async fn waiting_for_the_schema_fails_past_its_deadline_naming_the_missing_migrations() {
    let cluster = cluster().await;
    let replica = node(&cluster, 1).await;
    let options = UpOptions::default().wait(Duration::from_millis(250));
    let err = migrate::up::<Migrator>(&replica, options)
        .await
        .unwrap_err();
    let Error::SchemaWaitTimeout {
        pending,
        primary,
        waited,
    } = &err
    else {
        panic!("expected a schema wait timeout, got {err}");
    };
    assert_eq!(pending, &[PAGE_VIEW, POST_AND_COMMENT]);
    assert_eq!(primary.as_deref(), Some("n1"));
    assert!(*waited >= Duration::from_millis(250));
    assert!(
        err.to_string()
            .contains("migrations run on the primary (n1)"),
        "{err}"
    );
}

#[tokio::test]
async fn down_on_a_replica_is_refused() {
    let cluster = cluster().await;
    migrate::up::<Migrator>(&node(&cluster, 0).await, UpOptions::default())
        .await
        .unwrap();
    cluster.sync().await.unwrap();
    let replica = node(&cluster, 1).await;
    let err = migrate::down::<Migrator>(&replica, Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotPrimary { primary: Some(p), .. } if p == "n1"),
        "{err}"
    );
    assert!(
        err.to_string().contains("`down` changes the schema"),
        "{err}"
    );
    assert_eq!(tables(&cluster.db_path(1)).await, ALL_TABLES);
    assert_eq!(cluster.replica_writes_detected(), 0);
}

#[tokio::test]
async fn fresh_refresh_and_reset_are_refused_on_a_replica() {
    let cluster = cluster().await;
    let replica = node(&cluster, 1).await;
    let refused =
        |r: litefs_orm::Result<migrate::Report>| matches!(r, Err(Error::NotPrimary { .. }));
    assert!(refused(migrate::fresh::<Migrator>(&replica).await));
    assert!(refused(migrate::refresh::<Migrator>(&replica).await));
    assert!(refused(migrate::reset::<Migrator>(&replica).await));
    assert!(tables(&cluster.db_path(1)).await.is_empty());
}

#[tokio::test]
async fn down_on_the_primary_rolls_back_only_the_last_migration() {
    let cluster = cluster().await;
    let primary = node(&cluster, 0).await;
    migrate::up::<Migrator>(&primary, UpOptions::default())
        .await
        .unwrap();
    let report = migrate::down::<Migrator>(&primary, Some(1)).await.unwrap();
    assert_eq!(report.command, Command::Down);
    assert_eq!(
        report.outcome,
        Outcome::Ran {
            rolled_back: vec![POST_AND_COMMENT.into()],
            applied: vec![]
        }
    );
    cluster.sync().await.unwrap();
    assert_eq!(
        tables(&cluster.db_path(1)).await,
        ["page_view", "seaql_migrations"]
    );
}

#[tokio::test]
async fn up_with_steps_applies_only_that_many() {
    let cluster = cluster().await;
    let primary = node(&cluster, 0).await;
    let report = migrate::up::<Migrator>(&primary, UpOptions::default().steps(1))
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Ran {
            rolled_back: vec![],
            applied: vec![PAGE_VIEW.into()]
        }
    );
    let status = migrate::status::<Migrator>(&primary).await.unwrap();
    assert_eq!(status.pending(), [POST_AND_COMMENT]);
}

#[tokio::test]
async fn up_with_no_primary_fails_after_the_primary_wait() {
    let cluster = cluster().await;
    cluster.lose_primary().await;
    let target = Target::connect(config(&cluster, 1)).await.unwrap();
    let err = migrate::up::<Migrator>(&target, UpOptions::default())
        .await
        .unwrap_err();
    let Error::NoPrimary { waited } = err else {
        panic!("expected no primary, got {err}")
    };
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(cluster.replica_writes_detected(), 0);
}

#[tokio::test]
async fn a_waiting_replica_that_becomes_primary_applies_the_migrations_itself() {
    let cluster = cluster().await;
    let replica = node(&cluster, 1).await;
    let options = UpOptions::default().wait(Duration::from_secs(10));
    let waiting = tokio::spawn(async move { migrate::up::<Migrator>(&replica, options).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.switch_primary(1).await;
    let report = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.role, Role::Primary);
    assert_eq!(
        report.outcome,
        Outcome::Ran {
            rolled_back: vec![],
            applied: vec![PAGE_VIEW.into(), POST_AND_COMMENT.into()]
        }
    );
    cluster.sync().await.unwrap();
    assert_eq!(tables(&cluster.db_path(0)).await, ALL_TABLES);
}

#[tokio::test]
async fn status_on_a_replica_reads_without_creating_the_migrations_table() {
    let cluster = cluster().await;
    let target = Target::connect(config(&cluster, 1)).await.unwrap();
    let status = migrate::status::<Migrator>(&target).await.unwrap();
    assert_eq!(
        status.role,
        Role::Replica {
            primary: "n1".into()
        }
    );
    assert_eq!(status.pending(), [PAGE_VIEW, POST_AND_COMMENT]);
    assert!(tables(&cluster.db_path(1)).await.is_empty());
    assert_eq!(cluster.replica_writes_detected(), 0);
}

#[tokio::test]
async fn prepare_standalone_creates_the_database_and_applies_every_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let db = ReplicatedDb::connect(Config::standalone(&path), Registry::new())
        .await
        .unwrap();
    let report = migrate::prepare::<Migrator>(&db).await.unwrap();
    assert_eq!(report.role, Role::Standalone);
    assert!(report.changed_schema());
    assert_eq!(tables(&path).await, ALL_TABLES);
    let again = migrate::prepare::<Migrator>(&db).await.unwrap();
    assert!(!again.changed_schema(), "{again}");
}

#[tokio::test]
async fn the_schema_counts_page_views_and_deletes_comments_with_their_post() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let target = Target::connect(Config::standalone(&path)).await.unwrap();
    migrate::up::<Migrator>(&target, UpOptions::default())
        .await
        .unwrap();
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .foreign_keys(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO page_view (page) VALUES ('/');
         INSERT INTO post (title, body) VALUES ('t', 'b');
         INSERT INTO comment (post_id, body) VALUES (1, 'c');
         DELETE FROM post;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count FROM page_view")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let comments: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM comment")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!((count, comments), (0, 0));
    let orphan = sqlx::query("INSERT INTO comment (post_id, body) VALUES (42, 'x')")
        .execute(&mut conn)
        .await;
    assert!(orphan.is_err(), "a comment needs its post");
}
