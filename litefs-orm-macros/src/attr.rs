//! Parses `#[litefs(...)]` strictly and reads the few `#[sea_orm(...)]` keys we need.

use std::fmt::{self, Display};

use proc_macro2::{TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitStr, Meta, Path, Token};

use crate::ctxt::Ctxt;

/// The name of an attribute or of one of its keys.
#[derive(Copy, Clone)]
pub(crate) struct Symbol(&'static str);

/// Our attribute namespace.
pub(crate) const LITEFS: Symbol = Symbol("litefs");
/// `#[litefs(name = "...")]`: the registered entity name.
pub(crate) const NAME: Symbol = Symbol("name");
/// SeaORM's attribute namespace.
pub(crate) const SEA_ORM: Symbol = Symbol("sea_orm");
/// `#[sea_orm(table_name = "...")]` on the struct.
pub(crate) const TABLE_NAME: Symbol = Symbol("table_name");
/// `#[sea_orm(ignore)]` on a field: not a column, absent from the `ActiveModel`.
pub(crate) const IGNORE: Symbol = Symbol("ignore");

impl PartialEq<Symbol> for Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A setting that may be absent, given, or given but unusable.
pub(crate) enum Setting {
    /// Not given.
    Absent,
    /// Given, but not usable; the error is reported (by us for `#[litefs]`, by SeaORM for
    /// `#[sea_orm]`).
    Invalid,
    /// Given.
    Given(String),
}

/// The attributes of the `Model` struct.
pub(crate) struct Container {
    /// `#[litefs(name = "...")]`.
    pub(crate) name: Setting,
    /// `#[sea_orm(table_name = "...")]`.
    pub(crate) table_name: Setting,
}

impl Container {
    /// Reads the struct's attributes, recording every mistake in `#[litefs(...)]`.
    pub(crate) fn from_ast(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut name = Setting::Absent;
        let mut table_name = Setting::Absent;
        for attr in attrs {
            if attr.path() == &LITEFS {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path == NAME {
                        let value = parse_name(cx, &meta)?;
                        if !matches!(name, Setting::Absent) {
                            cx.error_spanned_by(
                                &meta.path,
                                format!("duplicate `#[{LITEFS}({NAME} = ...)]`: give it once"),
                            );
                        } else if let Some(value) = value {
                            name = Setting::Given(value);
                        } else {
                            name = Setting::Invalid;
                        }
                    } else {
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "unknown `#[{LITEFS}(...)]` key `{}`: the only key is `{NAME}`",
                                path_to_string(&meta.path),
                            ),
                        );
                        skip_value(&meta)?;
                    }
                    Ok(())
                });
                if let Err(err) = result {
                    cx.syn_error(err);
                }
            } else if attr.path() == &SEA_ORM
                && let Some(found) = sea_orm_table_name(attr)
            {
                table_name = found;
            }
        }
        Container { name, table_name }
    }
}

/// The attributes of one field.
pub(crate) struct Field {
    /// `#[sea_orm(ignore)]`: the field is not in the `ActiveModel`.
    pub(crate) ignore: bool,
}

impl Field {
    /// Reads a field's attributes; `#[litefs(...)]` has no field keys, so any is an error.
    pub(crate) fn from_ast(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut ignore = false;
        for attr in attrs {
            if attr.path() == &LITEFS {
                cx.error_spanned_by(
                    attr,
                    format!(
                        "`#[{LITEFS}(...)]` is not supported on fields: it goes on the `Model` struct"
                    ),
                );
            } else if attr.path() == &SEA_ORM && sea_orm_ignore(attr) {
                ignore = true;
            }
        }
        Field { ignore }
    }
}

/// Parses the value of `name = "..."`; `None` after recording why it is not a usable name.
fn parse_name(cx: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<String>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(&meta.path, format!("expected `{NAME} = \"...\"`"));
        skip_value(meta)?;
        return Ok(None);
    }
    let expr: Expr = meta.value()?.parse()?;
    let Some(lit) = lit_str(&expr) else {
        cx.error_spanned_by(
            &expr,
            format!("expected a string literal: `{NAME} = \"...\"`"),
        );
        return Ok(None);
    };
    let value = lit.value();
    if value.is_empty() {
        cx.error_spanned_by(lit, format!("`{NAME}` must not be empty"));
        return Ok(None);
    }
    Ok(Some(value))
}

/// The string literal an expression is, looking through invisible groups from `macro_rules!`.
fn lit_str(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        Expr::Group(group) => lit_str(&group.expr),
        _ => None,
    }
}

/// Steps over the value of an unknown key so the keys after it are still checked.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _: TokenTree = meta.input.parse()?;
    }
    Ok(())
}

fn path_to_string(path: &Path) -> String {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments.join("::")
}

/// `table_name` from one `#[sea_orm(...)]`, if it has that key.
///
/// SeaORM validates its own attribute, so this only looks at top-level `key = value` entries
/// and never fails: any other key, well formed or not, is none of our business.
fn sea_orm_table_name(attr: &Attribute) -> Option<Setting> {
    let Meta::List(list) = &attr.meta else {
        return None;
    };
    let mut found = None;
    for entry in split_top_level_commas(list.tokens.clone()) {
        let mut tokens = entry.into_iter();
        let is_table_name =
            matches!(tokens.next(), Some(TokenTree::Ident(key)) if key == TABLE_NAME);
        let is_assign = matches!(tokens.next(), Some(TokenTree::Punct(p)) if p.as_char() == '=');
        if !(is_table_name && is_assign) {
            continue;
        }
        let value: TokenStream = tokens.collect();
        found = Some(match syn::parse2::<Expr>(value) {
            Ok(expr) => match lit_str(&expr) {
                Some(lit) => Setting::Given(lit.value()),
                None => Setting::Invalid,
            },
            Err(_) => Setting::Invalid,
        });
    }
    found
}

/// Whether one `#[sea_orm(...)]` on a field says `ignore`, read exactly the way SeaORM's
/// `DeriveActiveModel` reads it, so both agree on which fields the `ActiveModel` has.
fn sea_orm_ignore(attr: &Attribute) -> bool {
    let mut ignore = false;
    let _ = attr.parse_nested_meta(|meta| {
        if meta.path == IGNORE {
            ignore = true;
        } else {
            let _ = meta.value().and_then(|value| value.parse::<Expr>());
        }
        Ok(())
    });
    ignore
}

/// Splits an attribute's arguments at the commas that are not inside a group.
fn split_top_level_commas(tokens: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut entries = vec![Vec::new()];
    for token in tokens {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => entries.push(Vec::new()),
            _ => {
                if let Some(last) = entries.last_mut() {
                    last.push(token);
                }
            }
        }
    }
    entries
}
