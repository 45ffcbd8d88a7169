//! The versioned wire format of forwarded writes: entity wire forms, requests and answers.
//!
//! SeaORM's `ActiveModel` has no serde support, so `#[derive(Replicated)]` turns each one
//! into a [`WireModel`]: per column its state ([`FieldState::Set`] or
//! [`FieldState::Unchanged`]; a `NotSet` column is absent) and its value as a
//! [`sea_orm::Value`]. Decoding converts each value back through the field's own type, so a
//! value of the wrong type is rejected by name instead of reaching SQL.

use std::collections::BTreeMap;

use sea_orm::sea_query::ValueType;
use sea_orm::{ActiveValue, Value};
use serde::{Deserialize, Serialize};

/// Version of the wire format this node sends. Version 2 added signed answers
/// ([`ANSWER_SIGNATURE_HEADER`](crate::auth::ANSWER_SIGNATURE_HEADER)) and made the
/// idempotency key required; a primary of version 1 refuses version-2 requests, so a
/// replica never takes an older primary's unsigned answer for a signed one.
pub const WIRE_VERSION: u32 = 2;

/// The wire versions a primary accepts (it answers each in its own version) and a replica
/// reads answers of: version-1 replicas keep writing through a version-2 primary during a
/// rolling deploy.
pub const SUPPORTED_WIRE_VERSIONS: std::ops::RangeInclusive<u32> = 1..=WIRE_VERSION;

/// A column type that can cross the wire: anything SeaORM converts to and from [`Value`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be replicated: it does not convert to and from `sea_orm::Value`",
    label = "this column type has no wire form",
    note = "litefs-orm forwards columns of types SeaORM stores: integers, floats, bool, String, chrono, uuid, Vec<u8>, serde_json::Value, rust_decimal, DeriveActiveEnum enums, and Option of these"
)]
pub trait WireType: Into<Value> + ValueType + Clone {}

impl<T: Into<Value> + ValueType + Clone> WireType for T {}

/// Converts a wire value to the field's type.
///
/// JSON cannot tell `Value::Json(Some(null))` from `Value::Json(None)`, so a JSON `null`
/// arrives as the latter; a non-optional JSON field takes it back as `null`.
fn convert<T: WireType>(v: Value) -> Option<T> {
    let json_null = matches!(v, Value::Json(None));
    match T::try_from(v) {
        Ok(t) => Some(t),
        Err(_) if json_null => {
            T::try_from(Value::Json(Some(Box::new(serde_json::Value::Null)))).ok()
        }
        Err(_) => None,
    }
}

pub use super::field_state::FieldState;

/// A wire form that does not match its entity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A column's value has another type than the field.
    #[error("column `{column}` has a value of the wrong type for `{expected}`")]
    WrongType {
        /// The field name.
        column: String,
        /// The field's Rust type.
        expected: &'static str,
    },
    /// The wire form names a column the entity does not have.
    #[error("unknown column `{0}`")]
    UnknownColumn(String),
    /// The answer holds the outcome of another operation than the one sent.
    #[error("the answer to {0} holds the outcome of another operation")]
    OtherOutcome(&'static str),
    /// A model is missing a column that a full model must carry.
    #[error("column `{0}` is missing from the model")]
    MissingColumn(String),
}

/// The wire form of one ActiveModel, keyed by field name. Built by `#[derive(Replicated)]`.
///
/// ```
/// use litefs_orm::wire::{FieldState, WireModel};
/// use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
///
/// let mut w = WireModel::default();
/// w.put("id", &Unchanged(7));
/// w.put("name", &Set("x".to_owned()));
/// w.put("note", &NotSet::<Option<String>>);
/// let json = serde_json::to_string(&w).unwrap();
/// let mut back: WireModel = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.take::<i32>("id").unwrap(), Unchanged(7));
/// assert_eq!(back.take::<String>("name").unwrap(), Set("x".to_owned()));
/// assert_eq!(back.take::<Option<String>>("note").unwrap(), NotSet);
/// back.finish().unwrap();
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WireModel {
    columns: BTreeMap<String, FieldState>,
    /// Columns left over at [`finish`](WireModel::finish) are ignored, not an error.
    #[serde(skip)]
    lenient: bool,
}

impl WireModel {
    /// Records a column; `NotSet` leaves it out.
    pub fn put<T: WireType>(&mut self, column: &str, value: &ActiveValue<T>) {
        let state = match value {
            ActiveValue::Set(v) => FieldState::Set(v.clone().into()),
            ActiveValue::Unchanged(v) => FieldState::Unchanged(v.clone().into()),
            ActiveValue::NotSet => return,
        };
        self.columns.insert(column.to_owned(), state);
    }

    /// Takes a column back out as the field's own type; absent means `NotSet`.
    pub fn take<T: WireType>(&mut self, column: &str) -> Result<ActiveValue<T>, WireError> {
        let wrong = || WireError::WrongType {
            column: column.to_owned(),
            expected: std::any::type_name::<T>(),
        };
        Ok(match self.columns.remove(column) {
            None => ActiveValue::NotSet,
            Some(FieldState::Set(v)) => ActiveValue::Set(convert(v).ok_or_else(wrong)?),
            Some(FieldState::Unchanged(v)) => ActiveValue::Unchanged(convert(v).ok_or_else(wrong)?),
        })
    }

