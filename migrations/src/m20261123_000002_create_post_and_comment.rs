//! `post` and `comment`: a comment belongs to a post and goes when its post goes.

use sea_orm_migration::prelude::*;

/// Creates `post` and `comment` (foreign key `comment.post_id` → `post.id`, on delete cascade).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Post::Table)
                    .col(
                        ColumnDef::new(Post::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Post::Title).text().not_null())
                    .col(ColumnDef::new(Post::Body).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Comment::Table)
                    .col(
                        ColumnDef::new(Comment::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Comment::PostId).integer().not_null())
                    .col(ColumnDef::new(Comment::Body).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_comment_post")
                            .from(Comment::Table, Comment::PostId)
                            .to(Post::Table, Post::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_comment_post_id")
                    .table(Comment::Table)
                    .col(Comment::PostId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Comment::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Post::Table).to_owned())
            .await
    }

    // Both tables and the `seaql_migrations` row commit together: one LiteFS transaction.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum Post {
    Table,
    Id,
    Title,
    Body,
}

#[derive(DeriveIden)]
enum Comment {
    Table,
    Id,
    PostId,
    Body,
}
