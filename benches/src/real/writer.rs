//! The four ways the real-LiteFS section writes the same single-row insert.

use anyhow::Result;
use litefs_orm::{ReplicatedActiveModel, ReplicatedDb};
use sea_orm::{ActiveModelTrait, DatabaseConnection};

use super::halt::HaltWriter;
use crate::entity::item;

/// What a writer writes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `insert_replicated` on the primary's handle: local, group-committed.
    Local,
    /// `insert_replicated` on a replica's handle: forwarded, with the read-your-writes wait.
    Forwarded,
    /// LiteFS's HALT lock on a replica: lock, `BEGIN IMMEDIATE`, insert, `COMMIT`, unlock.
    Halt,
    /// Plain SeaORM on the primary's database file (a pool, each insert its own transaction).
    Plain,
}

impl Kind {
    /// Every kind, in the order a round measures them.
    pub const ALL: [Kind; 4] = [Kind::Local, Kind::Forwarded, Kind::Halt, Kind::Plain];

    /// The kind's part of a figure's key.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::Forwarded => "forwarded",
            Kind::Halt => "halt",
            Kind::Plain => "plain",
        }
    }

    /// The kind, for people.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Local => "local on the primary (litefs-orm)",
            Kind::Forwarded => "forwarded from a replica with read-your-writes (litefs-orm)",
            Kind::Halt => "LiteFS HALT forwarding from a replica",
            Kind::Plain => "plain SeaORM on the primary",
        }
    }
}

/// One writer task's means of writing.
pub enum Writer {
    /// A node's `ReplicatedDb` (shared by every writer of the phase, as by an app's handlers).
    Handle(ReplicatedDb),
    /// A plain SeaORM connection pool (shared likewise).
    Plain(DatabaseConnection),
    /// Its own lock file description and connection, like a process of its own.
    Halt(Box<HaltWriter>),
}

impl Writer {
    /// Inserts item `n`; for a handle, returns once the writing node reads it back.
    pub async fn insert(&mut self, n: u64) -> Result<()> {
        match self {
            Writer::Handle(db) => {
                item::new(n).insert_replicated(db).await?;
            }
            Writer::Plain(conn) => {
                item::new(n).insert(conn).await?;
            }
            Writer::Halt(w) => w.insert(n).await?,
        }
        Ok(())
    }

    /// Closes what the writer holds of its own (a HALT writer's connection).
    pub async fn close(self) -> Result<()> {
        match self {
            Writer::Halt(w) => w.close().await,
            Writer::Handle(_) | Writer::Plain(_) => Ok(()),
        }
    }
}
