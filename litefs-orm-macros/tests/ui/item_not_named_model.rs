use litefs_orm::Replicated;

#[derive(Replicated)]
#[litefs(name = "post")]
pub struct Post {
    pub id: i32,
}

fn main() {}
