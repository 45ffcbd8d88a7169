//! The handle as a SeaORM connection: reads on the local reader pool, writes and transactions
//! on the writer where writes are local, refused on a replica.

use std::future::Future;
use std::pin::Pin;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, Statement, TransactionError, TransactionTrait,
};

use super::recovery::replica_write_refused;
use super::{ReplicatedDb, sql};
use crate::litefs::role::Role;

impl ReplicatedDb {
    /// Runs a query with `run` on the connection its SQL routes to, and once more when it
    /// failed with an I/O error and the connections were just reopened on a mount that came
    /// back (see `read_again_after`).
    async fn query<T, F, Fut>(&self, stmt: Statement, run: F) -> Result<T, DbErr>
    where
        F: Fn(DatabaseConnection, Statement) -> Fut + Send,
        Fut: Future<Output = Result<T, DbErr>> + Send,
    {
        let conn = self.route(&stmt.sql)?;
        match run(conn, stmt.clone()).await {
            Ok(r) => Ok(r),
            Err(e) if self.read_again_after(&stmt.sql, &e).await => {
                let conn = self.route(&stmt.sql)?;
                run(conn, stmt).await.map_err(|e| self.io_noted(e))
            }
            Err(e) => Err(self.map_err(e).await),
        }
    }

    fn route(&self, sql_text: &str) -> Result<DatabaseConnection, DbErr> {
        if sql::is_read(sql_text) {
            return Ok(self.reader());
        }
        match self.role() {
            Role::Standalone | Role::Primary => Ok(self.writer()),
            role => Err(replica_write_refused(&role)),
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for ReplicatedDb {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let conn = self.route(&stmt.sql)?;
        match conn.execute_raw(stmt).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.map_err(e).await),
        }
    }

    async fn execute_unprepared(&self, sql_text: &str) -> Result<ExecResult, DbErr> {
        let conn = self.route(sql_text)?;
        match conn.execute_unprepared(sql_text).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.map_err(e).await),
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.query(
            stmt,
            |conn, stmt| async move { conn.query_one_raw(stmt).await },
        )
        .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.query(
            stmt,
            |conn, stmt| async move { conn.query_all_raw(stmt).await },
        )
        .await
    }

    fn support_returning(&self) -> bool {
        self.reader().support_returning()
    }
}

/// SeaORM transactions on the writer, where writes are local (the primary, or standalone). On
/// a replica a transaction could not write: `begin` fails and names
/// [`Operation`](crate::Operation), which runs a transaction on the primary from any node.
///
/// ```no_run
/// # async fn demo(db: litefs_orm::ReplicatedDb) -> Result<(), sea_orm::DbErr> {
/// use sea_orm::{ConnectionTrait, TransactionTrait};
/// let txn = db.begin().await?; // on the primary or standalone
/// txn.execute_unprepared("UPDATE page_view SET count = 0").await?;
/// txn.commit().await?;
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
impl TransactionTrait for ReplicatedDb {
    type Transaction = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.begin_with_config(None, None).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.local_writer()?
            .begin_with_config(isolation_level, access_mode)
            .await
    }

    async fn begin_with_options(
        &self,
        options: sea_orm::TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.local_writer()?.begin_with_options(options).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.transaction_with_config(callback, None, None).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let writer = self.local_writer().map_err(TransactionError::Connection)?;
        writer
            .transaction_with_config(callback, isolation_level, access_mode)
            .await
    }
}

impl ReplicatedDb {
    /// The writer, where writes are local; on a replica an error that points to `Operation`.
    fn local_writer(&self) -> Result<DatabaseConnection, DbErr> {
        match self.role() {
            Role::Standalone | Role::Primary => Ok(self.writer()),
            role => Err(DbErr::Custom(format!(
                "litefs-orm: this node is a {role}, and a transaction can only write on the LiteFS \
                 primary; put the transaction's work in a litefs_orm::Operation and run it with \
                 db.run(op): it runs in one transaction on the primary from any node"
            ))),
        }
    }
}
