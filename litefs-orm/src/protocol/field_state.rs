//! The wire form of one column's state, [`FieldState`]: JSON with room for the floats JSON
//! cannot write (infinities, NaN).

use sea_orm::Value;
use serde::{Deserialize, Serialize};

/// The state of one column in a [`WireModel`](super::wire::WireModel).
///
/// JSON has no infinities and no NaN, so a non-finite `f32`/`f64` crosses the wire in a
/// form of its own (`set_float` / `unchanged_float`) and arrives as the same value: a
/// forwarded write stores what a local one would.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "FieldRepr")]
pub enum FieldState {
    /// `ActiveValue::Set`: the column is written.
    Set(Value),
    /// `ActiveValue::Unchanged`: the column's known value, not written by an update.
    Unchanged(Value),
}

/// [`FieldState`] as it is written.
#[derive(Deserialize)]
enum FieldRepr {
    #[serde(rename = "set")]
    Set(Value),
    #[serde(rename = "unchanged")]
    Unchanged(Value),
    #[serde(rename = "set_float")]
    SetFloat(NonFinite),
    #[serde(rename = "unchanged_float")]
    UnchangedFloat(NonFinite),
}

impl From<FieldRepr> for FieldState {
    fn from(r: FieldRepr) -> Self {
        match r {
            FieldRepr::Set(v) => FieldState::Set(v),
            FieldRepr::Unchanged(v) => FieldState::Unchanged(v),
            FieldRepr::SetFloat(f) => FieldState::Set(f.value()),
            FieldRepr::UnchangedFloat(f) => FieldState::Unchanged(f.value()),
        }
    }
}

/// A non-finite float: its column type, and which one it is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum NonFinite {
    Float(Special),
    Double(Special),
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Special {
    #[serde(rename = "inf")]
    Infinity,
    #[serde(rename = "-inf")]
    NegInfinity,
    #[serde(rename = "nan")]
    NaN,
}

impl Special {
    fn of(x: f64) -> Option<Special> {
        match x {
            x if x.is_nan() => Some(Special::NaN),
            f64::INFINITY => Some(Special::Infinity),
            f64::NEG_INFINITY => Some(Special::NegInfinity),
            _ => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Special::Infinity => f64::INFINITY,
            Special::NegInfinity => f64::NEG_INFINITY,
            Special::NaN => f64::NAN,
        }
    }
}

impl NonFinite {
    fn of(v: &Value) -> Option<NonFinite> {
        match v {
            Value::Float(Some(x)) => Special::of(f64::from(*x)).map(NonFinite::Float),
            Value::Double(Some(x)) => Special::of(*x).map(NonFinite::Double),
            _ => None,
        }
    }

    fn value(self) -> Value {
        match self {
            NonFinite::Float(s) => Value::Float(Some(s.as_f64() as f32)),
            NonFinite::Double(s) => Value::Double(Some(s.as_f64())),
        }
    }
}

impl Serialize for FieldState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (index, name, value) = match self {
            FieldState::Set(v) => (0, "set", v),
            FieldState::Unchanged(v) => (1, "unchanged", v),
        };
        match NonFinite::of(value) {
            None => s.serialize_newtype_variant("FieldState", index, name, value),
            Some(f) => {
                let name = if index == 0 {
                    "set_float"
                } else {
                    "unchanged_float"
                };
                s.serialize_newtype_variant("FieldState", index + 2, name, &f)
            }
        }
    }
}
