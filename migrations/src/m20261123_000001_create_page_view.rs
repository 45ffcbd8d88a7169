//! `page_view`: the page-view counter of the examples, one row per page.

use sea_orm_migration::prelude::*;

/// Creates `page_view (page TEXT PRIMARY KEY, count INTEGER NOT NULL DEFAULT 0)`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PageView::Table)
                    .col(
                        ColumnDef::new(PageView::Page)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PageView::Count)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PageView::Table).to_owned())
            .await
    }

    // The schema change and its `seaql_migrations` row commit together: one LiteFS
    // transaction, so a replica never sees one without the other.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum PageView {
    Table,
    Page,
    Count,
}
