//! Read-your-writes from LiteFS's `/events` stream: a replica's position tracker learns each
//! applied transaction from its `tx` event, without reading `-pos`.

use std::time::Duration;

use litefs_orm::ReplicatedActiveModel;
use litefs_orm::position::PositionTracker;
use litefs_orm::role::RoleWatch;
use litefs_orm_tests::TestCluster;
use litefs_orm_tests::entities::post;
use sea_orm::ActiveValue::Set;

#[tokio::test]
async fn a_replicas_tracker_learns_applied_transactions_from_tx_events() {
    let c = TestCluster::start().await;
    let http = c.litefs.http_addr(1).expect("the stand-in's HTTP API");
    let role = RoleWatch::litefs(
        c.litefs.mount(1).to_path_buf(),
        Some(format!("http://{http}")),
    )
    .await;
    // A tracker whose `-pos` file never changes: only events can move it.
    let elsewhere = tempfile::tempdir().unwrap();
    let tracker = PositionTracker::new(&elsewhere.path().join("app.db"));
    role.follow_transactions("app.db", tracker.clone());
    // The stream connects in the background; a transaction before that is not reported.
    for i in 0..50 {
        post::ActiveModel {
            title: Set(format!("event {i}")),
            body: Set("b".into()),
            ..Default::default()
        }
        .insert_replicated(c.db(0))
        .await
        .unwrap();
        c.litefs.sync().await.unwrap();
        let applied = c.litefs.pos(1).txid;
        if tracker
            .wait_for(applied, Duration::from_millis(200))
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("no tx event reached the tracker");
}
