//! Run with `cargo run -p usage` (standalone: `app.db` here; on LiteFS, set `LITEFS_ORM_*`).
use litefs_orm::{Config, Registry, ReplicatedActiveModel, ReplicatedDb};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, Schema};

// 1. Derive `Replicated` next to `DeriveEntityModel`.
mod post {
    use sea_orm::entity::prelude::*;

    /// A post.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, litefs_orm::Replicated)]
    #[sea_orm(table_name = "post")]
    pub struct Model {
        /// Its id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Its title.
        pub title: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 2. Open the handle: configuration from LITEFS_ORM_* variables (none: standalone).
    let registry = Registry::new().entity::<post::Entity>();
    let db = ReplicatedDb::connect(Config::from_env()?, registry).await?;

    // 3. The schema: created where writes are local (in an app, a migration does this:
    //    `litefs_orm::migrate::prepare`); replicas get it by replication.
    if db.role().writes_locally() {
        let table = Schema::new(db.get_database_backend())
            .create_table_from_entity(post::Entity)
            .if_not_exists()
            .to_owned();
        db.execute(&table).await?;
    }

    // 4. Merge the RPC router into the app; every node serves it.
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hello" }))
        .merge(litefs_orm::router(db.clone()));

    // 5. Write from any node; read locally.
    let saved = post::ActiveModel {
        title: Set("hello".into()),
        ..Default::default()
    }
    .insert_replicated(&db)
    .await?;
    let again = post::Entity::find_by_id(saved.id).one(&db).await?; // always Some here
    println!("saved post {} and read it back: {again:?}", saved.id);

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