    /// Ends decoding: any column left over is unknown to the entity (unless
    /// [`ignoring_unknown_columns`](WireModel::ignoring_unknown_columns)).
    pub fn finish(self) -> Result<(), WireError> {
        match self.columns.into_keys().next() {
            Some(column) if !self.lenient => Err(WireError::UnknownColumn(column)),
            _ => Ok(()),
        }
    }

    /// This wire form, decoding without the columns the entity does not know. For the
    /// primary's answer only: a saved model from a primary whose entity has a column more
    /// (a rolling deploy) still reads as this node's model. A request's unknown column is
    /// always refused, since writing without it would lose what the caller set.
    ///
    /// ```
    /// use litefs_orm::wire::WireModel;
    /// use sea_orm::ActiveValue::Unchanged;
    ///
    /// let mut w = WireModel::default();
    /// w.put("added_later", &Unchanged(1));
    /// assert!(w.clone().finish().is_err());
    /// assert!(w.ignoring_unknown_columns().finish().is_ok());
    /// ```
    pub fn ignoring_unknown_columns(mut self) -> Self {
        self.lenient = true;
        self
    }

    /// The number of columns present (not `NotSet`).
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True when every column is `NotSet`.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// The write operations that can be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `ActiveModelTrait::insert`.
    Insert,
    /// `ActiveModelTrait::update`.
    Update,
    /// `ActiveModelTrait::save`.
    Save,
    /// `ActiveModelTrait::delete`.
    Delete,
}

impl Op {
    /// The name of the replicated method that performs this operation.
    pub fn method(self) -> &'static str {
        match self {
            Op::Insert => "insert_replicated",
            Op::Update => "update_replicated",
            Op::Save => "save_replicated",
            Op::Delete => "delete_replicated",
        }
    }
}

/// A forwarded write, as POSTed to the primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    /// [`WIRE_VERSION`].
    pub v: u32,
    /// The entity's registered name (its table name unless overridden).
    pub entity: String,
    /// What to do.
    pub op: Op,
    /// The ActiveModel's wire form.
    pub model: WireModel,
    /// The call's idempotency key, the same in every attempt: a primary that already
    /// committed this key answers with the recorded result instead of writing again. Every
    /// request carries one, so a replayed request is answered from the record too.
    pub key: String,
    /// The database it writes to (its file name in the mount), for an endpoint serving
    /// several ([`router_for`](crate::router_for)); absent: the endpoint's first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// The durability the caller asks for ([`Durability`](crate::Durability), as its
    /// `Display` writes it); absent: the primary's own. Sent only when not `local`, so
    /// primaries older than durability still take requests that do not ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<String>,
}

/// What a forwarded write produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The saved model (insert, update, save), every column `Unchanged`.
    Model(WireModel),
    /// Rows removed by a delete.
    Deleted {
        /// `DeleteResult::rows_affected`.
        rows_affected: u64,
    },
}

/// The primary's answer to a successful write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriteResponse {
    /// [`WIRE_VERSION`].
    pub v: u32,
    /// The primary's LiteFS TXID after the commit (0 when standalone).
    pub txid: u64,
    /// The run that committed the call, recorded with its idempotency key: a node holds
    /// this commit when it holds the key's record with this run. Absent from primaries
    /// older than runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Set when fewer nodes than the primary's durability asks held the commit within its
    /// timeout: committed, not yet durable. Absent from primaries older than durability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_durable: Option<crate::durability::NotDurable>,
    /// The result.
    pub outcome: Outcome,
}

/// A registered [`Operation`](crate::Operation) to run on the primary, as POSTed there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationRequest {
    /// [`WIRE_VERSION`].
    pub v: u32,
    /// The operation's registered name.
    pub operation: String,
    /// The operation value itself: its arguments.
    pub args: serde_json::Value,
    /// The call's idempotency key, as in [`WriteRequest::key`].
    pub key: String,
    /// The database, as in [`WriteRequest::db`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// The durability the caller asks for ([`Durability`](crate::Durability), as its
    /// `Display` writes it); absent: the primary's own. Sent only when not `local`, so
    /// primaries older than durability still take requests that do not ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<String>,
}

/// The primary's answer to a successful operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationResponse {
    /// [`WIRE_VERSION`].
    pub v: u32,
    /// The primary's LiteFS TXID after the commit (0 when standalone).
    pub txid: u64,
    /// The run that committed the call, as in [`WriteResponse::run`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Set when fewer nodes than the primary's durability asks held the commit within its
    /// timeout: committed, not yet durable. Absent from primaries older than durability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_durable: Option<crate::durability::NotDurable>,
    /// The operation's output.
    pub output: serde_json::Value,
}

