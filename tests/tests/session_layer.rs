//! The consistency layer: a session's writes come back as a token (header and cookie), and a
//! later request carrying it waits, on any node, until that node holds those writes.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post as post_route;
use litefs_orm::ReplicatedActiveModel;
use litefs_orm::ReplicatedDb;
use litefs_orm::consistency::{BadTokens, ConsistencyLayer, OnStale, Token, Tokens};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::{SECRET, Served, TestCluster};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

const HEADER: &str = "x-litefs-orm-token";

async fn create(State(db): State<ReplicatedDb>, Path(title): Path<String>) -> StatusCode {
    match post::new(&title).insert_replicated(&db).await {
        Ok(_) => StatusCode::CREATED,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn show(State(db): State<ReplicatedDb>, Path(title): Path<String>) -> StatusCode {
    let found = post::Entity::find()
        .filter(post::Column::Title.eq(title))
        .one(&db)
        .await
        .unwrap();
    match found {
        Some(_) => StatusCode::OK,
        None => StatusCode::NOT_FOUND,
    }
}

/// Node `i`'s app: `POST /posts/{title}` creates, `GET /posts/{title}` shows, behind a
/// consistency layer that `configure` sets up.
async fn app(
    c: &TestCluster,
    i: usize,
    configure: impl Fn(ConsistencyLayer) -> ConsistencyLayer,
) -> (String, Served) {
    let db = c.db(i).clone();
    let router = axum::Router::new()
        .route("/posts/{title}", post_route(create).get(show))
        .with_state(db.clone())
        .layer(configure(ConsistencyLayer::new(db)));
    TestCluster::serve(router).await
}

async fn token_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 201);
    response
        .headers()
        .get(HEADER)
        .expect("the token header")
        .to_str()
        .unwrap()
        .to_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Creates post `title` through the app at `url`; returns the token it answered with.
async fn create_through(url: &str, title: &str) -> String {
    token_of(
        client()
            .post(format!("{url}/posts/{title}"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Shows post `title` through the app at `url`, the request carrying `header: value`.
async fn show_through(url: &str, title: &str, header: &str, value: &str) -> reqwest::Response {
    client()
        .get(format!("{url}/posts/{title}"))
        .header(header, value)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_write_answers_with_its_token_in_a_header_and_a_cookie() {
    let c = TestCluster::start().await;
    let (url, _s) = app(&c, 1, |l| l).await;
    let resp = client()
        .post(format!("{url}/posts/a"))
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .expect("a cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let token = token_of(resp).await;
    assert!(
        cookie.starts_with(&format!("litefs_orm_token={token};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_request_that_writes_nothing_gets_no_token() {
    let c = TestCluster::start().await;
    let (url, _s) = app(&c, 1, |l| l).await;
    let resp = client().get(format!("{url}/posts/a")).send().await.unwrap();
    assert!(resp.headers().get(HEADER).is_none());
    assert!(resp.headers().get("set-cookie").is_none());
}

/// Creates post `title` through node 1's app, then shows it through node 2's, the request
/// carrying `header` made of the token by `carry`. Node 2 holds no new transaction until a
/// moment after the request arrived: without the token it would answer 404.
async fn created_then_shown_elsewhere(
    title: &str,
    header: &str,
    carry: impl Fn(&str) -> String,
) -> reqwest::Response {
    let c = TestCluster::start().await;
    let (writer, _w) = app(&c, 1, |l| l).await;
    let (reader, _r) = app(&c, 2, |l| l).await;
    c.litefs.pause_replication_to(2);
    let token = create_through(&writer, title).await;
    let resume = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.litefs.resume_replication_to(2);
    };
    let carried = carry(&token);
    let (resp, ()) = tokio::join!(show_through(&reader, title, header, &carried), resume);
    resp
}

#[tokio::test]
async fn a_request_carrying_the_token_sees_the_write_on_another_node() {
    let resp = created_then_shown_elsewhere("b", HEADER, str::to_owned).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_cookie_carries_the_token_as_the_header_does() {
    let resp = created_then_shown_elsewhere("c", "cookie", |token| {
        format!("theme=dark; litefs_orm_token={token}")
    })
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn past_the_bound_a_request_is_answered_503_with_retry_after() {
    let c = TestCluster::start().await;
    c.litefs.pause_replication_to(2);
    let (writer, _w) = app(&c, 1, |l| l).await;
    let (reader, _r) = app(&c, 2, |l| l.wait(Duration::from_millis(200))).await;
    let token = create_through(&writer, "d").await;
    let resp = show_through(&reader, "d", HEADER, &token).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "1");
}

#[tokio::test]
async fn past_the_bound_a_request_can_be_served_and_marked_stale() {
    let c = TestCluster::start().await;
    c.litefs.pause_replication_to(2);
    let (writer, _w) = app(&c, 1, |l| l).await;
    let (reader, _r) = app(&c, 2, |l| {
        l.wait(Duration::from_millis(200)).on_stale(OnStale::Serve)
    })
    .await;
    let token = create_through(&writer, "e").await;
    let resp = show_through(&reader, "e", HEADER, &token).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers().get("x-litefs-orm-stale").unwrap(), "1");
}

#[tokio::test]
async fn a_forged_token_is_ignored() {
    let c = TestCluster::start().await;
    let (url, _s) = app(&c, 1, |l| l).await;
    let forged = "1.6170702e6462.ffff.aa.1.00112233445566778899aabbccddeeff";
    let resp = show_through(&url, "f", HEADER, forged).await;
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("x-litefs-orm-stale").is_none());
}

#[tokio::test]
async fn a_forged_token_is_refused_when_so_configured() {
    let c = TestCluster::start().await;
    let (url, _s) = app(&c, 1, |l| l.bad_tokens(BadTokens::Refuse)).await;
    let resp = show_through(&url, "g", HEADER, "garbage").await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn an_expired_token_in_the_cookie_never_makes_refuse_turn_the_session_away() {
    let c = TestCluster::start().await;
    let (url, _s) = app(&c, 1, |l| l.bad_tokens(BadTokens::Refuse)).await;
    let token = create_through(&url, "h").await;
    // The session also wrote to another database long ago; its token expired in the cookie.
    let expired = Token::new("other.db", 3, "aa")
        .with_issued_ms(1)
        .encode(SECRET.as_bytes());
    let cookie = format!("litefs_orm_token={token}~{expired}");
    let resp = show_through(&url, "h", "cookie", &cookie).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn the_tokens_a_request_earned_replace_the_ones_it_carried() {
    let c = TestCluster::start().await;
    let (url, _s) = app(&c, 1, |l| {
        l.wait(Duration::from_millis(100)).on_stale(OnStale::Serve)
    })
    .await;
    // A commit this cluster's history lost: a TXID above any it will reach.
    let lost = Token::new(c.db(1).database_name(), 1 << 40, "aa").encode(SECRET.as_bytes());
    let resp = client()
        .post(format!("{url}/posts/i"))
        .header(HEADER, &lost)
        .send()
        .await
        .unwrap();
    let text = token_of(resp).await;
    let (tokens, _) = Tokens::decode(&text, SECRET.as_bytes(), Duration::from_secs(60));
    let earned = tokens
        .get(c.db(1).database_name())
        .expect("the database's token");
    assert_ne!(earned.key(), "aa", "{text}");
    assert!(earned.txid() < 1 << 40, "{text}");
}
