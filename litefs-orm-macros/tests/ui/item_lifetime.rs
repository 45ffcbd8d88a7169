use litefs_orm::Replicated;

#[derive(Replicated)]
#[litefs(name = "post")]
pub struct Model<'a> {
    pub title: &'a str,
}

fn main() {}
