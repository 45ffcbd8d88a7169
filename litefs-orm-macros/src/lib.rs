//! Derive macros for litefs-orm: `#[derive(Replicated)]`.
//!
//! Use them through `litefs_orm::Replicated`; this crate is an implementation detail.

mod ast;
mod attr;
mod ctxt;
mod expand;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `litefs_orm::Replicated` for the `Entity` of a SeaORM entity module.
///
/// Put it on the `Model` struct, next to `DeriveEntityModel`: the impl converts the
/// `ActiveModel` to and from its wire form, one column per field (keyed by the field name),
/// skipping `#[sea_orm(ignore)]` fields just as `DeriveEntityModel` does.
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
///
/// # Attributes
///
/// | On the struct | Effect |
/// |---|---|
/// | `#[litefs(name = "...")]` | The name the entity is registered and forwarded under. Defaults to `#[sea_orm(table_name = "...")]`. |
///
/// Every column type must implement `litefs_orm::wire::WireType`, which covers the types SeaORM
/// stores; anything else is a compile error at that field's type.
///
/// With `#[sea_orm::model]`, the derive is also applied to the generated `ModelEx`, where it
/// expands to nothing.
#[proc_macro_derive(Replicated, attributes(litefs))]
pub fn derive_replicated(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_replicated(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
