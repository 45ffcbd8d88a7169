//! The replicated write methods of every `#[derive(Replicated)]` entity's ActiveModel.

use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    TryIntoModel,
};

use crate::BoxFut;
use crate::api::replicated::Replicated;
use crate::db::ReplicatedDb;
use crate::error::Result;
use crate::protocol::wire::{Op, Outcome, WireError, WireModel};

/// The model an ActiveModel saves to.
pub type ModelOf<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Model;

/// What an operation produced, typed.
#[derive(Debug)]
#[doc(hidden)]
pub enum Applied<A: ActiveModelTrait> {
    /// Insert or update.
    Model(ModelOf<A>),
    /// Save.
    Saved(A),
    /// Delete.
    Deleted(u64),
}

/// Insert, update, save and delete that run on the LiteFS primary from any node.
///
/// Implemented for the ActiveModel of every entity that derives
/// [`Replicated`](crate::Replicated). On the primary (or standalone) each call runs locally
/// in a transaction; on a replica it is forwarded to the primary, which runs it — with the
/// entity's `ActiveModelBehavior` hooks, once — and the call returns when this node's
/// replica has the write. Columns keep their `Set` / `Unchanged` / `NotSet` states across
/// the trip, so an update writes only what was set.
///
/// ```no_run
/// # use litefs_orm::{Config, Registry, ReplicatedDb, Replicated, ReplicatedActiveModel};
/// # use sea_orm::entity::prelude::*;
/// # use sea_orm::ActiveValue::Set;
/// # #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
/// # #[sea_orm(table_name = "post")]
/// # pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub title: String }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// # pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {}
/// # async fn run() -> litefs_orm::Result<()> {
/// let db = ReplicatedDb::connect(Config::from_env()?, Registry::new().entity::<Entity>()).await?;
/// let post = ActiveModel { title: Set("hello".into()), ..Default::default() }
///     .insert_replicated(&db)
///     .await?;
/// let mut edit: ActiveModel = post.into();
/// edit.title = Set("hello, world".into());
/// edit.update_replicated(&db).await?;
/// # Ok(()) }
/// ```
pub trait ReplicatedActiveModel: ActiveModelTrait + Send + Sync + Sized + 'static {
    /// `ActiveModelTrait::insert`, on the primary.
    fn insert_replicated(
        self,
        db: &ReplicatedDb,
    ) -> impl Future<Output = Result<ModelOf<Self>>> + Send;

    /// `ActiveModelTrait::update`, on the primary; only `Set` columns are written.
    fn update_replicated(
        self,
        db: &ReplicatedDb,
    ) -> impl Future<Output = Result<ModelOf<Self>>> + Send;

    /// `ActiveModelTrait::save` (insert when the primary key is `NotSet`), on the primary.
    fn save_replicated(self, db: &ReplicatedDb) -> impl Future<Output = Result<Self>> + Send;

    /// `ActiveModelTrait::delete`, on the primary; returns the number of rows deleted.
    ///
    /// That is SeaORM's `DeleteResult::rows_affected`: `DeleteResult` itself is
    /// `#[non_exhaustive]`, so no crate but SeaORM can build one to return.
    fn delete_replicated(self, db: &ReplicatedDb) -> impl Future<Output = Result<u64>> + Send;

    #[doc(hidden)]
    fn __name() -> &'static str;
    #[doc(hidden)]
    fn __to_wire(&self) -> WireModel;
    #[doc(hidden)]
    fn __from_wire(wire: WireModel) -> Result<Self, WireError>;
    #[doc(hidden)]
    fn __apply<'a, C: ConnectionTrait>(
        op: Op,
        model: Self,
        conn: &'a C,
    ) -> BoxFut<'a, Result<Applied<Self>, DbErr>>;
    #[doc(hidden)]
    fn __outcome(applied: Applied<Self>) -> Outcome;
    #[doc(hidden)]
    fn __from_outcome(op: Op, outcome: Outcome) -> Result<Applied<Self>, WireError>;
}

impl<A> ReplicatedActiveModel for A
where
    A: ActiveModelBehavior + Send + Sync + 'static + TryIntoModel<ModelOf<A>>,
    A::Entity: Replicated + EntityTrait<ActiveModel = A>,
    ModelOf<A>: IntoActiveModel<A> + Sync,
{
    async fn insert_replicated(self, db: &ReplicatedDb) -> Result<ModelOf<Self>> {
        match db.write(Op::Insert, self).await? {
            Applied::Model(m) => Ok(m),
            _ => Err(unexpected(Op::Insert)),
        }
    }

    async fn update_replicated(self, db: &ReplicatedDb) -> Result<ModelOf<Self>> {
        match db.write(Op::Update, self).await? {
            Applied::Model(m) => Ok(m),
            _ => Err(unexpected(Op::Update)),
        }
    }

    async fn save_replicated(self, db: &ReplicatedDb) -> Result<Self> {
        match db.write(Op::Save, self).await? {
            Applied::Saved(a) => Ok(a),
            _ => Err(unexpected(Op::Save)),
        }
    }

    async fn delete_replicated(self, db: &ReplicatedDb) -> Result<u64> {
        match db.write(Op::Delete, self).await? {
            Applied::Deleted(d) => Ok(d),
            _ => Err(unexpected(Op::Delete)),
        }
    }

    fn __name() -> &'static str {
        <A::Entity as Replicated>::NAME
    }

    fn __to_wire(&self) -> WireModel {
        <A::Entity as Replicated>::to_wire(self)
    }

    fn __from_wire(wire: WireModel) -> Result<Self, WireError> {
        <A::Entity as Replicated>::from_wire(wire)
    }

    fn __apply<'a, C: ConnectionTrait>(
        op: Op,
        model: Self,
        conn: &'a C,
    ) -> BoxFut<'a, Result<Applied<Self>, DbErr>> {
        Box::pin(async move {
            Ok(match op {
                Op::Insert => Applied::Model(model.insert(conn).await?),
                Op::Update => Applied::Model(model.update(conn).await?),
                Op::Save => Applied::Saved(model.save(conn).await?),
                Op::Delete => Applied::Deleted(model.delete(conn).await?.rows_affected),
            })
        })
    }

    fn __outcome(applied: Applied<Self>) -> Outcome {
        match applied {
            Applied::Model(m) => Outcome::Model(m.into_active_model().__to_wire()),
            Applied::Saved(a) => Outcome::Model(a.__to_wire()),
            Applied::Deleted(rows_affected) => Outcome::Deleted { rows_affected },
        }
    }

    fn __from_outcome(op: Op, outcome: Outcome) -> Result<Applied<Self>, WireError> {
        let outcome = match outcome {
            Outcome::Model(w) => Outcome::Model(w.ignoring_unknown_columns()),
            other => other,
        };
        match (op, outcome) {
            (Op::Delete, Outcome::Deleted { rows_affected }) => Ok(Applied::Deleted(rows_affected)),
            (Op::Save, Outcome::Model(w)) => Ok(Applied::Saved(Self::__from_wire(w)?)),
            (Op::Insert | Op::Update, Outcome::Model(w)) => {
                let model = Self::__from_wire(w)?
                    .try_into_model()
                    .map_err(|e| WireError::MissingColumn(e.to_string()))?;
                Ok(Applied::Model(model))
            }
            (_, _) => Err(WireError::MissingColumn(
                "outcome of another operation".into(),
            )),
        }
    }
}

fn unexpected(op: Op) -> crate::Error {
    crate::Error::Protocol(format!("{op:?} produced the result of another operation"))
}
