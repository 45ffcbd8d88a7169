//! What the consistency layer costs a request that carries no token: the same trivial
//! route through an Axum router with and without `ConsistencyLayer`, called in-process in
//! alternating pairs.

use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::Body;
use axum::http::Request;
use litefs_orm::consistency::ConsistencyLayer;
use tower::ServiceExt;

use crate::Options;
use crate::cluster::Bench;
use crate::report::{Report, Unit};
use crate::stats::Samples;

async fn once(router: &axum::Router) -> Result<Duration> {
    let request = Request::get("/").body(Body::empty())?;
    let start = Instant::now();
    let response = router.clone().oneshot(request).await?;
    let elapsed = start.elapsed();
    anyhow::ensure!(response.status() == 200, "answered {}", response.status());
    Ok(elapsed)
}

/// Runs the section on the replica's handle.
pub async fn run(bench: &Bench, opts: &Options, report: &mut Report) -> Result<()> {
    let plain = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let layered = plain
        .clone()
        .layer(ConsistencyLayer::new(bench.replica.db.clone()));
    let (mut without, mut with) = (Samples::default(), Samples::default());
    let iters = opts.codec_iters.max(10);
    for _ in 0..iters / 10 {
        once(&plain).await?;
        once(&layered).await?;
    }
    for i in 0..iters {
        // Alternate which goes first, so that neither always meets a warmer cache.
        if i % 2 == 0 {
            without.push(once(&plain).await?);
            with.push(once(&layered).await?);
        } else {
            with.push(once(&layered).await?);
            without.push(once(&plain).await?);
        }
    }
    report.add(
        "session.no_token.plain.p50",
        "a request without a token, router without the layer, p50",
        without.p50(),
        Unit::Micros,
    );
    report.add(
        "session.no_token.layered.p50",
        "the same through ConsistencyLayer, p50",
        with.p50(),
        Unit::Micros,
    );
    report.add(
        "session.no_token.overhead",
        "what the layer adds to a request without a token = layered p50 − plain p50",
        with.p50() - without.p50(),
        Unit::Micros,
    );
    Ok(())
}
