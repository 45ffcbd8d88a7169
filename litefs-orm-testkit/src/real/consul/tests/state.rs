//! The state machine, driven by made-up instants instead of sleeps.

use std::time::{Duration, Instant};

use crate::real::consul::state::{Behavior, Call, Refusal, SessionSpec, State};

const TTL: Duration = Duration::from_secs(10);
const DELAY: Duration = Duration::from_secs(1);
const KEY: &str = "litefs/app";

fn spec(behavior: Behavior) -> SessionSpec {
    SessionSpec {
        name: "litefs".to_owned(),
        node: String::new(),
        behavior,
        lock_delay: DELAY,
        ttl: Some(TTL),
    }
}

/// A clock: `at(s)` is `s` seconds after the start.
struct Clock(Instant);

impl Clock {
    fn at(&self, secs: f64) -> Call {
        Call {
            now: self.0 + Duration::from_secs_f64(secs),
            via: Some(0),
        }
    }
}

/// A state where session "a" (behaviour `behavior`) holds KEY since t=0.
fn held(behavior: Behavior) -> (State, Clock) {
    let clock = Clock(Instant::now());
    let mut s = State::default();
    s.create_session("a".into(), spec(behavior), clock.at(0.0));
    s.acquire(KEY, "a", b"n1".to_vec(), 0, clock.at(0.0))
        .unwrap();
    (s, clock)
}

#[test]
fn a_session_not_renewed_within_its_ttl_deletes_its_keys() {
    let (mut s, clock) = held(Behavior::Delete);
    assert!(s.get(KEY, clock.at(9.999).now).is_some());
    assert!(s.get(KEY, clock.at(10.0).now).is_none());
    assert!(s.session("a", clock.at(10.0).now).is_none());
}

#[test]
fn a_renewal_moves_the_expiry_a_ttl_past_it() {
    let (mut s, clock) = held(Behavior::Delete);
    assert!(s.renew("a", clock.at(6.0)).is_some());
    assert!(s.get(KEY, clock.at(15.9).now).is_some());
    assert!(s.get(KEY, clock.at(16.0).now).is_none());
}

#[test]
fn an_expired_session_released_its_keys_with_behavior_release() {
    let (mut s, clock) = held(Behavior::Release);
    let before = s.get(KEY, clock.at(0.0).now).unwrap().modify_index;
    let e = s.get(KEY, clock.at(11.0).now).unwrap();
    assert_eq!(e.session, None);
    assert_eq!(e.value, b"n1");
    assert!(e.modify_index > before);
}

#[test]
fn renewing_an_expired_session_finds_nothing() {
    let (mut s, clock) = held(Behavior::Delete);
    assert!(s.renew("a", clock.at(10.5)).is_none());
}

#[test]
fn expiry_happens_without_any_request_when_the_timer_asks() {
    let (mut s, clock) = held(Behavior::Delete);
    s.expire(clock.at(12.0).now);
    assert!(s.events().iter().any(|e| e.what == "session a expired"));
    let expired = s
        .events()
        .iter()
        .find(|e| e.what == "session a expired")
        .unwrap();
    assert_eq!(
        expired.at,
        clock.at(10.0).now,
        "dated at the deadline, not when noticed"
    );
}

#[test]
fn the_lock_delay_refuses_an_acquire_after_expiry() {
    let (mut s, clock) = held(Behavior::Delete);
    s.create_session("b".into(), spec(Behavior::Delete), clock.at(10.2));
    let got = s.acquire(KEY, "b", b"n2".to_vec(), 0, clock.at(10.5));
    assert!(matches!(got, Err(Refusal::LockDelay(left)) if left == Duration::from_millis(500)));
}

#[test]
fn the_lock_delay_allows_an_acquire_once_past() {
    let (mut s, clock) = held(Behavior::Delete);
    s.create_session("b".into(), spec(Behavior::Delete), clock.at(10.2));
    assert_eq!(
        s.acquire(KEY, "b", b"n2".to_vec(), 0, clock.at(11.0)),
        Ok(())
    );
    assert_eq!(
        s.get(KEY, clock.at(11.0).now).unwrap().session.as_deref(),
        Some("b")
    );
}

#[test]
fn the_lock_delay_follows_a_destroy() {
    let (mut s, clock) = held(Behavior::Delete);
    s.create_session("b".into(), spec(Behavior::Delete), clock.at(1.0));
    s.destroy("a", clock.at(2.0));
    let got = s.acquire(KEY, "b", Vec::new(), 0, clock.at(2.9));
    assert!(matches!(got, Err(Refusal::LockDelay(_))));
    assert_eq!(s.acquire(KEY, "b", Vec::new(), 0, clock.at(3.0)), Ok(()));
}

