//! Typed operations that run on the primary in one transaction: read-modify-write, or
//! several writes that succeed or fail together.

use std::future::Future;

use sea_orm::{DatabaseTransaction, DbErr};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::BoxFut;
use crate::error::Error;
use crate::primary::executor::ExecError;

/// An operation that runs on the LiteFS primary inside one transaction, called from any node.
///
/// The operation value is its arguments: it is serialized, sent to the primary (signed, with
/// a deadline), deserialized there and [`run`](Operation::run) in a transaction that commits
/// when it returns `Ok` and rolls back when it returns `Err`. The caller gets the output once
/// its own replica has the commit, or the operation's own error, typed. On the primary
/// itself the same happens locally. Register each operation on every node with
/// [`Registry::operation`](crate::Registry::operation): only registered operations run.
///
/// # Retries run the body again
///
/// A call whose answer was lost is retried under its idempotency key, and its database
/// effects land once: the primary records the key in the operation's own transaction. But
/// a retry that reaches a primary before it knows the key was recorded (the first attempt
/// still running, or a new primary it had not replicated to yet) runs `run` again before the
/// key clash rolls that run back. So what `run` does **outside** the transaction — an email,
/// a call to another service, a counter in memory — can happen more than once; only its
/// database writes are exactly once. A key the primary can tell may be a repeat (a retry or
/// a replay, made more than a second before it arrived) is looked up first, and then `run`
/// does not run again. The same holds for an entity's `ActiveModelBehavior` hooks.
///
/// An operation's own error on a node that is no longer the primary (its `?` turned
/// LiteFS's refusal into `Self::Error`) is taken for what it is — "not primary" — and the
/// call runs again on the new primary.
///
/// Why a trait rather than an attribute on an `async fn`: the call site is an ordinary value
/// (`db.run(IncrementPage { page })`), its arguments are a named struct whose serde form is
/// the wire form, and its name, output and error types are plain associated items that
/// rustdoc shows — no hidden generated types.
///
/// ```
/// use litefs_orm::{DbFailure, Operation};
/// use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
/// use serde::{Deserialize, Serialize};
///
/// /// Counts one view of `page` and returns the new count.
/// #[derive(Serialize, Deserialize)]
/// struct IncrementPage {
///     page: String,
/// }
///
/// impl Operation for IncrementPage {
///     const NAME: &'static str = "increment_page";
///     type Output = i64;
///     type Error = DbFailure;
///
///     async fn run(self, txn: &DatabaseTransaction) -> Result<i64, DbFailure> {
///         let row = txn
///             .query_one_raw(Statement::from_sql_and_values(
///                 DbBackend::Sqlite,
///                 "INSERT INTO page_view (page, count) VALUES (?, 1)
///                  ON CONFLICT (page) DO UPDATE SET count = count + 1 RETURNING count",
///                 [self.page.into()],
///             ))
///             .await?
///             .expect("RETURNING gives a row");
///         Ok(row.try_get_by_index(0)?)
///     }
/// }
/// ```
pub trait Operation: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name the operation is registered and sent under; unique per cluster.
    const NAME: &'static str;
    /// What it returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Its own error; `From<DbErr>` lets `?` work on database calls.
    /// [`DbFailure`](crate::DbFailure) serves when there is no other.
    type Error: Serialize + DeserializeOwned + From<DbErr> + Send + 'static;

    /// Runs on the primary, inside the transaction.
    fn run(
        self,
        txn: &DatabaseTransaction,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// The result error of [`ReplicatedDb::run`](crate::ReplicatedDb::run).
#[derive(Debug, thiserror::Error)]
pub enum OpError<E> {
    /// The operation returned its error; its transaction was rolled back.
    #[error("the operation failed: {0:?}")]
    Failed(E),
    /// The operation could not run, or its outcome could not come back (see [`Error`]).
    #[error(transparent)]
    Replicated(#[from] Error),
}

impl<E> OpError<E> {
    /// The operation's own error, if that is what happened.
    pub fn failed(&self) -> Option<&E> {
        match self {
            OpError::Failed(e) => Some(e),
            OpError::Replicated(_) => None,
        }
    }
}

/// Runs a registered operation from its JSON arguments; type-erased for the router.
pub(crate) trait OperationHandler: Send + Sync {
    fn run<'a>(
        &'a self,
        args: serde_json::Value,
        txn: &'a DatabaseTransaction,
    ) -> BoxFut<'a, Result<serde_json::Value, ExecError>>;
}

pub(crate) struct Handler<O>(pub(crate) std::marker::PhantomData<fn() -> O>);

impl<O: Operation> OperationHandler for Handler<O> {
    fn run<'a>(
        &'a self,
        args: serde_json::Value,
        txn: &'a DatabaseTransaction,
    ) -> BoxFut<'a, Result<serde_json::Value, ExecError>> {
        Box::pin(async move {
            let op: O = serde_json::from_value(args).map_err(|e| ExecError::Args(e.to_string()))?;
            run_typed(op, txn).await.and_then(|out| to_json(&out))
        })
    }
}

/// Runs `op` in `txn`, turning its own error into [`ExecError::Operation`] so the
/// transaction rolls back.
pub(crate) async fn run_typed<O: Operation>(
    op: O,
    txn: &DatabaseTransaction,
) -> Result<O::Output, ExecError> {
    match op.run(txn).await {
        Ok(out) => Ok(out),
        Err(e) => Err(ExecError::Operation(to_json(&e)?)),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, ExecError> {
    serde_json::to_value(value).map_err(|e| ExecError::Args(format!("cannot serialize: {e}")))
}
