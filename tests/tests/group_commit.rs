//! Group commit seen from the outside: concurrent writes that the primary commits together
//! keep the semantics of single writes — their own results, their own failures, hooks run
//! once, read-your-writes on the replica that asked.

use litefs_orm::{Error, OpError, ReplicatedActiveModel};
use litefs_orm_tests::TestCluster;
use litefs_orm_tests::entities::post;
use litefs_orm_tests::operations::{InsertPair, PairError};
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_from_every_node_get_their_own_rows_and_read_them_back() {
    let c = TestCluster::start().await;
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let db = c.db(i % 3).clone();
            tokio::spawn(async move {
                let title = format!("concurrent {i}");
                let saved = post::new(&title).insert_replicated(&db).await.unwrap();
                // Read-your-writes on the node that wrote, at once.
                let local = post::Entity::find_by_id(saved.id).one(&db).await.unwrap();
                (title, saved, local)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let (title, saved, local) = t.await.unwrap();
        assert_eq!(saved.title, title);
        assert_eq!(saved.revision, 1);
        assert_eq!(local.as_ref(), Some(&saved));
        ids.push(saved.id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 48);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_violation_among_concurrent_writes_fails_only_its_own_caller() {
    let c = TestCluster::start().await;
    post::new("taken").insert_replicated(c.db(0)).await.unwrap();
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let db = c.db(1 + i % 2).clone();
            let title = if i % 5 == 0 {
                "taken".to_owned()
            } else {
                format!("free {i}")
            };
            tokio::spawn(async move {
                (
                    title.clone(),
                    post::new(&title).insert_replicated(&db).await,
                )
            })
        })
        .collect();
    for t in tasks {
        match t.await.unwrap() {
            (title, Err(Error::Rejected(f))) => {
                assert_eq!(title, "taken");
                assert!(f.is_unique_violation(), "{f:?}");
            }
            (title, Ok(saved)) => assert_eq!(saved.title, title),
            (title, Err(e)) => panic!("{title}: {e}"),
        }
    }
    c.litefs.sync().await.unwrap();
    let all = post::Entity::find().all(c.db(1)).await.unwrap();
    assert_eq!(all.len(), 1 + 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_once_for_each_of_many_concurrent_updates() {
    let c = TestCluster::start().await;
    let mut saved = Vec::new();
    for i in 0..24 {
        saved.push(
            post::new(&format!("rev {i}"))
                .insert_replicated(c.db(0))
                .await
                .unwrap(),
        );
    }
    c.litefs.sync().await.unwrap();
    let tasks: Vec<_> = saved
        .into_iter()
        .enumerate()
        .map(|(i, model)| {
            let db = c.db(i % 3).clone();
            tokio::spawn(async move {
                let mut edit: post::ActiveModel = model.into();
                edit.body = Set("edited".into());
                edit.update_replicated(&db).await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        let updated = t.await.unwrap();
        // `before_save` bumps the revision once per run: 1 on insert, 2 after one update.
        assert_eq!(updated.revision, 2, "{updated:?}");
        assert_eq!(updated.body, "edited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_that_refuses_rolls_back_only_its_own_writes() {
    let c = TestCluster::start().await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let db = c.db(i % 3).clone();
            let refuse = i % 4 == 1;
            tokio::spawn(async move {
                let op = InsertPair {
                    first: format!("first {i}"),
                    second: format!("second {i}"),
                    refuse,
                };
                (refuse, db.run(op).await)
            })
        })
        .collect();
    let mut committed = 0;
    for t in tasks {
        match t.await.unwrap() {
            (true, Err(OpError::Failed(PairError::Refused { .. }))) => {}
            (false, Ok((a, b))) => {
                assert_ne!(a, b);
                committed += 1;
            }
            (refuse, other) => panic!("refuse = {refuse}: {other:?}"),
        }
    }
    c.litefs.sync().await.unwrap();
    let titles: Vec<String> = post::Entity::find()
        .all(c.db(2))
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect();
    assert_eq!(committed, 18);
    assert_eq!(titles.len(), 2 * 18);
    for i in (0..24).filter(|i| i % 4 == 1) {
        assert!(
            !titles.contains(&format!("first {i}")),
            "{i} was not rolled back"
        );
    }
}
