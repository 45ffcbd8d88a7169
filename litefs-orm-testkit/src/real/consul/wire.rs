//! Consul's wire formats: Go duration strings, session create bodies, and the JSON of sessions
//! and KV entries.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::state::{Behavior, Entry, Session, SessionSpec};

/// Consul's lock delay when a session asks for none.
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);

/// Parses a Go duration string (`"10s"`, `"1000ms"`, `"1m30s"`, `"1.5s"`, `"0"`).
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let number: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += number * scale;
        rest = tail;
    }
    Some(Duration::from_nanos(nanos.round() as u64))
}

/// Formats a duration as Go would parse it back, exactly (`"4s"`, `"1500ms"`, `"10ns"`).
pub(crate) fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// Reads a `LockDelay`: a duration string, or a number — seconds when below 1000 (Consul's
/// rule for small numbers), nanoseconds otherwise.
fn lock_delay(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Null => Ok(DEFAULT_LOCK_DELAY),
        Value::String(s) => parse_go_duration(s).ok_or_else(|| format!("bad LockDelay {s:?}")),
        Value::Number(n) => match n.as_u64() {
            Some(secs) if secs < 1000 => Ok(Duration::from_secs(secs)),
            Some(nanos) => Ok(Duration::from_nanos(nanos)),
            None => Err(format!("bad LockDelay {n}")),
        },
        other => Err(format!("bad LockDelay {other}")),
    }
}

/// Reads the JSON body of `PUT /v1/session/create` (an empty body means all defaults).
pub(crate) fn session_spec(body: &[u8]) -> Result<SessionSpec, String> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| format!("bad session body: {e}"))?
    };
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let behavior = match v.get("Behavior").and_then(Value::as_str) {
        None | Some("") | Some("release") => Behavior::Release,
        Some("delete") => Behavior::Delete,
        Some(other) => return Err(format!("bad Behavior {other:?}")),
    };
    let ttl = match v.get("TTL").and_then(Value::as_str) {
        None | Some("") => None,
        Some(t) => match parse_go_duration(t) {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => return Err(format!("bad TTL {t:?}")),
        },
    };
    Ok(SessionSpec {
        name: text("Name"),
        node: text("Node"),
        behavior,
        lock_delay: lock_delay(v.get("LockDelay").unwrap_or(&Value::Null))?,
        ttl,
    })
}

/// A session entry as `/v1/session/renew` answers it (`LockDelay` in nanoseconds, as the Go
/// client's `time.Duration` field decodes it).
pub(crate) fn session_json(s: &Session, index: u64) -> Value {
    json!({
        "ID": s.id,
        "Name": s.spec.name,
        "Node": s.spec.node,
        "LockDelay": u64::try_from(s.spec.lock_delay.as_nanos()).unwrap_or(u64::MAX),
        "Behavior": s.spec.behavior.as_str(),
        "TTL": s.spec.ttl.map(go_duration).unwrap_or_default(),
        "Checks": [],
        "NodeChecks": [],
        "ServiceChecks": null,
        "CreateIndex": s.create_index,
        "ModifyIndex": index,
    })
}

/// A KV entry as `GET /v1/kv/<key>` lists it: base64 `Value` (`null` when empty), `Session`
/// only while the key is locked.
pub(crate) fn entry_json(key: &str, e: &Entry) -> Value {
    let mut v = json!({
        "Key": key,
        "Value": if e.value.is_empty() {
            Value::Null
        } else {
            Value::from(base64::engine::general_purpose::STANDARD.encode(&e.value))
        },
        "Flags": e.flags,
        "LockIndex": e.lock_index,
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
    });
    if let (Some(s), Some(map)) = (&e.session, v.as_object_mut()) {
        map.insert("Session".to_owned(), Value::from(s.clone()));
    }
    v
}

/// A random version-4 UUID, as Consul's session IDs are.
pub(crate) fn new_id() -> String {
    let n: u128 = rand::random();
    let n = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
