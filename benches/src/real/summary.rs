//! The real-LiteFS figures of one journal mode as one table: each kind's rate and latency per
//! writer count, and the ratios the targets are stated in.

use std::fmt::Write as _;

use litefs_orm::JournalMode;

use super::WRITERS;
use super::writer::Kind;
use crate::report::Report;

/// A Markdown table of `mode`'s figures, read back from `report`.
pub fn table(report: &Report, mode: JournalMode) -> String {
    let m = mode.as_str();
    let get = |key: String| report.get(&key).unwrap_or(f64::NAN);
    let mut out = format!(
        "Real LiteFS, {m}: writes/s (p50 / p99 ms)\n\n\
         | writers | local | forwarded | HALT | plain SeaORM | fwd / local | fwd / HALT | fwd p99 / HALT p99 |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for n in WRITERS {
        let _ = write!(out, "| {n} |");
        for kind in Kind::ALL {
            let key = format!("real.{m}.{}.{n}", kind.key());
            let _ = write!(
                out,
                " {:.0} ({:.1} / {:.1}) |",
                get(key.clone()),
                get(format!("{key}.p50")) / 1e3,
                get(format!("{key}.p99")) / 1e3,
            );
        }
        for ratio in [
            "forwarded_over_local",
            "forwarded_over_halt",
            "forwarded_p99_over_halt_p99",
        ] {
            let _ = write!(out, " {:.2} |", get(format!("real.{m}.{ratio}.{n}")));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\n1 writer: forwarded p50 − local p50 = {:.2} ms\n\n\
         CPU per write, µs: this process (apps, writers) + primary's LiteFS + replicas' LiteFS; \
         writes per LiteFS transaction\n\n\
         | writers | local | forwarded | HALT | plain SeaORM |\n|---:|---:|---:|---:|---:|",
        get(format!("real.{m}.forwarded_p50_minus_local_p50.1")) / 1e3
    );
    for n in WRITERS {
        let _ = write!(out, "| {n} |");
        for kind in Kind::ALL {
            let key = format!("real.{m}.{}.{n}", kind.key());
            let _ = write!(
                out,
                " {:.0} + {:.0} + {:.0}; {:.1} |",
                get(format!("{key}.cpu_app")),
                get(format!("{key}.cpu_litefs_primary")),
                get(format!("{key}.cpu_litefs_replicas")),
                get(format!("{key}.per_txid")),
            );
        }
        out.push('\n');
    }
    out
}