#[test]
fn an_explicit_release_has_no_lock_delay() {
    let (mut s, clock) = held(Behavior::Delete);
    s.create_session("b".into(), spec(Behavior::Delete), clock.at(1.0));
    s.release(KEY, "a", Vec::new(), 0, clock.at(2.0)).unwrap();
    s.destroy("a", clock.at(2.0));
    assert_eq!(
        s.acquire(KEY, "b", b"n2".to_vec(), 0, clock.at(2.0)),
        Ok(())
    );
}

#[test]
fn a_release_clears_the_holder_and_sets_the_value() {
    let (mut s, clock) = held(Behavior::Delete);
    s.release(KEY, "a", Vec::new(), 0, clock.at(1.0)).unwrap();
    let e = s.get(KEY, clock.at(1.0).now).unwrap();
    assert_eq!((e.session.as_deref(), e.value.as_slice()), (None, &b""[..]));
}

#[test]
fn another_session_cannot_acquire_a_held_key() {
    let (mut s, clock) = held(Behavior::Delete);
    s.create_session("b".into(), spec(Behavior::Delete), clock.at(1.0));
    let got = s.acquire(KEY, "b", b"n2".to_vec(), 0, clock.at(1.0));
    assert_eq!(got, Err(Refusal::Held("a".into())));
    assert_eq!(s.get(KEY, clock.at(1.0).now).unwrap().value, b"n1");
}

#[test]
fn another_session_cannot_release_a_held_key() {
    let (mut s, clock) = held(Behavior::Delete);
    s.create_session("b".into(), spec(Behavior::Delete), clock.at(1.0));
    let got = s.release(KEY, "b", Vec::new(), 0, clock.at(1.0));
    assert_eq!(got, Err(Refusal::NotHolder));
    assert_eq!(
        s.get(KEY, clock.at(1.0).now).unwrap().session.as_deref(),
        Some("a")
    );
}

#[test]
fn the_holder_acquires_again_without_a_new_lock_index() {
    let (mut s, clock) = held(Behavior::Delete);
    s.acquire(KEY, "a", b"n2".to_vec(), 0, clock.at(1.0))
        .unwrap();
    let e = s.get(KEY, clock.at(1.0).now).unwrap();
    assert_eq!((e.lock_index, e.value.as_slice()), (1, &b"n2"[..]));
}

#[test]
fn a_new_holder_bumps_the_lock_index() {
    let (mut s, clock) = held(Behavior::Release);
    s.release(KEY, "a", b"n1".to_vec(), 0, clock.at(1.0))
        .unwrap();
    s.create_session("b".into(), spec(Behavior::Release), clock.at(1.0));
    s.acquire(KEY, "b", b"n2".to_vec(), 0, clock.at(1.0))
        .unwrap();
    assert_eq!(s.get(KEY, clock.at(1.0).now).unwrap().lock_index, 2);
}

#[test]
fn a_session_that_does_not_exist_acquires_nothing() {
    let (mut s, clock) = held(Behavior::Delete);
    let got = s.acquire("other", "nobody", Vec::new(), 0, clock.at(1.0));
    assert_eq!(got, Err(Refusal::NoSession));
    assert!(s.get("other", clock.at(1.0).now).is_none());
}

#[test]
fn a_plain_put_keeps_the_lock_holder() {
    let (mut s, clock) = held(Behavior::Delete);
    s.put(KEY, b"x".to_vec(), 7, clock.at(1.0));
    let e = s.get(KEY, clock.at(1.0).now).unwrap();
    assert_eq!((e.session.as_deref(), e.flags), (Some("a"), 7));
}

#[test]
fn keys_the_session_does_not_hold_survive_its_expiry() {
    let (mut s, clock) = held(Behavior::Delete);
    s.put("litefs/app/clusterid", b"LFSC".to_vec(), 0, clock.at(0.5));
    assert!(s.get("litefs/app/clusterid", clock.at(20.0).now).is_some());
}

#[test]
fn destroying_a_destroyed_session_changes_nothing() {
    let (mut s, clock) = held(Behavior::Delete);
    s.destroy("a", clock.at(1.0));
    let index = s.index();
    s.destroy("a", clock.at(2.0));
    assert_eq!(s.index(), index);
}

#[test]
fn every_change_moves_the_index() {
    let (mut s, clock) = held(Behavior::Delete);
    let before = s.index();
    s.put("k", Vec::new(), 0, clock.at(1.0));
    let put = s.index();
    s.delete("k", clock.at(1.0));
    assert!(before < put && put < s.index());
}
