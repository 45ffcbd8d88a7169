//! Test clusters for litefs-orm apps: a LiteFS stand-in (a test double that writes LiteFS's
//! files, not LiteFS) and, in [`real`], a runner for the real LiteFS binary.
//!
//! # The stand-in
//!
//! A [`Cluster`] is a set of node directories ("mounts",
//! `<root>/n1`, `<root>/n2`, ...), each holding the database file (`app.db` by default) and the
//! files LiteFS would expose there. The app under test opens `<mount>/app.db` with its own
//! ordinary SQLite connections and never talks to the stand-in; the stand-in, running in the
//! test process, keeps the LiteFS files true to what the app did:
//!
//! - **Writes on a replica fail** as on LiteFS: each node directory is a FUSE mount served by
//!   the stand-in (over `<root>/.testkit/store/<node>`), which answers `EACCES` — LiteFS's
//!   answer — when the app creates a replica's `<db>-journal` or writes, truncates, renames or
//!   removes its `<db>` or `<db>-wal`. SQLite reports `attempt to write a readonly database`
//!   (`SQLITE_READONLY`, 8) in rollback journal modes and `disk I/O error` (`SQLITE_IOERR`,
//!   10) in WAL mode. A connection opened before a role change follows it: a promoted
//!   replica's connections write, a demoted primary's fail. This needs `/dev/fuse` and root;
//!   elsewhere choose [`ReplicaWrites::Detected`] (see below).
//!
//! - **`<db>-pos`** (34 bytes, `%016x/%016x\n`). On the primary, a watcher thread polls
//!   `PRAGMA data_version` on its own connection every
//!   [`poll_interval`](ClusterOptions::poll_interval) (500 µs by default). When it moved, the
//!   watcher takes SQLite's write lock (`BEGIN IMMEDIATE`), re-reads `data_version`, writes the
//!   next TXID, and releases the lock. So a connection that holds the write lock sees `-pos`
//!   unchanged until it commits, and the first bump after its commit covers that commit. On a
//!   replica, `-pos` changes once a snapshot containing that transaction has been applied.
//! - **`.primary`**: the primary's hostname and `\n`, only on replicas connected to a primary;
//!   absent on the primary and on every node after [`Cluster::lose_primary`].
//! - **`.lag`**: `+0000000000` on the primary and on replicas in contact with it;
//!   `+2147483647` before a replica's first sync; milliseconds since the last contact while
//!   replication is paused or there is no primary (never 0 then).
//! - **HTTP API** (optional, per node on `127.0.0.1:0`): `GET /info` and the `GET /events`
//!   stream (`init`, then `primaryChange` and `tx` events, one JSON object per line). As in
//!   LiteFS, `/info`'s `primary.hostname` names the primary on every node, while `init` and
//!   `primaryChange` carry the *remote* primary's hostname (none on the primary itself); `tx`
//!   events come from the primary at each bump and from a replica at each applied snapshot.
//! - **Replication**: each replica gets the primary's whole database, copied logically in one
//!   transaction; controls to pause, resume, delay and wait for it ([`Cluster::sync`]).
//! - **Primary changes**: [`Cluster::switch_primary`] and [`Cluster::lose_primary`].
//!
//! # Where it differs from LiteFS
//!
//! - **`-pos` moves after the commit, not inside it.** The bump happens within one poll
//!   interval after the commit, under the write lock. Several commits inside one poll
//!   interval may share one bump, so TXIDs count bumps, not transactions; they still only
//!   grow, and a bump observed after a commit always covers it.
//! - **The checksum is not a page checksum**: it is splitmix64 of the TXID, deterministic and
//!   copied as-is to the replicas.
//! - **The mount passes files through**; it is no LiteFS file system (no LTX files, no HALT
//!   lock, no write-through of `-pos`). The stand-in's own replication connections are let
//!   write a replica: each makes itself known to the mount when it opens, and the mount
//!   trusts the thread that sqlx runs it on. Files other than `-shm` bypass the page cache.
//! - **With [`ReplicaWrites::Detected`]** (no FUSE) writes on a replica are let through to a
//!   plain directory; the stand-in notices them (`data_version` of its replication
//!   connection moved), logs them with `tracing::error!`, counts them
//!   ([`Cluster::replica_writes_detected`]) and overwrites them at the next sync.
//! - **Whole-database logical copy per sync**, not page-level LTX files: tables, indexes,
//!   views, triggers, rows with their rowids, `sqlite_sequence` and `user_version`. Virtual
//!   tables are copied through their shadow tables (fine for FTS5), others are not supported.
//!   A snapshot may contain commits newer than the position it is labelled with (the label is
//!   read first); the next sync labels them.
//! - **Replication delay** ([`Cluster::set_replication_delay`]) holds snapshots taken when a
//!   bump is seen (`VACUUM INTO` a staging file, within a millisecond of the bump) until
//!   `delay` after that bump.
//! - **Roles are set by the test**, not by a lease: no Consul, no static lease, no proxy, no
//!   HALT lock. On a switch, writes the new primary had not received are lost, as in LiteFS.
//!   After `lose_primary` the old primary's `.lag` counts from the moment it lost its lease
//!   (real LiteFS shows `+2147483647` there).
//! - The primary's database file is not created by the stand-in (the app creates it); the
//!   watcher opens it once it has a database header. The replicas' files are created, empty,
//!   at start, in the cluster's journal mode.
//! - The stand-in's own connections hold SQLite locks for short moments (polling, copying), so
//!   in rollback journal modes an app writer on the primary may wait on them briefly.
//!
//! # Measured against real LiteFS v0.5.14
//!
//! [`real::RealCluster`] runs the real engine; these are the differences the stand-in keeps,
//! each because the stand-in is for what one machine's LiteFS cannot do on demand (pausing
//! and delaying replication, losing the primary without stopping a process):
//!
//! - **A lost primary** blinks on `/events` as on LiteFS: replicas retry it once a second
//!   and at each retry send a pair of `primaryChange` events (its hostname, then none) in the
//!   same millisecond, while `.primary` and `/info` show no primary. Real LiteFS replicas
//!   lose their primary only when its LiteFS stops; the stand-in's [`Cluster::lose_primary`]
//!   takes the lease away while every process runs.
//! - **Replica write errors.** Real LiteFS: `SQLITE_READONLY_DBMOVED` (extended code 1544) in
//!   rollback journal modes, `SQLITE_IOERR_WRITE` (778) in WAL mode, and `BEGIN IMMEDIATE`
//!   itself succeeds. The stand-in's `EACCES` gives SQLite's plain `SQLITE_READONLY` (8) and
//!   an `SQLITE_IOERR` variant (10): the same primary codes.
//! - **TXIDs.** Real LiteFS gives every write transaction its own TXID (the first `CREATE
//!   TABLE` is 1, and `PRAGMA journal_mode = wal` takes one); `-pos` inside a write
//!   transaction reads the position before it, and exactly one more after its commit. The
//!   stand-in may cover several commits with one bump (see above).
//! - **LiteFS stopping under an app.** Real LiteFS cannot unmount while the app holds files:
//!   it exits and leaves a dead mount; the app's open connections fail with
//!   `SQLITE_IOERR_LOCK` (3850) for good in rollback journal modes, and in WAL mode the next
//!   query ends the process with SIGBUS (the `-shm` mapping). The stand-in's mounts live as
//!   long as the cluster.
//!
//! # Threads
//!
//! The watcher and each replicator are threads of their own (they poll and back off in steps
//! under tokio's 1 ms timer resolution); the HTTP API and the waits of [`Cluster::sync`] run on
//! a small runtime owned by the cluster. Nothing depends on the test's runtime or on global
//! state, so the same [`Cluster`] can back a separate stand-in process.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use litefs_orm_testkit::{Cluster, ClusterOptions};
//! use sea_orm::sqlx::{Connection, sqlite::SqliteConnection};
//!
//! let cluster = Cluster::start(ClusterOptions::default()).await?;
//! let mut primary = SqliteConnection::connect_with(&cluster.connect_options(0)).await?;
//! sea_orm::sqlx::raw_sql("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
//!     .execute(&mut primary)
//!     .await?;
//! cluster.sync().await?;
//! assert_eq!(cluster.pos(1), cluster.pos(0));
//! assert_eq!(std::fs::read_to_string(cluster.paths(1).primary())?, "n1\n");
//! # Ok(()) }
//! ```

pub mod apps;
mod dump;
pub mod real;
mod standin;

pub use dump::dump;
pub use standin::{Cluster, ClusterOptions, Error, JournalMode, ReplicaWrites, Result};
