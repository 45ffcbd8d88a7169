//! Generates the `Replicated` impl from the checked [`ast::Container`].

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, LitStr};

use crate::ast;
use crate::ctxt::Ctxt;

/// `#[derive(Replicated)]`: every error in the input, or the impl.
pub(crate) fn derive_replicated(input: DeriveInput) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::new();
    let container = ast::Container::from_ast(&mut cx, &input);
    cx.check()?;
    Ok(match container {
        Some(container) => expand_derive_replicated(&container),
        None => TokenStream::new(),
    })
}

fn expand_derive_replicated(container: &ast::Container<'_>) -> TokenStream {
    // Locals are mixed-site so they cannot meet anything from the user's code; `Entity` and
    // `ActiveModel` are call-site: `DeriveEntityModel` defines them beside the `Model`.
    let wire = Ident::new("wire", Span::mixed_site());
    let model = Ident::new("model", Span::mixed_site());
    let assert = Ident::new("__assert_wire_type", Span::mixed_site());

    let name = LitStr::new(&container.name, Span::call_site());
    let columns: Vec<&ast::Field<'_>> = container
        .fields
        .iter()
        .filter(|field| field.is_column())
        .collect();

    // One bound check per column type, spanned on that type, so `WireType`'s
    // `on_unimplemented` message points at the field that cannot be replicated.
    let type_asserts = (!columns.is_empty()).then(|| {
        let calls = columns.iter().map(|field| {
            let ty = field.ty;
            quote_spanned!(ty.span()=> #assert::<#ty>();)
        });
        quote! {
            fn #assert<T: ::litefs_orm::wire::WireType>() {}
            #(#calls)*
        }
    });
    let puts = columns.iter().map(|field| {
        let (ident, ty, key) = (field.ident, field.ty, key(field.ident));
        quote!(#wire.put::<#ty>(#key, &#model.#ident);)
    });
    let takes = columns.iter().map(|field| {
        let (ident, ty, key) = (field.ident, field.ty, key(field.ident));
        quote!(#ident: #wire.take::<#ty>(#key)?,)
    });
    let mutability = (!columns.is_empty()).then(|| quote!(mut));

    quote! {
        const _: () = {
            #[automatically_derived]
            impl ::litefs_orm::Replicated for Entity {
                const NAME: &'static str = #name;

                fn to_wire(#model: &ActiveModel) -> ::litefs_orm::wire::WireModel {
                    #type_asserts

                    let #mutability #wire =
                        <::litefs_orm::wire::WireModel as ::core::default::Default>::default();
                    #(#puts)*
                    #wire
                }

                fn from_wire(
                    #mutability #wire: ::litefs_orm::wire::WireModel,
                ) -> ::core::result::Result<ActiveModel, ::litefs_orm::wire::WireError> {
                    let #model = ActiveModel { #(#takes)* };
                    #wire.finish()?;
                    ::core::result::Result::Ok(#model)
                }
            }
        };
    }
}

/// A column's key in the wire form: the field name, without `r#`.
fn key(ident: &Ident) -> LitStr {
    LitStr::new(&ident.unraw().to_string(), ident.span())
}
