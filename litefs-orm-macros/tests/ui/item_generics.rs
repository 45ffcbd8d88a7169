use litefs_orm::Replicated;

#[derive(Replicated)]
#[litefs(name = "post")]
pub struct Model<T: Clone> {
    pub id: T,
}

fn main() {}
