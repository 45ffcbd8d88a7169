//! Clusters of the test app's nodes on real LiteFS: `litefs_orm_testkit::apps::AppCluster` with
//! the test entities, operations and schema.

use litefs_orm_testkit::apps::{AppCluster, AppOptions, Engine};

use crate::{entities, operations, registry};

/// Three nodes on real LiteFS with the test schema, WAL mode; change what a test needs.
pub fn setup() -> AppOptions {
    AppOptions::new(Engine::Real)
        .schema(entities::post::SCHEMA)
        .schema(entities::kitchen::SCHEMA)
        .schema(entities::secret::SCHEMA)
        .schema(operations::PAGE_VIEW_SCHEMA)
}

/// Starts a cluster as `options` say, every node serving litefs-orm's router.
pub async fn start(options: AppOptions) -> AppCluster {
    AppCluster::start(options, registry, litefs_orm::router)
        .await
        .unwrap_or_else(|e| panic!("cannot start the cluster: {e}"))
}
