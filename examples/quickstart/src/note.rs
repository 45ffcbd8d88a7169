//! A note: the quickstart's one replicated entity.

use litefs_orm::Replicated;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

/// A short text with a revision the primary bumps on every save.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Replicated)]
#[sea_orm(table_name = "note")]
pub struct Model {
    /// Row id, assigned by the primary.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The text.
    pub text: String,
    /// Saves so far, counted by `before_save`, which runs on the primary only.
    pub revision: i32,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[async_trait::async_trait]
impl ActiveModelBehavior for ActiveModel {
    async fn before_save<C: ConnectionTrait>(
        mut self,
        _db: &C,
        insert: bool,
    ) -> Result<Self, DbErr> {
        let next = if insert {
            1
        } else {
            self.revision.as_ref() + 1
        };
        self.revision = Set(next);
        Ok(self)
    }
}

/// The table.
pub const SCHEMA: &str = "CREATE TABLE note (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, revision INTEGER NOT NULL)";
