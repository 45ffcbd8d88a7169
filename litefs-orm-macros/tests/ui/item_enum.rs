use litefs_orm::Replicated;

#[derive(Replicated)]
#[litefs(name = "post")]
pub enum Model {
    Draft,
}

fn main() {}
