//! Entities the tests write through litefs-orm.

/// A post: a unique title, a body, a hook-maintained revision.
pub mod post {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use litefs_orm::Replicated;
    use sea_orm::ActiveValue::{self, Set};
    use sea_orm::entity::prelude::*;

    /// Calls of `before_save` in this process, across all nodes.
    pub static BEFORE_SAVE_CALLS: AtomicUsize = AtomicUsize::new(0);

    /// A blog post.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "post")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Unique title.
        #[sea_orm(unique)]
        pub title: String,
        /// Body text.
        pub body: String,
        /// Bumped by `before_save` on every save: counts hook runs per row.
        pub revision: i32,
        /// Optional note.
        pub note: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn before_save<C>(mut self, _db: &C, insert: bool) -> Result<Self, DbErr>
        where
            C: ConnectionTrait,
        {
            BEFORE_SAVE_CALLS.fetch_add(1, Ordering::SeqCst);
            if let ActiveValue::Set(title) = &self.title
                && title.trim().is_empty()
            {
                return Err(DbErr::Custom("a post needs a title".into()));
            }
            let next = match (&self.revision, insert) {
                (_, true) => 1,
                (ActiveValue::Set(r) | ActiveValue::Unchanged(r), false) => r + 1,
                (ActiveValue::NotSet, false) => {
                    return Err(DbErr::Custom(
                        "an update needs the revision it edits".into(),
                    ));
                }
            };
            self.revision = Set(next);
            Ok(self)
        }
    }

    /// A new post titled `title`, its body derived from the title.
    pub fn new(title: &str) -> ActiveModel {
        ActiveModel {
            title: Set(title.to_owned()),
            body: Set(format!("body of {title}")),
            ..Default::default()
        }
    }

    /// The posts titled `title` as `db` reads them.
    pub async fn titled(db: &impl ConnectionTrait, title: &str) -> Vec<Model> {
        Entity::find()
            .filter(Column::Title.eq(title))
            .all(db)
            .await
            .unwrap()
    }

    /// `CREATE TABLE` for this entity.
    pub const SCHEMA: &str = "CREATE TABLE post (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        revision INTEGER NOT NULL,
        note TEXT
    )";
}

/// A row with a column of every supported type.
pub mod kitchen {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A string-valued active enum.
    #[derive(
        Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
    )]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
    pub enum Color {
        /// Red.
        #[sea_orm(string_value = "red")]
        Red,
        /// Green.
        #[sea_orm(string_value = "green")]
        Green,
    }

    /// Every column type litefs-orm forwards on SQLite (sqlx-sqlite cannot store `u64`).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "kitchen")]
    #[allow(missing_docs)]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub i8v: i8,
        pub i16v: i16,
        pub i32v: i32,
        pub i64v: i64,
        pub u8v: u8,
        pub u16v: u16,
        pub u32v: u32,
        pub f32v: f32,
        pub f64v: f64,
        pub flag: bool,
        pub text: String,
        pub maybe: Option<i64>,
        pub maybe_text: Option<String>,
        pub day: Date,
        pub at: DateTime,
        pub at_utc: DateTimeUtc,
        pub blob: Vec<u8>,
        pub doc: Json,
        pub amount: Decimal,
        pub color: Color,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// `CREATE TABLE` for this entity.
    pub const SCHEMA: &str = "CREATE TABLE kitchen (
        id BLOB PRIMARY KEY, i8v INTEGER NOT NULL, i16v INTEGER NOT NULL, i32v INTEGER NOT NULL,
        i64v INTEGER NOT NULL, u8v INTEGER NOT NULL, u16v INTEGER NOT NULL, u32v INTEGER NOT NULL,
        f32v REAL NOT NULL, f64v REAL NOT NULL, flag BOOLEAN NOT NULL,
        text TEXT NOT NULL, maybe INTEGER, maybe_text TEXT, day TEXT NOT NULL, at TEXT NOT NULL,
        at_utc TEXT NOT NULL, blob BLOB NOT NULL, doc TEXT NOT NULL, amount REAL NOT NULL,
        color TEXT NOT NULL
    )";
}

/// An entity that is deliberately never registered.
pub mod secret {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;

    /// Unregistered.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "secret")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Anything.
        pub value: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// `CREATE TABLE` for this entity.
    pub const SCHEMA: &str =
        "CREATE TABLE secret (id INTEGER PRIMARY KEY AUTOINCREMENT, value TEXT NOT NULL)";
}

/// An entry of a write history: one value a client wrote through one node. Values are not
/// unique, so a write applied twice shows as two rows.
pub mod entry {
    use litefs_orm::Replicated;
    use sea_orm::ActiveValue::Set;
    use sea_orm::entity::prelude::*;

    /// One written value.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "entry")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The value a client wrote (unique per write, not per row).
        pub value: String,
        /// The node the write was made through.
        pub node: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// The table, as the primary creates it.
    pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS entry (\
         id INTEGER PRIMARY KEY AUTOINCREMENT, \
         value TEXT NOT NULL, \
         node TEXT NOT NULL)";

    /// A new entry of `value` written through `node`.
    pub fn new(value: &str, node: &str) -> ActiveModel {
        ActiveModel {
            value: Set(value.to_owned()),
            node: Set(node.to_owned()),
            ..Default::default()
        }
    }
}
