//! Fuzzes every decoder a primary runs on untrusted bytes: the request envelopes, an
//! entity's wire form, and the LiteFS file formats. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use litefs_orm::Replicated;
use litefs_orm::wire::{OperationRequest, WriteRequest};

mod post {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, litefs_orm::Replicated)]
    #[sea_orm(table_name = "post")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub title: String,
        pub score: Option<f64>,
        pub doc: Json,
        pub data: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<WriteRequest>(data) {
        let _ = post::Entity::from_wire(request.model);
    }
    let _ = serde_json::from_slice::<OperationRequest>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<litefs_orm::litefs::Pos>();
        let _ = litefs_orm::litefs::parse_lag(text);
    }
});
