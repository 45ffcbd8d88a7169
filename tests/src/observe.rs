//! What a test sees of litefs-orm's observability: the metrics recorded (through the
//! `metrics` crate's debugging recorder) and the spans and events traced, on the test's own
//! thread — so a `#[tokio::test]` (one thread) sees every node of its cluster, and nothing
//! of the tests running beside it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The metrics recorded on this thread while it lives.
pub struct Metrics {
    snapshotter: Snapshotter,
    // Declared before the recorder it borrows: dropped first.
    _guard: metrics::LocalRecorderGuard<'static>,
}

impl Metrics {
    /// Records this thread's metrics from now on.
    pub fn record() -> Metrics {
        // Leaked: one small recorder per test, alive as long as the guard that points to it.
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        Metrics {
            snapshotter: recorder.snapshotter(),
            _guard: metrics::set_default_local_recorder(recorder),
        }
    }

    /// What was recorded since the last take (the debugging recorder hands each value out
    /// once: counters as their increase, histograms as their new samples, gauges as set).
    pub fn take(&self) -> Recorded {
        Recorded(self.snapshotter.snapshot().into_vec())
    }
}

/// The metrics of one [`Metrics::take`].
#[derive(Debug)]
pub struct Recorded(Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>);

impl Recorded {
    /// The value of metric `name` whose labels are exactly `labels` (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        self.0
            .iter()
            .find(|(key, ..)| {
                let key = key.key();
                key.name() == name
                    && key.labels().count() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(.., value)| value)
    }

    /// A counter's increase (0 when not incremented).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    /// A gauge's value, if set.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.get(name, labels)? {
            DebugValue::Gauge(v) => Some(v.0),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    /// A histogram's new samples.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(name, labels) {
            Some(DebugValue::Histogram(v)) => v.iter().map(|s| s.0).collect(),
            None => Vec::new(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
        }
    }
}

/// A span or an event as traced: its name (an event's message), level and fields.
#[derive(Clone, Debug)]
pub struct Traced {
    /// The span's name, or the event's message.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// Its fields, each as text (a string field without quotes).
    pub fields: BTreeMap<String, String>,
}

/// The spans and events traced on this thread while it lives, at every level.
pub struct Traces {
    seen: Arc<Mutex<Seen>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Default)]
struct Seen {
    /// Every span, by the order it was opened in.
    spans: BTreeMap<u64, Traced>,
    /// Live span ids to their keys in `spans` (ids are reused once a span closes).
    live: BTreeMap<u64, u64>,
    events: Vec<Traced>,
}

impl Traces {
    /// Traces this thread from now on.
    pub fn record() -> Traces {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let layer = Capture { seen: seen.clone() };
        let subscriber = tracing_subscriber::registry().with(layer);
        Traces {
            seen,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// The spans named `name`, in the order they were opened.
    pub fn spans(&self, name: &str) -> Vec<Traced> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.spans
            .values()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// The events at `level` or more severe.
    pub fn events_at_or_above(&self, level: Level) -> Vec<Traced> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.events
            .iter()
            .filter(|e| e.level <= level)
            .cloned()
            .collect()
    }

    /// The events whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<Traced> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.events
            .iter()
            .filter(|e| e.name == message)
            .cloned()
            .collect()
    }
}

struct Capture {
    seen: Arc<Mutex<Seen>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let traced = Traced {
            name: attrs.metadata().name().to_owned(),
            level: *attrs.metadata().level(),
            fields,
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let key = seen.spans.len() as u64;
        seen.spans.insert(key, traced);
        seen.live.insert(id.into_u64(), key);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(key) = seen.live.get(&id.into_u64()).copied() else {
            return;
        };
        if let Some(span) = seen.spans.get_mut(&key) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let name = fields.remove("message").unwrap_or_default();
        let traced = Traced {
            name,
            level: *event.metadata().level(),
            fields,
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.events.push(traced);
    }
}
