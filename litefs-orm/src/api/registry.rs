//! The replicated entities a node accepts forwarded writes for, by name.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::DatabaseTransaction;

use crate::BoxFut;
use crate::api::active_model::ReplicatedActiveModel;
use crate::api::operation::{self, Operation, OperationHandler};
use crate::api::replicated::Replicated;
use crate::primary::executor::ExecError;
use crate::protocol::wire::{Op, Outcome, WireModel};

/// Runs one entity's forwarded operations; type-erased so the router can hold many.
pub(crate) trait EntityHandler: Send + Sync {
    fn run<'a>(
        &'a self,
        op: Op,
        wire: WireModel,
        txn: &'a DatabaseTransaction,
    ) -> BoxFut<'a, Result<Outcome, ExecError>>;
}

struct Handler<A>(std::marker::PhantomData<fn() -> A>);

impl<A: ReplicatedActiveModel> EntityHandler for Handler<A> {
    fn run<'a>(
        &'a self,
        op: Op,
        wire: WireModel,
        txn: &'a DatabaseTransaction,
    ) -> BoxFut<'a, Result<Outcome, ExecError>> {
        Box::pin(async move {
            let model = A::__from_wire(wire).map_err(ExecError::Wire)?;
            let applied = A::__apply(op, model, txn).await?;
            Ok(A::__outcome(applied))
        })
    }
}

/// The entities and operations this node runs for others. Only entities registered here can be written
/// over RPC — nothing else, and no raw SQL. Register the same entities on every node.
///
/// ```
/// # use litefs_orm::Replicated;
/// # mod post {
/// #   use sea_orm::entity::prelude::*;
/// #   #[derive(Clone, Debug, PartialEq, DeriveEntityModel, litefs_orm::Replicated)]
/// #   #[sea_orm(table_name = "post")]
/// #   pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub title: String }
/// #   #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #   pub enum Relation {}
/// #   impl ActiveModelBehavior for ActiveModel {}
/// # }
/// use litefs_orm::Registry;
/// let registry = Registry::new().entity::<post::Entity>();
/// assert!(registry.contains("post"));
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    entities: HashMap<&'static str, Arc<dyn EntityHandler>>,
    operations: HashMap<&'static str, Arc<dyn OperationHandler>>,
    duplicates: Vec<&'static str>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.entities.keys().chain(self.operations.keys()))
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers entity `E`, which derives [`Replicated`].
    pub fn entity<E>(mut self) -> Self
    where
        E: Replicated,
        E::ActiveModel: ReplicatedActiveModel,
    {
        let handler = Arc::new(Handler::<E::ActiveModel>(std::marker::PhantomData));
        if self.entities.insert(E::NAME, handler).is_some() {
            self.duplicates.push(E::NAME);
        }
        self
    }

    /// Registers operation `O`: it can then run on the primary from any node.
    pub fn operation<O: Operation>(mut self) -> Self {
        let handler = Arc::new(operation::Handler::<O>(std::marker::PhantomData));
        if self.operations.insert(O::NAME, handler).is_some() {
            self.duplicates.push(O::NAME);
        }
        self
    }

    /// True when an entity or operation of that name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.entities.contains_key(name) || self.operations.contains_key(name)
    }

    pub(crate) fn entity_handler(&self, name: &str) -> Option<&Arc<dyn EntityHandler>> {
        self.entities.get(name)
    }

    pub(crate) fn operation_handler(&self, name: &str) -> Option<&Arc<dyn OperationHandler>> {
        self.operations.get(name)
    }

    pub(crate) fn check(&self) -> crate::Result<()> {
        match self.duplicates.first() {
            Some(name) => Err(crate::Error::Config(format!(
                "two registered entities or operations share the name `{name}`; rename one (`#[litefs(name = \"...\")]` on an entity)"
            ))),
            None => Ok(()),
        }
    }
}
