//! Operations the tests run on the primary.

use litefs_orm::{DbFailure, Operation};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement,
};
use serde::{Deserialize, Serialize};

use crate::entities::post;

/// `CREATE TABLE` of the page-view counter.
pub const PAGE_VIEW_SCHEMA: &str =
    "CREATE TABLE page_view (page TEXT PRIMARY KEY, count INTEGER NOT NULL DEFAULT 0)";

/// Counts one view of `page`; returns the new count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IncrementPage {
    /// The page.
    pub page: String,
}

impl Operation for IncrementPage {
    const NAME: &'static str = "increment_page";
    type Output = i64;
    type Error = DbFailure;

    async fn run(self, txn: &DatabaseTransaction) -> Result<i64, DbFailure> {
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO page_view (page, count) VALUES (?, 1) \
                 ON CONFLICT (page) DO UPDATE SET count = count + 1 RETURNING count",
                [self.page.into()],
            ))
            .await?
            .ok_or_else(|| DbErr::Custom("RETURNING gave no row".into()))?;
        Ok(row.try_get_by_index(0)?)
    }
}

/// Inserts two posts together, or neither.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InsertPair {
    /// First title.
    pub first: String,
    /// Second title.
    pub second: String,
    /// Refuse after inserting the first.
    pub refuse: bool,
}

/// Why [`InsertPair`] refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairError {
    /// Asked to refuse.
    Refused {
        /// The title inserted before refusing (and rolled back).
        after: String,
    },
    /// The database failed.
    Db(String),
}

impl From<DbErr> for PairError {
    fn from(e: DbErr) -> Self {
        PairError::Db(e.to_string())
    }
}

impl Operation for InsertPair {
    const NAME: &'static str = "insert_pair";
    type Output = (i32, i32);
    type Error = PairError;

    async fn run(self, txn: &DatabaseTransaction) -> Result<(i32, i32), PairError> {
        let insert = |title: String| post::ActiveModel {
            title: Set(title),
            body: Set("pair".into()),
            ..Default::default()
        };
        let a = insert(self.first.clone()).insert(txn).await?;
        if self.refuse {
            return Err(PairError::Refused { after: self.first });
        }
        let b = insert(self.second).insert(txn).await?;
        Ok((a.id, b.id))
    }
}

/// Holds the writer: counts a view of `held`, then keeps its transaction open for `ms`
/// milliseconds, so writes behind it queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HoldWriter {
    /// How long to hold it.
    pub ms: u64,
}

impl Operation for HoldWriter {
    const NAME: &'static str = "hold_writer";
    type Output = ();
    type Error = DbFailure;

    async fn run(self, txn: &DatabaseTransaction) -> Result<(), DbFailure> {
        txn.execute_unprepared(
            "INSERT INTO page_view (page, count) VALUES ('held', 1) \
             ON CONFLICT (page) DO UPDATE SET count = count + 1",
        )
        .await?;
        tokio::time::sleep(std::time::Duration::from_millis(self.ms)).await;
        Ok(())
    }
}
