//! `bench`: runs the harness and prints its table. `--quick` for the short run.

use anyhow::{Context, Result, bail};
use litefs_orm_bench::cores::{NODE_FLAG, pin_this_process, serve_replica_node};
use litefs_orm_bench::{Options, run};

fn main() -> Result<()> {
    let mut opts = Options::full();
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts = Options::quick(),
            "--only" => only = args.next(),
            NODE_FLAG => {
                let mount = args.next().context("--replica-node needs the mount path")?;
                let core = args
                    .next()
                    .context("--replica-node needs a core")?
                    .parse()?;
                // Before the runtime: its threads inherit the pinning.
                pin_this_process(core)?;
                return runtime()?.block_on(serve_replica_node(mount.into()));
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench [--quick] [--only codec|reads|latency|observe|session|throughput|cores|real|durability]\n\n\
                     Measures litefs-orm side by side in one run and prints a Markdown table."
                );
                return Ok(());
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    let all = only.is_none();
    opts.only = only;
    let runtime = runtime()?;
    // On a worker thread, like an app's request handlers (`block_on` polls on this thread,
    // which parks and wakes differently).
    let report =
        runtime.block_on(async move { tokio::spawn(async move { run(&opts).await }).await })??;
    print!("{}", report.table());
    let missing = report.missing();
    if all && !missing.is_empty() {
        bail!("figures missing from this run: {missing:?}");
    }
    Ok(())
}

/// Two workers: the machines this is run on have two cores.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
