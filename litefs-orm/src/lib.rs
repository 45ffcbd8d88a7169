//! SeaORM writes from any LiteFS node: reads stay local, writes go to the primary, and the
//! caller returns once its own replica has the write.
#![doc = include_str!("../README.md")]

pub mod error;
pub mod litefs;
mod replicated;
pub mod wire;

pub use error::{DbFailure, DbFailureKind, Error, Result};
pub use replicated::Replicated;

/// `#[derive(Replicated)]`: see the [`Replicated`] trait.
#[cfg(feature = "macros")]
pub use litefs_orm_macros::Replicated;

#[doc(hidden)]
pub mod __private {
    pub use sea_orm;
}
