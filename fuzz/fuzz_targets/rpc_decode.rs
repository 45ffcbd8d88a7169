//! Fuzzes every decoder run on untrusted bytes: the request envelopes and an entity's wire
//! form (on the primary), the answers and the answer signature check (on a replica), and the
//! LiteFS file formats, and consistency tokens (none accepted unsigned). None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use litefs_orm::Replicated;
use litefs_orm::wire::{
    BatchResponse, ErrorBody, OperationRequest, OperationResponse, Outcome, WriteRequest,
    WriteResponse,
};

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
    if let Ok(answer) = serde_json::from_slice::<WriteResponse>(data)
        && let Outcome::Model(model) = answer.outcome
    {
        let _ = post::Entity::from_wire(model.ignoring_unknown_columns());
    }
    let _ = serde_json::from_slice::<OperationResponse>(data);
    let _ = serde_json::from_slice::<BatchResponse<'_>>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    let (signature, body) = data.split_at(data.len().min(64));
    let _ = litefs_orm::auth::verify_answer(
        b"a fuzzing secret of some length",
        "nonce",
        200,
        body,
        &String::from_utf8_lossy(signature),
    );
    if let Ok(text) = std::str::from_utf8(data) {
        let secret = b"a fuzzing secret of some length";
        let (tokens, _) = litefs_orm::consistency::Tokens::decode(
            text,
            secret,
            std::time::Duration::from_secs(60),
        );
        assert!(tokens.is_empty(), "an unsigned token was accepted: {text:?}");
        let _ = text.parse::<litefs_orm::litefs::Pos>();
        let _ = litefs_orm::litefs::parse_lag(text);
    }
});
