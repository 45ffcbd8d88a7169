//! Tests of the lease server: its state machine on an injected clock and its wire formats.

mod state;
mod wire;
