//! Every diagnostic of `#[derive(Replicated)]`, checked against its expected compiler output.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
