//! A unit of replicated work — a forwarded write or an operation — seen the same way by
//! the dispatcher: run it locally, or encode it, send it and decode the answer.

use std::marker::PhantomData;

use bytes::Bytes;
use sea_orm::DatabaseTransaction;

use crate::api::active_model::{Applied, ReplicatedActiveModel};
use crate::api::operation::{self, Operation};
use crate::config::{OPERATION_PATH, RPC_PATH};
use crate::durability::NotDurable;
use crate::error::{Error, Result};
use crate::primary::executor::ExecError;
use crate::protocol::wire::{
    Op, OperationRequest, OperationResponse, SUPPORTED_WIRE_VERSIONS, WIRE_VERSION, WriteRequest,
    WriteResponse,
};

pub(crate) trait Job: Clone + Send + Sync + 'static {
    type Output: Send;
    /// The RPC path it is POSTed to.
    const PATH: &'static str;
    /// Its registered name.
    fn name(&self) -> &'static str;
    /// What it does, as the `op` label of its metrics.
    fn op(&self) -> &'static str;
    /// Runs it in `txn` on this node.
    fn local(
        self,
        txn: &DatabaseTransaction,
    ) -> impl Future<Output = Result<Self::Output, ExecError>> + Send;
    /// The JSON request body for database `db`, carrying the call's idempotency key and the
    /// durability it asks for (none: the primary's).
    fn request(&self, key: &str, db: &str, durability: Option<String>) -> Result<Bytes>;
    /// Decodes the primary's successful answer into the output and where it was committed.
    fn answer(&self, body: &[u8]) -> Result<(Self::Output, Committed), Unreadable>;
    /// Names the operation in an operation error.
    fn name_error(&self, e: Error) -> Error {
        match e {
            Error::Operation { error, .. } => Error::Operation {
                operation: self.name().to_owned(),
                error,
            },
            other => other,
        }
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::Protocol(e.to_string()))
}

/// Where the primary committed a call: the TXID, and the run recorded with the call's key
/// (absent from primaries older than runs). A node holds the commit when it has reached the
/// TXID and holds the key's record of that run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Committed {
    pub(crate) txid: u64,
    pub(crate) run: Option<String>,
    /// Fewer nodes than the primary's durability asks held it in time.
    pub(crate) not_durable: Option<NotDurable>,
}

impl Committed {
    /// The error of a commit that is not yet durable, if it is not.
    pub(crate) fn durability_error(&self) -> Option<Error> {
        self.not_durable.map(|n| Error::NotDurable {
            txid: self.txid,
            held_by: n.held_by,
            wanted: n.wanted,
        })
    }
}

/// A successful answer this node cannot read: the primary committed the call, and said
/// where when that much was readable.
#[derive(Debug)]
pub(crate) struct Unreadable {
    pub(crate) committed: Option<Committed>,
    pub(crate) message: String,
}

impl From<Unreadable> for Error {
    fn from(u: Unreadable) -> Error {
        Error::AnswerMismatch {
            txid: u.committed.map(|c| c.txid),
            message: u.message,
        }
    }
}

/// What every successful answer starts with: read on its own only when the whole answer does
/// not decode, so that it still says where the call was committed.
#[derive(serde::Deserialize)]
struct Envelope {
    v: u32,
    txid: u64,
    #[serde(default)]
    run: Option<String>,
    #[serde(default)]
    not_durable: Option<NotDurable>,
}

impl Envelope {
    fn committed(&self) -> Committed {
        Committed {
            txid: self.txid,
            run: self.run.clone(),
            not_durable: self.not_durable,
        }
    }
}

/// A successful answer's version and commit.
trait Answer {
    fn envelope(&self) -> Envelope;
}

impl Answer for WriteResponse {
    fn envelope(&self) -> Envelope {
        Envelope {
            v: self.v,
            txid: self.txid,
            run: self.run.clone(),
            not_durable: self.not_durable,
        }
    }
}

impl Answer for OperationResponse {
    fn envelope(&self) -> Envelope {
        Envelope {
            v: self.v,
            txid: self.txid,
            run: self.run.clone(),
            not_durable: self.not_durable,
        }
    }
}

