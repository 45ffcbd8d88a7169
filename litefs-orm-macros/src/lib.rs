//! Derive macros for litefs-orm.
use proc_macro::TokenStream;

/// See `litefs_orm::Replicated`.
#[proc_macro_derive(Replicated, attributes(litefs))]
pub fn derive_replicated(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
