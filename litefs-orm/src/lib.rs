//! SeaORM writes from any LiteFS node: reads stay local, writes go to the primary, and the
//! caller returns once its own replica has the write.
#![doc = include_str!("../README.md")]

pub mod auth;
mod batch;
pub mod client;
mod config;
mod db;
pub mod error;
mod executor;
mod idempotency;
mod job;
pub mod litefs;
mod operation;
mod ops;
mod outbox;
pub mod position;
mod registry;
mod replicated;
pub mod role;
mod server;
mod sql;
pub mod wire;

#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(feature = "migrate")]
pub mod migrate;

#[cfg(feature = "backup")]
pub mod backup;

#[cfg(feature = "cli")]
pub mod cli;

pub use config::{BATCH_PATH, Config, OPERATION_PATH, RPC_PATH};
pub use db::ReplicatedDb;
pub use error::{DbFailure, DbFailureKind, Error, Result};
pub use idempotency::TABLE as IDEMPOTENCY_TABLE;
pub use operation::{OpError, Operation};
pub use ops::{ModelOf, ReplicatedActiveModel};
pub use registry::Registry;
pub use replicated::Replicated;
pub use role::Role;
pub use server::router;

/// `#[derive(Replicated)]`: see the [`Replicated`] trait.
#[cfg(feature = "macros")]
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
    pub use crate::batch::set_group_commit;
    pub use crate::outbox::set_coalescing;
    pub use sea_orm;
}
