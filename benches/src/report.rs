//! The figures of one run, and the Markdown table they print as.

use std::fmt::Write as _;

use crate::stats::Samples;

/// What a figure measures in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds.
    Micros,
    /// Operations per second.
    PerSec,
    /// A ratio of two figures of this run.
    Ratio,
    /// Bytes.
    Bytes,
    /// A share of another figure of this run, in percent.
    Percent,
    /// A count of events (failed writes).
    Count,
}

/// One measured or derived number.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Stable key, e.g. `insert.local.p50`.
    pub key: String,
    /// What it is, for people.
    pub label: String,
    /// The number.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
}

/// Every figure of a run, in the order measured, plus notes.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The figures.
    pub figures: Vec<Figure>,
    /// Lines printed under the table (machine, settings, caveats).
    pub notes: Vec<String>,
    /// Keys beyond [`EXPECTED`] that a section which ran promises (the real-LiteFS section's,
    /// when it is not skipped).
    pub expected: Vec<String>,
}

/// The keys every complete run reports (the smoke test checks them all).
pub const EXPECTED: &[&str] = &[
    "session.no_token.plain.p50",
    "session.no_token.layered.p50",
    "session.no_token.overhead",
    "read.pk.handle.p50",
    "read.pk.plain.p50",
    "read.pk.ratio",
    "read.pk.paired_ratio",
    "read.scan.handle.p50",
    "read.scan.plain.p50",
    "read.scan.ratio",
    "read.scan.paired_ratio",
    "insert.local.p50",
    "insert.local.p99",
    "insert.forwarded.p50",
    "insert.forwarded.p99",
    "insert.forwarded_ryw.p50",
    "insert.forwarded_ryw.p99",
    "insert.wait.p50",
    "insert.wait.p99",
    "rtt.http.p50",
    "rtt.tcp.p50",
    "insert.overhead_vs_http_rtt",
    "insert.overhead_paired",
    "insert.overhead_vs_tcp_rtt",
    "path.encode.p50",
    "path.send.p50",
    "path.handler.p50",
    "path.http.p50",
    "path.decode.p50",
    "path.server_beyond_local.p50",
    "rtt.refused.p50",
    "path.intake.p50",
    "path.statement",
    "path.pos_read",
    "observe.off.p50",
    "observe.on.p50",
    "observe.on_over_off",
    "observe.paired_ratio",
    "observe.instrumentation.off",
    "observe.instrumentation.on",
    "observe.instrumentation_share",
    "wire.request_bytes",
    "wire.answer_bytes",
    "wire.encode",
    "wire.decode",
    "wire.answer_encode",
    "wire.answer_decode",
    "wire.sign",
    "wire.verify",
    "wire.verify_busy",
    "tput.gc.local.1",
    "tput.gc.forwarded.1",
    "tput.gc.local.16",
    "tput.gc.forwarded.16",
    "tput.gc.local.64",
    "tput.gc.forwarded.64",
    "tput.single.local.1",
    "tput.single.forwarded.1",
    "tput.single.local.16",
    "tput.single.forwarded.16",
    "tput.single.local.64",
    "tput.single.forwarded.64",
    "tput.gc.uncoalesced.16",
    "tput.gc.uncoalesced.64",
    "tput.gc.local_paused.64",
    "tput.gc.forwarded_no_wait.64",
    "tput.gc.forward_only.64",
    "tput.forwarded_over_local.64",
    "tput.forwarded_no_wait_over_local.64",
    "tput.coalescing_gain.16",
    "tput.coalescing_gain.64",
    "tput.forward_only_over_local.64",
    "tput.forwarded_over_single_local.64",
    "tput.gc_gain.local.16",
    "tput.gc_gain.forwarded.16",
    "tput.gc_gain.local.64",
    "tput.gc_gain.forwarded.64",
    "tput.plain.64",
    "tput.forwarded_over_plain.64",
    "cores.local.1",
    "cores.forwarded.1",
    "cores.forwarded_over_local.1",
    "cores.plain.1",
    "cores.forwarded_over_plain.1",
    "cores.local.16",
    "cores.forwarded.16",
    "cores.forwarded_over_local.16",
    "cores.plain.16",
    "cores.forwarded_over_plain.16",
    "cores.local.64",
    "cores.forwarded.64",
    "cores.forwarded_over_local.64",
    "cores.plain.64",
    "cores.forwarded_over_plain.64",
];

impl Report {
    /// Adds one figure.
    pub fn add(&mut self, key: &str, label: &str, value: f64, unit: Unit) {
        self.figures.push(Figure {
            key: key.to_owned(),
            label: label.to_owned(),
            value,
            unit,
        });
    }

    /// Adds `key.p50` and `key.p99` of `samples`.
    pub fn latency(&mut self, key: &str, label: &str, samples: &Samples) {
        self.add(
            &format!("{key}.p50"),
            &format!("{label}, p50"),
            samples.p50(),
            Unit::Micros,
        );
        self.add(
            &format!("{key}.p99"),
            &format!("{label}, p99"),
            samples.p99(),
            Unit::Micros,
        );
    }

    /// Adds a ratio.
    pub fn ratio(&mut self, key: &str, label: &str, value: f64) {
        self.add(key, label, value, Unit::Ratio);
    }

    /// The value of `key`, if measured.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.figures.iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// The keys of [`EXPECTED`] and [`Report::expected`] this report lacks, or has as a
    /// non-finite number.
    pub fn missing(&self) -> Vec<String> {
        EXPECTED
            .iter()
            .copied()
            .chain(self.expected.iter().map(String::as_str))
            .filter(|k| !self.get(k).is_some_and(f64::is_finite))
            .map(str::to_owned)
            .collect()
    }

    /// The figures as a Markdown table, then the notes.
    pub fn table(&self) -> String {
        let mut out = String::from("| figure | value | key |\n|---|---:|---|\n");
        for f in &self.figures {
            let value = match f.unit {
                Unit::Micros => format!("{:.1} µs", f.value),
                Unit::PerSec => format!("{:.0} /s", f.value),
                Unit::Ratio => format!("{:.3}×", f.value),
                Unit::Bytes => format!("{:.0} B", f.value),
                Unit::Percent => format!("{:.2} %", f.value),
                Unit::Count => format!("{:.0}", f.value),
            };
            let _ = writeln!(out, "| {} | {value} | `{}` |", f.label, f.key);
        }
        for note in &self.notes {
            let _ = write!(out, "\n{note}");
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_lists_what_it_lacks() {
        let mut r = Report::default();
        r.add("read.pk.ratio", "x", 1.0, Unit::Ratio);
        r.add("read.scan.ratio", "x", f64::NAN, Unit::Ratio);
        let missing = r.missing();
        assert!(!missing.iter().any(|k| k == "read.pk.ratio"));
        assert!(missing.iter().any(|k| k == "read.scan.ratio"));
        assert!(r.table().contains("| x | 1.000× | `read.pk.ratio` |"));
    }
}
