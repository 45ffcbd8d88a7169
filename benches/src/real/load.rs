//! Concurrent writers for a fixed time, each write timed: the rate, the latency of every write,
//! and the writes that failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::writer::Writer;
use crate::stats::Samples;

/// What one phase of writers measured.
#[derive(Debug, Default)]
pub struct Load {
    /// Successful writes per second.
    pub rate: f64,
    /// Each successful write's time.
    pub latency: Samples,
    /// Writes that failed.
    pub errors: u64,
    /// The first failure, for the notes.
    pub first_error: Option<String>,
}

/// Runs one task per writer until `length` has passed, each writing a fresh item after the
/// other; a write that fails is counted and the task goes on. Gives the writers back.
pub async fn load(writers: Vec<Writer>, length: Duration) -> Result<(Load, Vec<Writer>)> {
    static NEXT: AtomicU64 = AtomicU64::new(10_000_000);
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|mut writer| {
            tokio::spawn(async move {
                let mut latency = Samples::default();
                let (mut errors, mut first) = (0, None);
                while Instant::now() < deadline {
                    let n = NEXT.fetch_add(1, Ordering::Relaxed);
                    let began = Instant::now();
                    match writer.insert(n).await {
                        Ok(()) => latency.push(began.elapsed()),
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                (writer, latency, errors, first)
            })
        })
        .collect();
    let mut out = Load::default();
    let mut writers = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (writer, latency, errors, first) = t.await?;
        writers.push(writer);
        out.latency.extend(&latency);
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first;
        }
    }
    out.rate = out.latency.len() as f64 / start.elapsed().as_secs_f64();
    Ok((out, writers))
}
