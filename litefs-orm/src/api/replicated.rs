//! The [`Replicated`] trait that `#[derive(Replicated)]` implements for an entity.

use sea_orm::EntityTrait;

use crate::protocol::wire::{WireError, WireModel};

/// An entity whose ActiveModel writes can be forwarded to the LiteFS primary.
///
/// Implemented by `#[derive(Replicated)]` on the entity's `Model`, next to
/// `DeriveEntityModel`; writing it by hand is possible but rarely useful.
///
/// ```
/// use litefs_orm::Replicated;
/// use sea_orm::entity::prelude::*;
///
/// #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
/// #[sea_orm(table_name = "post")]
/// pub struct Model {
///     #[sea_orm(primary_key)]
///     pub id: i32,
///     pub title: String,
/// }
///
/// #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// pub enum Relation {}
///
/// impl ActiveModelBehavior for ActiveModel {}
///
/// assert_eq!(<Entity as Replicated>::NAME, "post");
/// ```
pub trait Replicated: EntityTrait {
    /// The name the entity is registered and forwarded under: its table name, or
    /// `#[litefs(name = "...")]`.
    const NAME: &'static str;

    /// The ActiveModel's wire form.
    fn to_wire(model: &Self::ActiveModel) -> WireModel;

    /// Rebuilds the ActiveModel from its wire form, checking every column's type.
    fn from_wire(wire: WireModel) -> Result<Self::ActiveModel, WireError>;
}
