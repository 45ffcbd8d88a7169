use litefs_orm::Replicated;

#[derive(Replicated)]
#[litefs(name = "post")]
pub struct Model
where
    String: Clone,
{
    pub id: i32,
}

fn main() {}
