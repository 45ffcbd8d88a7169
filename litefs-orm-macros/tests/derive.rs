//! `#[derive(Replicated)]` on real SeaORM entities: names, wire round trips, decoding errors.

use litefs_orm::Replicated;
use litefs_orm::wire::{WireError, WireModel};
use sea_orm::ActiveValue::{self, NotSet, Set, Unchanged};

mod every_type {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
    pub enum Status {
        #[sea_orm(string_value = "draft")]
        Draft,
        #[sea_orm(string_value = "live")]
        Live,
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "every_type")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub tiny: i8,
        pub small: i16,
        pub big: i64,
        pub tiny_unsigned: u8,
        pub small_unsigned: u16,
        pub unsigned: u32,
        pub float: f32,
        pub double: f64,
        pub flag: bool,
        pub text: String,
        pub note: Option<String>,
        pub day: Date,
        pub local: DateTime,
        pub instant: DateTimeUtc,
        pub uuid: Uuid,
        pub bytes: Vec<u8>,
        pub json: Json,
        #[sea_orm(column_type = "Decimal(Some((16, 4)))")]
        pub price: Decimal,
        pub status: Status,
        pub r#type: String,
        #[sea_orm(ignore)]
        pub cached: Vec<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

mod renamed {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "renamed_table")]
    #[litefs(name = "x")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An entity written by a `macro_rules!` macro: the table name arrives as an `expr` fragment.
