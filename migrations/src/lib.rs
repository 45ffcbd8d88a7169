//! The example apps' schema as sea-orm-migration migrations, run only on the LiteFS primary.
//!
//! [`Migrator`] lists the migrations in order. Run them with this crate's binary (the
//! litefs-orm migrations CLI, see `README.md`), or at app start-up with
//! `litefs_orm::migrate::prepare::<migrations::Migrator>(&db)`, which applies them on the
//! primary and, on a replica, waits until the schema has arrived by replication.

use sea_orm_migration::MigrationTrait;
pub use sea_orm_migration::MigratorTrait;

mod m20261123_000001_create_page_view;
mod m20261123_000002_create_post_and_comment;

/// Every migration of the example schema, oldest first.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_page_view::Migration),
            Box::new(m20261123_000002_create_post_and_comment::Migration),
        ]
    }
}
