//! SeaORM writes from any LiteFS node: reads stay local, writes go to the primary, and the
//! caller returns once its own replica has the write.
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod config;
pub mod consistency;
mod db;
pub mod durability;
pub mod error;
pub mod litefs;
pub mod observe;
mod primary;
mod protocol;
mod replica;

#[cfg(feature = "migrate")]
#[cfg_attr(docsrs, doc(cfg(feature = "migrate")))]
pub mod migrate;

#[cfg(feature = "backup")]
#[cfg_attr(docsrs, doc(cfg(feature = "backup")))]
pub mod backup;

#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;

pub use api::active_model::{ModelOf, ReplicatedActiveModel};
pub use api::operation::{OpError, Operation};
pub use api::registry::Registry;
pub use api::replicated::Replicated;
pub use config::JournalMode;
pub use config::{BATCH_PATH, Config, OPERATION_PATH, POSITIONS_PATH, RPC_PATH};
pub use db::ReplicatedDb;
pub use durability::Durability;
pub use error::{DbFailure, DbFailureKind, Error, Result};
pub use litefs::role::Role;
pub use litefs::{position, role};
pub use observe::NodeStatus;
pub use primary::endpoint::{router, router_for};
pub use primary::idempotency::TABLE as IDEMPOTENCY_TABLE;
pub use protocol::{auth, positions, wire};
pub use replica::client;

/// A boxed future, for the object-safe traits between the API and the two sides of the wire.
pub(crate) type BoxFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// `#[derive(Replicated)]`: see the [`Replicated`] trait.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use litefs_orm_macros::Replicated;

/// Everything an app using litefs-orm usually needs.
pub mod prelude {
    pub use crate::{
        Config, DbFailure, Error, OpError, Operation, Registry, Replicated, ReplicatedActiveModel,
        ReplicatedDb, Role,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::observe::record_forwarded_call;
    pub use crate::primary::group_commit::set_group_commit;
    pub use crate::replica::outbox::set_coalescing;
    pub use sea_orm;
}