macro_rules! entity {
    ($module:ident, $table:expr) => {
        mod $module {
            use litefs_orm::Replicated;
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key)]
                pub id: i32,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(from_macro, "from_macro_table");

/// `#[sea_orm::model]` copies the derive onto `ModelEx` and leaves relation fields in `Model`.
mod author {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "author")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        #[sea_orm(has_many)]
        pub books: HasMany<super::book::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod book {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "book")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub author_id: i32,
        #[sea_orm(belongs_to, from = "author_id", to = "id")]
        pub author: BelongsTo<super::author::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

fn sample() -> every_type::Model {
    use chrono::{NaiveDate, TimeZone, Utc};
    let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    every_type::Model {
        id: 7,
        tiny: -8,
        small: -1600,
        big: i64::MIN,
        tiny_unsigned: u8::MAX,
        small_unsigned: u16::MAX,
        unsigned: u32::MAX,
        float: 1.5,
        double: std::f64::consts::PI,
        flag: true,
        text: "héllo \"wire\"".to_owned(),
        note: None,
        day,
        local: day.and_hms_micro_opt(23, 59, 58, 123_456).unwrap(),
        instant: Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
        uuid: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        bytes: vec![0, 1, 254, 255],
        json: serde_json::json!({"a": [1, 2.5, null], "b": "c"}),
        price: rust_decimal::Decimal::new(123_456_789, 4),
        status: every_type::Status::Live,
        r#type: "kind".to_owned(),
        cached: vec!["not a column".to_owned()],
    }
}

fn through_json<E: Replicated>(model: &E::ActiveModel) -> Result<E::ActiveModel, WireError> {
    let json = serde_json::to_string(&E::to_wire(model)).unwrap();
    let wire: WireModel = serde_json::from_str(&json).unwrap();
    E::from_wire(wire)
}

/// The JSON object keys of a model's wire form.
fn wire_keys<E: Replicated>(model: &E::ActiveModel) -> Vec<String> {
    let json = serde_json::to_value(E::to_wire(model)).unwrap();
    json.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn name_is_the_table_name() {
    assert_eq!(<every_type::Entity as Replicated>::NAME, "every_type");
}

#[test]
fn litefs_name_overrides_the_table_name() {
    assert_eq!(<renamed::Entity as Replicated>::NAME, "x");
}

#[test]
fn table_name_is_read_through_macro_rules_fragments() {
    assert_eq!(<from_macro::Entity as Replicated>::NAME, "from_macro_table");
}

#[test]
fn unchanged_columns_round_trip() {
    let model: every_type::ActiveModel = sample().into();
    assert!(matches!(model.tiny, Unchanged(_)));
    assert_eq!(through_json::<every_type::Entity>(&model).unwrap(), model);
}

#[test]
fn set_columns_round_trip() {
    let model = sea_orm::ActiveModelTrait::reset_all(every_type::ActiveModel::from(sample()));
    assert!(matches!(model.tiny, Set(_)));
    assert_eq!(through_json::<every_type::Entity>(&model).unwrap(), model);
}

#[test]
fn not_set_columns_round_trip() {
    let model = every_type::ActiveModel::default();
    assert!(matches!(model.tiny, NotSet));
    assert_eq!(
        wire_keys::<every_type::Entity>(&model),
        Vec::<String>::new()
    );
    assert_eq!(through_json::<every_type::Entity>(&model).unwrap(), model);
}

#[test]
fn mixed_states_round_trip() {
    let full: every_type::ActiveModel = sample().into();
    let model = every_type::ActiveModel {
        id: full.id,
        text: Set("changed".to_owned()),
        note: Set(Some("now set".to_owned())),
        json: Set(serde_json::json!(["changed"])),
        status: Set(every_type::Status::Draft),
        float: NotSet,
        price: full.price,
        ..Default::default()
    };
    assert_eq!(through_json::<every_type::Entity>(&model).unwrap(), model);
}

#[test]
fn every_column_is_keyed_by_field_name_and_ignored_fields_are_left_out() {
    let model: every_type::ActiveModel = sample().into();
    let keys = wire_keys::<every_type::Entity>(&model);
    assert_eq!(keys.len(), 21, "{keys:?}");
    assert!(keys.iter().any(|key| key == "type"), "{keys:?}");
    assert!(!keys.iter().any(|key| key == "cached"), "{keys:?}");
}

#[test]
fn wrong_typed_value_is_wrong_type_naming_the_column() {
    let mut wire = WireModel::default();
    wire.put("tiny", &Set("not a number".to_owned()));
    let err = every_type::Entity::from_wire(wire).unwrap_err();
    assert_eq!(
        err,
        WireError::WrongType {
            column: "tiny".to_owned(),
            expected: std::any::type_name::<i8>(),
        }
    );
}

#[test]
fn wrong_typed_enum_value_is_wrong_type() {
    let mut wire = WireModel::default();
    wire.put("status", &Set(3_i32));
    let err = every_type::Entity::from_wire(wire).unwrap_err();
    assert!(
        matches!(&err, WireError::WrongType { column, .. } if column == "status"),
        "{err:?}"
    );
}

#[test]
fn unknown_column_is_unknown_column() {
    let mut wire = every_type::Entity::to_wire(&sample().into());
    wire.put("cached", &Set("ignored fields are not columns".to_owned()));
    let err = every_type::Entity::from_wire(wire).unwrap_err();
    assert_eq!(err, WireError::UnknownColumn("cached".to_owned()));
}

#[test]
fn sea_orm_model_relation_fields_are_not_columns() {
    assert_eq!(<author::Entity as Replicated>::NAME, "author");
    let model = author::ActiveModel {
        id: Unchanged(1),
        name: Set("Ann".to_owned()),
    };
    assert_eq!(wire_keys::<author::Entity>(&model), ["id", "name"]);
    assert_eq!(through_json::<author::Entity>(&model).unwrap(), model);

    let book = book::ActiveModel {
        id: Set(2),
        author_id: Set(1),
    };
    assert_eq!(through_json::<book::Entity>(&book).unwrap(), book);
}

#[test]
fn absent_column_decodes_as_not_set() {
    let mut wire = WireModel::default();
    wire.put("id", &Unchanged(7));
    let model = every_type::Entity::from_wire(wire).unwrap();
    assert_eq!(model.id, Unchanged(7));
    assert_eq!(model.text, ActiveValue::<String>::NotSet);
}
