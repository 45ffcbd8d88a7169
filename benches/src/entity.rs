//! The entity the benchmark reads and writes: a small row, typical of an app table.

/// An inventory item.
pub mod item {
    use litefs_orm::Replicated;
    use sea_orm::entity::prelude::*;

    /// One item.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Replicated)]
    #[sea_orm(table_name = "item")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Name.
        pub name: String,
        /// Quantity in stock.
        pub qty: i32,
        /// Unit price.
        pub price: f64,
        /// Optional note.
        pub note: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// `CREATE TABLE` for this entity.
    pub const SCHEMA: &str = "CREATE TABLE item (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        qty INTEGER NOT NULL,
        price REAL NOT NULL,
        note TEXT
    )";

    /// A new item to insert (`id` left to the database).
    pub fn new(n: u64) -> ActiveModel {
        use sea_orm::ActiveValue::Set;
        ActiveModel {
            name: Set(format!("item {n}")),
            qty: Set((n % 100) as i32),
            price: Set(9.5 + (n % 7) as f64),
            note: Set(Some("benchmark".to_owned())),
            ..Default::default()
        }
    }
}
