//! Property tests of the RPC endpoint: arbitrary bodies, correctly signed, never panic the
//! primary, never get a 5xx, and every refused one leaves the database unchanged.

use axum::body::Body;
use axum::http::Request;
use litefs_orm::wire::BatchResponse;
use litefs_orm::{ReplicatedDb, auth};
use litefs_orm_tests::{SECRET, TestCluster};
use proptest::prelude::*;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Sends `body`, signed, to the primary's router in-process; returns the status. For a batch
/// answered 200, its calls' statuses stand in: a 5xx if any call got one, else 200 if any
/// call ran, else the refusal (every call refused: nothing may have changed).
async fn send(db: &ReplicatedDb, path: &str, body: Vec<u8>) -> u16 {
    let sig = auth::sign(SECRET.as_bytes(), path, &body);
    let request = Request::post(path)
        .header(auth::TIMESTAMP_HEADER, sig.timestamp_ms.to_string())
        .header(auth::NONCE_HEADER, sig.nonce)
        .header(auth::SIGNATURE_HEADER, sig.signature)
        .body(Body::from(body))
        .unwrap();
    let response = litefs_orm::router(db.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    if path != litefs_orm::BATCH_PATH || status != 200 {
        return status;
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let answers: BatchResponse<'_> = serde_json::from_slice(&bytes).unwrap();
    let statuses: Vec<u16> = answers.answers.iter().map(|a| a.status).collect();
    let worst = statuses.iter().copied().max().unwrap_or(200);
    match (worst >= 500, statuses.iter().any(|s| *s < 300)) {
        (true, _) => worst,
        (false, true) => 200,
        (false, false) => worst,
    }
}

/// Rows across every table the endpoint can write.
async fn fingerprint(db: &ReplicatedDb) -> i64 {
    let sql = "SELECT (SELECT count(*) FROM post) + (SELECT count(*) FROM kitchen) \
               + (SELECT count(*) FROM page_view) + (SELECT total(count) FROM page_view)";
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<f64>(0).unwrap() as i64
}

fn any_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    let variant = prop_oneof![
        Just("Int"),
        Just("BigInt"),
        Just("String"),
        Just("Bool"),
        Just("Double"),
        Just("Json"),
        Just("Bytes"),
        Just("Uuid"),
        Just("ChronoDate"),
        Just("Nope"),
    ];
    prop_oneof![
        (variant, any_scalar()).prop_map(|(k, v)| json!({ k: v })),
        any_scalar(),
    ]
}

fn any_field() -> impl Strategy<Value = (String, Value)> {
    let column = prop_oneof![
        Just("id".to_owned()),
        Just("title".to_owned()),
        Just("body".to_owned()),
        Just("revision".to_owned()),
        Just("note".to_owned()),
        "[a-z]{1,6}",
    ];
    let state = prop_oneof![Just("set"), Just("unchanged"), Just("other")];
    (column, state, any_value()).prop_map(|(c, s, v)| (c, json!({ s: v })))
}

fn any_write() -> impl Strategy<Value = Value> {
    let entity = prop_oneof![Just("post"), Just("kitchen"), Just("secret"), Just("")];
    let op = prop_oneof![
        Just("insert"),
        Just("update"),
        Just("save"),
        Just("delete"),
        Just("upsert")
    ];
    let version = prop_oneof![Just(1u32), any::<u32>()];
    (
        version,
        entity,
        op,
        proptest::collection::vec(any_field(), 0..6),
        any_key(),
    )
        .prop_map(|(v, e, op, fields, key)| {
            let model: serde_json::Map<String, Value> = fields.into_iter().collect();
            let mut write = json!({ "v": v, "entity": e, "op": op, "model": model });
            if let Some(key) = key {
                write["key"] = key;
            }
            write
        })
}

/// No key, a few reused keys (so later requests meet recorded ones), or anything.
fn any_key() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        "k[0-3]".prop_map(|k| Some(Value::from(k))),
        any_scalar().prop_map(Some),
        ".{0,200}".prop_map(|k| Some(Value::from(k))),
    ]
}

/// A batch of writes and operations, to the right paths or not.
fn any_batch() -> impl Strategy<Value = Value> {
    let call = prop_oneof![
        any_write().prop_map(|w| json!({ "path": litefs_orm::RPC_PATH, "body": w })),
        any_operation().prop_map(|o| json!({ "path": litefs_orm::OPERATION_PATH, "body": o })),
        (".{0,20}", any_value()).prop_map(|(p, b)| json!({ "path": p, "body": b })),
    ];
    let version = prop_oneof![Just(1u32), any::<u32>()];
    (version, proptest::collection::vec(call, 0..5))
        .prop_map(|(v, calls)| json!({ "v": v, "calls": calls }))
}

fn any_operation() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("increment_page".to_owned()),
        Just("insert_pair".to_owned()),
        "[a-z_]{0,12}",
    ];
    (name, any_value()).prop_map(|(n, args)| json!({ "v": 1, "operation": n, "args": args }))
}

/// Runs `case` against one cluster for every generated input.
fn check<S: Strategy>(strategy: S, path: &'static str, to_body: fn(S::Value) -> Vec<u8>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(TestCluster::start_with(litefs_orm_tests::Setup {
        nodes: 1,
        ..Default::default()
    }));
    let db = c.db(0).clone();
    proptest!(ProptestConfig::with_cases(256), |(input in strategy)| {
        let body = to_body(input);
        let (before, status, after) = rt.block_on(async {
            let before = fingerprint(&db).await;
            let status = send(&db, path, body).await;
            (before, status, fingerprint(&db).await)
        });
        prop_assert!(status < 500, "status {status}");
        if status >= 400 {
            prop_assert_eq!(before, after, "a refused request changed the database");
        }
    });
}

#[test]
fn arbitrary_bytes_are_refused_without_a_change() {
    check(
        proptest::collection::vec(any::<u8>(), 0..512),
        litefs_orm::RPC_PATH,
        |b| b,
    );
}

#[test]
fn arbitrary_write_requests_never_fail_the_primary() {
    check(any_write(), litefs_orm::RPC_PATH, |v| {
        serde_json::to_vec(&v).unwrap()
    });
}

#[test]
fn arbitrary_batches_never_fail_the_primary() {
    check(any_batch(), litefs_orm::BATCH_PATH, |v| {
        serde_json::to_vec(&v).unwrap()
    });
}

#[test]
fn arbitrary_bytes_sent_as_a_batch_are_refused_without_a_change() {
    check(
        proptest::collection::vec(any::<u8>(), 0..512),
        litefs_orm::BATCH_PATH,
        |b| b,
    );
}

#[test]
fn arbitrary_operation_requests_never_fail_the_primary() {
    check(any_operation(), litefs_orm::OPERATION_PATH, |v| {
        serde_json::to_vec(&v).unwrap()
    });
}
