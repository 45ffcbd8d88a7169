//! Tests of the lease server: its state machine on an injected clock, its wire formats, its
//! routes, and the gates.

mod gate;
mod http;
mod state;
mod wire;
