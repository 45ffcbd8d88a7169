//! Property tests of the RPC endpoint: arbitrary bodies, correctly signed, never panic the
//! primary, never get a 5xx, and every refused one leaves the database unchanged: every
//! table's schema and rows as they were.

use litefs_orm_tests::TestCluster;
use litefs_orm_tests::endpoint::check_request;
use proptest::prelude::*;
use serde_json::{Value, json};

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
    let version = prop_oneof![Just(1u32), Just(2u32), any::<u32>()];
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

/// Mostly a few reused keys (so later requests meet recorded ones), sometimes anything, or
/// none (refused: every write carries a key).
fn any_key() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        6 => "k[0-3]".prop_map(|k| Some(Value::from(k))),
        1 => any_scalar().prop_map(Some),
        2 => ".{0,200}".prop_map(|k| Some(Value::from(k))),
    ]
}

/// A batch of writes and operations, to the right paths or not.
fn any_batch() -> impl Strategy<Value = Value> {
    let call = prop_oneof![
        any_write().prop_map(|w| json!({ "path": litefs_orm::RPC_PATH, "body": w })),
        any_operation().prop_map(|o| json!({ "path": litefs_orm::OPERATION_PATH, "body": o })),
        (".{0,20}", any_value()).prop_map(|(p, b)| json!({ "path": p, "body": b })),
    ];
    let version = prop_oneof![Just(1u32), Just(2u32), any::<u32>()];
    (version, proptest::collection::vec(call, 0..5))
        .prop_map(|(v, calls)| json!({ "v": v, "calls": calls }))
}

fn any_operation() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("increment_page".to_owned()),
        Just("insert_pair".to_owned()),
        "[a-z_]{0,12}",
    ];
    // Arguments of the registered operations' shapes too, so that some calls get as far as
    // writing before they fail (a pair refused after its first insert, or whose second
    // title is taken) and must roll back.
    let title = prop_oneof![Just("t".to_owned()), "[a-c]{0,2}"];
    let args = prop_oneof![
        any_value(),
        ".{0,8}".prop_map(|page| json!({ "page": page })),
        (title.clone(), title, any::<bool>()).prop_map(
            |(first, second, refuse)| json!({ "first": first, "second": second, "refuse": refuse })
        ),
    ];
    (name, args, any_key()).prop_map(|(n, args, key)| {
        let mut operation = json!({ "v": 2, "operation": n, "args": args });
        if let Some(key) = key {
            operation["key"] = key;
        }
        operation
    })
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
        let checked = rt.block_on(check_request(&db, path, to_body(input)));
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
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