/// Several calls in one request ([`BATCH_PATH`](crate::BATCH_PATH)): a replica sends the
/// calls that queue behind one in flight to the same primary together. Each call is a
/// whole [`WriteRequest`] or [`OperationRequest`] body, byte for byte as it would be sent
/// alone, so its idempotency key and digest are the same either way.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest<'a> {
    /// [`WIRE_VERSION`].
    pub v: u32,
    /// The database every call writes to, as in [`WriteRequest::db`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// The calls, answered in this order.
    #[serde(borrow)]
    pub calls: Vec<BatchCall<'a>>,
}

/// One call of a [`BatchRequest`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCall<'a> {
    /// The path the call would be POSTed to alone: [`RPC_PATH`](crate::RPC_PATH) or
    /// [`OPERATION_PATH`](crate::OPERATION_PATH).
    pub path: String,
    /// The call's request body.
    #[serde(borrow)]
    pub body: &'a serde_json::value::RawValue,
}

/// The primary's answer to a [`BatchRequest`]: one answer per call, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchResponse<'a> {
    /// [`WIRE_VERSION`].
    pub v: u32,
    /// The answers.
    #[serde(borrow)]
    pub answers: Vec<BatchAnswer<'a>>,
}

/// One call's answer in a [`BatchResponse`]: the HTTP status and body it would have had alone.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchAnswer<'a> {
    /// 200 with a [`WriteResponse`] or [`OperationResponse`] body, else an [`ErrorBody`].
    pub status: u16,
    /// The answer's body.
    #[serde(borrow)]
    pub body: &'a serde_json::value::RawValue,
}

/// Why the primary refused or failed a request; sent with a 4xx or 5xx status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, stale, replayed or wrong signature (401).
    Unauthorized,
    /// Not JSON, wrong version, or a model that does not match its entity (400).
    BadRequest,
    /// No replicated entity of that name is registered (404).
    UnknownEntity,
    /// The body is over the limit (413).
    TooLarge,
    /// This node is not the primary (409): the write was not applied.
    NotPrimary,
    /// The database refused the write (422): nothing was committed.
    Rejected,
    /// The operation returned its own error (422): its transaction was rolled back.
    OperationFailed,
    /// The write failed on the primary for another reason (500): nothing was committed.
    Internal,
    /// The endpoint serves no database of that name (404).
    UnknownDatabase,
    /// The primary's database did not answer before the write's deadline, before the
    /// write's commit (503): nothing was committed; ask again.
    Stalled,
    /// The primary cannot tell whether the write was committed (503): its database stalled
    /// while committing it, or LiteFS did not record the commit. Ask again under the same
    /// idempotency key: a committed call is answered from its record, applied once.
    Uncertain,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// [`WIRE_VERSION`].
    pub v: u32,
    /// What went wrong.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// For [`ErrorCode::Rejected`]: the database's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<crate::error::DbFailure>,
    /// For [`ErrorCode::NotPrimary`]: the primary this node knows of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// For [`ErrorCode::OperationFailed`]: the operation's error value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

impl ErrorBody {
    /// An error answer with just a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            v: WIRE_VERSION,
            code,
            message: message.into(),
            db: None,
            primary: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ActiveValue::Set;

    fn round_trip(w: &WireModel) -> WireModel {
        serde_json::from_str(&serde_json::to_string(w).unwrap()).unwrap()
    }

    #[test]
    fn a_json_null_survives_the_trip() {
        let mut w = WireModel::default();
        w.put("doc", &Set(serde_json::Value::Null));
        let mut back = round_trip(&w);
        assert_eq!(
            back.take::<serde_json::Value>("doc").unwrap(),
            Set(serde_json::Value::Null)
        );
    }

    #[test]
    fn a_value_of_another_type_names_the_column() {
        let mut w = WireModel::default();
        w.put("n", &Set("text".to_owned()));
        let err = round_trip(&w).take::<i32>("n").unwrap_err();
        assert!(matches!(err, WireError::WrongType { ref column, .. } if column == "n"));
    }

    #[test]
    fn non_finite_floats_survive_the_trip() {
        let mut w = WireModel::default();
        w.put("inf", &Set(f64::INFINITY));
        w.put("neg", &Set(Some(f64::NEG_INFINITY)));
        w.put("nan", &Set(Some(f64::NAN)));
        w.put("f32", &ActiveValue::Unchanged(f32::INFINITY));
        let mut back = round_trip(&w);
        assert_eq!(back.take::<f64>("inf").unwrap(), Set(f64::INFINITY));
        assert_eq!(
            back.take::<Option<f64>>("neg").unwrap(),
            Set(Some(f64::NEG_INFINITY))
        );
        let nan = back.take::<Option<f64>>("nan").unwrap();
        assert!(matches!(nan, Set(Some(x)) if x.is_nan()), "{nan:?}");
        assert_eq!(
            back.take::<f32>("f32").unwrap(),
            ActiveValue::Unchanged(f32::INFINITY)
        );
    }

    #[test]
    fn a_leftover_column_is_unknown() {
        let mut w = WireModel::default();
        w.put("extra", &Set(1i32));
        assert_eq!(w.finish(), Err(WireError::UnknownColumn("extra".into())));
    }
}
