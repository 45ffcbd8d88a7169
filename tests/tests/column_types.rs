//! Every supported column type survives a forwarded write unchanged.

use chrono::{DateTime, NaiveDate, Utc};
use litefs_orm::ReplicatedActiveModel;
use litefs_orm_tests::TestCluster;
use litefs_orm_tests::entities::kitchen::{self, Color};
use proptest::prelude::*;
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};

fn sample() -> kitchen::Model {
    kitchen::Model {
        id: uuid::Uuid::new_v4(),
        i8v: i8::MIN,
        i16v: i16::MAX,
        i32v: -7,
        i64v: i64::MIN,
        u8v: u8::MAX,
        u16v: u16::MAX,
        u32v: u32::MAX,
        f32v: 1.5,
        f64v: -0.125,
        flag: true,
        text: "héllo \"wire\" \n".into(),
        maybe: None,
        maybe_text: Some(String::new()),
        day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        at: NaiveDate::from_ymd_opt(1999, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 123_456)
            .unwrap(),
        at_utc: DateTime::<Utc>::from_timestamp(1_700_000_000, 5_000).unwrap(),
        blob: vec![0, 1, 2, 255],
        doc: serde_json::json!({"a": [1, 2, {"b": null}]}),
        amount: Decimal::new(-123_456_789, 4),
        color: Color::Green,
    }
}

#[tokio::test]
async fn a_row_of_every_type_round_trips_through_a_replica() {
    let c = TestCluster::start().await;
    let model = sample();
    let saved = as_new(model.clone())
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    assert_eq!(saved, model);
    let local = kitchen::Entity::find_by_id(model.id)
        .one(c.db(1))
        .await
        .unwrap();
    assert_eq!(local, Some(model));
}

/// Every column `Set`, as a new row built field by field would be.
fn as_new(model: kitchen::Model) -> kitchen::ActiveModel {
    model.into_active_model().reset_all()
}

fn color() -> impl Strategy<Value = Color> {
    prop_oneof![Just(Color::Red), Just(Color::Green)]
}

prop_compose! {
    fn any_model()(
        i8v in any::<i8>(), i16v in any::<i16>(), i32v in any::<i32>(), i64v in any::<i64>(),
        u8v in any::<u8>(), u16v in any::<u16>(), u32v in any::<u32>(),
        f32v in -1e30f32..1e30, f64v in -1e300f64..1e300, flag in any::<bool>(),
        text in ".{0,40}", maybe in proptest::option::of(any::<i64>()),
        maybe_text in proptest::option::of(".{0,10}"),
        days in 0i64..200_000, secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000,
        blob in proptest::collection::vec(any::<u8>(), 0..64),
        n in any::<i64>(), cents in -1_000_000_000_000i64..1_000_000_000_000, scale in 0u32..7, color in color(),
    ) -> kitchen::Model {
        let day = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(days);
        let at_utc = DateTime::<Utc>::from_timestamp(secs, nanos * 1000).unwrap();
        kitchen::Model {
            id: uuid::Uuid::new_v4(), i8v, i16v, i32v, i64v, u8v, u16v, u32v, f32v, f64v,
            flag, text, maybe, maybe_text, day, at: at_utc.naive_utc(), at_utc, blob,
            doc: serde_json::json!({"n": n, "s": format!("{n}")}),
            // SQLite keeps decimals as REAL, and the f64 read back converts to a Decimal exactly
            // only up to about 13 significant digits (14 can come back with a 16th digit).
            amount: Decimal::new(cents, scale), color,
        }
    }
}

#[test]
fn any_row_round_trips_through_a_replica() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(TestCluster::start());
    proptest!(ProptestConfig::with_cases(48), |(model in any_model())| {
        let (saved, local) = rt.block_on(async {
            let saved = as_new(model.clone()).insert_replicated(c.db(2)).await.unwrap();
            let local = kitchen::Entity::find_by_id(model.id).one(c.db(2)).await.unwrap();
            (saved, local)
        });
        prop_assert_eq!(&saved, &model);
        prop_assert_eq!(local.as_ref(), Some(&model));
    });
}

/// The outcome of inserting `model` on node `node`: the saved model, or the error's text
/// without the node-specific part (a forwarded and a local refusal word it alike).
async fn insert_on(
    c: &TestCluster,
    node: usize,
    model: kitchen::Model,
) -> Result<kitchen::Model, bool> {
    as_new(model)
        .insert_replicated(c.db(node))
        .await
        .map_err(|e| e.may_be_committed())
}

#[tokio::test]
async fn infinite_floats_save_alike_on_the_primary_and_through_a_replica() {
    let c = TestCluster::start().await;
    let model = |f32v: f32, f64v: f64| kitchen::Model {
        f32v,
        f64v,
        ..sample()
    };
    for (f32v, f64v) in [
        (f32::INFINITY, f64::NEG_INFINITY),
        (f32::NEG_INFINITY, f64::INFINITY),
    ] {
        let local = insert_on(&c, 0, model(f32v, f64v)).await.unwrap();
        let forwarded = insert_on(&c, 1, model(f32v, f64v)).await.unwrap();
        assert_eq!((local.f32v, local.f64v), (f32v, f64v));
        assert_eq!((forwarded.f32v, forwarded.f64v), (f32v, f64v));
        let stored = kitchen::Entity::find_by_id(forwarded.id)
            .one(c.db(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stored.f32v, stored.f64v), (f32v, f64v));
    }
}

#[tokio::test]
async fn a_nan_is_refused_alike_on_the_primary_and_through_a_replica() {
    // SQLite stores NaN as NULL, which the NOT NULL column refuses: the same refusal on both
    // paths, and nothing written.
    let c = TestCluster::start().await;
    let nan = || kitchen::Model {
        f64v: f64::NAN,
        ..sample()
    };
    let local = insert_on(&c, 0, nan()).await;
    let forwarded = insert_on(&c, 1, nan()).await;
    assert_eq!(local.clone().map(|_| ()), Err(false), "{local:?}");
    assert_eq!(forwarded.clone().map(|_| ()), Err(false), "{forwarded:?}");
    assert!(
        kitchen::Entity::find()
            .all(c.db(0))
            .await
            .unwrap()
            .is_empty()
    );
}
