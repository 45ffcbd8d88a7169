//! Go durations, session bodies and the JSON the Go client decodes.

use std::time::Duration;

use crate::real::consul::state::Behavior;
use crate::real::consul::wire::{go_duration, new_id, parse_go_duration, session_spec};

#[test]
fn go_durations_parse() {
    let cases = [
        ("10s", 10_000),
        ("1000ms", 1_000),
        ("1m30s", 90_000),
        ("1.5s", 1_500),
        ("0", 0),
        ("2h", 7_200_000),
    ];
    for (text, ms) in cases {
        assert_eq!(
            parse_go_duration(text),
            Some(Duration::from_millis(ms)),
            "{text}"
        );
    }
    assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
    assert_eq!(parse_go_duration("10"), None);
    assert_eq!(parse_go_duration("s"), None);
}

#[test]
fn go_durations_format_back_exactly() {
    for d in [
        Duration::from_secs(4),
        Duration::from_millis(1500),
        Duration::from_nanos(7),
    ] {
        assert_eq!(parse_go_duration(&go_duration(d)), Some(d));
    }
    assert_eq!(go_duration(Duration::from_secs(10)), "10s");
}

#[test]
fn litefs_s_session_body_is_read() {
    let body =
        br#"{"Behavior":"delete","LockDelay":"1000ms","Name":"litefs","NodeChecks":[],"TTL":"4s"}"#;
    let s = session_spec(body).unwrap();
    assert_eq!(s.behavior, Behavior::Delete);
    assert_eq!(s.lock_delay, Duration::from_secs(1));
    assert_eq!(s.ttl, Some(Duration::from_secs(4)));
    assert_eq!(s.name, "litefs");
}

#[test]
fn a_numeric_lock_delay_is_seconds_when_small_and_nanoseconds_otherwise() {
    let small = session_spec(br#"{"LockDelay": 15}"#).unwrap();
    assert_eq!(small.lock_delay, Duration::from_secs(15));
    let nanos = session_spec(br#"{"LockDelay": 2000000000}"#).unwrap();
    assert_eq!(nanos.lock_delay, Duration::from_secs(2));
}

#[test]
fn an_empty_session_body_takes_consul_s_defaults() {
    let s = session_spec(b"").unwrap();
    assert_eq!(s.behavior, Behavior::Release);
    assert_eq!(s.lock_delay, Duration::from_secs(15));
    assert_eq!(s.ttl, None);
}

#[test]
fn a_bad_behavior_is_refused() {
    assert!(session_spec(br#"{"Behavior":"explode"}"#).is_err());
}

#[test]
fn session_ids_are_version_4_uuids() {
    let id = new_id();
    let parts: Vec<&str> = id.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
    assert!(parts[2].starts_with('4'), "{id}");
    assert!("89ab".contains(&parts[3][..1]), "{id}");
    assert_ne!(new_id(), id);
}
