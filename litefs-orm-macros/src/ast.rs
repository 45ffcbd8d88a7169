//! Our own model of the derive input: the `Model` struct, its entity name and its columns.

use quote::quote;
use syn::{Data, DataStruct, DeriveInput, Fields, Ident, Type};

use crate::attr::{self, Setting};
use crate::ctxt::Ctxt;

/// The struct `DeriveEntityModel` turns into an `ActiveModel`.
const MODEL: &str = "Model";
/// The struct `#[sea_orm::model]` generates beside `Model`, copying its derives.
const MODEL_EX: &str = "ModelEx";

const WRONG_ITEM: &str =
    "`#[derive(Replicated)]` goes on the SeaORM `Model` struct next to `DeriveEntityModel`";
const GENERICS: &str = "`#[derive(Replicated)]` does not support generics or lifetimes: \
     a SeaORM `Model` has plain column types";
const NOT_NAMED_FIELDS: &str =
    "`#[derive(Replicated)]` needs named fields, one per column, like a SeaORM `Model`";
const MISSING_NAME: &str = "missing the entity name: add `#[sea_orm(table_name = \"...\")]` \
     or `#[litefs(name = \"...\")]` to the struct";

/// A `Model` struct that `#[derive(Replicated)]` accepts.
pub(crate) struct Container<'a> {
    /// The name the entity is registered and forwarded under.
    pub(crate) name: String,
    /// Every named field, columns and ignored ones alike.
    pub(crate) fields: Vec<Field<'a>>,
}

/// One named field of the `Model`.
pub(crate) struct Field<'a> {
    /// The field name, also the column's key in the wire form.
    pub(crate) ident: &'a Ident,
    /// The field type, also the type of the `ActiveModel` field.
    pub(crate) ty: &'a Type,
    /// Its attributes.
    pub(crate) attrs: attr::Field,
}

impl Field<'_> {
    /// Whether `DeriveEntityModel` puts this field in the `ActiveModel`.
    pub(crate) fn is_column(&self) -> bool {
        !self.attrs.ignore && !is_relation(self.ty)
    }
}

impl<'a> Container<'a> {
    /// Checks the input, recording every mistake in `cx`.
    ///
    /// `None` means there is nothing to generate: either `cx` holds errors, or the input is
    /// one that another macro reports on or that expands to nothing (`ModelEx`).
    pub(crate) fn from_ast(cx: &mut Ctxt, input: &'a DeriveInput) -> Option<Self> {
        if input.ident == MODEL_EX {
            // `#[sea_orm::model]` copies our derive onto `ModelEx`; `Model` carries the impl.
            return None;
        }

        let attrs = attr::Container::from_ast(cx, &input.attrs);

        let data = match &input.data {
            Data::Struct(data) => data,
            Data::Enum(_) | Data::Union(_) => {
                cx.error_spanned_by(&input.ident, WRONG_ITEM);
                return None;
            }
        };
        if input.ident != MODEL {
            cx.error_spanned_by(&input.ident, WRONG_ITEM);
        }

        if !input.generics.params.is_empty() {
            cx.error_spanned_by(&input.generics, GENERICS);
        } else if let Some(where_clause) = &input.generics.where_clause {
            cx.error_spanned_by(where_clause, GENERICS);
        }

        let fields = fields_from_ast(cx, input, data);

        let name = match (attrs.name, attrs.table_name) {
            (Setting::Given(name), _) | (Setting::Absent, Setting::Given(name)) => Some(name),
            // Already reported: by us for `#[litefs]`, by SeaORM for `#[sea_orm]`.
            (Setting::Invalid, _) | (Setting::Absent, Setting::Invalid) => None,
            (Setting::Absent, Setting::Absent) => {
                cx.error_spanned_by(&input.ident, MISSING_NAME);
                None
            }
        };

        Some(Container {
            name: name?,
            fields: fields?,
        })
    }
}

fn fields_from_ast<'a>(
    cx: &mut Ctxt,
    input: &'a DeriveInput,
    data: &'a DataStruct,
) -> Option<Vec<Field<'a>>> {
    match &data.fields {
        Fields::Named(named) => Some(
            named
                .named
                .iter()
                .filter_map(|field| {
                    let attrs = attr::Field::from_ast(cx, &field.attrs);
                    if !attrs.ignore && is_u64(&field.ty) {
                        cx.error_spanned_by(&field.ty, U64_COLUMN);
                    }
                    Some(Field {
                        ident: field.ident.as_ref()?,
                        ty: &field.ty,
                        attrs,
                    })
                })
                .collect(),
        ),
        Fields::Unnamed(unnamed) => {
            cx.error_spanned_by(unnamed, NOT_NAMED_FIELDS);
            None
        }
        Fields::Unit => {
            let struct_token = &data.struct_token;
            let ident = &input.ident;
            let semi = &data.semi_token;
            cx.error_spanned_by(quote!(#struct_token #ident #semi), NOT_NAMED_FIELDS);
            None
        }
    }
}

const U64_COLUMN: &str = "a `u64` column cannot be stored: SQLite integers are signed 64-bit and \
     sqlx-sqlite has no `u64` encoding; use `i64` (or `u32` and smaller). Columns litefs-orm \
     forwards: i8..i64, u8..u32, f32, f64, bool, String, chrono, uuid, Vec<u8>, \
     serde_json::Value, rust_decimal, DeriveActiveEnum enums, and Option of these";

/// `u64` or `Option<u64>`, written plainly.
fn is_u64(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident == "u64" {
        return true;
    }
    if last.ident != "Option" {
        return false;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(args.args.first(), Some(syn::GenericArgument::Type(inner)) if is_u64(inner))
}

/// A relation field of `#[sea_orm::model]` (`BelongsTo`, `HasOne`, `HasMany`), which
/// `DeriveEntityModel` leaves out of the `ActiveModel` just like an ignored field.
fn is_relation(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    path.path.segments.last().is_some_and(|segment| {
        segment.ident == "BelongsTo" || segment.ident == "HasOne" || segment.ident == "HasMany"
    })
}
