use litefs_orm::Replicated;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
#[sea_orm(table_name = "counter")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub hits: u64,
    pub misses: Option<u64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
