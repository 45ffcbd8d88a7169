//! The harness runs end to end with tiny counts and produces every figure; timings are
//! never checked here.

use litefs_orm_bench::{Options, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_produces_every_figure() {
    let mut opts = Options::tiny();
    opts.node_exe = env!("CARGO_BIN_EXE_bench").into();
    let report = run(&opts).await.expect("the harness runs");
    assert_eq!(report.missing(), Vec::<&str>::new(), "{}", report.table());
}
