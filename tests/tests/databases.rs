//! Several databases in one app: one endpoint serves every handle, each request names its
//! database, and the tokens of all of them ride in one cookie.

use litefs_orm::consistency::capture;
use litefs_orm::{Config, ReplicatedActiveModel, ReplicatedDb};
use litefs_orm_testkit::{Cluster, ClusterOptions};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::{SECRET, TestCluster, fresh_key, post_insert_body, post_signed, registry};
use sea_orm::{ConnectionTrait, EntityTrait};
use tokio::net::TcpListener;

/// Two stand-in clusters on the same three nodes: `app.db` (a [`TestCluster`]) and
/// `queue.db`; every node's app serves both handles with one `router_for`.
struct TwoDatabases {
    app: TestCluster,
    _queue: Cluster,
    /// Per node: the `app.db` handle and the `queue.db` handle of its app.
    handles: Vec<(ReplicatedDb, ReplicatedDb)>,
    urls: Vec<String>,
    _servers: Vec<tokio::task::JoinHandle<()>>,
}

async fn two_databases() -> TwoDatabases {
    let app = TestCluster::start().await;
    let hostnames: Vec<String> = (0..3).map(|i| app.hostname(i)).collect();
    let queue = Cluster::start(
        ClusterOptions::default()
            .nodes(3)
            .hostnames(hostnames.clone())
            .db_name("queue.db")
            .http_api(true),
    )
    .await
    .unwrap();
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("http://{}", l.local_addr().unwrap()))
        .collect();
    let route = |config: Config| {
        hostnames
            .iter()
            .zip(&urls)
            .fold(config, |c, (host, url)| c.with_primary_url_for(host, url))
    };
    let mut handles = Vec::new();
    let mut servers = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let a = ReplicatedDb::connect(route(app.configs[i].clone()), registry())
            .await
            .unwrap();
        let queue_config = Config::litefs(queue.mount(i), "queue.db")
            .with_rpc_secret(SECRET)
            .with_litefs_http(format!("http://{}", queue.http_addr(i).unwrap()));
        let q = ReplicatedDb::connect(route(queue_config), registry())
            .await
            .unwrap();
        if i == 0 {
            q.execute_unprepared(post::SCHEMA).await.unwrap();
            queue.sync().await.unwrap();
        }
        let router = litefs_orm::router_for([a.clone(), q.clone()]);
        servers.push(tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        }));
        handles.push((a, q));
    }
    TwoDatabases {
        app,
        _queue: queue,
        handles,
        urls,
        _servers: servers,
    }
}

async fn titles(db: &ReplicatedDb) -> Vec<String> {
    post::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect()
}

#[tokio::test]
async fn writes_to_two_databases_go_through_one_endpoint_each_to_its_own() {
    let t = two_databases().await;
    let (a, q) = &t.handles[1];
    post::new("to app").insert_replicated(a).await.unwrap();
    post::new("to queue").insert_replicated(q).await.unwrap();
    assert_eq!(titles(&t.handles[0].0).await, ["to app"]);
    assert_eq!(titles(&t.handles[0].1).await, ["to queue"]);
    assert_eq!(titles(t.app.db(0)).await, ["to app"]);
}

#[tokio::test]
async fn the_tokens_of_both_databases_ride_together() {
    let t = two_databases().await;
    let (a, q) = t.handles[1].clone();
    let (_, tokens) = capture(async {
        post::new("a").insert_replicated(&a).await.unwrap();
        post::new("q").insert_replicated(&q).await.unwrap();
    })
    .await;
    assert_eq!(tokens.len(), 2);
    let (a2, q2) = &t.handles[2];
    a2.wait_for_tokens(&tokens).await.unwrap();
    q2.wait_for_tokens(&tokens).await.unwrap();
    assert_eq!(titles(q2).await, ["q"]);
}

#[tokio::test]
async fn a_request_for_a_database_the_endpoint_does_not_serve_is_refused() {
    let t = two_databases().await;
    let mut body: serde_json::Value =
        serde_json::from_slice(&post_insert_body("astray", &fresh_key())).unwrap();
    body["db"] = "other.db".into();
    let resp = post_signed(
        &format!("{}{}", t.urls[0], litefs_orm::RPC_PATH),
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 404);
    let answer: litefs_orm::wire::ErrorBody = resp.json().await.unwrap();
    assert_eq!(answer.code, litefs_orm::wire::ErrorCode::UnknownDatabase);
}

#[tokio::test]
#[should_panic(expected = "two handles on database")]
async fn two_handles_on_one_database_are_refused_at_start() {
    let c = TestCluster::start().await;
    let _ = litefs_orm::router_for([c.db(0).clone(), c.db(0).clone()]);
}