/// Decodes a successful answer, and its commit; when it does not decode, its envelope alone.
fn decode<'a, T: serde::Deserialize<'a> + Answer>(
    body: &'a [u8],
) -> Result<(T, Committed), Unreadable> {
    let (answer, envelope) = match serde_json::from_slice::<T>(body) {
        Ok(answer) => {
            let envelope = answer.envelope();
            (Ok(answer), envelope)
        }
        Err(e) => {
            let envelope: Envelope = serde_json::from_slice(body).map_err(|_| Unreadable {
                committed: None,
                message: format!("unreadable answer: {e}"),
            })?;
            (Err(e.to_string()), envelope)
        }
    };
    let unreadable = |message: String| Unreadable {
        committed: Some(envelope.committed()),
        message,
    };
    if !SUPPORTED_WIRE_VERSIONS.contains(&envelope.v) {
        return Err(unreadable(format!(
            "an answer of wire version {}; this node reads {SUPPORTED_WIRE_VERSIONS:?}",
            envelope.v
        )));
    }
    Ok((answer.map_err(unreadable)?, envelope.committed()))
}

/// Insert, update, save or delete of one ActiveModel.
pub(crate) struct WriteJob<A> {
    pub(crate) op: Op,
    pub(crate) model: A,
}

impl<A: Clone> Clone for WriteJob<A> {
    fn clone(&self) -> Self {
        WriteJob {
            op: self.op,
            model: self.model.clone(),
        }
    }
}

impl<A: ReplicatedActiveModel> Job for WriteJob<A> {
    type Output = Applied<A>;
    const PATH: &'static str = RPC_PATH;

    fn name(&self) -> &'static str {
        A::__name()
    }

    fn op(&self) -> &'static str {
        crate::observe::op_label(self.op)
    }

    async fn local(self, txn: &DatabaseTransaction) -> Result<Applied<A>, ExecError> {
        Ok(A::__apply(self.op, self.model, txn).await?)
    }

    fn request(&self, key: &str, db: &str, durability: Option<String>) -> Result<Bytes> {
        encode(&WriteRequest {
            v: WIRE_VERSION,
            entity: A::__name().to_owned(),
            op: self.op,
            model: self.model.__to_wire(),
            key: key.to_owned(),
            db: Some(db.to_owned()),
            durability,
        })
    }

    fn answer(&self, body: &[u8]) -> Result<(Applied<A>, Committed), Unreadable> {
        let (response, committed): (WriteResponse, Committed) = decode(body)?;
        let applied = A::__from_outcome(self.op, response.outcome).map_err(|e| Unreadable {
            committed: Some(committed.clone()),
            message: format!(
                "the saved `{}` does not match this node's entity: {e}",
                A::__name()
            ),
        })?;
        Ok((applied, committed))
    }
}

/// A registered operation, held as its JSON arguments so every attempt runs the same value.
pub(crate) struct OperationJob<O> {
    pub(crate) args: serde_json::Value,
    pub(crate) _op: PhantomData<fn() -> O>,
}

impl<O> Clone for OperationJob<O> {
    fn clone(&self) -> Self {
        OperationJob {
            args: self.args.clone(),
            _op: PhantomData,
        }
    }
}

impl<O: Operation> Job for OperationJob<O> {
    type Output = O::Output;
    const PATH: &'static str = OPERATION_PATH;

    fn name(&self) -> &'static str {
        O::NAME
    }

    fn op(&self) -> &'static str {
        crate::observe::RUN
    }

    async fn local(self, txn: &DatabaseTransaction) -> Result<O::Output, ExecError> {
        let op: O =
            serde_json::from_value(self.args).map_err(|e| ExecError::Args(e.to_string()))?;
        operation::run_typed(op, txn).await
    }

    fn request(&self, key: &str, db: &str, durability: Option<String>) -> Result<Bytes> {
        encode(&OperationRequest {
            v: WIRE_VERSION,
            operation: O::NAME.to_owned(),
            args: self.args.clone(),
            key: key.to_owned(),
            db: Some(db.to_owned()),
            durability,
        })
    }

    fn answer(&self, body: &[u8]) -> Result<(O::Output, Committed), Unreadable> {
        let (response, committed): (OperationResponse, Committed) = decode(body)?;
        let output = serde_json::from_value(response.output).map_err(|e| Unreadable {
            committed: Some(committed.clone()),
            message: format!(
                "operation `{}` answered an output of another shape: {e}",
                O::NAME
            ),
        })?;
        Ok((output, committed))
    }
}
