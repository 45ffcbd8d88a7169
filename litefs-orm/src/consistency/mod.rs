//! Read-your-writes across requests, nodes and failovers: tokens (bookmarks) of the commits
//! a client has seen, and an Axum layer that carries them in a cookie or a header.
//!
//! A forwarded write returns once this node holds its commit; a client's *next* request may
//! land on another node whose replica has not caught up. A [`Token`] names the commit — its
//! TXID, and the idempotency key the primary recorded in the same transaction with the run
//! (one execution of the call) that committed it — and any node waits until its replica
//! holds both before it answers. Holding the key's record of that run is what proves the
//! commit: after a failover a replica may be at or past the TXID on a history the new
//! primary abandoned — even holding that history's record of the same key, when the call
//! ran again on the new primary — and it waits on until LiteFS replaces that history.
//!
//! The tokens a request earns replace the ones it carried (its writes came after them; after
//! a failover that lost the carried commit, a later write may have the lower TXID, and only
//! it can still be held), and an expired token is dropped, never refused.
//!
//! What it guarantees, for one session (a browser's cookie, an API client's header): a
//! request sees every write the session made before it (read-your-writes), and never an
//! older state than a request before it saw through a write (monotonic reads, as far as
//! writes), on any node, across primary changes — within the wait bound, past which the
//! layer answers 503 or marks the response stale, as configured. What it does not: reads of
//! other clients' writes (use a token they hand over), writes made by tasks a handler
//! spawned (capture them with [`capture`]), tokens older than their lifetime
//! ([`Config::token_lifetime`](crate::Config::token_lifetime): shorter than the record
//! proving their commit lives), and writes a failover lost (LiteFS replicates asynchronously: a
//! commit the new primary never received is gone, and its token waits out its bound).
//!
//! Compared with LiteFS's own proxy, whose `__txid` cookie is a bare TXID for one database,
//! five minutes, on Fly: tokens are signed, name their database (several ride together),
//! survive a failover, and work on any host and for non-HTTP work. Compared with Cloudflare
//! D1's Sessions API bookmarks: the same idea — a bookmark in a header — with the commit
//! proven by its own record rather than by a position alone.

mod layer;
mod session;
mod token;

pub use layer::{
    BadTokens, Consistency, ConsistencyLayer, DEFAULT_COOKIE, DEFAULT_HEADER, OnStale, STALE_HEADER,
};
pub use session::capture;
pub(crate) use session::{active, held, replace};
pub use token::{MAX_DATABASES, MAX_TOKEN_LEN, Token, TokenError, Tokens};
