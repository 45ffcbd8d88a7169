use litefs_orm::Replicated;

#[derive(Replicated)]
#[litefs(name = "post")]
pub struct Model;

fn main() {}
