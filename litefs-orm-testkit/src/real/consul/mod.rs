//! A small lease server speaking the part of Consul's HTTP API that LiteFS v0.5.14 calls.
//!
//! What it serves, following Consul's documented semantics:
//!
//! - `PUT /v1/session/create` (`Name`, `Node`, `Behavior` `"delete"` or `"release"` — the
//!   default —, `LockDelay` as a Go duration string or a number: seconds below 1000,
//!   nanoseconds otherwise; default 15 s; `TTL` as a Go duration string) → `{"ID": <uuid>}`;
//! - `PUT /v1/session/renew/<id>` → `[<session>]` with the TTL reset, 404 once it is gone;
//! - `PUT /v1/session/destroy/<id>` → `true`, even when it is gone;
//! - `GET /v1/kv/<key>` → 404 or `[<entry>]` (base64 `Value`, `Session` while locked);
//! - `PUT /v1/kv/<key>` with `?acquire=<session>`, `?release=<session>` or neither (the body
//!   becomes the value in all three, as in Consul) → `true` or `false`; `DELETE` → `true`;
//! - `PUT /v1/catalog/register` → `true`; anything else → 404 with a text body.
//!
//! Every answer carries `X-Consul-Index`, `X-Consul-KnownLeader` and `X-Consul-LastContact`.
//! A session not renewed within its TTL is invalidated exactly at the TTL — by a timer, even
//! when no request arrives. Consul itself may wait up to twice the TTL and refuses TTLs under
//! 10 s; this server takes any TTL. An invalidated session's keys are deleted or released as
//! its behaviour says and cannot be acquired by anyone for its lock delay; a key released
//! explicitly has no lock delay. Acquiring with a session that does not exist answers `false`
//! (Consul answers an error).

mod state;
mod wire;

#[cfg(test)]
mod tests;
