//! The handle as a SeaORM connection: reads on the local reader pool, writes on the writer
//! where writes are local, refused on a replica.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};

use super::recovery::replica_write_refused;
use super::{ReplicatedDb, sql};
use crate::litefs::role::Role;

impl ReplicatedDb {
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
        let conn = self.route(&stmt.sql)?;
        match conn.query_one_raw(stmt.clone()).await {
            Ok(r) => Ok(r),
            Err(e) if self.read_again_after(&stmt.sql, &e).await => {
                let conn = self.route(&stmt.sql)?;
                conn.query_one_raw(stmt).await.map_err(|e| self.io_noted(e))
            }
            Err(e) => Err(self.map_err(e).await),
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let conn = self.route(&stmt.sql)?;
        match conn.query_all_raw(stmt.clone()).await {
            Ok(r) => Ok(r),
            Err(e) if self.read_again_after(&stmt.sql, &e).await => {
                let conn = self.route(&stmt.sql)?;
                conn.query_all_raw(stmt).await.map_err(|e| self.io_noted(e))
            }
            Err(e) => Err(self.map_err(e).await),
        }
    }

    fn support_returning(&self) -> bool {
        self.reader().support_returning()
    }
}
