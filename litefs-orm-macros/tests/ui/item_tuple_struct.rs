use litefs_orm::Replicated;

#[derive(Replicated)]
#[litefs(name = "post")]
pub struct Model(pub i32, pub String);

fn main() {}
