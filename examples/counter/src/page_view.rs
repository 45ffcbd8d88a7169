//! The `page_view` table and [`CountView`], the operation that counts one view on the primary.

use litefs_orm::{DbFailure, Operation};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseTransaction, ExprTrait};
use serde::{Deserialize, Serialize};

/// One row per page: how many views it has had. Created by the `migrations` crate.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "page_view")]
pub struct Model {
    /// The page's name: `home` for `/`, `{name}` for `/pages/{name}`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub page: String,
    /// Views counted so far.
    pub count: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Counts one view of `page` and returns its new count.
///
/// It runs on the LiteFS primary, in one transaction, as a single
/// `INSERT ... ON CONFLICT (page) DO UPDATE SET count = count + 1 RETURNING *`: called from
/// a replica it is forwarded there, so two nodes counting at once never overwrite each
/// other's increment (the read-then-update of the original walkthrough would).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CountView {
    /// The page viewed.
    pub page: String,
}

impl Operation for CountView {
    const NAME: &'static str = "counter.count_view";
    type Output = i64;
    type Error = DbFailure;

    async fn run(self, txn: &DatabaseTransaction) -> Result<i64, DbFailure> {
        let first_view = ActiveModel {
            page: Set(self.page),
            count: Set(1),
        };
        let saved = Entity::insert(first_view)
            .on_conflict(
                OnConflict::column(Column::Page)
                    .value(Column::Count, Expr::col((Entity, Column::Count)).add(1))
                    .to_owned(),
            )
            .exec_with_returning(txn)
            .await?;
        Ok(saved.count)
    }
}
