//! What observability costs a forwarded write: `insert_replicated` from the replica with
//! no metrics recorder and no tracing subscriber listening, against the same with a
//! Prometheus recorder and a subscriber formatting litefs-orm's debug spans, interleaved;
//! and the instrumentation of one forwarded call alone, timed in a loop.
//!
//! A process has one global recorder and one global subscriber, so both are installed once
//! and switched: off, the recorder hands out no-op handles (what the `metrics` facade does
//! with no recorder installed) and the subscriber's filter enables nothing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use litefs_orm::ReplicatedActiveModel;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Registry, reload};

use crate::Options;
use crate::cluster::Bench;
use crate::entity::item;
use crate::report::{Report, Unit as ReportUnit};
use crate::stats::Samples;

/// A recorder that passes to Prometheus while on, and hands out no-op handles while off.
struct Switched {
    on: AtomicBool,
    inner: PrometheusRecorder,
}

impl Recorder for Switched {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.on.load(Ordering::Relaxed) {
            true => self.inner.register_counter(key, metadata),
            false => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.on.load(Ordering::Relaxed) {
            true => self.inner.register_gauge(key, metadata),
            false => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.on.load(Ordering::Relaxed) {
            true => self.inner.register_histogram(key, metadata),
            false => Histogram::noop(),
        }
    }
}

/// The process's switchable recorder and subscriber.
struct Switches {
    recorder: &'static Switched,
    filter: reload::Handle<Targets, Registry>,
}

impl Switches {
    /// Installs them the first time; `None` when another recorder or subscriber was there.
    fn get() -> Option<&'static Switches> {
        static SWITCHES: OnceLock<Option<Switches>> = OnceLock::new();
        SWITCHES
            .get_or_init(|| {
                let recorder: &'static Switched = Box::leak(Box::new(Switched {
                    on: AtomicBool::new(false),
                    inner: PrometheusBuilder::new().build_recorder(),
                }));
                metrics::set_global_recorder(recorder).ok()?;
                litefs_orm::observe::metrics::describe();
                let (filter, handle) = reload::Layer::new(Targets::new());
                let subscriber = tracing_subscriber::registry().with(filter).with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::sink)
                        .with_ansi(false),
                );
                tracing::subscriber::set_global_default(subscriber).ok()?;
                Some(Switches {
                    recorder,
                    filter: handle,
                })
            })
            .as_ref()
    }

    /// Turns the recorder and litefs-orm's debug spans and events on or off.
    fn set(&self, on: bool) -> Result<()> {
        self.recorder.on.store(on, Ordering::Relaxed);
        let targets = match on {
            true => Targets::new().with_target("litefs_orm", tracing::Level::DEBUG),
            false => Targets::new(),
        };
        self.filter
            .reload(targets)
            .map_err(|e| anyhow!("switching the tracing filter: {e}"))
    }
}

/// One `insert_replicated` from the replica, on a settled cluster.
async fn forwarded(bench: &Bench, n: u64) -> Result<Duration> {
    bench.litefs.sync().await?;
    let start = Instant::now();
    item::new(n).insert_replicated(&bench.replica.db).await?;
    Ok(start.elapsed())
}

/// The mean time of one forwarded call's instrumentation, over `iters` calls.
fn instrumentation(bench: &Bench, iters: usize) -> f64 {
    let role = bench.replica.db.role();
    let took = Duration::from_micros(1500);
    let start = Instant::now();
    for i in 0..iters {
        litefs_orm::__private::record_forwarded_call(&role, "0193a2b4c5d6e7f8", took, i as u64);
    }
    start.elapsed().as_secs_f64() * 1e6 / iters as f64
}

/// Measures and records the `observe.*` figures.
pub async fn run(bench: &Bench, opts: &Options, report: &mut Report) -> Result<()> {
    let Some(switches) = Switches::get() else {
        report.notes.push(
            "Observability: not measured (this process has another recorder or subscriber).".into(),
        );
        return Ok(());
    };
    bench.reset().await?;
    let (mut off, mut on) = (Samples::default(), Samples::default());
    // Per pair, on / off: the two writes of a pair run back to back.
    let mut pairs = Vec::new();
    let warmup = 10;
    for i in 0..(opts.latency_iters + warmup) as u64 {
        // ABBA: drift hits both series alike.
        let order = if i % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair = [Duration::ZERO; 2];
        for (k, observed) in order.into_iter().enumerate() {
            switches.set(observed)?;
            pair[usize::from(observed)] = forwarded(bench, 2 * i + k as u64).await?;
        }
        if i >= warmup as u64 {
            off.push(pair[0]);
            on.push(pair[1]);
            pairs.push(pair[1].as_secs_f64() / pair[0].as_secs_f64());
        }
    }
    pairs.sort_by(f64::total_cmp);
    let paired = pairs.get(pairs.len() / 2).copied().unwrap_or(f64::NAN);
    let iters = opts.latency_iters * 100;
    switches.set(false)?;
    let cost_off = instrumentation(bench, iters);
    switches.set(true)?;
    let cost_on = instrumentation(bench, iters);
    switches.set(false)?;
    report.latency(
        "observe.off",
        "insert_replicated from the replica, no recorder, no subscriber",
        &off,
    );
    report.latency(
        "observe.on",
        "insert_replicated from the replica, Prometheus recorder + subscriber at debug",
        &on,
    );
    report.ratio(
        "observe.on_over_off",
        "insert_replicated p50: recorder and subscriber on / off",
        on.p50() / off.p50(),
    );
    report.ratio(
        "observe.paired_ratio",
        "insert_replicated, per back-to-back pair on / off, median [target ≤ 1.02]",
        paired,
    );
    report.add(
        "observe.instrumentation.off",
        "instrumentation of one forwarded call (both nodes), no recorder or subscriber, mean",
        cost_off,
        ReportUnit::Micros,
    );
    report.add(
        "observe.instrumentation.on",
        "instrumentation of one forwarded call (both nodes), recorder and subscriber on, mean",
        cost_on,
        ReportUnit::Micros,
    );
    report.add(
        "observe.instrumentation_share",
        "instrumentation (on) / insert_replicated p50 (off) [target ≤ 2 %]",
        cost_on / off.p50() * 100.0,
        ReportUnit::Percent,
    );
    bench.reset().await
}
