//! Two versions of one entity, as the old and the new binary of a rolling deploy have it:
//! version 2 adds a nullable column.

/// `CREATE TABLE` of version 1.
pub const SCHEMA_V1: &str =
    "CREATE TABLE note (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL)";
/// `CREATE TABLE` of version 2 (its migration added `tag`).
pub const SCHEMA_V2: &str =
    "CREATE TABLE note (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, tag TEXT)";

/// The note of the old binary.
pub mod note_v1 {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;

    /// A note.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "note")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Its text.
        pub text: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The note of the new binary: a tag more.
pub mod note_v2 {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;

    /// A note.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "note")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Its text.
        pub text: String,
        /// Added in version 2.
        pub tag: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
